"""modelbus-deepseek: the conformance kit over the wire samples, plus DeepSeek's own quirks.

Every test drives the real Client against a FakeUpstream (a local HTTP server); nothing under test is
mocked.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from modelbus_deepseek import DeepSeek, plugin, tool_turns

from modelbus.client import Client
from modelbus.errors import QuotaExceededError, UnsupportedFeatureError
from modelbus.testing import ProviderConformanceTests
from modelbus.testing.fake_upstream import FakeUpstream, openai_chat_responder
from modelbus.testing.samples import ResponseSpec, SSEItem
from modelbus.types.chat import AssistantMessage, ToolMessage, UserMessage

SAMPLES = Path(__file__).parent / "samples"
KEY = "sk-test-deepseek-0123456789"


class TestDeepSeekConformance(ProviderConformanceTests):
    plugin = plugin
    samples_dir = SAMPLES


# ----------------------------------------------------------------------------------- helpers


@pytest.fixture
def upstream() -> Any:
    with FakeUpstream() as server:
        yield server


def make_client(upstream: FakeUpstream, **kwargs: Any) -> Client:
    return Client(
        plugins=[plugin],
        load_entrypoints=False,
        providers={"deepseek": {"api_key": KEY, "base_url": upstream.url}},
        config={},
        timeout=20,
        **{"max_retries": 0, **kwargs},
    )


def call(name: str, arguments: str = "{}", call_id: str = "call_00_a") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


# ----------------------------------------------------------------------------------- table


def test_model_table_rows() -> None:
    models = {m.id: m for m in plugin.provider_info.models}
    assert {"deepseek-v4-flash", "deepseek-v4-pro", "deepseek-chat", "deepseek-reasoner"} <= set(models)
    for legacy in ("deepseek-chat", "deepseek-reasoner"):
        assert models[legacy].deprecated
        assert "2026-07-24" in models[legacy].deprecated
    assert models["deepseek-reasoner"].supports("reasoning")
    assert not models["deepseek-chat"].supports("reasoning")
    assert {"temperature", "top_p", "presence_penalty", "frequency_penalty"} <= models[
        "deepseek-reasoner"
    ].unsupported_params
    for model in models.values():
        assert model.price is not None
        assert model.price.currency == "USD"
        assert model.price.cached_input is not None, "cache hits have their own price"
        assert model.price.cached_input < model.price.input
        assert not model.supports("vision")


def test_single_region_bearer_auth() -> None:
    info = plugin.provider_info
    assert info.regions["default"].base_url == "https://api.deepseek.com"
    assert info.regions["default"].jurisdiction == "CN"
    assert info.api_key_env == ["DEEPSEEK_API_KEY"]


# ----------------------------------------------------------------------------------- reasoning replay


def test_tool_turns_marks_whole_user_turns() -> None:
    messages = [
        UserMessage(content="a"),
        AssistantMessage(content="x", reasoning_content="r0"),
        UserMessage(content="b"),
        AssistantMessage(content="", reasoning_content="r1", tool_calls=[call("f")]),
        ToolMessage(tool_call_id="call_00_a", content="1"),
        AssistantMessage(content="done", reasoning_content="r2"),
        UserMessage(content="c"),
    ]
    assert tool_turns(messages) == [False, False, True, True, True, True, False]


def test_reasoning_replayed_only_on_tool_call_turns(upstream: FakeUpstream) -> None:
    upstream.respond_with(openai_chat_responder("ok"))
    messages = [
        {"role": "user", "content": "9.11 and 9.8, which is greater?"},
        {"role": "assistant", "content": "9.8 is greater.", "reasoning_content": "compare decimals"},
        {"role": "user", "content": "Weather in Hangzhou?"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "need the tool",
            "tool_calls": [call("get_weather", '{"location": "Hangzhou"}')],
        },
        {"role": "tool", "tool_call_id": "call_00_a", "content": "Cloudy"},
        {"role": "assistant", "content": "It is cloudy.", "reasoning_content": "answer now"},
        {"role": "user", "content": "Thanks"},
    ]
    with make_client(upstream) as client:
        client.chat("deepseek/deepseek-v4-flash", messages, tools=[WEATHER_TOOL])
    sent = upstream.requests[-1].json["messages"]
    assert "reasoning_content" not in sent[1], "a turn without tool calls does not replay reasoning"
    assert sent[3]["reasoning_content"] == "need the tool"
    assert sent[5]["reasoning_content"] == "answer now", "the whole tool-call turn is replayed"
    assert sent[3]["tool_calls"][0]["id"] == "call_00_a"
    assert all("reasoning_signature" not in m for m in sent)


def test_no_reasoning_sent_without_tool_calls(upstream: FakeUpstream) -> None:
    upstream.respond_with(openai_chat_responder("ok"))
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "reasoning_content": "greet back"},
        {"role": "user", "content": "bye"},
    ]
    with make_client(upstream) as client:
        client.chat("deepseek/deepseek-reasoner", messages)
    assert all("reasoning_content" not in m for m in upstream.requests[-1].json["messages"])


def test_response_reasoning_round_trips_into_next_turn(upstream: FakeUpstream) -> None:
    """A tool-call reply turned back into history keeps its reasoning on the wire."""
    upstream.respond_with(
        lambda _request: ResponseSpec(
            json={
                "id": "u1",
                "object": "chat.completion",
                "created": 1,
                "model": "deepseek-v4-flash",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "",
                            "reasoning_content": "call it",
                            "tool_calls": [call("get_weather", '{"location": "Paris"}')],
                        },
                        "finish_reason": "tool_calls",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
            }
        )
    )
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    with make_client(upstream) as client:
        first = client.chat("deepseek/deepseek-v4-flash", history, tools=[WEATHER_TOOL])
        reply = first.choices[0].message
        assert reply.reasoning_content == "call it"
        assert reply.content in ("", None)
        history += [
            reply.to_assistant_message(),
            {"role": "tool", "tool_call_id": "call_00_a", "content": "Sunny"},
        ]
        client.chat("deepseek/deepseek-v4-flash", history, tools=[WEATHER_TOOL])
    sent = upstream.requests[-1].json["messages"]
    assert sent[1]["reasoning_content"] == "call it"


# ----------------------------------------------------------------------------------- reasoner params


def test_reasoner_rejects_ignored_sampling_params_in_strict_mode(upstream: FakeUpstream) -> None:
    upstream.respond_with(openai_chat_responder("ok"))
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError) as error:
        client.chat("deepseek/deepseek-reasoner", "hi", temperature=0.2)
    assert error.value.param == "temperature"
    assert not upstream.requests, "nothing is sent for a refused parameter"


def test_reasoner_drops_ignored_sampling_params_in_drop_mode(upstream: FakeUpstream) -> None:
    upstream.respond_with(openai_chat_responder("ok"))
    with make_client(upstream, compat="drop") as client:
        response = client.chat("deepseek/deepseek-reasoner", "hi", temperature=0.2, top_p=0.5)
    assert response.text == "ok"
    body = upstream.requests[-1].json
    assert "temperature" not in body
    assert "top_p" not in body


def test_reasoner_refuses_logprobs_passed_in_extra(upstream: FakeUpstream) -> None:
    """logprobs/top_logprobs reach the body only through ``extra``; the row's unsupported_params still
    apply to them: refused in strict mode, dropped in drop mode."""
    upstream.respond_with(openai_chat_responder("ok"))
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError) as error:
        client.chat("deepseek/deepseek-reasoner", "hi", extra={"logprobs": True, "top_logprobs": 2})
    assert error.value.param == "logprobs"
    assert not upstream.requests
    with make_client(upstream, compat="drop") as client:
        client.chat(
            "deepseek/deepseek-reasoner", "hi", extra={"logprobs": True, "thinking": {"type": "enabled"}}
        )
    body = upstream.requests[-1].json
    assert "logprobs" not in body
    assert body["thinking"] == {"type": "enabled"}


def test_reasoning_effort_max_is_sent_as_is(upstream: FakeUpstream) -> None:
    upstream.respond_with(openai_chat_responder("ok"))
    with make_client(upstream) as client:
        client.chat("deepseek/deepseek-v4-pro", "hi", reasoning_effort="max")
    assert upstream.requests[-1].json["reasoning_effort"] == "max"


def test_non_thinking_model_keeps_sampling_params(upstream: FakeUpstream) -> None:
    upstream.respond_with(openai_chat_responder("ok"))
    with make_client(upstream) as client:
        client.chat("deepseek/deepseek-chat", "hi", temperature=0.2)
    assert upstream.requests[-1].json["temperature"] == 0.2


def test_reasoning_effort_refused_on_non_reasoning_row(upstream: FakeUpstream) -> None:
    with make_client(upstream) as client, pytest.raises(UnsupportedFeatureError):
        client.chat("deepseek/deepseek-chat", "hi", reasoning_effort="high")


# ----------------------------------------------------------------------------------- stream quirks


def test_keep_alive_comments_anywhere_in_a_stream_are_ignored(upstream: FakeUpstream) -> None:
    chunk = {
        "id": "k1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "deepseek-v4-flash",
    }
    upstream.add(
        "POST",
        "/chat/completions",
        ResponseSpec(
            sse=[
                SSEItem(raw=": keep-alive"),
                SSEItem(raw=": keep-alive"),
                SSEItem(data={**chunk, "choices": [{"index": 0, "delta": {"reasoning_content": "think"}}]}),
                SSEItem(raw=": keep-alive"),
                SSEItem(data={**chunk, "choices": [{"index": 0, "delta": {"content": "answer"}}]}),
                SSEItem(data={**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                SSEItem(
                    data={
                        **chunk,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": 4,
                            "completion_tokens": 3,
                            "total_tokens": 7,
                            "completion_tokens_details": {"reasoning_tokens": 1},
                            "prompt_cache_hit_tokens": 0,
                            "prompt_cache_miss_tokens": 4,
                        },
                    }
                ),
                SSEItem(data="[DONE]"),
            ]
        ),
        stream=True,
    )
    with make_client(upstream) as client, client.chat("deepseek/deepseek-v4-flash", "hi", stream=True) as s:
        chunks = list(s)
    response = s.response
    assert response is not None
    assert response.text == "answer"
    assert response.choices[0].message.reasoning_content == "think"
    assert all(c.choices[0].delta.content != "think" for c in chunks if c.choices)
    assert response.usage is not None
    assert response.usage.reasoning_tokens == 1


def test_reasoning_deltas_stay_out_of_content(upstream: FakeUpstream) -> None:
    sample = (SAMPLES / "chat_stream_reasoner.sse").read_text()
    upstream.add("POST", "/chat/completions", ResponseSpec(sse_text=sample), stream=True)
    with make_client(upstream) as client, client.chat("deepseek/deepseek-reasoner", "Hi", stream=True) as s:
        chunks = list(s)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices)
    assert (content, reasoning) == ("Hello!", "The user says hi.")


# ----------------------------------------------------------------------------------- pricing


def test_cache_hits_priced_at_cached_input(upstream: FakeUpstream) -> None:
    upstream.respond_with(
        lambda _request: ResponseSpec(
            json={
                "id": "p1",
                "object": "chat.completion",
                "created": 1,
                "model": "deepseek-v4-pro",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": 1_000_000,
                    "completion_tokens": 0,
                    "total_tokens": 1_000_000,
                    "prompt_cache_hit_tokens": 600_000,
                    "prompt_cache_miss_tokens": 400_000,
                },
            }
        )
    )
    with make_client(upstream) as client:
        response = client.chat("deepseek/deepseek-v4-pro", "hi")
    assert response.usage is not None
    assert response.usage.cached_tokens == 600_000
    breakdown = response.cost_breakdown
    assert breakdown is not None
    assert breakdown.cached_input == Decimal("0.6") * Decimal("0.003625")
    assert breakdown.input == Decimal("0.4") * Decimal("0.435")
    assert response.cost == breakdown.cached_input + breakdown.input


# ----------------------------------------------------------------------------------- retries


def test_insufficient_balance_is_not_retried(upstream: FakeUpstream) -> None:
    upstream.respond_with(openai_chat_responder("ok"))
    upstream.fail(402, body={"error": {"message": "Insufficient Balance", "type": "unknown_error"}})
    with make_client(upstream, max_retries=2) as client, pytest.raises(QuotaExceededError):
        client.chat("deepseek/deepseek-v4-flash", "hi")
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limit_and_server_errors_are_retried(upstream: FakeUpstream, status: int) -> None:
    upstream.respond_with(openai_chat_responder("recovered"))
    upstream.fail(status, body={"error": {"message": "busy"}}, retry_after=0)
    with make_client(upstream, max_retries=1) as client:
        assert client.chat("deepseek/deepseek-v4-flash", "hi").text == "recovered"
    assert len(upstream.requests) == 2


def test_plugin_class_is_data_on_the_openai_base() -> None:
    assert DeepSeek.send_reasoning_history is False
    assert DeepSeek.finish_reasons == {"insufficient_system_resource": "error"}
    # the replay rule is the base's messages_to_wire step, not a rewrite of the request body
    overridden = {name for name in vars(DeepSeek) if callable(getattr(DeepSeek, name))}
    assert overridden == {"messages_to_wire"}


def test_messages_to_wire_applies_the_replay_rule_to_typed_messages() -> None:
    messages = [
        UserMessage(content="a"),
        AssistantMessage(content="x", reasoning_content="r0", reasoning_signature="sig0"),
        UserMessage(content="b"),
        AssistantMessage(content=None, reasoning_content="r1", tool_calls=[call("f")]),
        ToolMessage(tool_call_id="call_00_a", content="1"),
        AssistantMessage(content="done", reasoning_content="r2"),
    ]
    wire = plugin.messages_to_wire(messages)
    assert [m.get("reasoning_content") for m in wire] == [None, None, None, "r1", None, "r2"]
    assert wire[3]["content"] is None, "the base's tool-call message shape is kept"
    assert all("reasoning_signature" not in m for m in wire)
