"""Canonical (OpenAI-shaped) messages <-> Anthropic Messages API ``system`` + ``messages``, both ways.

Pure functions, no I/O: the provider uses :func:`canonical_to_anthropic` to build requests, and
:func:`anthropic_to_canonical` / :func:`request_from_anthropic` read an Anthropic request back into
canonical types (for tests, and for an Anthropic-compatible gateway endpoint).

Normalizations of canonical -> Anthropic (the round trip is exact modulo these):

* system and developer messages, wherever they are, are hoisted into the top-level ``system`` (their
  text blocks in order); a developer message comes back as a system message;
* consecutive messages of the same Anthropic role are merged into one message (tool messages are
  ``user`` turns), so roles alternate; inside a merged user message the ``tool_result`` blocks are
  moved first, as the API requires, and inside a merged assistant message the blocks are ordered as
  one canonical assistant message sends them (thinking, text, tool calls);
* empty text (``""``) is dropped (the API rejects empty text blocks), and so is a message left empty;
* a message or tool result that is a single text block is sent as a plain string;
* tool-call arguments are sent as a JSON object (``input``), so they come back re-serialized
  (compare them as JSON, not as text); arguments must be a JSON object;
* ``reasoning_content`` is replayed as a ``thinking`` block only with its ``reasoning_signature``
  (unsigned thinking cannot be replayed and is dropped). A turn with several thinking blocks, or
  with ``redacted_thinking``, keeps them all, byte for byte, in ``reasoning_signature`` (see
  :func:`thinking_fields`), because the API wants them back unmodified; they are replayed first
  in the turn, so their position between tool calls (interleaved thinking) is not kept;
* image ``detail`` has no Anthropic equivalent and is dropped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from modelbus.errors import BadRequestError
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

Block = dict[str, Any]
Turn = dict[str, Any]

_ASSISTANT_ORDER = {"thinking": 0, "redacted_thinking": 0, "text": 1, "tool_use": 2}
THINKING_BLOCKS_PREFIX = "anthropic-thinking-blocks:"

__all__ = [
    "anthropic_to_canonical",
    "canonical_to_anthropic",
    "compact_system",
    "image_block",
    "image_url",
    "request_from_anthropic",
    "thinking_blocks",
    "thinking_fields",
]

# ------------------------------------------------------------------------------ canonical -> Anthropic


def image_block(url: str) -> Block:
    """An Anthropic ``image`` block for an OpenAI ``image_url`` (a base64 ``data:`` URL or an http(s) URL)."""
    if url.startswith("data:"):
        header, comma, data = url.partition(",")
        media_type = header[len("data:") :]
        if not comma or not media_type.endswith(";base64") or not data:
            raise BadRequestError(
                "image data URLs must be base64: data:<media type>;base64,<data>", param="messages"
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type[: -len(";base64")], "data": data},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise BadRequestError(
        "an image must be an http(s) URL or a base64 data: URL for Anthropic", param="messages"
    )


def thinking_fields(blocks: Sequence[Block]) -> tuple[str | None, str | None]:
    """(reasoning_content, reasoning_signature) for an assistant turn's thinking blocks.

    One ``thinking`` block keeps its own signature. Several blocks, or any ``redacted_thinking``
    block, are kept whole in the signature (``anthropic-thinking-blocks:`` + base64url JSON), since a
    canonical message has one signature and the API wants every block back unmodified.
    """
    if not blocks:
        return None, None
    text = "".join(str(b.get("thinking", "")) for b in blocks if b.get("type") == "thinking") or None
    if len(blocks) == 1 and blocks[0].get("type") == "thinking":
        return text, blocks[0].get("signature") or None
    packed = json.dumps(list(blocks), separators=(",", ":"), ensure_ascii=False).encode()
    return text, THINKING_BLOCKS_PREFIX + base64.urlsafe_b64encode(packed).decode()


def thinking_blocks(reasoning_content: str | None, signature: str | None) -> list[Block]:
    """The thinking blocks to replay for an assistant message (the inverse of :func:`thinking_fields`)."""
    if signature is None:
        return []
    if not signature.startswith(THINKING_BLOCKS_PREFIX):
        return [{"type": "thinking", "thinking": reasoning_content or "", "signature": signature}]
    try:
        blocks = json.loads(base64.urlsafe_b64decode(signature[len(THINKING_BLOCKS_PREFIX) :]))
    except ValueError:
        blocks = None
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise BadRequestError("reasoning_signature holds damaged Anthropic thinking blocks", param="messages")
    return blocks


def _text_blocks(content: str | Sequence[Any] | None) -> list[Block]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [
        {"type": "text", "text": part.text} for part in content if isinstance(part, TextPart) and part.text
    ]


def _user_blocks(message: UserMessage) -> list[Block]:
    if isinstance(message.content, str):
        return _text_blocks(message.content)
    blocks: list[Block] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            blocks.append(image_block(part.image_url.url))
        elif part.text:
            blocks.append({"type": "text", "text": part.text})
    return blocks


def _arguments(call: ToolCall) -> dict[str, Any]:
    text = call.function.arguments
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        raise BadRequestError(
            f"tool call {call.id!r} ({call.function.name}) has arguments that are not JSON; "
            "Anthropic needs a JSON object",
            param="messages",
        ) from None
    if not isinstance(value, dict):
        raise BadRequestError(
            f"tool call {call.id!r} ({call.function.name}) has arguments that are not a JSON object",
            param="messages",
        )
    return value


def _assistant_blocks(message: AssistantMessage) -> list[Block]:
    blocks = thinking_blocks(message.reasoning_content, message.reasoning_signature)
    blocks.extend(_text_blocks(message.content))
    if message.refusal and not blocks and not message.tool_calls:
        blocks.append({"type": "text", "text": message.refusal})
    for call in message.tool_calls or ():
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.function.name, "input": _arguments(call)}
        )
    return blocks


def _tool_result(message: ToolMessage) -> Block:
    block: Block = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    content = _text_blocks(message.content)
    if content:
        block["content"] = content[0]["text"] if len(content) == 1 else content
    if message.is_error is not None:
        block["is_error"] = message.is_error
    return block


def _compact(blocks: list[Block]) -> str | list[Block]:
    """A single plain text block as a string (the API treats both alike)."""
    if len(blocks) == 1 and set(blocks[0]) == {"type", "text"} and blocks[0]["type"] == "text":
        return str(blocks[0]["text"])
    return blocks


def compact_system(blocks: list[Block]) -> str | list[Block] | None:
    """The ``system`` field for these text blocks (``None`` when there are none)."""
    return _compact(blocks) if blocks else None


def canonical_to_anthropic(messages: Sequence[Message]) -> tuple[list[Block], list[Turn]]:
    """(system text blocks, Anthropic ``messages``) for canonical ``messages``.

    See the module docstring for the normalizations. Raises :class:`BadRequestError` for content
    Anthropic cannot take (tool-call arguments that are not a JSON object, non-base64 data URLs).
    """
    system: list[Block] = []
    turns: list[Turn] = []
    for message in messages:
        if isinstance(message, SystemMessage | DeveloperMessage):
            system.extend(_text_blocks(message.content))
            continue
        if isinstance(message, UserMessage):
            role, blocks = "user", _user_blocks(message)
        elif isinstance(message, ToolMessage):
            role, blocks = "user", [_tool_result(message)]
        else:
            role, blocks = "assistant", _assistant_blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:  # stable sorts: only merged messages change order
        if turn["role"] == "user":  # "the tool_result blocks must come FIRST in the content array"
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
        else:  # as one canonical assistant message: thinking, then text, then tool calls
            turn["content"].sort(key=lambda block: _ASSISTANT_ORDER.get(block["type"], 1))
        turn["content"] = _compact(turn["content"])
    return system, turns


# ------------------------------------------------------------------------------ Anthropic -> canonical


def image_url(block: Block) -> str:
    """The OpenAI ``image_url`` for an Anthropic ``image`` block (base64 becomes a data: URL)."""
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64":
        return f"data:{source.get('media_type', '')};base64,{source.get('data', '')}"
    if kind == "url":
        return str(source.get("url", ""))
    raise BadRequestError(f"image source type {kind!r} has no canonical equivalent", param="messages")


def _blocks(content: Any) -> list[Block]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    if content is None:
        return []
    raise BadRequestError("message content must be a string or a list of blocks", param="messages")


def _text_parts(blocks: list[Block], where: str) -> list[TextPart]:
    parts = []
    for block in blocks:
        if block.get("type") != "text":
            raise BadRequestError(
                f"{where} may only hold text blocks here, not {block.get('type')!r}", param="messages"
            )
        parts.append(TextPart(text=str(block.get("text", ""))))
    return parts


def _as_content(parts: list[TextPart]) -> str | list[TextPart]:
    return parts[0].text if len(parts) == 1 else parts


def _user_messages(content: Any) -> list[Message]:
    out: list[Message] = []
    parts: list[TextPart | ImagePart] = []

    def flush() -> None:
        if parts:
            only_text = len(parts) == 1 and isinstance(parts[0], TextPart)
            out.append(UserMessage(content=parts[0].text if only_text else list(parts)))  # type: ignore[union-attr]
            parts.clear()

    for block in _blocks(content):
        kind = block.get("type")
        if kind == "tool_result":
            flush()
            result = _text_parts(_blocks(block.get("content")), "a tool_result")
            is_error = block.get("is_error")
            out.append(
                ToolMessage(
                    tool_call_id=str(block.get("tool_use_id", "")),
                    content=_as_content(result) if result else "",
                    is_error=is_error if isinstance(is_error, bool) else None,
                )
            )
        elif kind == "text":
            parts.append(TextPart(text=str(block.get("text", ""))))
        elif kind == "image":
            parts.append(ImagePart(image_url=ImageURL(url=image_url(block))))
        else:
            raise BadRequestError(
                f"user content block {kind!r} has no canonical equivalent", param="messages"
            )
    flush()
    return out


def _assistant_message(content: Any) -> AssistantMessage:
    texts: list[TextPart] = []
    calls: list[ToolCall] = []
    thinking: list[Block] = []
    for block in _blocks(content):
        kind = block.get("type")
        if kind == "text":
            texts.append(TextPart(text=str(block.get("text", ""))))
        elif kind == "tool_use":
            calls.append(
                ToolCall(
                    id=str(block.get("id", "")),
                    function=FunctionCall(
                        name=str(block.get("name", "")),
                        arguments=json.dumps(block.get("input") or {}, ensure_ascii=False),
                    ),
                )
            )
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
        else:
            raise BadRequestError(
                f"assistant content block {kind!r} has no canonical equivalent", param="messages"
            )
    reasoning, signature = thinking_fields(thinking)
    text_content: str | list[TextPart] | None = _as_content(texts) if texts else None
    if text_content is None and not calls:
        text_content = ""
    return AssistantMessage(
        content=text_content,
        tool_calls=calls or None,
        reasoning_content=reasoning,
        reasoning_signature=signature,
    )


def anthropic_to_canonical(system: Any, messages: Sequence[Turn]) -> list[Message]:
    """Canonical messages for an Anthropic request's ``system`` and ``messages``.

    ``system`` (a string or text blocks) becomes one system message; a user message becomes tool
    messages (one per ``tool_result``, in order) and user messages (each run of text/image blocks);
    an assistant message becomes one assistant message with its text, tool calls and thinking
    (see :func:`thinking_fields`); a ``tool_result``'s ``is_error`` becomes the tool message's ``is_error``.
    Raises :class:`BadRequestError` for blocks with no canonical equivalent (documents, server
    tools, images inside tool results).
    """
    out: list[Message] = []
    system_parts = _text_parts(_blocks(system), "system")
    if system_parts:
        out.append(SystemMessage(content=_as_content(system_parts)))
    for turn in messages:
        role = turn.get("role")
        if role == "user":
            out.extend(_user_messages(turn.get("content")))
        elif role == "assistant":
            out.append(_assistant_message(turn.get("content")))
        elif role == "system":  # mid-conversation system message (newer models)
            parts = _text_parts(_blocks(turn.get("content")), "a system message")
            if parts:
                out.append(SystemMessage(content=_as_content(parts)))
        else:
            raise BadRequestError(f"unknown message role {role!r}", param="messages")
    return out


# reverse of the plugin's reasoning_effort mapping (see README "Reasoning")
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "max"}


def _effort_for_budget(budget: int) -> str:
    if budget <= 1024:
        return "minimal"
    if budget <= 4096:
        return "low"
    if budget <= 16384:
        return "medium"
    if budget <= 32768:
        return "high"
    if budget <= 49152:
        return "xhigh"
    return "max"


def request_from_anthropic(body: dict[str, Any], *, provider: str = "anthropic") -> ChatRequest:
    """A canonical :class:`ChatRequest` for an Anthropic Messages API request body.

    ``model`` gets the ``provider/`` prefix unless it already names one. Fields with no canonical
    equivalent (``top_k``, ``service_tier``, ``cache_control`` on tools ...) go to ``extra``.
    """
    body = dict(body)
    model = str(body.pop("model", ""))
    data: dict[str, Any] = {
        "model": model if "/" in model else f"{provider}/{model}",
        "messages": [
            m.model_dump(mode="json", by_alias=True, exclude_none=True)
            for m in anthropic_to_canonical(body.pop("system", None), body.pop("messages", []) or [])
        ],
    }
    for field in ("max_tokens", "temperature", "top_p", "stream"):
        if field in body:
            data[field] = body.pop(field)
    if "stop_sequences" in body:
        data["stop"] = body.pop("stop_sequences")
    metadata = body.pop("metadata", None)
    if isinstance(metadata, dict) and metadata.get("user_id"):
        data["user"] = str(metadata["user_id"])
    tools = body.pop("tools", None)
    if tools:
        data["tools"] = []
        for tool in tools:
            if tool.get("type") not in (None, "custom"):
                raise BadRequestError(
                    f"server tool {tool.get('type')!r} has no canonical equivalent", param="tools"
                )
            function: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("input_schema") or {}}
            if tool.get("description"):
                function["description"] = tool["description"]
            if tool.get("strict") is not None:
                function["strict"] = tool["strict"]
            data["tools"].append({"type": "function", "function": function})
    choice = body.pop("tool_choice", None)
    if isinstance(choice, dict):
        kind = choice.get("type")
        data["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}.get(kind or "") or {
            "type": "function",
            "function": {"name": choice.get("name", "")},
        }
        if choice.get("disable_parallel_tool_use"):
            data["parallel_tool_calls"] = False
    thinking = body.pop("thinking", None)
    output_config = body.pop("output_config", None)
    if isinstance(output_config, dict):
        output_config = dict(output_config)
        effort = output_config.pop("effort", None)
        if effort in _EFFORTS:
            data["reasoning_effort"] = _EFFORTS[effort]
        fmt = output_config.pop("format", None)
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            data["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": fmt.get("schema") or {}},
            }
        if output_config:
            body["output_config"] = output_config
    if isinstance(thinking, dict):
        if thinking.get("type") == "enabled" and "reasoning_effort" not in data:
            data["reasoning_effort"] = _effort_for_budget(int(thinking.get("budget_tokens") or 0))
        elif thinking.get("type") not in ("enabled", "adaptive"):
            body["thinking"] = thinking  # disabled, between_tools ...: keep as a provider parameter
    data["extra"] = body
    return ChatRequest.model_validate(data)
