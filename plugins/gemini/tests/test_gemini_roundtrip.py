"""Property tests: canonical -> Gemini -> canonical loses no text, tool call or tool result.

``messages_to_gemini`` is what every request goes through; ``gemini_to_messages`` is its inverse. The
comparison is modulo the normalizations documented on ``gemini_to_messages``: system/developer
messages move to the front as system text, a single text part reads back as a string, empty texts
carry nothing, ``reasoning_content`` is replayed only with a signed thought part, JSON tool results and
arguments compare as JSON values, and ids modelbus made up (``gmcall_``) compare by position.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelbus_gemini.convert import (
    SKIP_SIGNATURE,
    SYNTHETIC_ID_PREFIX,
    Signatures,
    gemini_to_messages,
    messages_to_gemini,
)

from modelbus.types.chat import (
    AssistantMessage,
    ChatRequest,
    DeveloperMessage,
    ImagePart,
    Message,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    content_text,
)

texts = st.text(max_size=24) | st.text(alphabet=' \n\t{}[]":,ab1', max_size=16)
names = st.sampled_from(["get_weather", "search"]) | st.from_regex(
    r"[a-zA-Z_][a-zA-Z0-9_-]{0,15}", fullmatch=True
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=4)
arguments = (
    json_objects.map(json.dumps)
    | json_objects.map(lambda o: json.dumps(o, indent=1, ensure_ascii=False))
    | st.just("")
    | texts  # broken or non-object arguments (a history cut at max_tokens) must survive too
)
tool_results = texts | json_objects.map(json.dumps) | st.just('{"result": "looks wrapped"}')
images = st.one_of(
    st.tuples(
        st.sampled_from(["image/png", "image/jpeg", "image/webp"]), st.binary(min_size=1, max_size=12)
    ).map(lambda pair: f"data:{pair[0]};base64,{base64.b64encode(pair[1]).decode()}"),
    st.sampled_from(
        [
            "https://example.com/a.png",
            "https://example.com/photo",
            "gs://bucket/x.jpg",
            "https://x.test/i.jpeg?s=1",
        ]
    ),
)


@st.composite
def user_messages(draw: st.DrawFn) -> UserMessage:
    if draw(st.booleans()):
        return UserMessage(content=draw(texts))
    parts = draw(
        st.lists(
            texts.map(lambda t: TextPart(text=t))
            | images.map(lambda url: ImagePart.model_validate({"image_url": {"url": url}})),
            max_size=4,
        )
    )
    return UserMessage(content=parts)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    messages: list[Message] = []
    if draw(st.booleans()):
        messages.append(SystemMessage(content=draw(texts)))
    serial = 0
    for _ in range(draw(st.integers(1, 4))):
        messages.append(draw(user_messages()))
        if draw(st.integers(0, 5)) == 0:
            messages.append(DeveloperMessage(content=[TextPart(text=draw(texts))]))
        kind = draw(st.sampled_from(["text", "tools", "skip"]))
        if kind == "skip":
            continue
        content = draw(st.none() | texts | st.lists(texts.map(lambda t: TextPart(text=t)), max_size=3))
        signatures = Signatures(
            text=draw(st.none() | st.text(min_size=1, max_size=8)),
            thought=draw(st.none() | st.text(min_size=1, max_size=8)),
        )
        reasoning = draw(st.none() | texts)
        if kind == "text":
            messages.append(
                AssistantMessage(
                    content="" if content is None else content,
                    reasoning_content=reasoning,
                    reasoning_signature=signatures.encode(),
                )
            )
            continue
        synthetic = draw(st.booleans())
        calls = []
        for _ in range(draw(st.integers(1, 3))):
            serial += 1
            call_id = f"{SYNTHETIC_ID_PREFIX}{serial}x" if synthetic else f"call_{serial}_{draw(names)}"
            calls.append({"id": call_id, "function": {"name": draw(names), "arguments": draw(arguments)}})
            if draw(st.booleans()):
                signatures.calls[call_id] = draw(st.text(min_size=1, max_size=8))
        messages.append(
            AssistantMessage.model_validate(
                {
                    "content": content,
                    "tool_calls": calls,
                    "reasoning_content": reasoning,
                    "reasoning_signature": signatures.encode(),
                }
            )
        )
        # results for real ids may come in any order; id-less (synthetic) ones are matched in order
        order = list(range(len(calls))) if synthetic else draw(st.permutations(list(range(len(calls)))))
        for position in order:
            result = draw(tool_results)
            content_value: Any = result if draw(st.booleans()) else [TextPart(text=result)]
            messages.append(ToolMessage(tool_call_id=calls[position]["id"], content=content_value))
    return messages


# ------------------------------------------------------------------------------ the comparison


def _reject(name: str) -> Any:
    raise ValueError(name)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text, parse_constant=_reject)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _arguments(text: str) -> tuple[str, Any]:
    if not text.strip():
        return ("json", {})
    value = _json_object(text)
    return ("json", value) if value is not None else ("raw", text)


def _result(text: str) -> tuple[str, Any]:
    value = _json_object(text)
    if value is not None and not (set(value) == {"result"} and isinstance(value["result"], str)):
        return ("json", value)
    return ("text", text)


def normalize(messages: list[Message]) -> dict[str, Any]:
    """What must survive the round trip."""
    ids: dict[str, str] = {}

    def rename(call_id: str) -> str:
        if not call_id.startswith(SYNTHETIC_ID_PREFIX):
            return call_id
        return ids.setdefault(call_id, f"synthetic-{len(ids)}")

    system, rest = [], []
    for message in messages:
        if isinstance(message, SystemMessage | DeveloperMessage):
            system.append(content_text(message.content))
        elif isinstance(message, UserMessage):
            if isinstance(message.content, str):
                parts = [("text", message.content)]
            else:
                parts = [
                    ("text", p.text) if isinstance(p, TextPart) else ("image", p.image_url.url)
                    for p in message.content
                ]
            rest.append(("user", [p for p in parts if p != ("text", "")]))
        elif isinstance(message, AssistantMessage):
            if isinstance(message.content, str):
                content = [message.content]
            else:
                content = [p.text for p in message.content or ()]
            signatures = Signatures.decode(message.reasoning_signature)
            calls = [
                (rename(c.id), c.function.name, _arguments(c.function.arguments))
                for c in message.tool_calls or ()
            ]
            rest.append(
                (
                    "assistant",
                    [t for t in content if t],
                    calls,
                    {rename(k): v for k, v in signatures.calls.items()},
                    signatures.text,
                    signatures.thought,
                    (message.reasoning_content or "") if signatures.thought else None,
                )
            )
        else:
            assert isinstance(message, ToolMessage)
            rest.append(("tool", rename(message.tool_call_id), _result(content_text(message.content))))
    return {"system": system, "messages": rest}


def to_body(messages: list[Message], **options: Any) -> dict[str, Any]:
    system, contents = messages_to_gemini(messages, **options)
    body: dict[str, Any] = {"contents": contents}
    if system is not None:
        body["systemInstruction"] = system
    return body


# ------------------------------------------------------------------------------ properties

common = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(conversations())
def test_round_trip_keeps_text_tool_calls_and_results(messages: list[Message]) -> None:
    ChatRequest(model="gemini/gemini-2.5-flash", messages=messages)  # a valid canonical conversation
    body = to_body(messages)
    json.dumps(body, allow_nan=False)  # valid JSON for the wire
    assert normalize(gemini_to_messages(body)) == normalize(messages)


@common
@given(conversations())
def test_wire_shape(messages: list[Message]) -> None:
    """Roles alternate only between user and model; every functionResponse names its call."""
    body = to_body(messages)
    names = {
        call.id: call.function.name
        for m in messages
        if isinstance(m, AssistantMessage)
        for call in m.tool_calls or ()
    }
    for content in body["contents"]:
        assert content["role"] in ("user", "model")
        assert content["parts"], "Gemini rejects a content without parts"
        for part in content["parts"]:
            if "functionResponse" in part:
                response = part["functionResponse"]
                assert isinstance(response["response"], dict)
                if "id" in response:
                    assert response["name"] == names[response["id"]]
            if "functionCall" in part:
                assert isinstance(part["functionCall"]["args"], dict)
    tool_turns = [c for c in body["contents"] if any("functionResponse" in p for p in c["parts"])]
    for turn in tool_turns:  # a tool-result turn holds only tool results
        assert all("functionResponse" in p for p in turn["parts"])


@common
@given(conversations())
def test_gemini3_every_call_turn_is_signed(messages: list[Message]) -> None:
    body = to_body(messages, require_signatures=True)
    for content in body["contents"]:
        calls = [p for p in content["parts"] if "functionCall" in p]
        if calls:
            assert any("thoughtSignature" in p for p in calls)
    plain = to_body(messages)
    # the skip value is the only difference
    for signed, unsigned in zip(body["contents"], plain["contents"], strict=True):
        for a, b in zip(signed["parts"], unsigned["parts"], strict=True):
            if a != b:
                assert a == {**b, "thoughtSignature": SKIP_SIGNATURE}


# ------------------------------------------------------------------------------ stream == non-stream

response_parts = st.lists(
    st.one_of(
        st.fixed_dictionaries({"text": texts}),
        st.fixed_dictionaries({"text": texts, "thought": st.just(True)}),
        st.fixed_dictionaries({"text": texts, "thoughtSignature": st.text(min_size=1, max_size=6)}),
        st.fixed_dictionaries(
            {"functionCall": st.fixed_dictionaries({"name": names, "args": json_objects})},
            optional={"thoughtSignature": st.text(min_size=1, max_size=6)},
        ),
        st.fixed_dictionaries(
            {"functionCall": st.fixed_dictionaries({"name": names, "args": json_objects, "id": names})}
        ),
    ),
    max_size=6,
)


@common
@given(
    response_parts,
    st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY"]),
    st.integers(1, 4),
    st.fixed_dictionaries(
        {"promptTokenCount": st.integers(0, 10**6), "candidatesTokenCount": st.integers(0, 10**5)},
        optional={
            "thoughtsTokenCount": st.integers(0, 10**5),
            "cachedContentTokenCount": st.integers(0, 10**5),
        },
    ),
)
def test_stream_adds_up_to_the_non_streamed_response(
    parts: list[dict[str, Any]], finish: str, pieces: int, usage: dict[str, int]
) -> None:
    """The same candidate, whole or split over events, normalizes to the same message and usage."""
    from modelbus_gemini import plugin

    from modelbus.context import StreamState
    from modelbus.http import HttpResponse
    from modelbus.sse import ServerSentEvent
    from modelbus.types.chat import ChunkAccumulator

    model = next(m for m in plugin.provider_info.models if m.id == "gemini-2.5-flash")
    request = ChatRequest(model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    whole = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage,
    }
    expected = plugin.normalize_response(HttpResponse(200, {}, json.dumps(whole).encode()), request, model)

    size = max(1, -(-len(parts) // pieces))
    groups = [parts[i : i + size] for i in range(0, len(parts), size)] or [[]]
    state = StreamState(provider="gemini", model=model, request=request.model_copy(update={"stream": True}))
    acc = ChunkAccumulator()
    for position, group in enumerate(groups):
        last = position == len(groups) - 1
        event = {
            "candidates": [{"content": {"role": "model", "parts": group}, "index": 0}],
            "usageMetadata": usage,
        }
        if last:
            event["candidates"][0]["finishReason"] = finish
        assert not state.may_end
        for chunk in plugin.normalize_stream_event(ServerSentEvent(data=json.dumps(event)), state):
            acc.add(chunk)
    assert state.may_end  # complete: the stream may end at close...
    assert not state.done  # ...but a trailing event (usage) would still be read
    streamed = acc.response()

    def view(message: Any) -> tuple[Any, ...]:
        calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or ()]
        signatures = Signatures.decode(message.reasoning_signature)
        by_position = [signatures.calls.get(c.id) for c in message.tool_calls or ()]
        return (
            message.content or "",
            message.reasoning_content,
            calls,
            by_position,
            signatures.text,
            signatures.thought,
        )

    assert view(streamed.choices[0].message) == view(expected.choices[0].message)
    assert streamed.choices[0].finish_reason == expected.choices[0].finish_reason
    assert streamed.usage == expected.usage
