"""modelbus-moonshot: the conformance kit over the wire samples, plus Moonshot's own quirks.

Every test drives the real Client against a FakeUpstream (a local HTTP server); nothing under test is
mocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from modelbus_moonshot import Moonshot, plugin

from modelbus.client import Client
from modelbus.config import base_url_for
from modelbus.errors import (
    AuthenticationError,
    ConfigError,
    OverloadedError,
    QuotaExceededError,
    RateLimitError,
    UnsupportedFeatureError,
)
from modelbus.testing import ProviderConformanceTests
from modelbus.testing.fake_upstream import FakeUpstream, openai_chat_responder
from modelbus.testing.samples import ResponseSpec
from modelbus.types.models import ProviderSettings

SAMPLES = Path(__file__).parent / "samples"
KEY = "sk-test-moonshot-0123456789"


class TestMoonshotConformance(ProviderConformanceTests):
    plugin = plugin
    samples_dir = SAMPLES


# ----------------------------------------------------------------------------------- helpers


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def make_client(upstream: FakeUpstream, **kwargs: Any) -> Client:
    settings = {"api_key": KEY, "base_url": upstream.url, **kwargs.pop("settings", {})}
    return Client(
        plugins=[plugin],
        load_entrypoints=False,
        providers={"moonshot": settings},
        config={},
        timeout=20,
        **{"max_retries": 0, **kwargs},
    )


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


# ----------------------------------------------------------------------------------- regions


def test_regions_and_default() -> None:
    info = plugin.provider_info
    assert info.default_region == "cn"
    assert info.regions["cn"].base_url == "https://api.moonshot.cn/v1"
    assert info.regions["cn"].jurisdiction == "CN"
    assert info.regions["intl"].base_url == "https://api.moonshot.ai/v1"
    assert info.api_key_env == ["MOONSHOT_API_KEY"]


@pytest.mark.parametrize(
    ("region", "url"), [(None, "https://api.moonshot.cn/v1"), ("intl", "https://api.moonshot.ai/v1")]
)
def test_region_selects_base_url(region: str | None, url: str) -> None:
    assert base_url_for(plugin.provider_info, ProviderSettings(region=region)) == url


def test_unknown_region_is_a_config_error() -> None:
    client = Client(
        plugins=[plugin],
        load_entrypoints=False,
        config={},
        providers={"moonshot": {"api_key": KEY, "region": "eu"}},
    )
    with pytest.raises(ConfigError) as error:
        client.chat("moonshot/kimi-k2.6", "hi")
    assert "cn" in str(error.value)
    assert "intl" in str(error.value)


def test_wrong_region_key_error_names_the_fix(upstream: FakeUpstream) -> None:
    upstream.fail(401, body=error_body("incorrect_api_key_error", "Incorrect API key provided"))
    with make_client(upstream) as client, pytest.raises(AuthenticationError) as error:
        client.chat("moonshot/kimi-k2.6", "hi")
    assert "region" in str(error.value)
    assert KEY not in str(error.value)


# ----------------------------------------------------------------------------------- model table


def test_model_table() -> None:
    models = {m.id: m for m in plugin.provider_info.models}
    windows = {"moonshot-v1-8k": 8192, "moonshot-v1-32k": 32768, "moonshot-v1-128k": 131072}
    for model_id, window in windows.items():
        assert models[model_id].context_window == window
        assert not models[model_id].unsupported_params, "moonshot-v1 takes the sampling parameters"
    for model_id in ("kimi-k2.5", "kimi-k2.6", "kimi-k2.7-code", "kimi-k3"):
        model = models[model_id]
        assert model.context_window >= 262144
        assert model.supports("reasoning")
        assert "temperature" in model.unsupported_params
        assert model.price is not None
        assert model.price.cached_input is not None
        assert model.price.cached_input < model.price.input
    assert models["kimi-k3"].context_window == 1048576
    for retired in ("kimi-k2-0905-preview", "kimi-k2-turbo-preview", "kimi-k2-thinking"):
        assert models[retired].deprecated


# ----------------------------------------------------------------------------------- request shape


def test_max_tokens_sent_as_max_completion_tokens(upstream: FakeUpstream) -> None:
    upstream.respond_with(openai_chat_responder("ok"))
    with make_client(upstream) as client:
        client.chat("moonshot/moonshot-v1-32k", "hi", max_tokens=100, temperature=0.3)
    body = upstream.requests[-1].json
    assert body["max_completion_tokens"] == 100
    assert "max_tokens" not in body
    assert body["temperature"] == 0.3
    assert upstream.requests[-1].path == "/chat/completions"


def test_k_series_refuses_sampling_params_in_strict_mode(upstream: FakeUpstream) -> None:
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError):
        client.chat("moonshot/kimi-k2.6", "hi", temperature=0.6)
    assert not upstream.requests


def test_k_series_drops_sampling_params_in_drop_mode(upstream: FakeUpstream) -> None:
    upstream.respond_with(openai_chat_responder("ok"))
    with make_client(upstream, compat="drop") as client:
        client.chat("moonshot/kimi-k2.6", "hi", temperature=0.6, top_p=0.9, n=1)
    body = upstream.requests[-1].json
    assert not {"temperature", "top_p", "n"} & set(body)


def test_reasoning_history_replayed_on_every_assistant_turn(upstream: FakeUpstream) -> None:
    upstream.respond_with(openai_chat_responder("ok"))
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b", "reasoning_content": "thought 1"},
        {"role": "user", "content": "c"},
    ]
    with make_client(upstream) as client:
        client.chat("moonshot/kimi-k2.7-code", messages)
    sent = upstream.requests[-1].json["messages"]
    assert sent[1]["reasoning_content"] == "thought 1"


# ----------------------------------------------------------------------------------- usage variants


def _stream(upstream: FakeUpstream, sse_file: str, model: str) -> Any:
    text = (SAMPLES / sse_file).read_text(encoding="utf-8")
    upstream.add("POST", "/chat/completions", ResponseSpec(sse_text=text), stream=True)
    with make_client(upstream) as client, client.chat(model, "hi", stream=True) as stream:
        chunks = list(stream)
    return chunks, stream.response


def test_legacy_usage_inside_choice_is_read(upstream: FakeUpstream) -> None:
    chunks, response = _stream(upstream, "chat_stream_legacy.sse", "moonshot/moonshot-v1-8k")
    assert response.usage is not None
    assert not response.usage.estimated
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (19, 13)
    assert chunks[-1].usage is response.usage or chunks[-1].usage == response.usage
    assert [c for c in chunks if c.usage is not None] == [chunks[-1]]


def test_top_level_cached_tokens_in_stream_are_priced_as_cache_hits(upstream: FakeUpstream) -> None:
    _chunks, response = _stream(upstream, "chat_stream.sse", "moonshot/kimi-k2.6")
    assert response.usage.cached_tokens == 1024
    breakdown = response.cost_breakdown
    assert breakdown is not None
    assert breakdown.cached_input > 0
    assert breakdown.price_currency == "USD"


def test_cached_tokens_non_stream(upstream: FakeUpstream) -> None:
    upstream.respond_with(
        lambda _request: ResponseSpec(
            json={
                "id": "c1",
                "object": "chat.completion",
                "created": 1,
                "model": "kimi-k2.5",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": 1_000_000,
                    "completion_tokens": 0,
                    "total_tokens": 1_000_000,
                    "cached_tokens": 1_000_000,
                },
            }
        )
    )
    with make_client(upstream, settings={"region": "intl"}) as client:
        response = client.chat("moonshot/kimi-k2.5", "hi")
    assert response.cost is not None
    assert float(response.cost) == pytest.approx(0.10)  # all hits: the USD cache-hit price
    with make_client(upstream) as client:  # cn (the default): the CNY cache-hit price, ¥0.70
        response = client.chat("moonshot/kimi-k2.5", "hi")
    assert response.cost_breakdown is not None
    assert response.cost_breakdown.price_currency == "CNY"
    assert response.cost == Decimal("0.70") * Decimal("0.1405")


def test_regional_prices_follow_the_region(upstream: FakeUpstream) -> None:
    """cn calls are billed in CNY where the cn page gives a price; intl calls at the USD list price;
    rows without a CNY figure keep the USD price in both regions."""
    upstream.respond_with(
        lambda _request: ResponseSpec(
            json={
                "id": "r1",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 10**6, "completion_tokens": 10**6, "total_tokens": 2 * 10**6},
            }
        )
    )
    expected = {
        ("cn", "moonshot-v1-8k"): ("CNY", (Decimal(2) + Decimal(10)) * Decimal("0.1405")),
        ("intl", "moonshot-v1-8k"): ("USD", Decimal("0.20") + Decimal("2.00")),
        ("cn", "kimi-k2.6"): ("USD", Decimal("0.95") + Decimal("4.00")),
        ("intl", "kimi-k2.6"): ("USD", Decimal("0.95") + Decimal("4.00")),
    }
    for (region, model), (currency, cost) in expected.items():
        with make_client(upstream, settings={"region": region}) as client:
            response = client.chat(f"moonshot/{model}", "hi")
        assert response.cost_breakdown is not None
        assert (response.cost_breakdown.price_currency, response.cost) == (currency, cost), (region, model)


# ----------------------------------------------------------------------------------- 429s


@pytest.mark.parametrize(
    ("kind", "message", "error", "retried"),
    [
        (
            "engine_overloaded_error",
            "The engine is currently overloaded, please try again later",
            OverloadedError,
            True,
        ),
        (
            "rate_limit_reached_error",
            "Your account u<ak> request reached max requset: 200, please try again after 0 seconds",
            RateLimitError,
            True,
        ),
        (
            "exceeded_current_quota_error",
            "You exceeded your current token quota: 0, please check your account balance",
            QuotaExceededError,
            False,
        ),
    ],
)
def test_three_429s_only_two_retried(
    upstream: FakeUpstream, kind: str, message: str, error: type[Exception], retried: bool
) -> None:
    upstream.respond_with(openai_chat_responder("recovered"))
    upstream.fail(429, body=error_body(kind, message))
    with make_client(upstream, max_retries=1) as client:
        if retried:
            assert client.chat("moonshot/moonshot-v1-8k", "hi").text == "recovered"
        else:
            with pytest.raises(error):
                client.chat("moonshot/moonshot-v1-8k", "hi")
    assert len(upstream.requests) == (2 if retried else 1)


def test_plain_429_without_type_is_a_rate_limit(upstream: FakeUpstream) -> None:
    upstream.fail(429, body=error_body("", "We're receiving too many requests at the moment."))
    with make_client(upstream) as client, pytest.raises(RateLimitError):
        client.chat("moonshot/moonshot-v1-8k", "hi")


def test_plugin_is_configuration() -> None:
    assert Moonshot.max_tokens_param == "max_completion_tokens"
    assert Moonshot.send_reasoning_history is True
    assert "invalid_request_error" not in Moonshot.error_codes
