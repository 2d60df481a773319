"""The gateway's tables (SQLAlchemy Core) and the migration runner (Alembic).

SQLite by default, PostgreSQL by URL. Money is stored as NUMERIC(20, 10) (exact decimals). Every
statement is built with SQLAlchemy's expression language: parameters are always bound, never
formatted into SQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelbus.http import dumps_json

metadata = sa.MetaData()
MONEY = sa.Numeric(20, 10, asdecimal=True)

teams = sa.Table(
    "teams",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("budget_usd", MONEY, nullable=True),
    sa.Column("budget_period", sa.String(16), nullable=False, server_default="monthly"),
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("tpm", sa.Integer, nullable=True),
    sa.Column("models", sa.JSON, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

keys = sa.Table(
    "keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("team", sa.String(64), sa.ForeignKey("teams.name"), nullable=True, index=True),
    sa.Column("name", sa.String(128), nullable=True),
    sa.Column("models", sa.JSON, nullable=True),
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("tpm", sa.Integer, nullable=True),
    sa.Column("budget_usd", MONEY, nullable=True),
    sa.Column("budget_period", sa.String(16), nullable=False, server_default="monthly"),
    sa.Column("log_content", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

wallets = sa.Table(
    "wallets",
    metadata,
    sa.Column("team", sa.String(64), sa.ForeignKey("teams.name"), primary_key=True),
    sa.Column("balance_usd", MONEY, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

wallet_entries = sa.Table(
    "wallet_entries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("team", sa.String(64), nullable=False, index=True),
    sa.Column("amount_usd", MONEY, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),  # topup, adjustment
    sa.Column("note", sa.String(256), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("request_id", sa.String(40), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("key_id", sa.String(32), nullable=True, index=True),
    sa.Column("team", sa.String(64), nullable=True, index=True),
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("requested_model", sa.String(256), nullable=False),
    sa.Column("resolved_model", sa.String(256), nullable=True),
    sa.Column("provider", sa.String(64), nullable=True),
    sa.Column("stream", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, ok, error, cancelled, interrupted, refused
    sa.Column("http_status", sa.Integer, nullable=True),
    sa.Column("error_type", sa.String(64), nullable=True),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("total_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cached_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cache_creation_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reasoning_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("usage_estimated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("cost_usd", MONEY, nullable=False, server_default="0"),
    sa.Column("reserved_usd", MONEY, nullable=False, server_default="0"),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("ttft_ms", sa.Float, nullable=True),
    sa.Column("route", sa.JSON, nullable=True),
)

sa.Index("ix_ledger_team_created", ledger.c.team, ledger.c.created_at)
sa.Index("ix_ledger_status", ledger.c.status)

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str) -> Engine:
    """An engine with the settings the gateway relies on (SQLite: WAL, a busy timeout, NORMAL sync)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=_json_text,
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes (kill -9)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8, json_serializer=_json_text)


def _json_text(value: object) -> str:
    """JSON columns (the route record) through orjson: they are written on every request."""
    return dumps_json(value).decode()


def open_database(url: str) -> Engine:
    """An engine on a migrated schema, or a :class:`ConfigError` that says what is wrong (no password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from modelbus.errors import ConfigError

    shown = make_url(url).render_as_string(hide_password=True)
    try:
        engine = make_engine(url)
        migrate(engine)
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ConfigError(f"cannot open the ledger database {shown}: {reason}") from None
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision (idempotent; run at start-up and by `modelbus db upgrade`)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class DriverStatement:
    """A statement compiled once by SQLAlchemy for one dialect and executed on the driver's cursor.

    The ledger writer runs the same few statements for every request. Executing them through
    ``Connection.execute`` costs more Python per row than the database spends storing it (cache key,
    execution context, per-row parameter processing, result object). This keeps what matters from
    SQLAlchemy, the SQL text it compiles for the dialect and the bind processors of each parameter's
    type, so the stored values are exactly what ``Connection.execute`` would store; it drops the rest.
    Parameters are always bound, never formatted into the SQL.
    """

    def __init__(
        self, statement: sa.sql.expression.Executable, dialect: sa.Dialect, keys: Iterable[str] = ()
    ) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) or None)
        if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
            # execute() computes those values in Python per row; this class would bind NULL instead
            raise ValueError("DriverStatement cannot run a statement with Python-side column defaults")
        self.sql = compiled.string
        self.dialect = dialect
        self.positional = compiled.positional
        names = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
        self.names = tuple(names)
        self.defaults = compiled.params  # values fixed in the statement (``status = 'pending'``)
        self.processors = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        )

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """One row's parameters in the driver's paramstyle: the row's values, else the statement's own
        (a literal it was built with), else ``None``."""
        defaults = self.defaults
        bound = [
            value if process is None else process(value)
            for value, process in zip(
                [values.get(name, defaults.get(name)) for name in self.names], self.processors, strict=True
            )
        ]
        return tuple(bound) if self.positional else dict(zip(self.names, bound, strict=True))

    def executemany(self, cursor: Any, rows: Iterable[Mapping[str, Any]]) -> int:
        """Run the statement once per row on a DB-API cursor; returns the rows affected (-1 if unknown).
        The driver's errors are raised as SQLAlchemy's (``sa.exc.IntegrityError``...), see
        :func:`sqlalchemy_errors`."""
        params = [self.parameters(row) for row in rows]
        with sqlalchemy_errors(self.dialect, self.sql):
            cursor.executemany(self.sql, params)
        return int(cursor.rowcount)


@contextlib.contextmanager
def sqlalchemy_errors(dialect: sa.Dialect, statement: str | None = None) -> Iterator[None]:
    """Raise a DB-API driver's errors as the SQLAlchemy exceptions ``Connection.execute`` raises,
    without SQLAlchemy's parameter list. The driver's own message may still quote a value (PostgreSQL's
    DETAIL line does), so the ledger writer logs only its first line."""
    dbapi_error = dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as exc:
        raise sa.exc.DBAPIError.instance(
            statement, None, exc, dbapi_error, hide_parameters=True, dialect=dialect
        ) from exc
