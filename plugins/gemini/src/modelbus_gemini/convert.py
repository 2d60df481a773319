"""Canonical (OpenAI-shaped) messages <-> Gemini ``systemInstruction`` + ``contents``, both ways.

Forward (:func:`messages_to_gemini`) is what every chat request goes through. Reverse
(:func:`gemini_to_messages`) reads a Gemini request body back into canonical messages; the response
normalizer shares its part parser (:func:`parse_parts`).

Mapping (https://ai.google.dev/api/generate-content, ``Content``/``Part``):

* system and developer messages -> ``systemInstruction.parts`` (one text part per message, in order,
  wherever they stood in the conversation);
* user -> ``{"role": "user"}`` with ``text`` parts, images as ``inlineData`` (``data:`` URLs) or
  ``fileData`` (any other URL: https, signed URLs, Files API URIs, ``gs://``);
* assistant -> ``{"role": "model"}``: [a signed thought part], text parts, ``functionCall`` parts
  (``args`` is an object: the canonical JSON string is parsed);
* consecutive tool messages -> ONE ``{"role": "user"}`` content of ``functionResponse`` parts (Gemini
  wants as many responses as the call turn had calls, in one turn). The function NAME, which
  Gemini needs and OpenAI does not send, is recovered from the assistant tool call with the same id.
  ``response`` must be an object: a tool result that is a JSON object is sent as that object, any
  other text as ``{"result": text}``.

Thought signatures (https://ai.google.dev/gemini-api/docs/thought-signatures) must be replayed on the
part they came with. modelbus keeps them in ``reasoning_signature`` of the assistant message as a
JSON string ``{"gemini_thought_signatures": {"calls": {tool_call_id: sig}, "text": sig,
"thought": sig}}`` (see :class:`Signatures`); a value that is not in this shape (another provider's
signature) is ignored.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from modelbus.errors import BadRequestError
from modelbus.types.chat import (
    AssistantMessage,
    ContentPart,
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
    content_text,
)

# Gemini 2.x function calls carry no id: modelbus makes one up with this prefix and never sends it
# back (Gemini 3 ids, and ids a caller chose, are sent as ``functionCall.id``/``functionResponse.id``).
SYNTHETIC_ID_PREFIX = "gmcall_"
SIGNATURES_KEY = "gemini_thought_signatures"
# The documented value that tells Gemini 3 to skip signature validation for a function call whose
# signature is unknown (history from another model, or hand-written).
SKIP_SIGNATURE = "skip_thought_signature_validator"
# Tool-call arguments that are not a JSON object travel under this key (Gemini ``args`` is an object).
RAW_ARGUMENTS_KEY = "__modelbus_raw_arguments__"


def new_call_id() -> str:
    return SYNTHETIC_ID_PREFIX + uuid.uuid4().hex[:24]


# ------------------------------------------------------------------------------ signatures


@dataclass
class Signatures:
    """The thought signatures of one model turn, keyed by the part they belong to."""

    calls: dict[str, str] = field(default_factory=dict)  # tool call id -> signature
    text: str | None = None  # signature on the (last) answer-text part
    thought: str | None = None  # signature on a thought-summary part

    def __bool__(self) -> bool:
        return bool(self.calls or self.text or self.thought)

    def encode(self) -> str | None:
        if not self:
            return None
        inner: dict[str, Any] = {}
        if self.calls:
            inner["calls"] = dict(self.calls)
        if self.text:
            inner["text"] = self.text
        if self.thought:
            inner["thought"] = self.thought
        return json.dumps({SIGNATURES_KEY: inner}, separators=(",", ":"))

    @classmethod
    def decode(cls, value: str | None) -> Signatures:
        """Read an encoded value; anything else (another provider's signature) gives no signatures."""
        if not value or not value.startswith("{"):
            return cls()
        try:
            data = json.loads(value)
        except ValueError:
            return cls()
        inner = data.get(SIGNATURES_KEY) if isinstance(data, dict) else None
        if not isinstance(inner, dict):
            return cls()
        calls = inner.get("calls") if isinstance(inner.get("calls"), dict) else {}
        return cls(
            calls={str(k): v for k, v in calls.items() if isinstance(v, str)},
            text=inner["text"] if isinstance(inner.get("text"), str) else None,
            thought=inner["thought"] if isinstance(inner.get("thought"), str) else None,
        )

    def update(self, other: Signatures) -> bool:
        """Merge ``other`` in; True if anything changed."""
        before = (dict(self.calls), self.text, self.thought)
        self.calls.update(other.calls)
        self.text = other.text or self.text
        self.thought = other.thought or self.thought
        return before != (self.calls, self.text, self.thought)


# ------------------------------------------------------------------------------ JSON helpers


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strict_loads(text: str) -> Any:
    """``json.loads`` that refuses NaN/Infinity (Gemini's JSON parser does)."""
    value = json.loads(text, parse_constant=_reject_constant)
    json.dumps(value, allow_nan=False)  # 1e400 parses to inf: refuse that too
    return value


def arguments_to_args(arguments: str) -> dict[str, Any]:
    """A canonical ``arguments`` string as Gemini's ``args`` object.

    Empty -> ``{}``; a JSON object -> itself; anything else (invalid or non-object JSON, e.g. a
    history cut at max_tokens) -> ``{RAW_ARGUMENTS_KEY: arguments}`` so that nothing is lost.
    """
    if not arguments.strip():
        return {}
    try:
        value = _strict_loads(arguments)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    return {RAW_ARGUMENTS_KEY: arguments}


def args_to_arguments(args: Any) -> str:
    """Gemini's ``args`` object as the canonical JSON string."""
    if (
        isinstance(args, dict)
        and set(args) == {RAW_ARGUMENTS_KEY}
        and isinstance(args[RAW_ARGUMENTS_KEY], str)
    ):
        return args[RAW_ARGUMENTS_KEY]
    return json.dumps(args if args is not None else {}, ensure_ascii=False)


def tool_result_to_response(text: str) -> dict[str, Any]:
    """A tool message's text as ``functionResponse.response`` (which must be an object).

    A JSON object is sent as itself, unless it is exactly ``{"result": <string>}``, which would read
    back as a wrapped plain text; any other text is wrapped as ``{"result": text}``.
    """
    try:
        value = _strict_loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict) and not _is_wrapped(value):
        return value
    return {"result": text}


def response_to_tool_result(response: Any) -> str:
    """``functionResponse.response`` as the canonical tool message text (inverse of the above)."""
    if isinstance(response, dict) and _is_wrapped(response):
        return response["result"]
    return json.dumps(response if response is not None else {}, ensure_ascii=False)


def _is_wrapped(value: dict[str, Any]) -> bool:
    return set(value) == {"result"} and isinstance(value["result"], str)


# ------------------------------------------------------------------------------ images


def image_to_part(url: str) -> dict[str, Any]:
    """An ``image_url`` as a Gemini part: ``data:`` URLs inline, other URLs by reference."""
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        if not comma:
            raise BadRequestError("an image data: URL has no ',' before its data", param="messages")
        meta = header.split(";")
        mime = meta[0] or "text/plain"
        if "base64" in (item.strip().lower() for item in meta[1:]):
            payload = data
        else:
            payload = base64.b64encode(unquote_to_bytes(data)).decode("ascii")
        return {"inlineData": {"mimeType": mime, "data": payload}}
    file_data: dict[str, Any] = {"fileUri": url}
    mime = mimetypes.guess_type(urlsplit(url).path)[0]
    if mime:
        file_data = {"mimeType": mime, **file_data}
    return {"fileData": file_data}


def part_to_image(part: Mapping[str, Any]) -> ImagePart | None:
    """The inverse of :func:`image_to_part` (``None`` for a part that holds no media)."""
    inline = part.get("inlineData")
    if isinstance(inline, dict):
        mime = inline.get("mimeType") or "application/octet-stream"
        return ImagePart(image_url=ImageURL(url=f"data:{mime};base64,{inline.get('data', '')}"))
    file_data = part.get("fileData")
    if isinstance(file_data, dict) and file_data.get("fileUri"):
        return ImagePart(image_url=ImageURL(url=file_data["fileUri"]))
    return None


# ------------------------------------------------------------------------------ forward


def _user_parts(content: str | list[ContentPart]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    parts = [{"text": p.text} if isinstance(p, TextPart) else image_to_part(p.image_url.url) for p in content]
    return parts or [{"text": ""}]


def _texts(content: str | list[TextPart] | None) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    return [part.text for part in content]


def _model_parts(message: AssistantMessage, *, require_signatures: bool) -> list[dict[str, Any]]:
    signatures = Signatures.decode(message.reasoning_signature)
    parts: list[dict[str, Any]] = []
    if signatures.thought:
        parts.append(
            {"text": message.reasoning_content or "", "thought": True, "thoughtSignature": signatures.thought}
        )
    texts = _texts(message.content)
    if message.content is None and message.refusal:
        texts = [message.refusal]
    if message.tool_calls:
        texts = [text for text in texts if text]
    elif not texts:
        texts = [""]
    text_parts: list[dict[str, Any]] = [{"text": text} for text in texts]
    trailer: list[dict[str, Any]] = []
    if signatures.text and text_parts:
        text_parts[-1]["thoughtSignature"] = signatures.text
    elif signatures.text:  # a signature that came on an empty text part after the calls (Gemini 3)
        trailer.append({"text": "", "thoughtSignature": signatures.text})
    parts.extend(text_parts)
    call_parts = []
    for call in message.tool_calls or ():
        function_call: dict[str, Any] = {
            "name": call.function.name,
            "args": arguments_to_args(call.function.arguments),
        }
        if not call.id.startswith(SYNTHETIC_ID_PREFIX):
            function_call["id"] = call.id
        part: dict[str, Any] = {"functionCall": function_call}
        signature = signatures.calls.get(call.id)
        if signature:
            part["thoughtSignature"] = signature
        call_parts.append(part)
    if require_signatures and call_parts and not any("thoughtSignature" in p for p in call_parts):
        call_parts[0]["thoughtSignature"] = SKIP_SIGNATURE
    parts.extend(call_parts)
    parts.extend(trailer)
    return parts


def _function_response(message: ToolMessage, call_names: Mapping[str, str]) -> dict[str, Any]:
    name = call_names.get(message.tool_call_id) or message.name
    if not name:
        raise BadRequestError(
            f"a tool message answers tool_call_id {message.tool_call_id!r}, which no earlier assistant "
            "message called; Gemini needs the function's name (set the tool message's 'name')",
            param="messages",
        )
    response: dict[str, Any] = {
        "name": name,
        "response": tool_result_to_response(content_text(message.content)),
    }
    if not message.tool_call_id.startswith(SYNTHETIC_ID_PREFIX):
        response = {"id": message.tool_call_id, **response}
    return {"functionResponse": response}


def messages_to_gemini(
    messages: Iterable[Message], *, require_signatures: bool = False
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """``(systemInstruction or None, contents)`` for canonical ``messages``.

    ``require_signatures`` (Gemini 3 and later): a model turn with function calls but no known
    signature gets the documented skip value on its first call, instead of a 400.
    """
    system_parts: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    responses: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, ToolMessage):
            responses.append(_function_response(message, call_names))
            continue
        if responses:
            contents.append({"role": "user", "parts": responses})
            responses = []
        if isinstance(message, SystemMessage | DeveloperMessage):
            system_parts.append({"text": content_text(message.content)})
        elif isinstance(message, UserMessage):
            contents.append({"role": "user", "parts": _user_parts(message.content)})
        else:
            for call in message.tool_calls or ():
                call_names[call.id] = call.function.name
            contents.append(
                {"role": "model", "parts": _model_parts(message, require_signatures=require_signatures)}
            )
    if responses:
        contents.append({"role": "user", "parts": responses})
    return ({"parts": system_parts} if system_parts else None), contents


# ------------------------------------------------------------------------------ reverse


@dataclass
class ParsedParts:
    """What a model content's parts hold, in canonical terms."""

    texts: list[str] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    signatures: Signatures = field(default_factory=Signatures)

    @property
    def reasoning(self) -> str | None:
        return "".join(self.thoughts) or None


def parse_parts(parts: Sequence[Any], make_id: Callable[[], str] = new_call_id) -> ParsedParts:
    """Read the parts of a model content (a response candidate, a stream delta or a history turn).

    Thought parts (``"thought": true``) are reasoning, other text parts are the answer, and
    ``functionCall`` parts are tool calls (``make_id`` names those without an ``id``). Parts of other
    kinds (``executableCode``, generated media) carry no canonical text and are skipped.
    """
    parsed = ParsedParts()
    for part in parts:
        if not isinstance(part, dict):
            continue
        signature = part.get("thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        call = part.get("functionCall")
        if isinstance(call, dict):
            call_id = call.get("id") or make_id()
            parsed.tool_calls.append(
                ToolCall(
                    id=call_id,
                    function=FunctionCall(
                        name=call.get("name") or "", arguments=args_to_arguments(call.get("args"))
                    ),
                )
            )
            if signature:
                parsed.signatures.calls[call_id] = signature
        elif part.get("thought"):
            parsed.thoughts.append(part.get("text") or "")
            if signature:
                parsed.signatures.thought = signature
        elif "text" in part:
            parsed.texts.append(part.get("text") or "")
            if signature:
                parsed.signatures.text = signature
        elif signature:
            parsed.signatures.text = signature
    return parsed


def _assistant_message(parts: Sequence[Any], make_id: Callable[[], str]) -> AssistantMessage:
    parsed = parse_parts(parts, make_id)
    texts = [text for text in parsed.texts if text] if parsed.tool_calls else parsed.texts
    content: str | list[TextPart] | None
    if not texts:
        content = None if parsed.tool_calls else ""
    elif len(texts) == 1:
        content = texts[0]
    else:
        content = [TextPart(text=text) for text in texts]
    return AssistantMessage(
        content=content,
        tool_calls=parsed.tool_calls or None,
        reasoning_content=parsed.reasoning,
        reasoning_signature=parsed.signatures.encode(),
    )


def _user_message(parts: Sequence[dict[str, Any]]) -> UserMessage:
    items: list[ContentPart] = []
    for part in parts:
        image = part_to_image(part)
        if image is not None:
            items.append(image)
        elif "text" in part:
            items.append(TextPart(text=part.get("text") or ""))
    if len(items) == 1 and isinstance(items[0], TextPart):
        return UserMessage(content=items[0].text)
    return UserMessage(content=items or "")


def gemini_to_messages(body: Mapping[str, Any]) -> list[Message]:
    """Canonical messages for a Gemini request body (``systemInstruction`` + ``contents``).

    The inverse of :func:`messages_to_gemini`, modulo these normalizations: system and developer
    messages come back as system messages at the front (one per part, text only); a user content
    whose only part is text comes back as a string; consecutive user messages stay apart, tool
    results come back one tool message per ``functionResponse`` part; message ``name`` fields and
    image ``detail`` are gone; ``reasoning_content`` survives only with a signed thought part; a
    JSON-object tool result is re-serialized (same JSON value, maybe different spacing); function
    calls without an id get ``gmcall_<n>`` ids, and each id-less response is matched to the first
    unanswered call of the same name in the turn before it.
    """
    messages: list[Message] = []
    system = body.get("systemInstruction") or body.get("system_instruction") or {}
    for part in system.get("parts") or ():
        messages.append(SystemMessage(content=part.get("text") or ""))
    counter = 0

    def make_id() -> str:
        nonlocal counter
        counter += 1
        return f"{SYNTHETIC_ID_PREFIX}{counter}"

    pending: list[ToolCall] = []
    for content in body.get("contents") or ():
        parts = [p for p in content.get("parts") or () if isinstance(p, dict)]
        if content.get("role") == "model":
            message = _assistant_message(parts, make_id)
            pending = list(message.tool_calls or ())
            messages.append(message)
            continue
        run: list[dict[str, Any]] = []
        for part in parts:
            response = part.get("functionResponse")
            if not isinstance(response, dict):
                run.append(part)
                continue
            if run:
                messages.append(_user_message(run))
                run = []
            messages.append(_tool_message(response, pending, make_id))
        if run or not parts:
            messages.append(_user_message(run))
    return messages


def _tool_message(
    response: Mapping[str, Any], pending: list[ToolCall], make_id: Callable[[], str]
) -> ToolMessage:
    name = response.get("name") or ""
    call_id = response.get("id")
    if call_id:
        pending[:] = [call for call in pending if call.id != call_id]
    else:
        match = next((call for call in pending if call.function.name == name), None)
        if match is not None:
            pending.remove(match)
            call_id = match.id
        else:
            call_id = make_id()
    return ToolMessage(
        tool_call_id=call_id, content=response_to_tool_result(response.get("response")), name=name or None
    )
