"""Gateway commands for the ``modelbus`` CLI: serve, keys, teams, wallet, usage, db.

Key, team and wallet commands work on the gateway's database directly (the URL comes from config or
``MODELBUS_DATABASE_URL``), so they work whether or not the server runs; a running gateway picks up
changes within a few seconds (revocations through the admin API take effect at once).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import typer

from modelbus.errors import BadRequestError
from modelbus.gateway.admin_fields import KEY_FIELDS, TEAM_FIELDS, limit_fields, money, timestamp

ConfigOption = Annotated[str | None, typer.Option("--config", "-c", help="Path to config.toml.")]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="Overrides [gateway] database_url.")
]


def _settings(config_path: str | None, **overrides: Any) -> tuple[Any, Any]:
    from modelbus.config import ModelbusConfig
    from modelbus.gateway.settings import GatewaySettings

    config = ModelbusConfig.load(config_path)
    return config, GatewaySettings.load(config, overrides)


def _store(config_path: str | None, database_url: str | None) -> Any:
    from modelbus.gateway.db import open_database
    from modelbus.gateway.store import Store

    _, settings = _settings(config_path, database_url=database_url)
    return Store(open_database(settings.database_url))


CLI_NAMES = {
    "budget_usd": "--budget",
    "budget_period": "--budget-period",
    "rpm": "--rpm",
    "tpm": "--tpm",
    "models": "--models",
    "expires_at": "--expires",
}


def _models(value: str | None) -> list[str] | None:
    return [m.strip() for m in value.split(",") if m.strip()] if value is not None else None


def _expiry(value: str | None) -> datetime | None:
    """'30d', '12h', '90m' or an ISO date."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)([dhm])", value)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        delta = {"d": timedelta(days=amount), "h": timedelta(hours=amount), "m": timedelta(minutes=amount)}[
            unit
        ]
        return datetime.now(UTC) + delta
    try:
        return timestamp(value, "--expires")
    except BadRequestError:
        raise BadRequestError(f"--expires takes 30d, 12h, 90m or an ISO date, got {value!r}") from None


def register(app: typer.Typer) -> None:
    from modelbus.cli import err, out

    @app.command("serve")
    def serve_command(
        host: Annotated[str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")] = None,
        port: Annotated[int | None, typer.Option(help="Port (default 4000).")] = None,
        database_url: DatabaseOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Run the OpenAI-compatible gateway (embedded defaults: SQLite ledger, no other server)."""
        from modelbus.gateway.server import serve

        loaded, settings = _settings(config, host=host, port=port, database_url=database_url)
        from modelbus.gateway.db import open_database

        open_database(settings.database_url).dispose()  # fail here, in one line, not in a startup traceback
        default = loaded.default_model
        if default is None:
            from modelbus.client import Client

            try:
                default = Client(config=loaded).runtime.registry.default_model_id()
            except BadRequestError:
                default = None
        where = f"http://{settings.host}:{settings.port}/v1"
        err.print(
            f"modelbus gateway on {where}  (ledger: {settings.database_display()})"
            + (f"  default model: {default}" if default else "")
        )
        if settings.master_key is None:
            err.print("[yellow]no master key: the admin API is off. Set MODELBUS_MASTER_KEY to enable it.[/]")
        serve(loaded, settings)

    keys = typer.Typer(help="Virtual keys: create, list, revoke.", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @keys.command("create")
    def keys_create(
        team: Annotated[str | None, typer.Option(help="Team the key belongs to (created if new).")] = None,
        name: Annotated[str | None, typer.Option(help="A label.")] = None,
        budget: Annotated[str | None, typer.Option(help="Spending cap in USD per period.")] = None,
        budget_period: Annotated[str, typer.Option(help="daily, monthly or total.")] = "monthly",
        rpm: Annotated[int | None, typer.Option(help="Requests per minute.", min=1)] = None,
        tpm: Annotated[int | None, typer.Option(help="Tokens per minute.", min=1)] = None,
        models: Annotated[str | None, typer.Option(help="Allowed models, comma-separated globs.")] = None,
        expires: Annotated[str | None, typer.Option(help="30d, 12h, 90m or an ISO date.")] = None,
        log_content: Annotated[bool, typer.Option(help="Log this key's prompts and completions.")] = False,
        database_url: DatabaseOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Create a key; it is printed once and only its hash is stored."""
        fields = limit_fields(
            {
                "team": team,
                "name": name,
                "budget_usd": budget,
                "budget_period": budget_period,
                "rpm": rpm,
                "tpm": tpm,
                "models": _models(models) or None,
                "expires_at": _expiry(expires),
                "log_content": log_content,
            },
            KEY_FIELDS,
            names=CLI_NAMES,
        )
        full, record = _store(config, database_url).create_key(**fields)
        out.print(full, markup=False)
        err.print(
            f"key id {record.key_id} (team {record.team or '-'}); store the key now: it is not shown again"
        )

    @keys.command("list")
    def keys_list(
        team: Annotated[str | None, typer.Option()] = None,
        database_url: DatabaseOption = None,
        config: ConfigOption = None,
    ) -> None:
        """List keys (ids and limits, never secrets)."""
        from modelbus.gateway.app import _key_view

        rows = [_key_view(record) for record in _store(config, database_url).list_keys(team)]
        out.print_json(json.dumps(rows))

    @keys.command("revoke")
    def keys_revoke(key_id: str, database_url: DatabaseOption = None, config: ConfigOption = None) -> None:
        """Revoke a key by id."""
        if not _store(config, database_url).revoke_key(key_id):
            raise BadRequestError(f"no active key {key_id!r}")
        err.print(f"revoked {key_id}")

    teams = typer.Typer(help="Teams: budgets, limits, allowed models; list them.", no_args_is_help=True)
    app.add_typer(teams, name="teams")

    @teams.command("set")
    def teams_set(
        name: str,
        budget: Annotated[str | None, typer.Option(help="Spending cap in USD per period.")] = None,
        budget_period: Annotated[str | None, typer.Option(help="daily, monthly or total.")] = None,
        rpm: Annotated[int | None, typer.Option(min=1)] = None,
        tpm: Annotated[int | None, typer.Option(min=1)] = None,
        models: Annotated[str | None, typer.Option(help="Allowed models, comma-separated globs.")] = None,
        database_url: DatabaseOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Create or update a team."""
        given = {
            "budget_usd": budget,
            "budget_period": budget_period,
            "rpm": rpm,
            "tpm": tpm,
            "models": _models(models),
        }
        fields = limit_fields({k: v for k, v in given.items() if v is not None}, TEAM_FIELDS, names=CLI_NAMES)
        team = _store(config, database_url).set_team(name, **fields)
        err.print(
            f"team {team.name}: budget {team.budget_usd or '-'} ({team.budget_period}), "
            f"rpm {team.rpm or '-'}, tpm {team.tpm or '-'}"
        )

    @teams.command("list")
    def teams_list(database_url: DatabaseOption = None, config: ConfigOption = None) -> None:
        """List teams and their limits."""
        from modelbus.gateway.app import _team_view

        out.print_json(json.dumps([_team_view(team) for team in _store(config, database_url).list_teams()]))

    wallet = typer.Typer(help="Prepaid team wallets.", no_args_is_help=True)
    app.add_typer(wallet, name="wallet")

    @wallet.command("topup")
    def wallet_topup(
        team: str,
        amount: str,
        note: Annotated[str | None, typer.Option()] = None,
        database_url: DatabaseOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Add USD to a team's wallet."""
        value = money(amount, "amount")
        if not value:
            raise BadRequestError("amount must be a positive number of US dollars")
        balance = _store(config, database_url).topup(team, value, note)
        err.print(f"{team}: balance ${balance}")

    @wallet.command("show")
    def wallet_show(database_url: DatabaseOption = None, config: ConfigOption = None) -> None:
        """Balances of every wallet."""
        balances = _store(config, database_url).wallets()
        out.print_json(json.dumps({team: str(balance) for team, balance in sorted(balances.items())}))

    @app.command("usage")
    def usage_command(
        team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
        key: Annotated[str | None, typer.Option(help="Only this key id.")] = None,
        month: Annotated[str | None, typer.Option(help="YYYY-MM (UTC).")] = None,
        group_by: Annotated[str | None, typer.Option(help="team,key,model,provider,status,day")] = None,
        output_format: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
        rows: Annotated[bool, typer.Option("--rows", help="Every ledger row instead of totals.")] = False,
        database_url: DatabaseOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Invoices and exports from the usage ledger."""
        from modelbus.gateway.app import rows_as_csv, usage_query

        if output_format not in ("json", "csv"):
            raise BadRequestError("--format is json or csv")
        store = _store(config, database_url)
        query = usage_query({"group_by": group_by or "", "month": month})
        start, end = query["start"], query["end"]
        if rows:
            data = store.ledger_rows(start=start, end=end, team=team, key_id=key)
            data = [
                {k: (str(v) if isinstance(v, Decimal | datetime) else v) for k, v in row.items()}
                for row in data
            ]
        else:
            data = store.usage(group_by=query["group_by"], start=start, end=end, team=team, key_id=key)
        if output_format == "csv":
            typer.echo(rows_as_csv(data), nl=False)
        else:
            typer.echo(json.dumps({"team": team, "month": month, "data": data}, default=str, indent=2))

    db = typer.Typer(help="The gateway database.", no_args_is_help=True)
    app.add_typer(db, name="db")

    @db.command("upgrade")
    def db_upgrade(database_url: DatabaseOption = None, config: ConfigOption = None) -> None:
        """Apply schema migrations (serve does this at start-up too)."""
        _store(config, database_url)
        err.print("database schema is up to date")
