"""modelbus-qwen: the conformance kit plus DashScope's own quirks, against a real Client and FakeUpstream."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from modelbus_qwen import THINKING, plugin

from modelbus import Client
from modelbus.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ModelbusError,
    PermissionDeniedError,
    RateLimitError,
    UnsupportedFeatureError,
)
from modelbus.testing import FakeUpstream, ProviderConformanceTests, ResponseSpec, SSEItem

KEY = "sk-qwen-test-0123456789abcdef"


class TestQwenConformance(ProviderConformanceTests):
    plugin = plugin
    samples_dir = Path(__file__).parent / "samples"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def make_client(upstream: FakeUpstream, **settings: Any) -> Client:
    return Client(
        plugins=[plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"qwen": {"api_key": KEY, "base_url": upstream.url, **settings}},
    )


def completion(message: dict[str, Any], finish: str = "stop") -> ResponseSpec:
    return ResponseSpec(
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1735120033,
            "model": "qwen-plus",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
    )


# -- regions -------------------------------------------------------------------------------------------


def test_regions_have_jurisdictions() -> None:
    regions = plugin.provider_info.regions
    assert regions["cn"].base_url == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert regions["intl"].base_url == "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
    assert regions["us"].base_url == "https://dashscope-us.aliyuncs.com/compatible-mode/v1"
    assert {name: r.jurisdiction for name, r in regions.items()} == {
        "cn": "CN",
        "intl": "SG",
        "us": "US",
        "hk": "HK",
    }
    assert plugin.provider_info.default_region == "cn"


@pytest.mark.parametrize("region", ["cn", "intl", "us", "hk"])
def test_region_selects_base_url(region: str) -> None:
    with Client(
        plugins=[plugin],
        load_entrypoints=False,
        config={},
        providers={"qwen": {"api_key": KEY, "region": region}},
    ) as client:
        deployment = client.runtime.deployment(client.runtime.registry.resolve("qwen/qwen-plus"))
    assert deployment.base_url == plugin.regions[region][0]
    assert deployment.jurisdiction == plugin.regions[region][1]


# -- thinking ------------------------------------------------------------------------------------------


def test_every_canonical_effort_has_a_mapping() -> None:
    from typing import get_args

    from modelbus.types.chat import ReasoningEffort

    assert set(THINKING) == set(get_args(ReasoningEffort))


@pytest.mark.parametrize("effort", ["none", "minimal", "low", "medium", "high", "xhigh", "max"])
def test_reasoning_effort_maps_to_thinking_params(upstream: FakeUpstream, effort: str) -> None:
    upstream.add("POST", "/chat/completions", completion({"content": "ok"}))
    with make_client(upstream) as client:
        client.chat("qwen/qwen-flash", "hi", reasoning_effort=effort)
    body = upstream.requests[-1].json
    assert "reasoning_effort" not in body
    assert {k: body[k] for k in ("enable_thinking", "thinking_budget") if k in body} == THINKING[effort]


def test_thinking_params_in_extra_win_over_the_mapping(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion({"content": "ok"}))
    with make_client(upstream) as client:
        client.chat("qwen/qwen-plus", "hi", reasoning_effort="high", extra={"thinking_budget": 500})
        client.chat("qwen/qwen-plus", "hi", reasoning_effort="medium", extra={"enable_thinking": False})
    first, second = (r.json for r in upstream.requests)
    assert first["enable_thinking"] is True
    assert first["thinking_budget"] == 500
    assert second["enable_thinking"] is False
    assert second["thinking_budget"] == 8192


def test_enable_thinking_passes_through_extra(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion({"content": "ok"}))
    with make_client(upstream) as client:
        client.chat("qwen/qwen3.5-plus", "hi", extra={"enable_thinking": False, "top_k": 20})
    body = upstream.requests[-1].json
    assert body["enable_thinking"] is False
    assert body["top_k"] == 20
    assert "thinking_budget" not in body


def test_reasoning_effort_on_non_thinking_model_is_refused(upstream: FakeUpstream) -> None:
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError):
        client.chat("qwen/qwen-max", "hi", reasoning_effort="high")
    assert not upstream.requests


def test_reasoning_content_in_a_non_streamed_response(upstream: FakeUpstream) -> None:
    upstream.add(
        "POST", "/chat/completions", completion({"content": "你好。", "reasoning_content": "用户在打招呼。"})
    )
    with make_client(upstream) as client:
        response = client.chat("qwen/qwen-plus", "你好", reasoning_effort="low")
    message = response.choices[0].message
    assert message.content == "你好。"
    assert message.reasoning_content == "用户在打招呼。"


# -- streamed tool calls with "id": "" ------------------------------------------------------------------


def _chunk(delta: dict[str, Any], finish: str | None = None) -> SSEItem:
    return SSEItem(
        data={
            "id": "chatcmpl-par",
            "object": "chat.completion.chunk",
            "created": 1743037194,
            "model": "qwen-plus",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "usage": None,
        }
    )


def test_parallel_streamed_tool_calls_keep_their_ids(upstream: FakeUpstream) -> None:
    """Two calls interleaved by index; every continuation delta carries "id": "" and "type"."""

    def call(index: int, id_: str, function: dict[str, Any]) -> dict[str, Any]:
        return {"index": index, "id": id_, "type": "function", "function": function}

    items = [
        _chunk(
            {"role": "assistant", "tool_calls": [call(0, "call_a", {"name": "get_weather", "arguments": ""})]}
        ),
        _chunk({"tool_calls": [call(1, "call_b", {"name": "get_time", "arguments": ""})]}),
        _chunk({"tool_calls": [call(0, "", {"arguments": '{"city": '})]}),
        _chunk({"tool_calls": [call(1, "", {"arguments": "{}"})]}),
        _chunk({"tool_calls": [call(0, "", {"arguments": '"杭州"}'})]}),
        _chunk({"tool_calls": [call(0, "", {})]}),
        _chunk({}, finish="tool_calls"),
        SSEItem(
            data={"id": "chatcmpl-par", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 7}}
        ),
        SSEItem(data="[DONE]"),
    ]
    upstream.add("POST", "/chat/completions", ResponseSpec(sse=items))
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
    ]
    with make_client(upstream) as client:
        with client.chat("qwen/qwen-plus", "天气和时间", tools=tools, stream=True) as stream:
            chunks = list(stream)
        response = stream.response
    assert response is not None
    calls = response.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "get_weather", '{"city": "杭州"}'),
        ("call_b", "get_time", "{}"),
    ]
    assert response.choices[0].finish_reason == "tool_calls"
    # continuation deltas reach the caller without an id, never with ""
    deltas = [tc for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or []]
    assert [d.id for d in deltas] == ["call_a", "call_b", None, None, None, None]


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, {"error": {"code": "Throttling", "message": "Requests throttling triggered."}}, RateLimitError),
        (
            429,
            {"error": {"code": "Throttling.AllocationQuota", "message": "Allocated quota exceeded."}},
            RateLimitError,
        ),
        (
            401,
            {"error": {"code": "invalid_api_key", "message": "Incorrect API key provided."}},
            AuthenticationError,
        ),
        (
            403,
            {"error": {"code": "AccessDenied.Unpurchased", "message": "Access to model denied."}},
            PermissionDeniedError,
        ),
        (
            400,
            {
                "error": {
                    "code": "invalid_parameter_error",
                    "message": "This model only support stream mode, please enable the stream parameter.",
                }
            },
            BadRequestError,
        ),
        (
            400,
            {
                "code": "DataInspectionFailed",
                "message": "Input or output data may contain inappropriate content.",
            },
            ContentFilteredError,
        ),
        (
            400,
            {
                "error": {
                    "message": "<400> InternalError.Algo.DataInspectionFailed: Input data may contain "
                    "inappropriate content."
                }
            },
            ContentFilteredError,
        ),
    ],
)
def test_dashscope_error_codes(
    upstream: FakeUpstream, status: int, body: dict[str, Any], expected: type[ModelbusError]
) -> None:
    upstream.fail(status, body=body)
    with make_client(upstream) as client, pytest.raises(ModelbusError) as info:
        client.chat("qwen/qwen-plus", "hi")
    assert type(info.value) is expected, repr(info.value)
    assert info.value.status_code == status
    assert info.value.provider == "qwen"


# -- pricing: input-length tiers and the thinking-output price ------------------------------------------


def priced(upstream: FakeUpstream, model: str, usage: dict[str, Any], **settings: Any) -> Any:
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            json={
                "id": "chatcmpl-p",
                "object": "chat.completion",
                "created": 1,
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}
                ],
                "usage": usage,
            }
        ),
    )
    with make_client(upstream, **settings) as client:
        response = client.chat(f"qwen/{model}", "hi")
    assert response.cost_breakdown is not None
    assert response.cost_breakdown.price_currency == "CNY"
    return response.cost_breakdown


CNY = Decimal("0.1405")  # the core's default USD/CNY rate
M = Decimal(1_000_000)


@pytest.mark.parametrize(
    ("prompt", "cny_in", "cny_out"),
    [(32_768, 2.5, 10), (32_769, 4, 16), (131_072, 4, 16), (131_073, 7, 28)],
)
def test_qwen3_max_input_length_tiers(
    upstream: FakeUpstream, prompt: int, cny_in: float, cny_out: float
) -> None:
    usage = {"prompt_tokens": prompt, "completion_tokens": 1000, "total_tokens": prompt + 1000}
    cost = priced(upstream, "qwen3-max", usage)
    assert cost.input == Decimal(prompt) * Decimal(str(cny_in)) * CNY / M
    assert cost.output == Decimal(1000) * Decimal(str(cny_out)) * CNY / M


def test_tier_applies_to_cache_hits_of_a_long_prompt(upstream: FakeUpstream) -> None:
    usage = {
        "prompt_tokens": 300_000,
        "completion_tokens": 0,
        "total_tokens": 300_000,
        "prompt_tokens_details": {"cached_tokens": 100_000},
    }
    cost = priced(upstream, "qwen-flash", usage)  # 256K-1M tier: 1.2 in, 0.24 cache hit
    assert cost.input == Decimal(200_000) * Decimal("1.2") * CNY / M
    assert cost.cached_input == Decimal(100_000) * Decimal("0.24") * CNY / M


def test_qwen_plus_thinking_output_has_its_own_price(upstream: FakeUpstream) -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 1000,
        "total_tokens": 2000,
        "completion_tokens_details": {"reasoning_tokens": 600},
    }
    cost = priced(upstream, "qwen-plus", usage)  # 400 answer tokens at 2, 600 thinking tokens at 8
    assert cost.output == (Decimal(400) * 2 + Decimal(600) * 8) * CNY / M
    long = priced(upstream, "qwen-plus", {**usage, "prompt_tokens": 200_000, "total_tokens": 201_000})
    assert long.output == Decimal(1000) * 20 * CNY / M  # 128K-256K tier: thinking price unconfirmed, output


def test_other_regions_use_the_beijing_list_unless_configured(upstream: FakeUpstream) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 0, "total_tokens": 1000}
    assert (
        priced(upstream, "qwen-plus", usage, region="intl").input == Decimal(1000) * Decimal("0.8") * CNY / M
    )
