"""Property-based round trips: canonical conversation -> Anthropic request -> canonical conversation.

Any valid canonical conversation (system/developer messages anywhere; user text and images; assistant
text, signed reasoning and tool calls; tool results right after the assistant turn that asked for
them, in any order) must reach Anthropic without losing text, tool calls (id, name, arguments as JSON)
or tool results (tool_use_id, content), and must come back equal modulo the documented
normalizations (see ``modelbus_anthropic.convert``): system text hoisted, consecutive same-role
messages merged, tool results first in a user turn, empty text dropped, arguments re-serialized.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelbus_anthropic import plugin
from modelbus_anthropic.convert import (
    anthropic_to_canonical,
    canonical_to_anthropic,
    compact_system,
    request_from_anthropic,
    thinking_blocks,
)

from modelbus.types.chat import (
    AssistantMessage,
    ChatRequest,
    DeveloperMessage,
    FunctionCall,
    ImagePart,
    ImageURL,
    Message,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(max_size=12)  # "" included on purpose: empty text is dropped
nonempty = st.text(min_size=1, max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(max_size=6), json_values, max_size=4)
tool_names = st.from_regex(r"[a-zA-Z0-9_-]{1,20}", fullmatch=True)


def text_content(draw: Any) -> str | list[TextPart]:
    if draw(st.booleans()):
        return draw(texts)
    return [TextPart(text=t) for t in draw(st.lists(texts, min_size=1, max_size=3))]


def image(draw: Any) -> ImagePart:
    if draw(st.booleans()):
        data = base64.b64encode(draw(st.binary(min_size=1, max_size=12))).decode()
        media = draw(st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]))
        url = f"data:{media};base64,{data}"
    else:
        url = "https://example.com/" + draw(st.from_regex(r"[a-z0-9]{1,8}\.(png|jpg)", fullmatch=True))
    return ImagePart(image_url=ImageURL(url=url, detail=draw(st.sampled_from([None, "low", "high"]))))


@st.composite
def conversations(draw: Any) -> list[Message]:
    messages: list[Message] = []
    counter = 0
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["system", "developer", "user", "user", "assistant", "assistant"]))
        if kind == "system":
            messages.append(SystemMessage(content=text_content(draw)))
        elif kind == "developer":
            messages.append(DeveloperMessage(content=text_content(draw)))
        elif kind == "user":
            if draw(st.booleans()):
                messages.append(UserMessage(content=draw(texts)))
            else:
                parts = draw(st.lists(st.booleans(), min_size=1, max_size=4))
                content = [image(draw) if is_image else TextPart(text=draw(texts)) for is_image in parts]
                messages.append(UserMessage(content=content))
        else:
            calls = []
            for _ in range(draw(st.integers(0, 3))):
                counter += 1
                args = draw(arguments)
                indent = draw(st.sampled_from([None, 2]))
                calls.append(
                    ToolCall(
                        id=f"toolu_{counter:04d}",
                        function=FunctionCall(
                            name=draw(tool_names), arguments=json.dumps(args, indent=indent)
                        ),
                    )
                )
            signature = draw(st.none() | st.from_regex(r"[A-Za-z0-9+/]{4,16}", fullmatch=True))
            reasoning = draw(st.none() | texts)
            content = text_content(draw) if draw(st.booleans()) or not calls else None
            messages.append(
                AssistantMessage(
                    content=content,
                    tool_calls=calls or None,
                    reasoning_content=reasoning,
                    reasoning_signature=signature,
                )
            )
            # the tool results, in any order, right after the assistant turn
            for call in draw(st.permutations(calls)):
                is_error = draw(st.none() | st.booleans())
                messages.append(
                    ToolMessage(tool_call_id=call.id, content=text_content(draw), is_error=is_error)
                )
    return messages


# ------------------------------------------------------------------------------ the normal form


def _texts(content: Any) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content else []
    return [part.text for part in content if isinstance(part, TextPart) and part.text]


def normal_form(messages: list[Message]) -> tuple[list[str], list[tuple[str, Any]]]:
    """What must survive a round trip: system text, and per (merged) turn its items in order."""
    system: list[str] = []
    turns: list[list[Any]] = []  # [role, payload]
    for message in messages:
        if isinstance(message, SystemMessage | DeveloperMessage):
            system.extend(_texts(message.content))
            continue
        if isinstance(message, AssistantMessage):
            role = "assistant"
            payload: dict[str, list[Any]] = {
                "reasoning": thinking_blocks(message.reasoning_content, message.reasoning_signature),
                "text": _texts(message.content),
                "calls": [
                    (c.id, c.function.name, json.loads(c.function.arguments or "{}"))
                    for c in message.tool_calls or ()
                ],
            }
        elif isinstance(message, ToolMessage):
            role = "user"
            result = (message.tool_call_id, tuple(_texts(message.content)), message.is_error)
            payload = {"results": [result], "parts": []}
        else:
            role = "user"
            parts: list[Any] = []
            if isinstance(message.content, str):
                parts = [("text", message.content)] if message.content else []
            else:
                for part in message.content:
                    if isinstance(part, ImagePart):
                        parts.append(("image", part.image_url.url))
                    elif part.text:
                        parts.append(("text", part.text))
            payload = {"results": [], "parts": parts}
        if not any(payload.values()):
            continue
        if turns and turns[-1][0] == role:
            for key, items in payload.items():
                turns[-1][1][key].extend(items)
        else:
            turns.append([role, payload])
    return system, [(role, payload) for role, payload in turns]


# ------------------------------------------------------------------------------ properties


@SETTINGS
@given(conversations())
def test_round_trip_preserves_the_conversation(messages: list[Message]) -> None:
    system, turns = canonical_to_anthropic(messages)
    back = anthropic_to_canonical(compact_system(system), turns)
    assert normal_form(back) == normal_form(messages)


@SETTINGS
@given(conversations())
def test_anthropic_request_is_well_formed(messages: list[Message]) -> None:
    _, turns = canonical_to_anthropic(messages)
    roles = [turn["role"] for turn in turns]
    assert all(a != b for a, b in itertools.pairwise(roles)), "roles alternate"
    asked: set[str] = set()
    for turn in turns:
        content = turn["content"]
        assert content, "no empty message"
        if isinstance(content, str):
            continue
        kinds = [block["type"] for block in content]
        assert all(block.get("text") for block in content if block["type"] == "text"), "no empty text"
        if turn["role"] == "user":
            assert kinds == sorted(kinds, key=lambda k: k != "tool_result"), "tool results come first"
            for block in content:
                if block["type"] == "tool_result":
                    assert block["tool_use_id"] in asked, "a result answers a tool_use of the turn before"
            asked = set()
        else:
            asked = {block["id"] for block in content if block["type"] == "tool_use"}
            for block in content:
                if block["type"] == "tool_use":
                    assert isinstance(block["input"], dict)


@SETTINGS
@given(conversations())
def test_nothing_is_lost_on_the_wire(messages: list[Message]) -> None:
    """Every text, tool call and tool result of the canonical conversation is in the Anthropic request."""
    system, turns = canonical_to_anthropic(messages)
    wire = json.dumps({"system": system, "messages": turns}, ensure_ascii=False)
    blocks = [b for t in turns for b in (t["content"] if isinstance(t["content"], list) else [])]
    uses = {b["id"]: (b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"}
    results = {b["tool_use_id"]: b.get("content") for b in blocks if b["type"] == "tool_result"}
    for message in messages:
        for text in _texts(getattr(message, "content", None)):
            assert json.dumps(text, ensure_ascii=False) in wire
        if isinstance(message, AssistantMessage):
            for call in message.tool_calls or ():
                assert uses[call.id] == (call.function.name, json.loads(call.function.arguments or "{}"))
        if isinstance(message, ToolMessage):
            sent = results[message.tool_call_id]
            got = [sent] if isinstance(sent, str) else [b["text"] for b in sent or []]
            assert got == _texts(message.content)


@SETTINGS
@given(conversations())
def test_translation_is_idempotent(messages: list[Message]) -> None:
    """Anthropic -> canonical -> Anthropic gives back the same request."""
    system, turns = canonical_to_anthropic(messages)
    again_system, again_turns = canonical_to_anthropic(anthropic_to_canonical(compact_system(system), turns))
    assert (compact_system(again_system), again_turns) == (compact_system(system), turns)


tool_choices = st.sampled_from([None, "auto", "none", "required", "named"])


@SETTINGS
@given(conversations(), tool_choices, st.booleans(), st.integers(1, 4096), st.lists(nonempty, max_size=2))
def test_full_request_round_trip(
    messages: list[Message], choice: str | None, parallel: bool, max_tokens: int, stop: list[str]
) -> None:
    """ChatRequest -> the plugin's request body -> request_from_anthropic -> the same ChatRequest."""
    if not canonical_to_anthropic(messages)[1]:  # nothing but system text and empty messages
        messages = [*messages, UserMessage(content="hi")]
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time", "description": "Now", "parameters": {}}},
    ]
    tool_choice: Any = {"type": "function", "function": {"name": "get_time"}} if choice == "named" else choice
    request = ChatRequest(
        model="anthropic/claude-haiku-4-5-20251001",
        messages=messages,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=False if parallel else None,
        max_tokens=max_tokens,
        stop=stop or None,
    )
    model = next(m for m in plugin.provider_info.models if m.id == "claude-haiku-4-5-20251001")
    assert plugin.quirks(model).prefill  # so a conversation may end with an assistant turn
    body = plugin.request_body(request, model)
    back = request_from_anthropic(body)
    assert back.model == request.model
    assert back.max_tokens == max_tokens
    assert back.stop == (stop or None)
    assert normal_form(back.messages) == normal_form(messages)
    assert [t.function.name for t in back.tools or []] == ["get_weather", "get_time"]
    expected_choice = tool_choice if tool_choice is not None else (None if not parallel else "auto")
    if isinstance(expected_choice, dict):
        assert back.tool_choice is not None
        assert back.tool_choice.function.name == "get_time"  # type: ignore[union-attr]
    else:
        assert back.tool_choice == expected_choice
    assert back.parallel_tool_calls == (False if parallel and choice != "none" else None)
