"""``modelbus.testing.responders``: the deterministic OpenAI-compatible responder, raw and via a client."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from acme_provider import plugin as acme_plugin

from modelbus import Client
from modelbus.testing import FakeUpstream
from modelbus.testing.responders import Evidence, embed_text, smart_openai_responder, synthesize

from .conftest import KEY

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather at a location.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
MAGIC = {
    "type": "function",
    "function": {
        "name": "magic_function",
        "description": "Applies a magic function to an input.",
        "parameters": {
            "type": "object",
            "properties": {"input": {"type": "integer", "exclusiveMinimum": -1000, "exclusiveMaximum": 1000}},
            "required": ["input"],
        },
    },
}
NO_ARGS = {
    "type": "function",
    "function": {"name": "magic_function_no_args", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture
def smart() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        server.respond_with(smart_openai_responder())
        yield server


@pytest.fixture
def mb(smart: FakeUpstream) -> Iterator[Client]:
    with Client(
        plugins=[acme_plugin],
        load_entrypoints=False,
        config={},
        max_retries=0,
        providers={"acme": {"api_key": KEY, "base_url": smart.url}},
    ) as c:
        yield c


def post(upstream: FakeUpstream, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(upstream.url + path, json=body, timeout=10)


def chat(upstream: FakeUpstream, **body: Any) -> dict[str, Any]:
    body.setdefault("model", "fake-model")
    response = post(upstream, "/v1/chat/completions", body)
    assert response.status_code == 200, response.text
    return response.json()


def sse(upstream: FakeUpstream, **body: Any) -> list[Any]:
    body.setdefault("model", "fake-model")
    response = post(upstream, "/v1/chat/completions", {**body, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# ------------------------------------------------------------------------------ plain chat


def test_plain_chat_echoes_the_model_and_the_user_text_with_usage(smart: FakeUpstream) -> None:
    body = chat(smart, model="my-model-2", messages=user("Hello there"))
    assert body["model"] == "my-model-2"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "You said: Hello there"}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_same_request_same_answer(smart: FakeUpstream) -> None:
    first = chat(
        smart, messages=user("Tell me about 'Paris' in 3 words"), tools=[WEATHER], tool_choice="required"
    )
    second = chat(
        smart, messages=user("Tell me about 'Paris' in 3 words"), tools=[WEATHER], tool_choice="required"
    )
    assert (
        first["choices"][0]["message"]["tool_calls"][0]["function"]
        == (second["choices"][0]["message"]["tool_calls"][0]["function"])
    )


def test_custom_reply_n_choices_stop_and_max_tokens(smart: FakeUpstream) -> None:
    smart.reset()
    smart.respond_with(smart_openai_responder(reply="one two three four five six seven eight"))
    body = chat(smart, messages=user("hi"), n=2)
    assert [c["message"]["content"] for c in body["choices"]] == [
        "one two three four five six seven eight"
    ] * 2
    assert chat(smart, messages=user("hi"), stop=[" four"])["choices"][0]["message"]["content"] == (
        "one two three"
    )
    cut = chat(smart, messages=user("hi"), max_tokens=3)["choices"][0]
    assert cut["finish_reason"] == "length"
    assert cut["message"]["content"].startswith("one")
    assert len(cut["message"]["content"]) < len("one two three four five six seven eight")


def test_stream_adds_up_to_the_same_answer_and_ends_with_one_usage_chunk(smart: FakeUpstream) -> None:
    plain = chat(smart, messages=user("Write me 2 haikus"))
    events = sse(smart, messages=user("Write me 2 haikus"), stream_options={"include_usage": True})
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    assert all(c["model"] == "fake-model" for c in chunks)
    with_usage = [c for c in chunks if c.get("usage")]
    assert len(with_usage) == 1
    assert with_usage[0] is chunks[-1]
    assert with_usage[0]["choices"] == []
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop"
    assert all(f is None for f in finishes[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(smart: FakeUpstream) -> None:
    events = sse(smart, messages=user("hi"))
    assert not any(isinstance(e, dict) and e.get("usage") for e in events)


# ------------------------------------------------------------------------------ tools


@pytest.mark.parametrize(
    ("text", "tools", "choice", "name", "arguments"),
    [
        (
            "What is the value of magic_function(3)? Use the tool.",
            [MAGIC],
            "required",
            "magic_function",
            {"input": 3},
        ),
        (
            "What is the value of magic_function(3)? Use the tool.",
            [MAGIC],
            None,
            "magic_function",
            {"input": 3},
        ),
        (
            "What is the weather in San Francisco, CA?",
            [MAGIC, WEATHER],
            None,
            "get_weather",
            {"location": "San Francisco, CA"},
        ),
        ("Hello!", [MAGIC, WEATHER], "required", "magic_function", {"input": 0}),
        (
            "Hello!",
            [MAGIC, WEATHER],
            {"type": "function", "function": {"name": "get_weather"}},
            "get_weather",
            {"location": "Hello!"},
        ),
        (
            "What is the value of magic_function_no_args()? Use the tool.",
            [NO_ARGS],
            "required",
            "magic_function_no_args",
            {},
        ),
    ],
)
def test_tool_calls_are_synthesized_from_schema_and_text(
    smart: FakeUpstream, text: str, tools: list[Any], choice: Any, name: str, arguments: dict[str, Any]
) -> None:
    body: dict[str, Any] = {"messages": user(text), "tools": tools}
    if choice is not None:
        body["tool_choice"] = choice
    choice_out = chat(smart, **body)["choices"][0]
    assert choice_out["finish_reason"] == "tool_calls"
    (call,) = choice_out["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"]["name"] == name
    assert json.loads(call["function"]["arguments"]) == arguments


def test_non_ascii_quoted_text_goes_into_string_arguments_unescaped(smart: FakeUpstream) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "unicode_customer",
            "parameters": {
                "type": "object",
                "properties": {"customer_name": {"type": "string"}, "description": {"type": "string"}},
                "required": ["customer_name", "description"],
            },
        },
    }
    for text, expected in [
        ("Create a customer named '你好啊集团' (Hello Group) - a Chinese technology company", "你好啊集团"),
        (
            "Create a customer named 'こんにちは株式会社' (Hello Corporation) - a Japanese company",
            "こんにちは株式会社",
        ),
        ("请创建客户「北京科技」", "北京科技"),
    ]:
        response = post(
            smart,
            "/chat/completions",
            {"model": "m", "messages": user(text), "tools": [tool], "tool_choice": "required"},
        )
        assert expected.encode() in response.content  # not \u-escaped on the wire
        call = response.json()["choices"][0]["message"]["tool_calls"][0]
        assert json.loads(call["function"]["arguments"])["customer_name"] == expected


def test_auto_tool_choice_answers_in_text_when_no_tool_fits(smart: FakeUpstream) -> None:
    message = chat(smart, messages=user("Hello!"), tools=[WEATHER])["choices"][0]["message"]
    assert "tool_calls" not in message
    assert message["content"] == "You said: Hello!"
    assert (
        "tool_calls"
        not in chat(smart, messages=user("Hi"), tools=[WEATHER], tool_choice="none")["choices"][0]["message"]
    )


def test_tool_result_turn_is_answered_in_text(smart: FakeUpstream) -> None:
    messages = [
        *user("What is 1 + 2"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "abc",
                    "type": "function",
                    "function": {"name": "my_adder", "arguments": '{"a": 1, "b": 2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "abc", "content": '{"result": 3}'},
    ]
    choice = chat(smart, messages=messages, tools=[MAGIC])["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == 'The my_adder returned {"result": 3}.'


def test_streamed_tool_call_arguments_arrive_in_fragments(smart: FakeUpstream) -> None:
    events = sse(smart, messages=user("What is the weather in San Francisco, CA?"), tools=[WEATHER])
    deltas = [d for e in events[:-1] for d in e["choices"][0]["delta"].get("tool_calls") or []]
    assert deltas[0]["id"].startswith("call_")
    assert deltas[0]["function"]["name"] == "get_weather"
    assert len(deltas) > 2
    arguments = "".join(d["function"].get("arguments") or "" for d in deltas)
    assert json.loads(arguments) == {"location": "San Francisco, CA"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_unknown_tool_choice_is_a_400(smart: FakeUpstream) -> None:
    response = post(
        smart,
        "/chat/completions",
        {
            "model": "m",
            "messages": user("x"),
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "nope"}},
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tool_choice"


# ------------------------------------------------------------------------------ JSON answers


def test_json_schema_answers_validate_against_their_schema(smart: FakeUpstream) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "year": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "mood": {"type": "string", "enum": ["happy", "sad"]},
            "rating": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        },
        "required": ["name", "year", "tags", "mood", "rating"],
        "additionalProperties": False,
    }
    body = chat(
        smart,
        messages=user('An album called "Blue" from 1971, a sad one'),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "album", "schema": schema, "strict": True},
        },
    )
    answer = json.loads(body["choices"][0]["message"]["content"])
    jsonschema.validate(answer, schema)
    assert answer == {"name": "Blue", "year": 1971, "tags": [], "mood": "sad", "rating": None}


def test_json_object_keys_are_the_quoted_identifiers_of_the_prompt(smart: FakeUpstream) -> None:
    text = "Tell me a joke about cats. Return the result as a JSON with 'setup' and 'punchline' keys."
    body = chat(smart, messages=user(text), response_format={"type": "json_object"})
    assert set(json.loads(body["choices"][0]["message"]["content"])) == {"setup", "punchline"}
    events = sse(smart, messages=user(text), response_format={"type": "json_object"})
    streamed = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])
    assert set(json.loads(streamed)) == {"setup", "punchline"}


# ------------------------------------------------------------------------------ usage details


def test_a_repeated_long_prompt_reports_cached_tokens(smart: FakeUpstream) -> None:
    long_text = " ".join(f"word{i}" for i in range(1200))
    first = chat(smart, messages=[{"role": "system", "content": long_text}, *user("first question")])
    second = chat(smart, messages=[{"role": "system", "content": long_text}, *user("second question")])
    short = chat(smart, messages=user("short"))
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert 1024 <= cached <= second["usage"]["prompt_tokens"]
    assert short["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


@pytest.mark.parametrize(
    ("extra", "thinks"),
    [
        ({"reasoning_effort": "high"}, True),
        ({"reasoning_effort": "none"}, False),
        ({"model": "deepseek-reasoner"}, True),
        ({"model": "deepseek-reasoner", "thinking": {"type": "disabled"}}, False),
        ({"thinking": {"type": "enabled"}}, True),
        ({}, False),
    ],
)
def test_reasoning_content_and_tokens(smart: FakeUpstream, extra: dict[str, Any], thinks: bool) -> None:
    body = chat(smart, messages=user("Why is the sky blue?"), **extra)
    reasoning = body["usage"]["completion_tokens_details"]["reasoning_tokens"]
    assert (reasoning > 0) is thinks
    assert ("reasoning_content" in body["choices"][0]["message"]) is thinks
    assert body["usage"]["completion_tokens"] > reasoning


# ------------------------------------------------------------------------------ embeddings and models


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_deterministic_unit_vectors_that_rank_by_shared_words(smart: FakeUpstream) -> None:
    docs = [
        "Cats love to eat fish and sleep in the sun.",
        "The stock market fell sharply on Monday.",
        "Paris is the capital of France.",
    ]
    response = post(smart, "/v1/embeddings", {"model": "emb", "input": docs})
    body = response.json()
    vectors = [item["embedding"] for item in body["data"]]
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert all(len(v) == 256 for v in vectors)
    assert all(math.isclose(cosine(v, v), 1.0, abs_tol=1e-4) for v in vectors)
    assert body["usage"]["prompt_tokens"] > 0
    query = post(smart, "/v1/embeddings", {"model": "emb", "input": "What do cats eat?"}).json()["data"][0][
        "embedding"
    ]
    scores = [cosine(query, v) for v in vectors]
    assert scores.index(max(scores)) == 0
    capital = embed_text("What is the capital of France?")
    assert max(range(3), key=lambda i: cosine(capital, vectors[i])) == 2
    assert embed_text("same text") == embed_text("same text")
    small = post(smart, "/v1/embeddings", {"model": "emb", "input": ["a"], "dimensions": 8}).json()
    assert len(small["data"][0]["embedding"]) == 8


def test_bad_requests_and_models_listing(smart: FakeUpstream) -> None:
    assert post(smart, "/v1/embeddings", {"model": "e", "input": [1, 2]}).status_code == 400
    assert post(smart, "/v1/chat/completions", {"model": "m", "messages": []}).status_code == 400
    assert post(smart, "/v1/nothing", {}).status_code == 404
    listing = httpx.get(smart.url + "/v1/models", timeout=10).json()
    assert listing["data"][0]["id"] == "fake-model"


# ------------------------------------------------------------------------------ through a client


def test_through_the_client_text_stream_tools_and_embeddings(mb: Client) -> None:
    response = mb.chat("acme/acme-chat", "Hello")
    assert response.text == "You said: Hello"
    assert response.model == "acme-chat"
    assert response.usage is not None
    assert response.usage.prompt_tokens > 0
    streamed = mb.chat("acme/acme-chat", "Hello", stream=True).until_done()
    assert streamed.text == response.text
    assert streamed.usage is not None
    assert not streamed.usage.estimated
    called = mb.chat(
        "acme/acme-chat", "What is the weather in San Francisco, CA?", tools=[WEATHER], stream=True
    ).until_done()
    (call,) = called.choices[0].message.tool_calls or []
    assert call.function.parsed_arguments() == {"location": "San Francisco, CA"}
    assert called.choices[0].finish_reason == "tool_calls"
    vectors = mb.embed("acme/acme-embed", ["one", "two"]).vectors
    assert len(vectors) == 2


# ------------------------------------------------------------------------------ evidence and synthesis


def test_evidence_numbers_quotes_and_names() -> None:
    found = Evidence("Move -5 steps, then 3-4 and x=-2; pi is 3.14 (not gpt-4o) for 'Ann Lee' in New York.")
    assert found.numbers == [-5, 3, 4, -2, 3.14]
    assert found.quoted == ["Ann Lee"]
    assert found.proper == ["New York"]
    assert Evidence("What is the weather in San Francisco, CA?").proper == ["San Francisco, CA"]
    assert Evidence("Using the tool, generate a Pirate greeting.").proper == ["Pirate"]
    assert Evidence("She said “hi” and \u2018bye\u2019 and 『ok』 and 《book》").quoted == [
        "hi",
        "bye",
        "ok",
        "book",
    ]
    assert Evidence("what's up, it's 'quoted' here").quoted == ["quoted"]


@pytest.mark.parametrize(
    ("schema", "text", "expected"),
    [
        ({"type": "object", "properties": {}}, "anything", {}),
        ({"type": "object"}, "anything", {}),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
            "What is 3 + 4",
            {"a": 3, "b": 4},
        ),
        (
            {"type": "object", "properties": {"x": {"type": "number", "maximum": 10}}, "required": ["x"]},
            "set it to 12.5",
            {"x": 10},
        ),
        (
            {"type": "object", "properties": {"flag": {"type": "boolean"}}, "required": ["flag"]},
            "yes please",
            {"flag": True},
        ),
        (
            {
                "type": "object",
                "properties": {"q": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["q"],
            },
            "search cheap flights",
            {"q": "search cheap flights"},
        ),
        (
            {
                "type": "object",
                "properties": {"ids": {"type": "array", "items": {"type": "integer"}}},
                "required": ["ids"],
            },
            "items 1, 2 and 3",
            {"ids": [1, 2, 3]},
        ),
        (
            {
                "type": "object",
                "properties": {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                "required": ["unit"],
            },
            "in Fahrenheit please",
            {"unit": "fahrenheit"},
        ),
    ],
)
def test_synthesize(schema: dict[str, Any], text: str, expected: Any) -> None:
    value = synthesize(schema, text)
    assert value == expected
    jsonschema.validate(value, schema)


def test_synthesize_follows_refs_and_nested_objects() -> None:
    schema = {
        "$defs": {
            "Song": {
                "type": "object",
                "properties": {"title": {"type": "string"}, "seconds": {"type": "integer"}},
                "required": ["title", "seconds"],
            }
        },
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "songs": {"type": "array", "items": {"$ref": "#/$defs/Song"}},
        },
        "required": ["name", "songs"],
    }
    value = synthesize(schema, 'An album called "Blue" with a song "Sky" of 180 seconds')
    assert value == {"name": "Blue", "songs": [{"title": "Sky", "seconds": 180}]}
    jsonschema.validate(value, schema)
