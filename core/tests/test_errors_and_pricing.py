"""Typed errors, retry hints, redaction, and Decimal pricing."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from modelbus.error_mapping import class_for_status, parse_duration, parse_retry_after
from modelbus.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContentFilteredError,
    ContextLengthExceededError,
    MissingCredentialsError,
    ModelbusError,
    ModelNotFoundError,
    OverloadedError,
    RateLimitError,
    error_class_by_name,
)
from modelbus.pricing import compute_cost
from modelbus.redaction import redact, redact_headers
from modelbus.types import ModelPrice, Usage


def test_hierarchy_flags_and_openai_body() -> None:
    error = RateLimitError(
        "slow down", provider="acme", status_code=429, retry_after=3.0, provider_code="tpm"
    )
    assert error.retryable
    assert isinstance(error, ModelbusError)
    body = error.to_openai_error()["error"]
    assert body["type"] == "rate_limit_error"
    assert body["code"] == "rate_limit_exceeded"
    assert "retry_after=3.0" in body["message"]
    assert issubclass(MissingCredentialsError, AuthenticationError)
    assert issubclass(MissingCredentialsError, ConfigError)
    assert OverloadedError("x").retryable
    assert not BadRequestError("x").retryable
    assert error_class_by_name("ContextLengthExceededError") is ContextLengthExceededError
    with pytest.raises(KeyError, match="unknown modelbus error class"):
        error_class_by_name("Nope")


def test_model_not_found_suggests() -> None:
    error = ModelNotFoundError("no model 'x'", suggestions=["acme/acme-chat"])
    assert "did you mean 'acme/acme-chat'" in str(error)


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "This model's maximum context length is 8192 tokens", ContextLengthExceededError),
        (400, "prompt is too long: 208310 tokens > 200000 maximum", ContextLengthExceededError),
        (400, "Output data may contain inappropriate content", ContentFilteredError),
        (400, "bad field", BadRequestError),
        (418, "teapot", BadRequestError),
        (599, "?", type(OverloadedError("x")).__mro__[1]),
        (529, "Overloaded", OverloadedError),
    ],
)
def test_class_for_status(status: int, message: str, expected: type) -> None:
    assert class_for_status(status, message) is expected


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "7"}) == 7
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 25 Nov 2026 12:00:10 GMT"}, now=1795608000.0) == 10
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_duration("37s") == 37
    assert parse_duration("3.957s") == pytest.approx(3.957)
    assert parse_duration("6m0s") == 360
    assert parse_duration("12ms") == pytest.approx(0.012)
    assert parse_duration("later") is None


def test_redaction() -> None:
    text = (
        "Incorrect API key provided: sk-abcdef123456789. header Bearer abc.def-ghi_123 url ?key=AIzaXYZ&x=1"
    )
    cleaned = redact(text, ["mysecret"])
    assert "sk-abcdef" not in cleaned
    assert "abc.def-ghi_123" not in cleaned
    assert "AIzaXYZ" not in cleaned
    assert redact("the key mysecret leaked", ["mysecret"]) == "the key *** leaked"
    assert redact_headers({"Authorization": "Bearer x", "X-Api-Key": "y", "Accept": "z"}) == {
        "Authorization": "***",
        "X-Api-Key": "***",
        "Accept": "z",
    }


def price(**kw: object) -> ModelPrice:
    return ModelPrice.model_validate(
        {"currency": "USD", "as_of": date(2026, 11, 1), "source": "https://example.com/pricing", **kw}
    )


def test_cost_is_exact_and_splits_cache_reads_writes_and_output() -> None:
    usage = Usage.of(1_000_000, 500_000, cached=200_000, cache_creation=100_000, reasoning=100_000)
    cost = compute_cost(usage, price(input="3", cached_input="0.30", cache_write="3.75", output="15"), {})
    assert cost.input == Decimal("2.1")  # 700k uncached at $3/M
    assert cost.cached_input == Decimal("0.06")
    assert cost.cache_write == Decimal("0.375")
    assert cost.output == Decimal("7.5")  # reasoning tokens are output
    assert cost.total == Decimal("10.035")
    assert cost.price_source == "https://example.com/pricing"
    assert cost.price_as_of == "2026-11-01"


def test_cached_price_defaults_to_input_price() -> None:
    cost = compute_cost(Usage.of(10, 0, cached=10), price(input="1", output="1"), {})
    assert cost.total == Decimal("0.00001")


def test_cny_prices_convert_with_a_configurable_rate() -> None:
    cny = ModelPrice(
        currency="CNY",
        input=Decimal(2),
        output=Decimal(8),
        as_of=date(2026, 11, 1),
        source="https://example.cn/pricing",
    )
    cost = compute_cost(Usage.of(1_000_000, 1_000_000), cny, {"CNY": Decimal("0.14")})
    assert cost.total == Decimal("1.40")
    assert cost.fx_rate == Decimal("0.14")
    assert cost.price_currency == "CNY"
    with pytest.raises(ConfigError, match=r"\[pricing.fx_rates\]"):
        compute_cost(Usage.of(1, 1), cny, {})


def test_long_context_tiers_apply_by_prompt_length() -> None:
    tiered = price(
        input="1.25",
        output="10",
        cached_input="0.125",
        tiers=[{"above_prompt_tokens": 200_000, "input": "2.50", "output": "15", "cached_input": "0.25"}],
    )
    short = compute_cost(Usage.of(200_000, 1_000_000), tiered, {})
    long = compute_cost(Usage.of(200_001, 1_000_000, cached=1), tiered, {})
    assert short.total == Decimal("0.25") + Decimal("10")
    assert long.output == Decimal(15)
    assert long.cached_input == Decimal("0.00000025")


def test_retry_hints_in_messages() -> None:
    from modelbus.error_mapping import parse_retry_hint

    assert parse_retry_hint("Please try again in 1.146s. Visit ...") == pytest.approx(1.146)
    assert parse_retry_hint("please try again after 3 seconds") == 3
    assert parse_retry_hint("Try again in 20ms") == pytest.approx(0.02)
    assert parse_retry_hint("retry after 2 minutes") == 120
    assert parse_retry_hint("no hint here") is None


def test_reasoning_tokens_at_their_own_price() -> None:
    thinking = price(input="0.8", output="2", reasoning_output="8")
    cost = compute_cost(Usage.of(0, 1_000_000, reasoning=250_000), thinking, {})
    assert cost.output == Decimal("1.5") + Decimal("2")  # 750k at $2/M + 250k at $8/M


def test_safety_settings_complaints_are_not_content_filtering() -> None:
    assert class_for_status(400, "Invalid value at 'safetySettings[0].category'") is BadRequestError
    assert class_for_status(400, "The response was blocked for safety reasons") is ContentFilteredError
