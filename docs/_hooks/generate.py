"""MkDocs hook: pages whose content is generated at build time from the installed code.

A page asks for generated content with a marker on a line of its own::

    <!-- generated: providers -->

and ``on_page_markdown`` replaces the marker before the page is rendered. Generators:

``providers``   the providers and model tables of every installed plugin (ids, context, capabilities,
                prices with currency, as-of date and source link), read through ``modelbus.Client``
``hooks``       the hook reference, from the docstrings and signatures in ``modelbus/hookspecs.py``
``settings``    the ``config.toml`` settings tables, from the pydantic models that validate them
``fx-rates``    the default exchange rates used to report non-USD prices in USD

Everything runs offline (no network, no API key) and deterministically; an unknown marker fails the
build. ``tests/docs`` imports this module to check the built site against the same data.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->[ \t]*$", re.M)


# ---------------------------------------------------------------------------------------- helpers


def _cell(text: object) -> str:
    """Table-cell safe text."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _price(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.normalize():f}"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _rst_to_markdown(text: str) -> str:
    """The reStructuredText bits used in modelbus docstrings, as Markdown."""
    text = re.sub(
        r":(?:class|meth|func|mod|attr|exc):`~?([^`]+)`", lambda m: f"`{m[1].split('.')[-1]}`", text
    )
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.rstrip().endswith("::"):  # a literal block follows, indented
            out.append(line.rstrip()[:-1] if not line.rstrip().endswith(" ::") else line.rstrip()[:-3])
            index += 1
            block: list[str] = []
            while index < len(lines) and (not lines[index].strip() or lines[index].startswith(" ")):
                block.append(lines[index])
                index += 1
            while block and not block[-1].strip():
                block.pop()
            while block and not block[0].strip():
                block.pop(0)
            literal = inspect.cleandoc("\n".join(block)).replace("`", "")  # no inline markup in a block
            out += ["", "```text", *literal.splitlines(), "```", ""]
            continue
        out.append(line)
        index += 1
    return "\n".join(out)


# -------------------------------------------------------------------------------------- providers


def _client() -> Any:
    from modelbus import Client

    return Client(config={})  # the installed tables only: no user config, no aliases, no extra rows


def _source_link(url: str) -> str:
    host = urlparse(url).netloc or url
    return f"[{host}]({url})"


def _prices(model: Any) -> str:
    """``input / cached / output CUR`` (embeddings: ``input CUR``)."""
    price = model.price
    if price is None:
        return "-"
    if model.kind == "embedding":
        return f"{_price(price.input)} {price.currency}"
    return f"{_price(price.input)} / {_price(price.cached_input)} / {_price(price.output)} {price.currency}"


def providers_markdown() -> str:
    """The providers summary and one model table per provider."""
    from modelbus import __version__

    client = _client()
    records = {p: r for r in client.plugins() if r.ok for p in r.providers}
    providers = client.runtime.registry.providers
    models = client.models()
    lines = [
        f"Generated when this site was built, from modelbus {__version__} and the model tables of "
        f"{len(providers)} installed provider plugins ({len(models)} models).",
        "",
        "| provider | package | API key from | regions (jurisdiction) | models |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in sorted(providers):
        info = providers[name]
        record = records.get(name)
        dist = f"`{record.distribution}` {record.version}" if record and record.distribution else "built in"
        keys = ", ".join(f"`{var}`" for var in info.api_key_env) or "-"
        if not info.requires_api_key:
            keys = f"none needed ({keys})" if info.api_key_env else "none needed"
        regions = ", ".join(
            f"`{region}`{' (default)' if region == info.default_region else ''}: {spec.jurisdiction}"
            for region, spec in sorted(info.regions.items())
        )
        own = [m for m in models if m.provider == name]
        chat = sum(m.kind == "chat" for m in own)
        embed = len(own) - chat
        count = f"{chat} chat" + (f", {embed} embedding" if embed else "")
        lines.append(f"| [{info.display_name}](#{name}) | {dist} | {keys} | {regions} | {count} |")
    lines += [
        "",
        "Prices are per **1M tokens in the provider's own currency**, as the plugin's `models.toml` states "
        "them, with the day they were read (`as of`) and the page they were read from (`source`): input, "
        "cached input (the cache-hit price; `-` when the provider has none) and output. Costs are always "
        "reported in USD: see "
        "[exchange rates](#exchange-rates). `tier` is the quality tier (1 basic ... 5 frontier) that "
        "routing constraints use.",
        "",
    ]
    for name in sorted(providers):
        info = providers[name]
        lines += [f"## {info.display_name} {{ #{name} }}", ""]
        if info.docs_url:
            lines += [f"API reference: <{info.docs_url}>", ""]
        if info.unlisted_model is not None:
            lines += [
                f"Model ids missing from this table are accepted too (`{name}/<any model>`), with the "
                "plugin's permissive template row.",
                "",
            ]
        lines += [
            "| model | kind | context | max out | capabilities | tier | input / cached / output per 1M "
            "| as of | source | notes |",
            "| --- | --- | ---: | ---: | --- | ---: | --- | --- | --- | --- |",
        ]
        for model in (m for m in models if m.provider == name):
            price = model.price
            ident = f"`{model.full_id}`"
            if model.aliases:
                ident += "<br>alias " + ", ".join(f"`{name}/{alias}`" for alias in model.aliases)
            caps = sorted(c for c in model.capabilities if c != "streaming")
            if model.kind == "embedding":
                caps = [
                    f"{model.embedding_dimensions}-d vectors" if model.embedding_dimensions else "vectors"
                ]
            notes = []
            if model.deprecated:
                notes.append("deprecated")
            if price is not None:
                for tier in price.tiers:
                    notes.append(
                        f"above {tier.above_prompt_tokens:,} prompt tokens: {_price(tier.input)} in / "
                        f"{_price(tier.output)} out"
                    )
                if price.cache_write is not None:
                    notes.append(f"cache write {_price(price.cache_write)}")
                if price.reasoning_output is not None:
                    notes.append(f"reasoning output {_price(price.reasoning_output)}")
            for region, regional in sorted(model.regional_prices.items()):
                notes.append(
                    f"region `{region}`: {_price(regional.input)} in / {_price(regional.output)} out "
                    f"{regional.currency}"
                )
            lines.append(
                "| "
                + " | ".join(
                    [
                        ident,
                        model.kind,
                        _count(model.context_window),
                        _count(model.max_output_tokens),
                        ", ".join(caps) or "-",
                        str(model.quality_tier),
                        _prices(model),
                        price.as_of.isoformat() if price else "-",
                        _source_link(price.source) if price else "-",
                        _cell("; ".join(notes)) or "",
                    ]
                )
                + " |"
            )
        lines.append("")
    lines += ["## Exchange rates", "", fx_rates_markdown()]
    return "\n".join(lines)


def fx_rates_markdown() -> str:
    from modelbus.pricing import DEFAULT_FX_RATES

    rows = [f"| {cur} | {rate} |" for cur, rate in sorted(DEFAULT_FX_RATES.items()) if cur != "USD"]
    return "\n".join(
        [
            "Costs are reported in USD. Prices in other currencies are converted with these default rates "
            "(USD per unit), unless `[pricing.fx_rates]` in `config.toml` sets others:",
            "",
            "| currency | USD per unit |",
            "| --- | ---: |",
            *rows,
            "",
        ]
    )


# ------------------------------------------------------------------------------------------ hooks


def hook_specs() -> list[tuple[str, str, Callable[..., Any], dict[str, Any]]]:
    """(section, name, function, spec options) for every hook, in source order."""
    from modelbus import hookspecs

    source = inspect.getsource(hookspecs).splitlines()
    sections = {
        number: match[1].strip()
        for number, line in enumerate(source, start=1)
        if (match := re.match(r"# -{10,} (.+)$", line))
    }
    found = []
    for name, function in vars(hookspecs).items():
        options = getattr(function, f"{hookspecs.PROJECT}_spec", None)
        if options is None or not inspect.isfunction(function):
            continue
        line = function.__code__.co_firstlineno
        section = next((sections[n] for n in sorted(sections, reverse=True) if n < line), "hooks")
        found.append((line, section, name, function, options))
    return [(section, name, function, options) for _, section, name, function, options in sorted(found)]


def _signature(function: Callable[..., Any]) -> str:
    signature = inspect.signature(function)
    params = [f"    {name}: {param.annotation}," for name, param in signature.parameters.items()]
    returns = signature.return_annotation
    return "\n".join([f"def {function.__name__}(", *params, f") -> {returns}: ..."])


def hooks_markdown() -> str:
    from modelbus import hookspecs

    lines = [_rst_to_markdown(inspect.cleandoc(hookspecs.__doc__ or "")), ""]
    specs = hook_specs()
    lines += ["| hook | an implementation answers | results |", "| --- | --- | --- |"]
    for _, name, function, options in specs:
        params = inspect.signature(function).parameters
        if name.startswith("modelbus_register_"):
            scope = "once, at registration (see below when)"
        elif "provider" in params:
            scope = "for its own providers (`provider` argument)"
        else:
            scope = "for every call (cross-cutting)"
        answers = "first non-`None` result wins" if options.get("firstresult") else "every plugin is called"
        lines.append(f"| [`{name}`](#{name}) | {scope} | {answers} |")
    lines.append("")
    current = None
    for section, name, function, options in specs:
        if section != current:
            lines += [f"## {section.capitalize()}", ""]
            current = section
        lines += [
            f"### `{name}` {{ #{name} }}",
            "",
            "```python",
            _signature(function),
            "```",
            "",
            "**First result wins.**" if options.get("firstresult") else "**Every plugin is called.**",
            "",
            _rst_to_markdown(inspect.cleandoc(function.__doc__ or "(undocumented)")),
            "",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- settings


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return " \\| ".join(f'`"{arg}"`' for arg in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(arg) for arg in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


_DEFAULT_TEXT = {
    ("GatewaySettings", "database_url"): "`sqlite:///$XDG_DATA_HOME/modelbus/gateway.db` "
    "(`~/.local/share/modelbus/gateway.db`)",
    ("ModelbusConfig", "gateway"): "(table below)",
    ("ModelbusConfig", "router"): "none",
}

# For fields whose pydantic model carries no description (the code's own description wins otherwise).
_DESCRIPTIONS = {
    ("ModelbusConfig", "default_model"): "Model used when a call names none; unset: `local/smollm2-135m` "
    "when modelbus-local is installed, else an error.",
    ("ModelbusConfig", "aliases"): 'Your names for model ids: `fast = "deepseek/deepseek-chat"`.',
    ("ModelbusConfig", "providers"): "Per provider: `api_key`, `base_url`, `region`, `timeout`, `headers`, "
    "plus the plugin's own keys.",
    ("ModelbusConfig", "router"): "The scheduler's virtual models and deployments: see Routing policies.",
    ("ModelbusConfig", "gateway"): "`modelbus serve` settings.",
    ("ClientConfig", "max_retries"): "Retries per deployment on retryable errors.",
    ("ClientConfig", "backoff_base"): "First backoff in seconds; doubles per retry (with jitter).",
    ("ClientConfig", "backoff_max"): "Longest backoff in seconds.",
    ("ClientConfig", "max_connections"): "Connection pool size of one client.",
    ("TimeoutConfig", "connect"): "Longest wait for a connection.",
    ("GatewaySettings", "host"): "Interface to listen on.",
    ("GatewaySettings", "port"): "Port to listen on.",
    ("GatewaySettings", "max_request_bytes"): "Largest request body; larger ones get 413.",
    ("GatewaySettings", "log_requests"): "One JSON log line per finished request.",
    ("GatewaySettings", "shutdown_grace_seconds"): "How long a shutdown waits for in-flight requests.",
}


def _default(model: type, name: str, field: Any) -> str:
    special = _DEFAULT_TEXT.get((model.__name__, name))
    if special:
        return special
    if field.default_factory is not None:
        value = field.default_factory()
        if hasattr(value, "model_fields"):
            return "(table below)"
        return f"`{value!r}`" if value not in ({}, []) else "empty"
    if field.default is None:
        return "unset"
    value = field.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def settings_table(model: type, *, skip: tuple[str, ...] = ()) -> str:
    lines = ["| key | type | default | what it is |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        if name in skip or field.exclude:
            continue
        description = field.description or _DESCRIPTIONS.get((model.__name__, name), "")
        lines.append(
            f"| `{name}` | {_type_name(field.annotation)} | {_default(model, name, field)} "
            f"| {_cell(description)} |"
        )
    return "\n".join([*lines, ""])


def settings_markdown() -> str:
    from modelbus.config import ClientConfig, ModelbusConfig, PricingConfig, TimeoutConfig
    from modelbus.gateway.settings import GatewaySettings

    return "\n".join(
        [
            "### Top level",
            "",
            settings_table(ModelbusConfig),
            "### `[client]`",
            "",
            settings_table(ClientConfig),
            "### `[client.timeout]`",
            "",
            "Seconds.",
            "",
            settings_table(TimeoutConfig),
            "### `[pricing]`",
            "",
            settings_table(PricingConfig),
            "### `[gateway]`",
            "",
            "Environment variables override the file: `MODELBUS_MASTER_KEY`, `MODELBUS_DATABASE_URL`, "
            "`MODELBUS_HOST`, `MODELBUS_PORT`; `modelbus serve --host/--port/--database-url` override both.",
            "",
            settings_table(GatewaySettings),
        ]
    )


GENERATORS: dict[str, Callable[[], str]] = {
    "providers": providers_markdown,
    "hooks": hooks_markdown,
    "settings": settings_markdown,
    "fx-rates": fx_rates_markdown,
}


def expand(markdown: str, where: str = "page") -> str:
    """Replace every ``<!-- generated: NAME -->`` marker in ``markdown``."""

    def replace(match: re.Match[str]) -> str:
        generator = GENERATORS.get(match[1])
        if generator is None:
            raise ValueError(f"{where}: unknown generated block {match[1]!r}; known: {sorted(GENERATORS)}")
        return generator()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """MkDocs event: expand the markers of one page."""
    return expand(markdown, page.file.src_uri)
