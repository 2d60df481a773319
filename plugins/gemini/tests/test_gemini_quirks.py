"""Gemini's own behaviour, through the real Client against a FakeUpstream (nothing is mocked)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from modelbus_gemini import plugin
from modelbus_gemini.convert import SKIP_SIGNATURE, Signatures

from modelbus.client import Client
from modelbus.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    ModelbusError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExceededError,
    RequestTimeoutError,
    UpstreamServerError,
)
from modelbus.testing import FakeUpstream, RecordedRequest, ResponseSpec, SSEItem

KEY = "AIza-test-key-0123456789"
FLASH = "/models/gemini-2.5-flash:generateContent"
FLASH_STREAM = "/models/gemini-2.5-flash:streamGenerateContent"
G3 = "/models/gemini-3.8-flash:generateContent"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TEXT_REPLY = {
    "candidates": [
        {"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP", "index": 0}
    ],
    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "resp-1",
}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[Client]:
    with Client(
        plugins=[plugin],
        load_entrypoints=False,
        providers={"gemini": {"api_key": KEY, "base_url": upstream.url}},
        max_retries=0,
        timeout=20,
        config={},
    ) as c:
        yield c


def reply(upstream: FakeUpstream, path: str, body: Any, status: int = 200) -> None:
    upstream.add("POST", path, ResponseSpec(status=status, json=body), stream=False)


def stream_reply(upstream: FakeUpstream, path: str, events: list[Any]) -> None:
    upstream.add("POST", path, ResponseSpec(sse=[SSEItem(data=e) for e in events]), stream=True)


def sent(upstream: FakeUpstream, position: int = -1) -> dict[str, Any]:
    return upstream.requests[position].json


def last(upstream: FakeUpstream) -> RecordedRequest:
    return upstream.requests[-1]


# ------------------------------------------------------------------------------ auth


def test_api_key_goes_in_x_goog_api_key(client: Client, upstream: FakeUpstream) -> None:
    reply(upstream, FLASH, TEXT_REPLY)
    client.chat("gemini/gemini-2.5-flash", "hi")
    headers = last(upstream).headers
    assert headers["x-goog-api-key"] == KEY
    assert "authorization" not in headers
    assert "key" not in last(upstream).query, "the key is not put in the URL"


def test_google_api_key_env_fallback(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google-env")
    reply(upstream, FLASH, TEXT_REPLY)
    with Client(
        plugins=[plugin], load_entrypoints=False, providers={"gemini": {"base_url": upstream.url}}, config={}
    ) as c:
        c.chat("gemini/gemini-2.5-flash", "hi")
    assert last(upstream).headers["x-goog-api-key"] == "from-google-env"


# ------------------------------------------------------------------------------ request translation


def test_system_and_developer_messages_become_system_instruction(
    client: Client, upstream: FakeUpstream
) -> None:
    reply(upstream, FLASH, TEXT_REPLY)
    client.chat(
        "gemini/gemini-2.5-flash",
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "again"},
        ],
    )
    body = sent(upstream)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Use French."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "hello"}]},
        {"role": "user", "parts": [{"text": "again"}]},
    ]


def test_images_inline_and_by_uri(client: Client, upstream: FakeUpstream) -> None:
    reply(upstream, FLASH, TEXT_REPLY)
    client.chat(
        "gemini/gemini-2.5-flash",
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"},
                    },
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://generativelanguage.googleapis.com/v1beta/files/abc"},
                    },
                ],
            }
        ],
    )
    parts = sent(upstream)["contents"][0]["parts"]
    assert parts == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
        {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}},
    ]


def test_generation_config_mapping(client: Client, upstream: FakeUpstream) -> None:
    reply(upstream, FLASH, TEXT_REPLY)
    client.chat(
        "gemini/gemini-2.5-flash",
        "hi",
        temperature=0.5,
        top_p=0.9,
        max_tokens=64,
        stop="END",
        n=2,
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        user="u-1",
        parallel_tool_calls=True,
        tools=[WEATHER],
    )
    body = sent(upstream)
    assert body["generationConfig"] == {
        "temperature": 0.5,
        "topP": 0.9,
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.2,
    }
    assert "user" not in body
    assert "parallel_tool_calls" not in body
    assert "toolConfig" not in body, "no tool_choice: Gemini's default (AUTO)"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                },
            },
            {
                "responseMimeType": "application/json",
                "responseJsonSchema": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}},
                    "required": ["a"],
                },
            },
        ),
        ({"type": "text"}, None),
    ],
)
def test_response_format(client: Client, upstream: FakeUpstream, fmt: dict[str, Any], expected: Any) -> None:
    reply(upstream, FLASH, TEXT_REPLY)
    client.chat("gemini/gemini-2.5-flash", "hi", response_format=fmt)
    assert sent(upstream).get("generationConfig") == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice(client: Client, upstream: FakeUpstream, choice: Any, expected: dict[str, Any]) -> None:
    reply(upstream, FLASH, TEXT_REPLY)
    client.chat("gemini/gemini-2.5-flash", "hi", tools=[WEATHER], tool_choice=choice)
    body = sent(upstream)
    assert body["toolConfig"] == {"functionCallingConfig": expected}
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather in a city.",
                    "parametersJsonSchema": WEATHER["function"]["parameters"],
                }
            ]
        }
    ]


@pytest.mark.parametrize(
    ("model", "effort", "expected"),
    [
        ("gemini-2.5-flash", "minimal", {"thinkingBudget": 0, "includeThoughts": False}),
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-flash", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-2.5-pro", "minimal", {"thinkingBudget": 128, "includeThoughts": True}),
        ("gemini-3.5-flash", "minimal", {"thinkingLevel": "MINIMAL", "includeThoughts": True}),
        ("gemini-3.8-flash", "minimal", {"thinkingLevel": "LOW", "includeThoughts": True}),
        ("gemini-3.8-flash", "medium", {"thinkingLevel": "MEDIUM", "includeThoughts": True}),
        ("gemini-3.1-pro-preview", "high", {"thinkingLevel": "HIGH", "includeThoughts": True}),
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0, "includeThoughts": False}),
        ("gemini-2.5-flash", "max", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-2.5-pro", "none", {"thinkingBudget": 128, "includeThoughts": True}),
        ("gemini-3.5-flash", "none", {"thinkingLevel": "MINIMAL", "includeThoughts": True}),
        ("gemini-3.8-flash", "none", {"thinkingLevel": "LOW", "includeThoughts": True}),
        ("gemini-3.1-pro-preview", "xhigh", {"thinkingLevel": "HIGH", "includeThoughts": True}),
        ("gemini-3.1-pro-preview", "max", {"thinkingLevel": "HIGH", "includeThoughts": True}),
    ],
)
def test_reasoning_effort(
    client: Client, upstream: FakeUpstream, model: str, effort: str, expected: dict[str, Any]
) -> None:
    reply(upstream, f"/models/{model}:generateContent", TEXT_REPLY)
    client.chat(f"gemini/{model}", "hi", reasoning_effort=effort)
    assert sent(upstream)["generationConfig"]["thinkingConfig"] == expected


def test_extra_merges_into_objects(client: Client, upstream: FakeUpstream) -> None:
    reply(upstream, FLASH, TEXT_REPLY)
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    client.chat(
        "gemini/gemini-2.5-flash",
        "hi",
        temperature=0.3,
        extra={
            "generationConfig": {"topK": 5},
            "safetySettings": safety,
            "cachedContent": "cachedContents/x",
        },
    )
    body = sent(upstream)
    assert body["generationConfig"] == {"temperature": 0.3, "topK": 5}
    assert body["safetySettings"] == safety
    assert body["cachedContent"] == "cachedContents/x"


# ------------------------------------------------------------------------------ tool round trips


def test_gemini25_tool_turn_replays_signature_and_recovers_the_name(
    client: Client, upstream: FakeUpstream
) -> None:
    call_reply = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {
                            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                            "thoughtSignature": "SIG-A",
                        }
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
    }
    reply(upstream, FLASH, call_reply)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat("gemini/gemini-2.5-flash", messages, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    assert call.id.startswith("gmcall_"), "2.5 calls have no id: modelbus makes one"
    assert Signatures.decode(first.choices[0].message.reasoning_signature).calls == {call.id: "SIG-A"}

    reply(upstream, FLASH, TEXT_REPLY)
    messages += [
        first.choices[0].message.to_assistant_message(),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    client.chat("gemini/gemini-2.5-flash", messages, tools=[WEATHER])
    contents = sent(upstream)["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "SIG-A"}
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "sunny, 21C"}}}],
    }


def test_gemini3_parallel_calls_keep_ids_and_signatures(client: Client, upstream: FakeUpstream) -> None:
    events = [
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {
                                "functionCall": {
                                    "name": "get_weather",
                                    "args": {"city": "Paris"},
                                    "id": "c1",
                                },
                                "thoughtSignature": "S1",
                            },
                            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}, "id": "c2"}},
                        ],
                    },
                    "index": 0,
                }
            ]
        },
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "", "thoughtSignature": "S2"}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 20,
                "candidatesTokenCount": 10,
                "thoughtsTokenCount": 30,
                "totalTokenCount": 60,
            },
        },
    ]
    stream_reply(upstream, "/models/gemini-3.8-flash:streamGenerateContent", events)
    messages: list[Any] = [{"role": "user", "content": "Paris and Rome?"}]
    with client.chat("gemini/gemini-3.8-flash", messages, tools=[WEATHER], stream=True) as stream:
        response = stream.until_done()
    message = response.choices[0].message
    assert [c.id for c in message.tool_calls] == ["c1", "c2"]
    assert response.choices[0].finish_reason == "tool_calls"
    signatures = Signatures.decode(message.reasoning_signature)
    assert signatures.calls == {"c1": "S1"}
    assert signatures.text == "S2"

    reply(upstream, G3, TEXT_REPLY)
    messages += [
        message.to_assistant_message(),
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "c2", "content": '{"temp": 25}'},
    ]
    client.chat("gemini/gemini-3.8-flash", messages, tools=[WEATHER])
    contents = sent(upstream)["contents"]
    assert contents[1]["parts"] == [  # as received: the signed empty text part comes last
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"},
            "thoughtSignature": "S1",
        },
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}, "id": "c2"}},
        {"text": "", "thoughtSignature": "S2"},
    ]
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"id": "c1", "name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"id": "c2", "name": "get_weather", "response": {"temp": 25}}},
        ],
    }


def test_gemini3_unsigned_history_gets_the_skip_value(client: Client, upstream: FakeUpstream) -> None:
    reply(upstream, G3, TEXT_REPLY)
    history = [
        {"role": "user", "content": "Paris?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_x",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_x", "content": "rain"},
    ]
    client.chat("gemini/gemini-3.8-flash", history, tools=[WEATHER])
    assert sent(upstream)["contents"][1]["parts"][0]["thoughtSignature"] == SKIP_SIGNATURE
    reply(upstream, FLASH, TEXT_REPLY)
    client.chat("gemini/gemini-2.5-flash", history, tools=[WEATHER])
    assert "thoughtSignature" not in sent(upstream)["contents"][1]["parts"][0], "2.x does not need it"


def test_another_providers_signature_is_ignored(client: Client, upstream: FakeUpstream) -> None:
    reply(upstream, G3, TEXT_REPLY)
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "hello",
            "reasoning_content": "thinking",
            "reasoning_signature": "EqQBCkYIBxgCKkB",
        },
        {"role": "user", "content": "more"},
    ]
    client.chat("gemini/gemini-3.8-flash", history)
    assert sent(upstream)["contents"][1] == {"role": "model", "parts": [{"text": "hello"}]}


def test_tool_result_for_an_unknown_call(client: Client, upstream: FakeUpstream) -> None:
    history = [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "nope", "content": "x"},
    ]
    with pytest.raises(BadRequestError, match="needs the function's name"):
        client.chat("gemini/gemini-2.5-flash", history)
    assert not upstream.requests
    reply(upstream, FLASH, TEXT_REPLY)
    history[1]["name"] = "get_weather"
    client.chat("gemini/gemini-2.5-flash", history)
    part = sent(upstream)["contents"][1]["parts"][0]
    assert part == {"functionResponse": {"id": "nope", "name": "get_weather", "response": {"result": "x"}}}


# ------------------------------------------------------------------------------ responses


@pytest.mark.parametrize(
    ("native", "parts", "expected"),
    [
        ("MAX_TOKENS", [{"text": "cut"}], "length"),
        ("RECITATION", [], "content_filter"),
        ("PROHIBITED_CONTENT", [], "content_filter"),
        ("IMAGE_SAFETY_NEW_KIND", [], "content_filter"),
        ("MALFORMED_FUNCTION_CALL", [], "error"),
        ("STOP", [{"text": "a"}, {"functionCall": {"name": "get_weather", "args": {}}}], "tool_calls"),
    ],
)
def test_finish_reasons(
    client: Client, upstream: FakeUpstream, native: str, parts: list[Any], expected: str
) -> None:
    body = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": native, "index": 0}]
    }
    reply(upstream, FLASH, body)
    response = client.chat("gemini/gemini-2.5-flash", "hi")
    assert response.choices[0].finish_reason == expected
    assert response.choices[0].native_finish_reason == native


def test_several_candidates(client: Client, upstream: FakeUpstream) -> None:
    body = {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "one"}]}, "finishReason": "STOP", "index": 0},
            {"content": {"role": "model", "parts": [{"text": "two"}]}, "finishReason": "STOP", "index": 1},
        ],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6},
    }
    reply(upstream, FLASH, body)
    response = client.chat("gemini/gemini-2.5-flash", "hi", n=2)
    assert [c.message.content for c in response.choices] == ["one", "two"]


def test_thought_parts_are_reasoning_not_answer(client: Client, upstream: FakeUpstream) -> None:
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "**Plan**", "thought": True},
                        {"text": "Answer.", "thoughtSignature": "T1"},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 10,
            "candidatesTokenCount": 2,
            "thoughtsTokenCount": 40,
            "totalTokenCount": 52,
        },
    }
    reply(upstream, FLASH, body)
    response = client.chat("gemini/gemini-2.5-flash", "hi")
    message = response.choices[0].message
    assert (message.content, message.reasoning_content) == ("Answer.", "**Plan**")
    assert response.usage.completion_tokens == 42
    assert response.usage.reasoning_tokens == 40


def test_cached_tokens_are_priced_as_cache_reads(client: Client, upstream: FakeUpstream) -> None:
    body = {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": 1000,
            "cachedContentTokenCount": 800,
            "candidatesTokenCount": 100,
            "thoughtsTokenCount": 100,
            "totalTokenCount": 1200,
        },
    }
    reply(upstream, G3, body)
    response = client.chat("gemini/gemini-3.8-flash", "hi")
    usage = response.usage
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (1000, 800, 200)
    # 200 uncached x 0.75 + 800 cached x 0.075 + 200 output x 3.75, per million
    assert response.cost == Decimal("0.00015") + Decimal("0.00006") + Decimal("0.00075")


def test_stream_waits_for_every_candidate(client: Client, upstream: FakeUpstream) -> None:
    events = [
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "A"}]}, "finishReason": "STOP", "index": 0}
            ]
        },
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "B"}]}, "index": 1}]},
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "C"}]}, "finishReason": "STOP", "index": 1}
            ],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 3, "totalTokenCount": 6},
        },
    ]
    stream_reply(upstream, FLASH_STREAM, events)
    with client.chat("gemini/gemini-2.5-flash", "hi", n=2, stream=True) as stream:
        response = stream.until_done()
    assert [c.message.content for c in response.choices] == ["A", "BC"]
    assert response.usage.total_tokens == 6


def test_stream_usage_only_event_is_kept(client: Client, upstream: FakeUpstream) -> None:
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "index": 0}]},
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1, "totalTokenCount": 3},
        },
    ]
    stream_reply(upstream, FLASH_STREAM, events)
    with client.chat("gemini/gemini-2.5-flash", "hi", stream=True) as stream:
        chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 3
    assert sum(1 for c in chunks if c.usage is not None) == 1


def test_stream_trailing_usage_after_the_last_finish_reason_is_read(
    client: Client, upstream: FakeUpstream
) -> None:
    """Gemini ends its stream at connection close: an event after the final finishReason (here a
    usage-only record) still counts."""
    events = [
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1, "totalTokenCount": 3},
        },
        {"usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 5, "totalTokenCount": 7}},
    ]
    stream_reply(upstream, FLASH_STREAM, events)
    with client.chat("gemini/gemini-2.5-flash", "hi", stream=True) as stream:
        response = stream.until_done()
    assert response.text == "hi"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None
    assert (response.usage.completion_tokens, response.usage.total_tokens) == (5, 7)
    assert not response.usage.estimated


def test_stream_that_repeats_finish_reason_on_every_event_is_read_whole(
    client: Client, upstream: FakeUpstream
) -> None:
    """The retired gemini-pro (1.0) sent finishReason STOP on every chunk: nothing after the first is lost."""
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": t}]}, "finishReason": "STOP"}]}
        for t in ("one ", "two ", "three")
    ]
    stream_reply(upstream, FLASH_STREAM, events)
    with client.chat("gemini/gemini-2.5-flash", "hi", stream=True) as stream:
        response = stream.until_done()
    assert response.text == "one two three"
    assert response.choices[0].finish_reason == "stop"


def test_long_prompts_are_priced_at_the_pro_long_context_tier(client: Client, upstream: FakeUpstream) -> None:
    def usage(prompt: int) -> dict[str, Any]:
        return {"promptTokenCount": prompt, "candidatesTokenCount": 1000, "totalTokenCount": prompt + 1000}

    costs = []
    for prompt in (200_000, 200_001):
        reply(
            upstream, "/models/gemini-2.5-pro:generateContent", {**TEXT_REPLY, "usageMetadata": usage(prompt)}
        )
        response = client.chat("gemini/gemini-2.5-pro", "hi")
        assert response.cost_breakdown is not None
        costs.append(response.cost_breakdown)
    million = Decimal(1_000_000)
    assert costs[0].input == Decimal(200_000) * Decimal("1.25") / million  # up to 200K: the base price
    assert costs[0].output == Decimal(1000) * 10 / million
    assert costs[1].input == Decimal(200_001) * Decimal("2.50") / million  # above: the whole request
    assert costs[1].output == Decimal(1000) * 15 / million


def test_stream_blocked_prompt(client: Client, upstream: FakeUpstream) -> None:
    stream_reply(
        upstream,
        FLASH_STREAM,
        [{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 9}}],
    )
    with (
        pytest.raises(ContentFilteredError) as info,
        client.chat("gemini/gemini-2.5-flash", "hi", stream=True) as stream,
    ):
        list(stream)
    assert info.value.provider_code == "PROHIBITED_CONTENT"


def test_stream_error_event(client: Client, upstream: FakeUpstream) -> None:
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "partial"}]}, "index": 0}]},
        {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
    ]
    stream_reply(upstream, FLASH_STREAM, events)
    with pytest.raises(OverloadedError), client.chat("gemini/gemini-2.5-flash", "hi", stream=True) as stream:
        list(stream)


def test_no_candidates_without_block_reason_is_malformed(client: Client, upstream: FakeUpstream) -> None:
    reply(upstream, FLASH, {"usageMetadata": {"promptTokenCount": 3}})
    with pytest.raises(ModelbusError, match="no candidates"):
        client.chat("gemini/gemini-2.5-flash", "hi")


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("status", "rpc", "message", "expected"),
    [
        (400, "INVALID_ARGUMENT", "Request contains an invalid argument.", BadRequestError),
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            ContextLengthExceededError,
        ),
        (
            400,
            "FAILED_PRECONDITION",
            "User location is not supported for the API use.",
            PermissionDeniedError,
        ),
        (403, "PERMISSION_DENIED", "Your API key was reported as leaked.", PermissionDeniedError),
        (404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta", NotFoundError),
        (402, "RESOURCE_EXHAUSTED", "Your prepaid credits are exhausted.", QuotaExceededError),
        (500, "INTERNAL", "An internal error has occurred.", UpstreamServerError),
        (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.", RequestTimeoutError),
        (401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", AuthenticationError),
    ],
)
def test_rpc_status_mapping(
    client: Client, upstream: FakeUpstream, status: int, rpc: str, message: str, expected: type[ModelbusError]
) -> None:
    reply(upstream, FLASH, {"error": {"code": status, "message": message, "status": rpc}}, status=status)
    with pytest.raises(ModelbusError) as info:
        client.chat("gemini/gemini-2.5-flash", "hi")
    error = info.value
    assert type(error) is expected, repr(error)
    assert error.status_code == status
    assert error.provider_code == rpc
    assert message in str(error)


def test_error_body_as_json_array(client: Client, upstream: FakeUpstream) -> None:
    """Without alt=sse the API answers streams with a JSON array, errors included."""
    upstream.add(
        "POST",
        FLASH,
        ResponseSpec(
            status=429,
            body=json.dumps(
                [
                    {
                        "error": {
                            "code": 429,
                            "message": "slow down",
                            "status": "RESOURCE_EXHAUSTED",
                            "details": [
                                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}
                            ],
                        }
                    }
                ]
            ),
        ),
    )
    with pytest.raises(ModelbusError) as info:
        client.chat("gemini/gemini-2.5-flash", "hi")
    assert info.value.retry_after == 1.5
    assert info.value.retryable


# ------------------------------------------------------------------------------ embeddings


def test_embedding_without_input_type_or_dimensions(client: Client, upstream: FakeUpstream) -> None:
    upstream.add(
        "POST",
        "/models/gemini-embedding-001:embedContent",
        ResponseSpec(json={"embedding": {"values": [0.1, 0.2]}}),
    )
    result = client.embed("gemini/gemini-embedding-001", "abc")
    assert result.vectors == [[0.1, 0.2]]
    assert result.usage.estimated, "Gemini reports no embedding token count: it is estimated"
    assert result.usage.prompt_tokens > 0
    assert sent(upstream) == {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "abc"}]}}


def test_embedding_count_mismatch_is_an_error(client: Client, upstream: FakeUpstream) -> None:
    upstream.add(
        "POST",
        "/models/gemini-embedding-001:batchEmbedContents",
        ResponseSpec(json={"embeddings": [{"values": [0.1]}]}),
    )
    with pytest.raises(ModelbusError, match="returned 1"):
        client.embed("gemini/gemini-embedding-001", ["a", "b"])


def test_chat_model_table_and_capabilities() -> None:
    models = {m.id: m for m in plugin.provider_info.models}
    assert models["gemini-embedding-001"].kind == "embedding"
    assert models["gemini-embedding-001"].embedding_dimensions == 3072
    for model in models.values():
        if model.kind == "chat":
            assert {"vision", "tools", "json_schema", "reasoning"} <= model.capabilities
