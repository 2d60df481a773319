"""Cost of a usage record from a per-million-token price table, in USD, as an exact Decimal."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from modelbus.errors import ConfigError
from modelbus.types.chat import CostBreakdown, Usage
from modelbus.types.models import ModelPrice

MILLION = Decimal(1_000_000)

# USD per unit of currency. An approximation as of 2026-11 for a zero-config start: set your own
# rate (and its date) under [pricing.fx_rates] in config.toml when invoices matter.
DEFAULT_FX_RATES: dict[str, Decimal] = {"USD": Decimal(1), "CNY": Decimal("0.1405"), "EUR": Decimal("1.05")}


def fx_rate(currency: str, fx_rates: Mapping[str, Decimal]) -> Decimal:
    if currency == "USD":
        return Decimal(1)
    try:
        return Decimal(fx_rates[currency])
    except KeyError:
        raise ConfigError(
            f"no exchange rate for {currency}: add it under [pricing.fx_rates] in config.toml "
            f'(e.g. {currency} = "0.14", USD per {currency})'
        ) from None


def compute_cost(usage: Usage, price: ModelPrice, fx_rates: Mapping[str, Decimal]) -> CostBreakdown:
    """Price ``usage``: uncached input, cache reads, cache writes and output each at its own price.

    Prompt tokens include cached and cache-write tokens; completion tokens include reasoning tokens,
    which are billed as output (at ``reasoning_output`` when the table has a separate thinking price).
    """
    cached = usage.cached_tokens
    written = usage.cache_creation_tokens
    uncached = max(usage.prompt_tokens - cached - written, 0)
    rate = fx_rate(price.currency, fx_rates)
    applied = price.for_prompt(usage.prompt_tokens)  # long-context tiers
    cached_price = applied.cached_input if applied.cached_input is not None else applied.input
    write_price = applied.cache_write if applied.cache_write is not None else applied.input
    input_cost = Decimal(uncached) * applied.input * rate / MILLION
    cached_cost = Decimal(cached) * cached_price * rate / MILLION
    write_cost = Decimal(written) * write_price * rate / MILLION
    reasoning_price = applied.reasoning_output if applied.reasoning_output is not None else applied.output
    reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
    output_cost = (
        (Decimal(usage.completion_tokens - reasoning) * applied.output + Decimal(reasoning) * reasoning_price)
        * rate
        / MILLION
    )
    return CostBreakdown(
        total=input_cost + cached_cost + write_cost + output_cost,
        input=input_cost,
        cached_input=cached_cost,
        cache_write=write_cost,
        output=output_cost,
        price_currency=price.currency,
        fx_rate=rate if price.currency != "USD" else None,
        price_as_of=price.as_of.isoformat(),
        price_source=price.source,
    )


def usd_per_million(price: ModelPrice, fx_rates: Mapping[str, Decimal]) -> tuple[Decimal, Decimal]:
    """(input, output) price per million tokens in USD, for tables and routing constraints."""
    rate = fx_rate(price.currency, fx_rates)
    return price.input * rate, price.output * rate
