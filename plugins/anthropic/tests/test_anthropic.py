"""Anthropic's own quirks, through the real Client against FakeUpstream (nothing under test is mocked)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from modelbus_anthropic import ANTHROPIC_VERSION, plugin, thinking_blocks

from modelbus import Client
from modelbus.errors import (
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    MalformedResponseError,
    OverloadedError,
    QuotaExceededError,
    RateLimitError,
    StreamInterruptedError,
    UnsupportedFeatureError,
    UpstreamServerError,
)
from modelbus.testing import FakeUpstream, ResponseSpec, SSEItem
from modelbus.types.chat import ChatResponse

KEY = "sk-ant-test-0123456789abcdef"
PATH = "/v1/messages"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
JSON_SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def make_client(upstream: FakeUpstream, **kwargs: Any) -> Client:
    return Client(
        plugins=[plugin],
        load_entrypoints=False,
        config={},
        providers={"anthropic": {"api_key": KEY, "base_url": upstream.url}},
        **{"max_retries": 0, **kwargs},
    )


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[Client]:
    with make_client(upstream) as c:
        yield c


def message(
    *blocks: dict[str, Any], stop_reason: str = "end_turn", usage: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-8",
        "content": list(blocks) or [{"type": "text", "text": "ok"}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 5},
    }


def answer(upstream: FakeUpstream, body: dict[str, Any] | None = None) -> None:
    upstream.add("POST", PATH, ResponseSpec(json=body or message()))


def stream(upstream: FakeUpstream, *events: dict[str, Any]) -> None:
    upstream.add(
        "POST", PATH, ResponseSpec(sse=[SSEItem(event=e["type"], data=e) for e in events]), stream=True
    )


def sent(upstream: FakeUpstream) -> dict[str, Any]:
    assert upstream.requests, "nothing reached the upstream"
    return upstream.requests[-1].json


def start(usage: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_s",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-opus-4-8",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage if usage is not None else {"input_tokens": 10, "output_tokens": 1},
        },
    }


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": body}


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def end(reason: str = "end_turn", usage: dict[str, int] | None = None) -> list[dict[str, Any]]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": None},
            "usage": usage or {"output_tokens": 7},
        },
        {"type": "message_stop"},
    ]


# ------------------------------------------------------------------------------ request translation


def test_headers_auth_and_default_max_tokens(client: Client, upstream: FakeUpstream) -> None:
    answer(upstream)
    client.chat("anthropic/claude-opus-4-8", "hi")
    request = upstream.requests[-1]
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == ANTHROPIC_VERSION
    assert "authorization" not in request.headers
    body = request.json
    assert body["max_tokens"] == 16384  # the model table's default_max_tokens
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_system_and_developer_hoisted_roles_merged(client: Client, upstream: FakeUpstream) -> None:
    answer(upstream)
    client.chat(
        "anthropic/claude-opus-4-8",
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "one"},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "ok"},
            {"role": "assistant", "content": "and more"},
            {"role": "user", "content": "three"},
        ],
    )
    body = sent(upstream)
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Use metric units."},
    ]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "ok"}, {"type": "text", "text": "and more"}],
        },
        {"role": "user", "content": "three"},
    ]


def test_tool_history_images_and_thinking_replay(client: Client, upstream: FakeUpstream) -> None:
    answer(upstream)
    client.chat(
        "anthropic/claude-opus-4-8",
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here and there?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg", "detail": "low"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "Two cities: call twice.",
                "reasoning_signature": "sig-123",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                    },
                    {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "15 degrees"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "12:00"}]},
            {"role": "user", "content": "Thanks. And tomorrow?"},
        ],
        tools=[WEATHER, TIME],
    )
    body = sent(upstream)
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here and there?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two cities: call twice.", "signature": "sig-123"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "15 degrees"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "12:00"},
                {"type": "text", "text": "Thanks. And tomorrow?"},
            ],
        },
    ]
    assert body["tools"][0] == {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "input_schema": WEATHER["function"]["parameters"],
    }
    assert body["tools"][1] == {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


def test_unsigned_reasoning_is_not_replayed(client: Client, upstream: FakeUpstream) -> None:
    answer(upstream)
    client.chat(
        "anthropic/claude-opus-4-8",
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b", "reasoning_content": "from another provider"},
            {"role": "user", "content": "c"},
        ],
    )
    assert sent(upstream)["messages"][1] == {"role": "assistant", "content": "b"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        (
            {"tool_choice": {"type": "function", "function": {"name": "get_time"}}},
            {"type": "tool", "name": "get_time"},
        ),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        (
            {"tool_choice": "required", "parallel_tool_calls": False},
            {"type": "any", "disable_parallel_tool_use": True},
        ),
        ({}, None),
    ],
)
def test_tool_choice(
    client: Client, upstream: FakeUpstream, params: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    answer(upstream)
    client.chat("anthropic/claude-opus-4-8", "hi", tools=[WEATHER, TIME], **params)
    assert sent(upstream).get("tool_choice") == expected


def test_sampling_params(client: Client, upstream: FakeUpstream) -> None:
    answer(upstream)
    client.chat(
        "anthropic/claude-sonnet-4-6",
        "hi",
        temperature=1.7,
        top_p=0.9,
        stop=["END"],
        user="user-42",
        max_tokens=100,
    )
    body = sent(upstream)
    assert body["temperature"] == 1.0  # Anthropic's range is 0..1
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-42"}
    assert body["max_tokens"] == 100
    assert "stop" not in body
    assert "user" not in body


def test_newer_models_reject_temperature(upstream: FakeUpstream) -> None:
    answer(upstream)
    with make_client(upstream) as c:
        with pytest.raises(UnsupportedFeatureError):
            c.chat("anthropic/claude-opus-5", "hi", temperature=0.2)
        assert not upstream.requests
    with make_client(upstream, compat="drop") as c:
        c.chat("anthropic/claude-opus-5", "hi", temperature=0.2, top_p=0.5)
    assert "temperature" not in sent(upstream)
    assert "top_p" not in sent(upstream)


def test_prefill(client: Client, upstream: FakeUpstream) -> None:
    prefilled = [{"role": "user", "content": "List three colors"}, {"role": "assistant", "content": "1."}]
    with pytest.raises(UnsupportedFeatureError, match="prefill"):
        client.chat("anthropic/claude-opus-5", prefilled)
    assert not upstream.requests
    answer(upstream)
    client.chat("anthropic/claude-haiku-4-5", prefilled)  # 4.5 and earlier still accept prefill
    assert sent(upstream)["messages"][-1] == {"role": "assistant", "content": "1."}


def test_extra_is_merged_last(client: Client, upstream: FakeUpstream) -> None:
    answer(upstream)
    client.chat("anthropic/claude-opus-4-8", "hi", extra={"top_k": 5, "service_tier": "auto"})
    body = sent(upstream)
    assert body["top_k"] == 5
    assert body["service_tier"] == "auto"


def test_only_system_messages_is_a_clear_error(client: Client, upstream: FakeUpstream) -> None:
    with pytest.raises(BadRequestError, match="at least one user or assistant"):
        client.chat("anthropic/claude-opus-4-8", [{"role": "system", "content": "hi"}])


def test_bad_tool_arguments_and_image_urls(client: Client, upstream: FakeUpstream) -> None:
    bad_args = [
        {"role": "user", "content": "a"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "[1]"}}],
        },
        {"role": "tool", "tool_call_id": "t", "content": "x"},
    ]
    with pytest.raises(BadRequestError, match="JSON object"):
        client.chat("anthropic/claude-opus-4-8", bad_args)
    ftp = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]
    with pytest.raises(BadRequestError, match="image"):
        client.chat("anthropic/claude-opus-4-8", ftp)
    assert not upstream.requests


# ------------------------------------------------------------------------------ reasoning_effort


@pytest.mark.parametrize(
    ("effort", "budget", "max_tokens"),
    [("minimal", 1024, 8192 + 1024), ("low", 4096, 8192 + 4096), ("high", 32768, 8192 + 32768)],
)
def test_effort_to_thinking_budget(
    client: Client, upstream: FakeUpstream, effort: str, budget: int, max_tokens: int
) -> None:
    answer(upstream)
    client.chat("anthropic/claude-haiku-4-5", "hi", reasoning_effort=effort)
    body = sent(upstream)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == max_tokens
    assert "output_config" not in body


def test_budget_respects_callers_max_tokens(client: Client, upstream: FakeUpstream) -> None:
    answer(upstream)
    client.chat("anthropic/claude-haiku-4-5", "hi", reasoning_effort="high", max_tokens=5000)
    body = sent(upstream)
    assert body["max_tokens"] == 5000
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4999}
    with pytest.raises(BadRequestError, match="no room for thinking"):
        client.chat("anthropic/claude-haiku-4-5", "hi", reasoning_effort="low", max_tokens=1000)


@pytest.mark.parametrize(
    ("model", "thinking"),
    [
        ("claude-opus-4-6", {"type": "adaptive"}),  # thinking off by default: switch it on
        ("claude-opus-5", None),  # adaptive thinking already on: effort only
        ("claude-opus-5-5", None),
    ],
)
def test_effort_on_adaptive_models(
    client: Client, upstream: FakeUpstream, model: str, thinking: dict[str, Any] | None
) -> None:
    answer(upstream)
    client.chat(f"anthropic/{model}", "hi", reasoning_effort="minimal")
    body = sent(upstream)
    assert body.get("thinking") == thinking
    assert body["output_config"] == {"effort": "low"}


@pytest.mark.parametrize("effort", ["xhigh", "max"])
def test_efforts_above_high(client: Client, upstream: FakeUpstream, effort: str) -> None:
    """Anthropic's xhigh/max are canonical levels: sent as they are on adaptive models, as a larger
    budget (shrunk to fit the model's max output) on extended-thinking models."""
    answer(upstream)
    client.chat("anthropic/claude-opus-5", "hi", reasoning_effort=effort)
    assert sent(upstream)["output_config"] == {"effort": effort}
    answer(upstream)
    client.chat("anthropic/claude-haiku-4-5", "hi", reasoning_effort=effort)
    body = sent(upstream)
    assert body["thinking"]["budget_tokens"] > 32768  # more than "high"
    assert body["thinking"]["budget_tokens"] < body["max_tokens"] <= 64000


@pytest.mark.parametrize(
    ("model", "thinking"),
    [
        ("claude-haiku-4-5", None),  # extended thinking is off unless asked for: nothing to send
        ("claude-opus-4-8", None),  # adaptive, off by default: likewise
        ("claude-opus-5", {"type": "disabled"}),  # on by default: switched off
    ],
)
def test_effort_none_turns_thinking_off(
    client: Client, upstream: FakeUpstream, model: str, thinking: dict[str, Any] | None
) -> None:
    answer(upstream)
    client.chat(f"anthropic/{model}", "hi", reasoning_effort="none")
    body = sent(upstream)
    assert body.get("thinking") == thinking
    assert "output_config" not in body


def test_effort_none_is_refused_where_thinking_cannot_be_off(client: Client, upstream: FakeUpstream) -> None:
    with pytest.raises(UnsupportedFeatureError, match="always thinks"):
        client.chat("anthropic/claude-opus-5-5", "hi", reasoning_effort="none")
    assert not upstream.requests


def test_tool_error_flag_is_sent(client: Client, upstream: FakeUpstream) -> None:
    answer(upstream)
    call = {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "service down", "is_error": True},
    ]
    client.chat("anthropic/claude-opus-4-8", messages, tools=[WEATHER])
    result = sent(upstream)["messages"][-1]["content"][0]
    assert result == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": "service down",
        "is_error": True,
    }


def test_forced_tool_rules(client: Client, upstream: FakeUpstream) -> None:
    with pytest.raises(UnsupportedFeatureError, match="forced tool use"):
        client.chat("anthropic/claude-opus-5-5", "hi", tools=[WEATHER], tool_choice="required")
    with pytest.raises(UnsupportedFeatureError, match="thinking"):
        client.chat(
            "anthropic/claude-opus-4-8", "hi", tools=[WEATHER], tool_choice="required", reasoning_effort="low"
        )
    assert not upstream.requests
    answer(upstream)
    client.chat("anthropic/claude-opus-5-5", "hi", tools=[WEATHER], tool_choice="auto")
    assert sent(upstream)["tool_choice"] == {"type": "auto"}


# ------------------------------------------------------------------------------ responses


@pytest.mark.parametrize(
    ("native", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        ("some_future_reason", "stop"),
    ],
)
def test_stop_reasons(client: Client, upstream: FakeUpstream, native: str, finish: str) -> None:
    answer(upstream, message(stop_reason=native))
    choice = client.chat("anthropic/claude-opus-4-8", "hi").choices[0]
    assert (choice.finish_reason, choice.native_finish_reason) == (finish, native)


def test_thinking_response_round_trips(client: Client, upstream: FakeUpstream) -> None:
    answer(
        upstream,
        message(
            {"type": "thinking", "thinking": "Let me see.", "signature": "EqQBsig"},
            {"type": "text", "text": "Answer."},
        ),
    )
    response = client.chat("anthropic/claude-opus-4-8", "q")
    msg = response.choices[0].message
    assert (msg.content, msg.reasoning_content, msg.reasoning_signature) == (
        "Answer.",
        "Let me see.",
        "EqQBsig",
    )
    assert "reasoning_signature" not in json.dumps(response.to_openai())
    answer(upstream)
    client.chat(
        "anthropic/claude-opus-4-8",
        [{"role": "user", "content": "q"}, msg.to_assistant_message(), {"role": "user", "content": "more"}],
    )
    assert sent(upstream)["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Let me see.", "signature": "EqQBsig"},
        {"type": "text", "text": "Answer."},
    ]


THINKING_BLOCKS = [
    {"type": "thinking", "thinking": "First.", "signature": "sig-1"},
    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr"},
    {"type": "thinking", "thinking": "Second.", "signature": "sig-2"},
]


def test_several_thinking_blocks_are_replayed_unmodified(client: Client, upstream: FakeUpstream) -> None:
    """Several thinking blocks (and redacted_thinking) travel whole in reasoning_signature."""
    answer(
        upstream,
        message(
            *THINKING_BLOCKS,
            {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}},
            stop_reason="tool_use",
        ),
    )
    msg = client.chat("anthropic/claude-opus-4-8", "q", tools=[TIME]).choices[0].message
    assert msg.reasoning_content == "First.Second."
    assert (msg.reasoning_signature or "").startswith("anthropic-thinking-blocks:")
    answer(upstream)
    client.chat(
        "anthropic/claude-opus-4-8",
        [
            {"role": "user", "content": "q"},
            msg.to_assistant_message(),
            {"role": "tool", "tool_call_id": "toolu_1", "content": "12:00"},
        ],
        tools=[TIME],
    )
    assert sent(upstream)["messages"][1]["content"] == [
        *THINKING_BLOCKS,
        {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}},
    ]


def test_several_thinking_blocks_streamed(client: Client, upstream: FakeUpstream) -> None:
    stream(
        upstream,
        start(),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "First."}),
        delta(0, {"type": "signature_delta", "signature": "sig-1"}),
        stop(0),
        block_start(1, THINKING_BLOCKS[1]),
        stop(1),
        block_start(2, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(2, {"type": "thinking_delta", "thinking": "Second."}),
        delta(2, {"type": "signature_delta", "signature": "sig-2"}),
        stop(2),
        block_start(3, {"type": "text", "text": ""}),
        delta(3, {"type": "text_delta", "text": "Done"}),
        stop(3),
        *end(),
    )
    with client.chat("anthropic/claude-opus-4-8", "q", stream=True) as s:
        list(s)
    assert s.response is not None
    msg = s.response.choices[0].message
    assert thinking_blocks(msg.reasoning_content, msg.reasoning_signature) == THINKING_BLOCKS


def test_usage_with_cache_and_long_context_pricing(client: Client, upstream: FakeUpstream) -> None:
    usage = {
        "input_tokens": 50_000,
        "cache_creation_input_tokens": 40_000,
        "cache_read_input_tokens": 20_000,
        "output_tokens": 1_000,
    }
    answer(upstream, message(usage=usage))
    response = client.chat("anthropic/claude-haiku-5-5", "hi")
    assert response.usage is not None
    assert response.usage.prompt_tokens == 110_000
    assert (response.usage.cached_tokens, response.usage.cache_creation_tokens) == (20_000, 40_000)
    # over 100K prompt tokens: the whole request at the long-context tier ($0.50/$0.625/$0.05/$2.50)
    expected = (
        50_000 * Decimal("0.50")
        + 40_000 * Decimal("0.625")
        + 20_000 * Decimal("0.05")
        + 1_000 * Decimal("2.50")
    ) / 10**6
    assert response.cost == expected
    answer(upstream, message(usage={"input_tokens": 1000, "output_tokens": 100}))
    small = client.chat("anthropic/claude-haiku-5-5", "hi")
    assert small.cost == (1000 * Decimal("0.10") + 100 * Decimal("0.50")) / 10**6


def test_malformed_message_body(client: Client, upstream: FakeUpstream) -> None:
    answer(upstream, {"id": "msg", "type": "message"})
    with pytest.raises(MalformedResponseError):
        client.chat("anthropic/claude-opus-4-8", "hi")


# ------------------------------------------------------------------------------ JSON output


def test_json_schema_through_forced_tool(client: Client, upstream: FakeUpstream) -> None:
    answer(
        upstream,
        message(
            {"type": "tool_use", "id": "toolu_j", "name": "person", "input": {"name": "Ada", "age": 36}},
            stop_reason="tool_use",
        ),
    )
    response = client.chat(
        "anthropic/claude-opus-4-8", "Who wrote the first program?", response_format=JSON_SCHEMA_FORMAT
    )
    body = sent(upstream)
    assert body["tools"] == [
        {
            "name": "person",
            "description": "Give your final answer by calling this tool: its input is the person object, as "
            "JSON matching the schema.",
            "input_schema": SCHEMA,
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "person"}
    assert "output_config" not in body
    assert "thinking" not in body
    choice = response.choices[0]
    assert json.loads(choice.message.content or "") == {"name": "Ada", "age": 36}
    assert choice.message.tool_calls is None
    assert (choice.finish_reason, choice.native_finish_reason) == ("stop", "tool_use")


def test_json_schema_streamed(client: Client, upstream: FakeUpstream) -> None:
    stream(
        upstream,
        start(),
        block_start(0, {"type": "tool_use", "id": "toolu_j", "name": "person", "input": {}}),
        delta(0, {"type": "input_json_delta", "partial_json": ""}),
        delta(0, {"type": "input_json_delta", "partial_json": '{"name": "Ad'}),
        delta(0, {"type": "input_json_delta", "partial_json": 'a", "age": 36}'}),
        stop(0),
        *end("tool_use"),
    )
    with client.chat(
        "anthropic/claude-opus-4-8", "Who?", stream=True, response_format=JSON_SCHEMA_FORMAT
    ) as s:
        chunks = list(s)
    assert "".join(c.text for c in chunks) == '{"name": "Ada", "age": 36}'
    assert not any(ch.delta.tool_calls for c in chunks for ch in c.choices)
    response = s.response
    assert response is not None
    assert response.choices[0].finish_reason == "stop"
    assert response.choices[0].native_finish_reason == "tool_use"


def test_json_schema_with_caller_tools(client: Client, upstream: FakeUpstream) -> None:
    answer(
        upstream,
        message(
            {"type": "tool_use", "id": "toolu_w", "name": "get_weather", "input": {"location": "Oslo"}},
            stop_reason="tool_use",
        ),
    )
    response = client.chat(
        "anthropic/claude-opus-4-8", "hi", tools=[WEATHER], response_format=JSON_SCHEMA_FORMAT
    )
    body = sent(upstream)
    assert [t["name"] for t in body["tools"]] == ["get_weather", "person"]
    assert body["tool_choice"] == {"type": "any"}  # a real tool or the answer
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].function.name == "get_weather"
    with pytest.raises(BadRequestError, match="rename"):
        client.chat(
            "anthropic/claude-opus-4-8",
            "hi",
            tools=[{"type": "function", "function": {"name": "person", "parameters": SCHEMA}}],
            response_format=JSON_SCHEMA_FORMAT,
        )


def test_json_schema_native_where_forcing_is_rejected(client: Client, upstream: FakeUpstream) -> None:
    answer(upstream, message({"type": "text", "text": '{"name": "Ada", "age": 36}'}))
    response = client.chat("anthropic/claude-opus-5-5", "Who?", response_format=JSON_SCHEMA_FORMAT)
    body = sent(upstream)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert "tools" not in body
    assert "tool_choice" not in body
    assert json.loads(response.text) == {"name": "Ada", "age": 36}
    # with thinking requested, forcing a tool is not allowed either: structured outputs again
    answer(upstream)
    client.chat(
        "anthropic/claude-opus-4-8", "Who?", response_format=JSON_SCHEMA_FORMAT, reasoning_effort="low"
    )
    body = sent(upstream)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"}
    assert "tools" not in body


def test_json_object(client: Client, upstream: FakeUpstream) -> None:
    answer(
        upstream,
        message(
            {"type": "tool_use", "id": "t", "name": "json_object", "input": {"a": 1}}, stop_reason="tool_use"
        ),
    )
    response = client.chat(
        "anthropic/claude-opus-4-8", "JSON please", response_format={"type": "json_object"}
    )
    body = sent(upstream)
    assert body["tools"][0]["name"] == "json_object"
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    assert body["tool_choice"] == {"type": "tool", "name": "json_object"}
    assert json.loads(response.text) == {"a": 1}
    answer(upstream, message({"type": "text", "text": '{"a": 1}'}))
    client.chat(
        "anthropic/claude-opus-5-5",
        [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "JSON please"}],
        response_format={"type": "json_object"},
    )
    body = sent(upstream)
    assert body["system"] == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": "Respond with a single valid JSON object and nothing else."},
    ]
    assert "tools" not in body


# ------------------------------------------------------------------------------ streams


def _collect(
    client: Client, model: str = "anthropic/claude-opus-4-8", **params: Any
) -> tuple[list[Any], ChatResponse]:
    with client.chat(model, "hi", stream=True, **params) as s:
        chunks = list(s)
    assert s.response is not None
    return chunks, s.response


def test_stream_parallel_tools_have_stable_indices(client: Client, upstream: FakeUpstream) -> None:
    stream(
        upstream,
        start(),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, {"type": "text_delta", "text": "Checking."}),
        stop(0),
        block_start(1, {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}),
        delta(1, {"type": "input_json_delta", "partial_json": '{"location":'}),
        {"type": "ping"},
        delta(1, {"type": "input_json_delta", "partial_json": ' "Oslo"}'}),
        stop(1),
        block_start(2, {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}),
        stop(2),
        {"type": "some_new_event", "detail": 1},
        *end("tool_use"),
    )
    chunks, response = _collect(client, tools=[WEATHER, TIME])
    indices = {d.index for c in chunks for ch in c.choices for d in ch.delta.tool_calls or ()}
    assert indices == {0, 1}
    calls = response.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("toolu_a", "get_weather", {"location": "Oslo"}),
        ("toolu_b", "get_time", {}),
    ]
    assert response.choices[0].message.content == "Checking."
    assert response.choices[0].finish_reason == "tool_calls"


def test_stream_usage_with_cache_fields(client: Client, upstream: FakeUpstream) -> None:
    stream(
        upstream,
        start(
            {
                "input_tokens": 3,
                "cache_creation_input_tokens": 1000,
                "cache_read_input_tokens": 2000,
                "output_tokens": 1,
            }
        ),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, {"type": "text_delta", "text": "Hi"}),
        stop(0),
        *end("end_turn", {"output_tokens": 40}),
    )
    chunks, response = _collect(client)
    assert [c for c in chunks if c.usage] == [chunks[-1]]
    usage = response.usage
    assert usage is not None
    assert not usage.estimated
    assert (usage.prompt_tokens, usage.completion_tokens) == (3003, 40)
    assert (usage.cached_tokens, usage.cache_creation_tokens) == (2000, 1000)
    # opus-4-8: $5 in, $6.25 cache write, $0.50 cache read, $25 out
    assert (
        response.cost
        == (3 * Decimal(5) + 1000 * Decimal("6.25") + 2000 * Decimal("0.50") + 40 * Decimal(25)) / 10**6
    )


def test_stream_thinking_signature(client: Client, upstream: FakeUpstream) -> None:
    stream(
        upstream,
        start(),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "Hmm"}),
        delta(0, {"type": "signature_delta", "signature": "sig-abc"}),
        stop(0),
        block_start(1, {"type": "text", "text": ""}),
        delta(1, {"type": "text_delta", "text": "Done"}),
        stop(1),
        *end(),
    )
    _, response = _collect(client)
    msg = response.choices[0].message
    assert (msg.reasoning_content, msg.reasoning_signature, msg.content) == ("Hmm", "sig-abc", "Done")


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("overloaded_error", OverloadedError),
        ("api_error", UpstreamServerError),
        ("rate_limit_error", RateLimitError),
        ("brand_new_error", UpstreamServerError),
    ],
)
def test_mid_stream_error_events(client: Client, upstream: FakeUpstream, kind: str, error: type) -> None:
    stream(
        upstream,
        start(),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, {"type": "text_delta", "text": "Hel"}),
        {"type": "error", "error": {"type": kind, "message": "Something happened"}},
    )
    with pytest.raises(error) as info, client.chat("anthropic/claude-opus-4-8", "hi", stream=True) as s:
        list(s)
    assert info.value.provider_code == kind
    assert info.value.provider == "anthropic"


def test_stream_without_message_stop_is_interrupted(client: Client, upstream: FakeUpstream) -> None:
    stream(
        upstream,
        start(),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, {"type": "text_delta", "text": "x"}),
    )
    with (
        pytest.raises(StreamInterruptedError),
        client.chat("anthropic/claude-opus-4-8", "hi", stream=True) as s,
    ):
        list(s)


# ------------------------------------------------------------------------------ errors


def _fail(
    upstream: FakeUpstream, status: int, kind: str | None, message: str = "msg", **headers: str
) -> None:
    body: Any = (
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}
        if kind
        else "<html>"
    )
    upstream.add(
        "POST",
        PATH,
        ResponseSpec(
            status=status, json=body if kind else None, body=None if kind else body, headers=headers
        ),
    )


@pytest.mark.parametrize(
    ("status", "kind", "message", "error"),
    [
        (
            400,
            "invalid_request_error",
            "prompt is too long: 1000001 tokens > 1000000 maximum",
            ContextLengthExceededError,
        ),
        (400, "invalid_request_error", "messages: roles must alternate", BadRequestError),
        (401, "authentication_error", "invalid x-api-key", AuthenticationError),
        (402, "billing_error", "Your credit balance is too low", QuotaExceededError),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", BadRequestError),
        (429, "rate_limit_error", "You have reached your monthly spend limit", QuotaExceededError),
        (500, "api_error", "Internal server error", UpstreamServerError),
        (529, "overloaded_error", "Overloaded", OverloadedError),
        (413, None, "", BadRequestError),  # Cloudflare's HTML page
    ],
)
def test_error_mapping(
    client: Client, upstream: FakeUpstream, status: int, kind: str | None, message: str, error: type
) -> None:
    _fail(upstream, status, kind, message, **{"request-id": "req_9"})
    with pytest.raises(error) as info:
        client.chat("anthropic/claude-opus-4-8", "hi")
    assert type(info.value) is error
    assert info.value.status_code == status
    assert info.value.provider_code == kind
    assert info.value.request_id == "req_9"
    assert KEY not in str(info.value)


def test_rate_limit_retry_after(client: Client, upstream: FakeUpstream) -> None:
    _fail(
        upstream,
        429,
        "rate_limit_error",
        "Number of requests has exceeded your rate limit",
        **{"retry-after": "3"},
    )
    with pytest.raises(RateLimitError) as info:
        client.chat("anthropic/claude-opus-4-8", "hi")
    assert info.value.retry_after == 3
    assert info.value.retryable


def test_retries_an_overload_then_succeeds(upstream: FakeUpstream) -> None:
    answer(upstream)
    upstream.fail(
        529,
        body={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        retry_after=0,
    )
    with make_client(upstream, max_retries=1) as c:
        assert c.chat("anthropic/claude-opus-4-8", "hi").text == "ok"
    assert len(upstream.requests) == 2


def test_health(client: Client, upstream: FakeUpstream) -> None:
    upstream.add(
        "GET",
        "/v1/models",
        ResponseSpec(
            status=401,
            json={"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
        ),
    )
    status = client.health("anthropic")
    assert not status.ok
    assert isinstance(status.error, AuthenticationError)
    assert upstream.requests[-1].headers["anthropic-version"] == ANTHROPIC_VERSION


async def test_async_stream(upstream: FakeUpstream) -> None:
    from modelbus import AsyncClient

    stream(
        upstream,
        start(),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, {"type": "text_delta", "text": "Hi there"}),
        stop(0),
        *end(),
    )
    client = AsyncClient(
        plugins=[plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"anthropic": {"api_key": KEY, "base_url": upstream.url}},
    )
    try:
        s = await client.chat("anthropic/claude-opus-4-8", "hi", stream=True)
        response = await s.until_done()
    finally:
        await client.aclose()
    assert response.text == "Hi there"
    assert response.usage is not None
    assert response.usage.completion_tokens == 7


def test_json_schema_with_a_non_object_root_uses_structured_outputs(
    client: Client, upstream: FakeUpstream
) -> None:
    answer(upstream, message({"type": "text", "text": "[1, 2]"}))
    schema = {"type": "array", "items": {"type": "integer"}}
    response = client.chat(
        "anthropic/claude-opus-4-8",
        "Two numbers",
        response_format={"type": "json_schema", "json_schema": {"name": "numbers", "schema": schema}},
    )
    body = sent(upstream)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "tools" not in body
    assert json.loads(response.text) == [1, 2]
