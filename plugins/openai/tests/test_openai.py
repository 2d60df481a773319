"""modelbus-openai: the conformance kit plus OpenAI's own quirks, against a real FakeUpstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from modelbus_openai import plugin

from modelbus import AsyncClient, Client
from modelbus.errors import RateLimitError, UnsupportedFeatureError
from modelbus.testing import FakeUpstream, ProviderConformanceTests, ResponseSpec, SSEItem

KEY = "sk-openai-test-key-0123456789"


class TestOpenAIConformance(ProviderConformanceTests):
    plugin = plugin
    samples_dir = Path(__file__).parent / "samples"


# ---------------------------------------------------------------------------------------- helpers


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def make_client(upstream: FakeUpstream, *, headers: dict[str, str] | None = None, **kwargs: Any) -> Client:
    settings = {"api_key": KEY, "base_url": upstream.url, **({"headers": headers} if headers else {})}
    return Client(
        plugins=[plugin],
        load_entrypoints=False,
        config={},
        providers={"openai": settings},
        **{"max_retries": 0, **kwargs},
    )


def completion(content: str = "ok", usage: dict[str, Any] | None = None) -> ResponseSpec:
    return ResponseSpec(
        json={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-5-mini",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": usage or {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    )


# ---------------------------------------------------------------------------------------- reasoning models


def test_reasoning_model_refuses_temperature_before_sending(upstream: FakeUpstream) -> None:
    """gpt-5-mini lists temperature as unsupported: strict mode fails locally, nothing goes out."""
    upstream.add("POST", "/chat/completions", completion())
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError) as info:
        client.chat("openai/gpt-5-mini", "hi", temperature=0.2)
    assert info.value.param == "temperature"
    assert not upstream.requests


def test_reasoning_model_drops_sampling_params_in_drop_mode(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion())
    with make_client(upstream, compat="drop") as client:
        response = client.chat("openai/gpt-5-mini", "hi", temperature=0.2, top_p=0.5, max_tokens=64)
    assert response.text == "ok"
    body = upstream.requests[-1].json
    assert "temperature" not in body
    assert "top_p" not in body
    assert body["max_completion_tokens"] == 64
    assert "max_tokens" not in body


def test_non_reasoning_model_keeps_temperature(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion())
    with make_client(upstream) as client:
        client.chat("openai/gpt-4.1", "hi", temperature=0.2, max_tokens=10)
    body = upstream.requests[-1].json
    assert body["temperature"] == 0.2
    assert body["max_completion_tokens"] == 10


def test_reasoning_effort_refused_for_non_reasoning_model(upstream: FakeUpstream) -> None:
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError):
        client.chat("openai/gpt-4.1", "hi", reasoning_effort="low")
    assert not upstream.requests


@pytest.mark.parametrize("effort", ["none", "xhigh", "max"])
def test_newer_reasoning_efforts_are_sent_as_is(upstream: FakeUpstream, effort: str) -> None:
    """GPT-5.6's none/xhigh/max levels are canonical now and pass through unchanged."""
    upstream.add("POST", "/chat/completions", completion())
    with make_client(upstream) as client:
        client.chat("openai/gpt-5.6-sol", "hi", reasoning_effort=effort)
    assert upstream.requests[-1].json["reasoning_effort"] == effort


def test_max_completion_tokens_is_accepted_as_input(upstream: FakeUpstream) -> None:
    """Callers with OpenAI habits may pass max_completion_tokens themselves."""
    upstream.add("POST", "/chat/completions", completion())
    with make_client(upstream) as client:
        client.chat("openai/gpt-5.5", "hi", max_completion_tokens=42)
    body = upstream.requests[-1].json
    assert body["max_completion_tokens"] == 42
    assert "max_tokens" not in body


# ---------------------------------------------------------------------------------------- usage and cost


def test_streamed_usage_with_cached_and_reasoning_tokens_is_priced(upstream: FakeUpstream) -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 400},
    }
    first_delta = {"role": "assistant", "content": "4"}
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5.6-sol"}
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            sse=[
                SSEItem(data={**base, "choices": [{"index": 0, "delta": first_delta}]}),
                SSEItem(data={**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                SSEItem(data={**base, "choices": [], "usage": usage}),
                SSEItem(data="[DONE]"),
            ]
        ),
    )
    with make_client(upstream) as client, client.chat("openai/gpt-5.6", "2+2?", stream=True) as stream:
        chunks = list(stream)
    final = chunks[-1]
    assert final.usage is not None
    assert final.usage.cached_tokens == 800
    assert final.usage.reasoning_tokens == 400
    # gpt-5.6-sol: 200 uncached x $5 + 800 cached x $0.50 + 500 output x $30, per 1M
    assert final.cost == Decimal("0.001") + Decimal("0.0004") + Decimal("0.015")
    body = upstream.requests[-1].json
    assert body["model"] == "gpt-5.6-sol"  # the alias resolved
    assert body["stream_options"] == {"include_usage": True}


def test_cache_write_tokens_are_read(upstream: FakeUpstream) -> None:
    """prompt_tokens_details.cache_write_tokens (GPT-6 generation) lands in cache_creation_tokens."""
    usage = {
        "prompt_tokens": 5000,
        "completion_tokens": 10,
        "total_tokens": 5010,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 4096},
    }
    upstream.add("POST", "/chat/completions", completion(usage=usage))
    with make_client(upstream) as client:
        response = client.chat("openai/gpt-6-astra", "hi")
    assert response.usage is not None
    assert response.usage.cache_creation_tokens == 4096
    # no separate cache-write price in the table for gpt-6-astra: written tokens cost the input price
    assert response.cost == Decimal(5000) * Decimal(10) / 1_000_000 + Decimal(10) * Decimal(50) / 1_000_000


# ---------------------------------------------------------------------------------------- wire shape


def test_tool_call_history_goes_back_unchanged(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion("It is sunny."))
    messages = [
        {"role": "user", "content": "Weather in Boston?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": '{"location": "Boston, MA"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc123", "content": '{"temp_f": 71}'},
    ]
    tools = [
        {"type": "function", "function": {"name": "get_current_weather", "parameters": {"type": "object"}}}
    ]
    with make_client(upstream) as client:
        response = client.chat("openai/gpt-5.5", messages, tools=tools)
    assert response.text == "It is sunny."
    sent = upstream.requests[-1].json["messages"]
    assert sent[1]["content"] is None
    assert sent[1]["tool_calls"][0]["id"] == "call_abc123"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_abc123", "content": '{"temp_f": 71}'}


def test_named_tool_choice_and_json_object(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion('{"a": 1}'))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    with make_client(upstream) as client:
        client.chat(
            "openai/gpt-5.4",
            "hi",
            tools=tools,
            tool_choice={"type": "function", "function": {"name": "lookup"}},
            response_format={"type": "json_object"},
        )
    body = upstream.requests[-1].json
    assert body["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert body["response_format"] == {"type": "json_object"}


def test_extra_headers_for_organization_and_project(upstream: FakeUpstream) -> None:
    """OpenAI-Organization / OpenAI-Project travel as configured headers."""
    upstream.add("POST", "/chat/completions", completion())
    headers = {"OpenAI-Organization": "org-123", "OpenAI-Project": "proj_456"}
    with make_client(upstream, headers=headers) as client:
        client.chat("openai/gpt-5.5", "hi")
    sent = upstream.requests[-1].headers
    assert sent["openai-organization"] == "org-123"
    assert sent["openai-project"] == "proj_456"
    assert sent["authorization"] == f"Bearer {KEY}"


def test_embedding_model_cannot_chat(upstream: FakeUpstream) -> None:
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError):
        client.chat("openai/text-embedding-3-large", "hi")


def test_embeddings_batch_is_priced(upstream: FakeUpstream) -> None:
    upstream.add(
        "POST",
        "/embeddings",
        ResponseSpec(
            json={
                "object": "list",
                "data": [
                    {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
                    {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
                ],
                "model": "text-embedding-3-large",
                "usage": {"prompt_tokens": 1000, "total_tokens": 1000},
            }
        ),
    )
    with make_client(upstream) as client:
        result = client.embed("openai/text-embedding-3-large", ["a", "b"], dimensions=2)
    assert result.vectors == [[0.1, 0.2], [0.3, 0.4]]
    assert result.cost == Decimal("0.00013")
    assert upstream.requests[-1].json["dimensions"] == 2


async def test_async_client(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/chat/completions", completion("async ok"))
    client = AsyncClient(
        plugins=[plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"openai": {"api_key": KEY, "base_url": upstream.url}},
    )
    try:
        response = await client.chat("openai/gpt-5.4-nano", "hi")
    finally:
        await client.aclose()
    assert response.text == "async ok"
    assert response.cost is not None


# ---------------------------------------------------------------------------------------- packaging


def test_model_table_shape() -> None:
    models = {m.id: m for m in plugin.provider_info.models}
    for model in models.values():
        if model.kind == "embedding":
            assert model.embedding_dimensions
            assert not model.capabilities
        else:
            assert model.max_output_tokens
            assert model.price is not None
            assert model.price.cached_input is not None, model.id
    assert models["text-embedding-3-small"].embedding_dimensions == 1536
    assert models["text-embedding-3-large"].embedding_dimensions == 3072
    assert {"temperature", "top_p"} <= models["gpt-5-mini"].unsupported_params
    assert "reasoning" not in models["gpt-4.1"].capabilities


def test_entry_point_when_installed() -> None:
    try:
        dist = metadata.distribution("modelbus-openai")
    except metadata.PackageNotFoundError:
        pytest.skip("modelbus-openai is not installed")
    points = [ep for ep in dist.entry_points if ep.group == "modelbus"]
    assert [(ep.name, ep.value) for ep in points] == [("openai", "modelbus_openai:plugin")]
    assert json.loads(json.dumps(dist.metadata.get_all("Requires-Dist"))) == ["modelbus>=0.1"]


def test_retry_delay_read_from_the_message_without_retry_after(upstream: FakeUpstream) -> None:
    """The documented TPM 429 without its retry-after header: the delay comes from "try again in 1.146s"."""
    sample = json.loads((Path(__file__).parent / "samples" / "error_rate_limit.json").read_text())
    upstream.fail(429, body=sample["upstream"]["response"]["json"])
    with make_client(upstream) as client, pytest.raises(RateLimitError) as error:
        client.chat("openai/gpt-4.1", "hi")
    assert error.value.retry_after == pytest.approx(1.146)
