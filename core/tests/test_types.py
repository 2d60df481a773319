"""Canonical types: strict validation with clear errors, OpenAI-shaped output, stream accumulation."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelbus.errors import BadRequestError
from modelbus.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    EmbeddingRequest,
    FunctionCall,
    FunctionCallDelta,
    ResponseMessage,
    ToolCall,
    ToolCallDelta,
    Usage,
    accumulate,
)
from modelbus.validation import parse_model

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def bad(data: dict) -> BadRequestError:
    with pytest.raises(BadRequestError) as info:
        parse_model(ChatRequest, data)
    return info.value


def test_all_roles_and_parts_validate() -> None:
    request = ChatRequest.model_validate(
        {
            "model": "acme/acme-chat",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "really"}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object"}},
            },
            "stop": "END",
        }
    )
    assert request.uses_images()
    assert request.stop == ["END"]
    assert request.response_format is not None
    assert request.to_wire()["response_format"]["json_schema"]["schema"] == {"type": "object"}


def test_unknown_role_is_a_clear_error_without_the_prompt() -> None:
    error = bad({"model": "m/x", "messages": [{"role": "robot", "content": "SECRET PROMPT TEXT"}]})
    assert "messages.0" in str(error)
    assert "robot" in str(error)
    assert "SECRET PROMPT TEXT" not in str(error)


def test_unknown_field_is_an_error() -> None:
    error = bad({"model": "m/x", "messages": [{"role": "user", "content": "hi", "colour": "red"}]})
    assert "colour" in str(error)


def test_invalid_tool_schema_is_rejected() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": 3}}}
    error = bad({"model": "m/x", "messages": [{"role": "user", "content": "hi"}], "tools": [tool]})
    assert "tool 'f'" in str(error)
    assert "JSON Schema" in str(error)


def test_tool_name_and_choice_consistency() -> None:
    bad_name = {"type": "function", "function": {"name": "has spaces"}}
    assert "name" in str(
        bad({"model": "m/x", "messages": [{"role": "user", "content": "x"}], "tools": [bad_name]})
    )
    error = bad({"model": "m/x", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})
    assert "no tools" in str(error)
    error = bad(
        {
            "model": "m/x",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "nope"}},
        }
    )
    assert "'nope'" in str(error)


def test_sampling_ranges_and_empty_messages() -> None:
    assert "temperature" in str(
        bad({"model": "m/x", "messages": [{"role": "user", "content": "x"}], "temperature": 3})
    )
    assert "messages" in str(bad({"model": "m/x", "messages": []}))
    assert "content" in str(bad({"model": "m/x", "messages": [{"role": "assistant"}]}))


def test_max_completion_tokens_alias() -> None:
    request = ChatRequest.model_validate(
        {"model": "m/x", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 7}
    )
    assert request.max_tokens == 7
    assert "disagree" in str(
        bad(
            {
                "model": "m/x",
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 1,
                "max_completion_tokens": 2,
            }
        )
    )


def test_from_openai_moves_unknown_keys_to_extra() -> None:
    request = ChatRequest.from_openai(
        {"model": "m/x", "messages": [{"role": "user", "content": "x"}], "enable_thinking": True, "top_k": 4}
    )
    assert request.extra == {"enable_thinking": True, "top_k": 4}
    with pytest.raises(ValueError, match="extra repeats typed fields"):
        ChatRequest.model_validate(
            {"model": "m/x", "messages": [{"role": "user", "content": "x"}], "extra": {"temperature": 1}}
        )


def test_response_to_openai_drops_modelbus_fields() -> None:
    response = ChatResponse(
        id="x",
        model="m",
        choices=[
            Choice(
                message=ResponseMessage(content="hi"), finish_reason="stop", native_finish_reason="end_turn"
            )
        ],
        usage=Usage.of(3, 2, cached=1, reasoning=1, estimated=True),
        provider="acme",
    )
    body = response.to_openai()
    assert "provider" not in body
    assert "cost" not in body
    assert "native_finish_reason" not in body["choices"][0]
    assert "estimated" not in body["usage"]
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 1
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 1
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    json.dumps(body)


def test_embedding_request_validation() -> None:
    assert EmbeddingRequest(model="m/x", input="a").input == ["a"]
    with pytest.raises(ValueError, match="token arrays"):
        EmbeddingRequest(model="m/x", input=[[1, 2]])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"input\[1\] is empty"):
        EmbeddingRequest(model="m/x", input=["a", ""])


# -- a stream accumulates into what a non-stream call returns ---------------------------------------


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=150, deadline=None)
@given(
    content=st.text(max_size=60),
    reasoning=st.text(max_size=30),
    args=st.dictionaries(st.text(min_size=1, max_size=5), st.integers() | st.text(max_size=8), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_stream_accumulates_to_the_non_stream_response(
    content: str, reasoning: str, args: dict, cuts: list[int]
) -> None:
    arguments = json.dumps(args, ensure_ascii=False)
    chunks = [ChatChunk(id="r", model="m", choices=[ChunkChoice(delta=ChoiceDelta(role="assistant"))])]
    for piece in _split(reasoning, cuts):
        chunks.append(
            ChatChunk(id="r", model="m", choices=[ChunkChoice(delta=ChoiceDelta(reasoning_content=piece))])
        )
    for piece in _split(content, cuts):
        chunks.append(ChatChunk(id="r", model="m", choices=[ChunkChoice(delta=ChoiceDelta(content=piece))]))
    first = True
    for piece in _split(arguments, cuts):
        delta = ToolCallDelta(
            index=0,
            id="call_1" if first else None,
            function=FunctionCallDelta(name="f" if first else None, arguments=piece),
        )
        first = False
        chunks.append(
            ChatChunk(id="r", model="m", choices=[ChunkChoice(delta=ChoiceDelta(tool_calls=[delta]))])
        )
    chunks.append(ChatChunk(id="r", model="m", choices=[ChunkChoice(finish_reason="tool_calls")]))
    chunks.append(ChatChunk(id="r", model="m", usage=Usage.of(5, 6)))

    expected = ChatResponse(
        id="r",
        model="m",
        created=chunks[0].created,
        choices=[
            Choice(
                message=ResponseMessage(
                    content=content or None,
                    reasoning_content=reasoning or None,
                    tool_calls=[ToolCall(id="call_1", function=FunctionCall(name="f", arguments=arguments))],
                ),
                finish_reason="tool_calls",
            )
        ],
        usage=Usage.of(5, 6),
    )
    got = accumulate(chunks)
    if not content:
        got.choices[0].message.content = None
    assert got == expected
    assert json.loads(got.choices[0].message.tool_calls[0].function.arguments) == args  # type: ignore[index]


def test_parallel_tool_calls_interleave_by_index() -> None:
    def call(index: int, **kw: object) -> ChatChunk:
        return ChatChunk(
            id="r",
            model="m",
            choices=[
                ChunkChoice(
                    delta=ChoiceDelta(
                        tool_calls=[ToolCallDelta(index=index, function=FunctionCallDelta(**kw))]
                    )
                )
            ],
        )  # type: ignore[arg-type]

    response = accumulate(
        [call(1, name="b", arguments='{"y"'), call(0, name="a", arguments="{}"), call(1, arguments=":2}")]
    )
    calls = response.choices[0].message.tool_calls
    assert calls is not None
    assert [(c.function.name, c.function.arguments) for c in calls] == [("a", "{}"), ("b", '{"y":2}')]


@settings(max_examples=100, deadline=None)
@given(
    content=st.text(max_size=40),
    reasoning=st.text(max_size=20),
    n_calls=st.integers(min_value=0, max_value=3),
)
def test_response_chunks_accumulate_back_to_the_response(content: str, reasoning: str, n_calls: int) -> None:
    from modelbus.types import response_chunks

    calls = [
        ToolCall(id=f"c{i}", function=FunctionCall(name=f"f{i}", arguments=json.dumps({"i": i})))
        for i in range(n_calls)
    ]
    response = ChatResponse(
        id="r",
        model="m",
        choices=[
            Choice(
                message=ResponseMessage(
                    content=content or None if calls else content,
                    reasoning_content=reasoning or None,
                    tool_calls=calls or None,
                ),
                finish_reason="tool_calls" if calls else "stop",
            )
        ],
        usage=Usage.of(3, 4),
    )
    assert accumulate(response_chunks(response)) == response
