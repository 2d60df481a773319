"""The ``modelbus`` command line: plugins, models, chat (and serve/keys/usage with the gateway extra).

Every failure prints one line saying what went wrong and what to do, and exits non-zero; no tracebacks.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from modelbus._version import __version__
from modelbus.errors import ModelbusError

app = typer.Typer(
    name="modelbus",
    help="One interface, one gateway and one router in front of every LLM provider.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        out.print(f"modelbus {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """modelbus command line."""


def _client(config: str | None = None) -> Any:
    from modelbus.client import Client

    return Client(config=config)


ConfigOption = Annotated[str | None, typer.Option("--config", "-c", help="Path to config.toml.")]


@app.command("plugins")
def plugins_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: ConfigOption = None,
) -> None:
    """List installed plugins: providers, versions, hooks and load errors."""
    records = _client(config).plugins()
    if as_json:
        out.print_json(json.dumps([record.__dict__ for record in records]))
        return
    table = Table("plugin", "distribution", "version", "providers", "hooks", "status")
    for record in records:
        status = "[green]ok[/]" if record.ok else f"[red]{escape(record.error or '')}[/]"
        table.add_row(
            record.name,
            record.distribution or "-",
            record.version or "-",
            ", ".join(record.providers) or "-",
            str(len(record.hooks)),
            status,
        )
    out.print(table)
    broken = [r for r in records if not r.ok]
    if broken:
        err.print(f"{len(broken)} plugin(s) failed to load; the others work.")


def _price(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.normalize():f}"


@app.command("models")
def models_command(
    pattern: Annotated[str | None, typer.Argument(help="Glob such as 'deepseek/*'.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    live: Annotated[
        bool, typer.Option("--live", help="Also ask servers that list models live (Ollama).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """List models: id, context window, capabilities, price per 1M tokens, price date (--json: source)."""
    from modelbus.pricing import usd_per_million

    client = _client(config)
    if live:
        wanted = pattern.split("/", 1)[0] if pattern and "/" in pattern else None
        for provider in sorted(client.runtime.registry.providers):
            if wanted in (None, "*", provider):
                try:
                    client.list_models(provider)
                except ModelbusError as exc:
                    err.print(
                        f"[yellow]warning:[/] {provider}: could not list models live: {escape(str(exc))}"
                    )
    rows = client.models(pattern)
    fx = client.runtime.fx_rates
    if as_json:
        data = []
        for model in rows:
            item = model.model_dump(mode="json")
            item["full_id"] = model.full_id
            if model.price is not None:
                usd_in, usd_out = usd_per_million(model.price, fx)
                item["price_usd_per_million"] = {"input": str(usd_in), "output": str(usd_out)}
            data.append(item)
        out.print_json(json.dumps(data))
        return
    if not rows:
        raise fail(
            f"no models match {pattern!r}"
            if pattern
            else "no models: install a provider plugin, e.g. pip install modelbus-deepseek"
        )
    table = Table(
        Column("model", no_wrap=True),
        "kind",
        "context",
        "max out",
        "capabilities",
        "in/1M",
        "cached/1M",
        "out/1M",
        "cur",
        Column("as of", no_wrap=True),
    )
    for model in rows:
        price = model.price
        table.add_row(
            model.full_id,
            model.kind,
            f"{model.context_window:,}",
            f"{model.max_output_tokens:,}" if model.max_output_tokens else "-",
            ",".join(sorted(c for c in model.capabilities if c != "streaming")) or "-",
            _price(price.input if price else None),
            _price(price.cached_input if price else None),
            _price(price.output if price else None),
            price.currency if price else "-",
            price.as_of.isoformat() if price else "-",
        )
    out.print(table)


@app.command("chat")
def chat_command(
    prompt: Annotated[str, typer.Argument(help="What to say; '-' reads stdin.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="provider/model or an alias.")] = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="A system message.")] = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Stream tokens (default).")] = True,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="Output token limit.")] = None,
    config: ConfigOption = None,
) -> None:
    """Chat with a model; prints the answer, then tokens and cost."""
    if prompt == "-":
        prompt = sys.stdin.read()
    client = _client(config)
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    params: dict[str, Any] = {}
    if temperature is not None:
        params["temperature"] = temperature
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if model is None:
        chosen = client.runtime.registry.default_model_id()
        err.print(f"[dim]using {chosen} (no -m given; set default_model in config.toml to change it)[/]")
        model = chosen
    if stream:
        with client.chat(model, messages, stream=True, **params) as chunks:
            for chunk in chunks:
                out.print(chunk.text, end="", markup=False)
            response = chunks.response
        out.print()
    else:
        response = client.chat(model, messages, **params)
        out.print(response.text, markup=False)
    assert response is not None
    usage = response.usage
    cost = "unpriced" if response.cost is None else f"${response.cost:.6f}"
    if usage is not None:
        detail = f"{usage.prompt_tokens} in ({usage.cached_tokens} cached) + {usage.completion_tokens} out"
        if usage.reasoning_tokens:
            detail += f" ({usage.reasoning_tokens} reasoning)"
        if usage.estimated:
            detail += " (estimated)"
        err.print(f"[dim]{response.provider}/{response.model}: {detail} tokens, {cost}[/]")


def _register_optional_commands() -> None:
    try:
        from modelbus.gateway.cli import register
    except ImportError:
        return
    register(app)


def main() -> None:
    _register_optional_commands()
    try:
        app()
    except ModelbusError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
