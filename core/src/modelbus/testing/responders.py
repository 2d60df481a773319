"""A deterministic, "smart" OpenAI-compatible responder for :class:`FakeUpstream`.

Framework test suites (langchain-tests' ``ChatModelIntegrationTests``, LlamaIndex agents and query
engines) check *meaning*, not only shape: a tool call named ``magic_function`` with exactly
``{"input": 3}``, a customer name carried over in Chinese, a JSON object with exactly the keys the
prompt asked for, a retriever that ranks the right document first. A scripted fixed reply cannot pass
them, and a real model is neither offline nor deterministic. :func:`smart_openai_responder` answers
from the request itself, the same way every time:

* **Chat** (``POST …/chat/completions``), streamed (SSE chunks, tool-call argument fragments, a final
  usage-only chunk when ``stream_options.include_usage``) or not; ``model`` echoed; ``n``, ``stop``
  and ``max_tokens`` honoured (``finish_reason`` ``"stop"`` / ``"length"`` / ``"tool_calls"``).
* **Tool calls**: with ``tools`` and a last ``user`` message, one call to the tool that
  ``tool_choice`` names, or for ``"required"`` the best-matching tool, or for ``"auto"`` (or no
  ``tool_choice``) the best-matching tool only when the text is about it (names it, shares a content
  word with its name or description, or asks to use a tool). Arguments are synthesized from the JSON
  schema and the last user text: integers and numbers in order of appearance (``magic_function(3)`` →
  ``3``, ``What is 3 + 4`` → ``3``, ``4``), strings from quoted text (``'你好啊集团'``, ``"x"``,
  ``「x」``), then capitalized phrases (``San Francisco, CA``, ``Pirate``), then the text itself;
  enums by mention; ``$ref``/``$defs``, ``anyOf`` (nullable), arrays and nested objects; a schema
  with no properties gives ``{}``.
* **Tool results** (last message ``role: tool``): a plain-text answer that quotes each result.
* **JSON answers**: ``response_format`` ``json_schema`` → an object synthesized from the schema like
  tool arguments; ``json_object`` → an object whose keys are the quoted identifiers of the prompt
  (``'setup'`` and ``'punchline'`` → exactly those keys).
* **Usage**: prompt/completion tokens from :func:`modelbus.tokens.estimate_tokens`; cached prompt
  tokens when a prompt of at least ``cache_min_tokens`` repeats a prefix seen before (128-token blocks,
  OpenAI's rule); reasoning tokens (and ``reasoning_content``) when ``reasoning_effort`` is set, the
  body asks for ``thinking``, or the model id contains one of ``reasoning_models``.
* **Embeddings** (``POST …/embeddings``): hashed bag-of-words vectors (lower-cased, stop words
  dropped, light stemming, signed feature hashing, L2-normalized), so texts that share content words
  are close and retrieval ranks sensibly; ``dimensions`` honoured.
* ``GET …/models`` lists ``models`` (health probes and live listings).

Usage::

    with FakeUpstream() as upstream:
        upstream.respond_with(smart_openai_responder())
        client = Client(providers={"openai": {"api_key": "x", "base_url": upstream.url}})
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from modelbus.testing.fake_upstream import RecordedRequest
from modelbus.testing.samples import ResponseSpec, SSEItem
from modelbus.tokens import estimate_tokens

__all__ = [
    "Evidence",
    "SmartResponder",
    "embed_text",
    "smart_openai_responder",
    "synthesize",
]

Reply = str | Callable[[dict[str, Any]], str]

_STOP_WORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "could",
        "do",
        "does",
        "did",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "please",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "this",
        "those",
        "to",
        "use",
        "using",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "tell",
        "give",
        "get",
        "make",
        "called",
        "named",
        "value",
        "call",
        "tool",
        "tools",
        "function",
        "result",
        "answer",
    }
)

_QUOTES = re.compile(
    r"\"(?P<d>[^\"\n]+)\"|“(?P<c>[^”\n]+)”|\u2018(?P<s>[^\u2019\n]+)\u2019|「(?P<j>[^」\n]+)」|『(?P<k>[^』\n]+)』"
    r"|《(?P<b>[^》\n]+)》|(?<![\w'])'(?P<a>[^'\n]+?)'(?![\w'])"
)
_NUMBER = re.compile(r"(?<![\w.])(-?)(\d+(?:\.\d+)?)(?![\w]|\.\d)")
_PROPER = re.compile(r"[A-Z][\w'-]*(?:(?: |, )[A-Z][\w'-]*)*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:]\s+|\n\s*)$")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\u3040-\u30ff]")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_ASK_FOR_TOOL = re.compile(r"\b(use|using|call|calling|invoke)\b[^.?!]{0,20}\b(tool|function)s?\b", re.I)
_TEXT_PROPERTIES = {
    "query",
    "question",
    "text",
    "prompt",
    "input",
    "message",
    "content",
    "description",
    "q",
    "search",
    "request",
    "instructions",
}

# ------------------------------------------------------------------------------------------- text


def _content_text(content: Any) -> str:
    """The text of an OpenAI message ``content`` (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return str(content)


def _words(text: str) -> list[str]:
    """Lower-cased content words (CJK characters one by one), lightly stemmed, stop words dropped."""
    out = []
    for word in _WORD.findall(text.lower()):
        if _CJK.search(word):
            out.extend(char for char in word if not char.isspace())
            continue
        if word in _STOP_WORDS:
            continue
        out.append(_stem(word))
    return out


def _stem(word: str) -> str:
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: len(word) - len(suffix)] + keep
    return word


def _split_identifier(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ")
    return _words(spaced)


# ------------------------------------------------------------------------------------ evidence


class Evidence:
    """Values found in a piece of text, handed out in order of appearance, each at most once."""

    def __init__(self, text: str) -> None:
        self.text = " ".join(text.split())
        quoted: list[tuple[int, int, str]] = []
        for match in _QUOTES.finditer(self.text):
            value = next(group for group in match.groups() if group is not None).strip()
            if value:
                quoted.append((match.start(), match.end(), value))
        self.quoted = [value for _, _, value in quoted]
        masked = self.text
        for start, end, _ in quoted:  # numbers and names inside quotes belong to the quoted string
            masked = masked[:start] + " " * (end - start) + masked[end:]
        self.numbers: list[float] = []
        for match in _NUMBER.finditer(masked):
            before = masked[: match.start()]
            negative = match.group(1) == "-" and (not before or before[-1] in " ([{=:,")
            value = float(match.group(2))
            self.numbers.append(-value if negative else value)
        self.proper: list[str] = []
        for match in _PROPER.finditer(masked):
            phrase = match.group(0).rstrip(", ")
            at_start = _SENTENCE_START.search(masked[: match.start()]) is not None
            if phrase == "I" or (at_start and " " not in phrase):
                continue  # a capitalized first word of a sentence is not a name
            if at_start:
                phrase = phrase.split(" ", 1)[1]  # "Where San Francisco" -> "San Francisco"
            self.proper.append(phrase)
        self._taken: dict[str, int] = {"quoted": 0, "numbers": 0, "proper": 0}

    def _take(self, kind: str) -> Any:
        pool = getattr(self, kind)
        position = self._taken[kind]
        if position >= len(pool):
            return None
        self._taken[kind] = position + 1
        return pool[position]

    def take_number(self) -> float | None:
        return self._take("numbers")

    def take_string(self) -> str | None:
        """The next quoted string, else the next capitalized phrase (``None`` when both ran out)."""
        value = self._take("quoted")
        return value if value is not None else self._take("proper")

    def remaining_numbers(self) -> list[float]:
        values = self.numbers[self._taken["numbers"] :]
        self._taken["numbers"] = len(self.numbers)
        return values

    def remaining_strings(self) -> list[str]:
        values = self.quoted[self._taken["quoted"] :] or self.proper[self._taken["proper"] :]
        self._taken["quoted"] = len(self.quoted)
        self._taken["proper"] = len(self.proper)
        return values


# ------------------------------------------------------------------------------------ synthesis

_MISSING = object()


def synthesize(schema: dict[str, Any], text: str | Evidence) -> Any:
    """A value that validates against ``schema``, filled from ``text`` (see the module docs).

    Required properties are always filled; optional ones only when the text has a value for them.
    """
    evidence = text if isinstance(text, Evidence) else Evidence(text)
    value = _value(schema, evidence, root=schema, name="", required=True, depth=0)
    return {} if value is _MISSING else value


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    for _ in range(16):
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            break
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if target else {}
        merged = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**(target or {}), **merged}
    if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
        schema = {**_resolve(schema["allOf"][0], root), **{k: v for k, v in schema.items() if k != "allOf"}}
    return schema


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return [str(k) for k in kind]
    if isinstance(kind, str):
        return [kind]
    if "properties" in schema:
        return ["object"]
    if "items" in schema:
        return ["array"]
    if "enum" in schema:
        return ["enum"]
    return []


def _value(
    schema: Any, evidence: Evidence, *, root: dict[str, Any], name: str, required: bool, depth: int
) -> Any:
    if not isinstance(schema, dict):
        return "" if required else _MISSING
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    variants = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(variants, list) and variants:
        resolved = [_resolve(v, root) if isinstance(v, dict) else {} for v in variants]
        nullable = any(_types(v) == ["null"] for v in resolved)
        concrete = [v for v in resolved if _types(v) != ["null"]] or resolved
        value = _value(concrete[0], evidence, root=root, name=name, required=False, depth=depth)
        if value is not _MISSING:
            return value
        if nullable:
            return None if required else _MISSING
        return _value(concrete[0], evidence, root=root, name=name, required=required, depth=depth)
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        lowered = evidence.text.lower()
        for option in schema["enum"]:
            if isinstance(option, str) and option.lower() in lowered:
                return option
        return schema.get("default", schema["enum"][0]) if required else _MISSING
    types = [t for t in _types(schema) if t != "null"]
    kind = types[0] if types else ("null" if _types(schema) == ["null"] else "string")
    if kind == "null":
        return None
    if kind == "object":
        return _object(schema, evidence, root=root, required=required, depth=depth)
    if kind == "array":
        return _array(schema, evidence, root=root, name=name, required=required, depth=depth)
    if kind in ("integer", "number"):
        number = evidence.take_number()
        if number is None:
            if not required:
                return _MISSING
            number = float(schema.get("default", schema.get("minimum", 0)) or 0)
        number = _clamp(number, schema)
        return int(number) if kind == "integer" else number
    if kind == "boolean":
        if "default" in schema and not required:
            return _MISSING
        lowered = evidence.text.lower()
        return bool(re.search(r"\b(yes|true|enable|enabled|on)\b", lowered))
    # string
    found = evidence.take_string()
    if found is not None:
        return found
    if not required:
        return _MISSING
    if "default" in schema and isinstance(schema["default"], str):
        return schema["default"]
    if name.lower() in _TEXT_PROPERTIES:
        return evidence.text
    return evidence.text or name or "value"


def _clamp(number: float, schema: dict[str, Any]) -> float:
    if isinstance(schema.get("minimum"), int | float):
        number = max(number, schema["minimum"])
    if isinstance(schema.get("maximum"), int | float):
        number = min(number, schema["maximum"])
    if isinstance(schema.get("exclusiveMinimum"), int | float) and number <= schema["exclusiveMinimum"]:
        number = schema["exclusiveMinimum"] + 1
    if isinstance(schema.get("exclusiveMaximum"), int | float) and number >= schema["exclusiveMaximum"]:
        number = schema["exclusiveMaximum"] - 1
    return number


def _object(
    schema: dict[str, Any], evidence: Evidence, *, root: dict[str, Any], required: bool, depth: int
) -> Any:
    properties = schema.get("properties")
    if not isinstance(properties, dict) or depth > 6:
        return {}
    needed = set(schema.get("required") or ())
    out: dict[str, Any] = {}
    for key, sub in properties.items():
        value = _value(sub, evidence, root=root, name=key, required=key in needed, depth=depth + 1)
        if value is not _MISSING:
            out[key] = value
    if not out and not required:
        return _MISSING
    return out


def _array(
    schema: dict[str, Any], evidence: Evidence, *, root: dict[str, Any], name: str, required: bool, depth: int
) -> Any:
    items = _resolve(schema.get("items") or {}, root) if isinstance(schema.get("items"), dict) else {}
    kind = ([t for t in _types(items) if t != "null"] or ["string"])[0]
    values: list[Any]
    if kind in ("integer", "number"):
        values = [int(n) if kind == "integer" else n for n in evidence.remaining_numbers()]
    elif kind == "string" and "enum" not in items:
        values = evidence.remaining_strings()
    else:
        value = _value(items, evidence, root=root, name=name, required=True, depth=depth + 1)
        values = [] if value is _MISSING else [value]
    if not values and not required:
        return _MISSING
    minimum = schema.get("minItems")
    while isinstance(minimum, int) and len(values) < minimum:
        values.append(_value(items, evidence, root=root, name=name, required=True, depth=depth + 1))
    if isinstance(schema.get("maxItems"), int):
        values = values[: schema["maxItems"]]
    return values


# ---------------------------------------------------------------------------------- embeddings


def embed_text(text: str, dimensions: int = 256) -> list[float]:
    """A deterministic unit vector: signed feature hashing of the text's content words."""
    vector = [0.0] * dimensions
    words = _words(text) or [text.strip().lower() or "<empty>"]
    for word in words:
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
        number = int.from_bytes(digest, "big")
        vector[number % dimensions] += 1.0 if (number >> 63) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:  # every word cancelled out: fall back to the whole text's hash
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
        vector[int.from_bytes(digest, "big") % dimensions] = 1.0
        norm = 1.0
    return [round(v / norm, 6) for v in vector]


# ----------------------------------------------------------------------------------- responder


@dataclass
class _Answer:
    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    reasoning: str | None = None
    finish_reason: str = "stop"


def _error(
    status: int, message: str, *, param: str | None = None, kind: str = "invalid_request_error"
) -> ResponseSpec:
    return ResponseSpec(
        status=status, json={"error": {"message": message, "type": kind, "param": param, "code": None}}
    )


class SmartResponder:
    """The responder :func:`smart_openai_responder` returns (callable with a recorded request).

    It keeps a little state: counters for ids and the prompt prefixes seen (for cached tokens).
    """

    def __init__(
        self,
        *,
        reply: Reply | None = None,
        embedding_dimensions: int = 256,
        cache_min_tokens: int = 1024,
        reasoning_models: Iterable[str] = ("reasoner",),
        models: Iterable[str] = ("fake-model",),
        chunk_words: int = 1,
    ) -> None:
        self.reply = reply
        self.embedding_dimensions = embedding_dimensions
        self.cache_min_tokens = cache_min_tokens
        self.reasoning_models = tuple(reasoning_models)
        self.models = list(models)
        self.chunk_words = max(1, chunk_words)
        self._lock = threading.Lock()
        self._count = 0
        self._prefixes: set[bytes] = set()

    def _next(self) -> int:
        with self._lock:
            self._count += 1
            return self._count

    # -- dispatch -------------------------------------------------------------------------------

    def __call__(self, request: RecordedRequest) -> ResponseSpec:
        path = request.path.rstrip("/")
        if request.method == "GET" and path.endswith("/models"):
            return ResponseSpec(
                json={
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models
                    ],
                }
            )
        if request.method != "POST":
            return _error(405, f"{request.method} {request.path} is not supported")
        try:
            body = request.json
        except ValueError:
            return _error(400, "the request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        if path.endswith("/chat/completions"):
            return self.chat(body)
        if path.endswith("/embeddings"):
            return self.embeddings(body)
        return _error(404, f"no route for POST {request.path}", kind="not_found_error")

    # -- chat -----------------------------------------------------------------------------------

    def chat(self, body: dict[str, Any]) -> ResponseSpec:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages must be a non-empty list", param="messages")
        tools = [
            t
            for t in body.get("tools") or []
            if isinstance(t, dict) and t.get("type", "function") == "function"
        ]
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            wanted = (choice.get("function") or {}).get("name")
            if wanted not in {(t.get("function") or {}).get("name") for t in tools}:
                return _error(
                    400, f"tool_choice names {wanted!r}, which is not among the tools", param="tool_choice"
                )
        model = str(body.get("model") or "fake-model")
        n = body.get("n") or 1
        answers = [self.answer(body) for _ in range(n if isinstance(n, int) and n > 0 else 1)]
        usage = self.usage(body, answers)
        ident = f"chatcmpl-{self._next()}"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return ResponseSpec(sse=self._chunks(ident, model, answers, usage if include_usage else None))
        choices = []
        for index, answer in enumerate(answers):
            message: dict[str, Any] = {"role": "assistant", "content": answer.content}
            if answer.reasoning:
                message["reasoning_content"] = answer.reasoning
            if answer.tool_calls:
                message["tool_calls"] = answer.tool_calls
            choices.append(
                {"index": index, "message": message, "finish_reason": answer.finish_reason, "logprobs": None}
            )
        return ResponseSpec(
            json={
                "id": ident,
                "object": "chat.completion",
                "created": 1700000000,
                "model": model,
                "choices": choices,
                "usage": usage,
                "system_fingerprint": "fp_fake",
            }
        )

    def answer(self, body: dict[str, Any]) -> _Answer:
        """What the model says to this request (deterministic)."""
        messages = body["messages"]
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        role = last.get("role")
        user_text = _content_text(last.get("content")) if role == "user" else ""
        answer = _Answer()
        if self._reasons(body):
            answer.reasoning = (
                f"The user wrote {len(_last_user_text(messages).split())} words. I answer briefly."
            )
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        choice = body.get("tool_choice")
        if tools and choice != "none" and role == "user":
            tool = _pick_tool(tools, choice, user_text)
            if tool is not None:
                function = tool.get("function") or {}
                parameters = function.get("parameters") or {}
                arguments = synthesize(parameters, user_text) if parameters.get("properties") else {}
                answer.tool_calls = [
                    {
                        "id": f"call_{self._next()}",
                        "type": "function",
                        "function": {
                            "name": function.get("name", ""),
                            "arguments": json.dumps(arguments, ensure_ascii=False),
                        },
                    }
                ]
                answer.finish_reason = "tool_calls"
                return answer
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
            answer.content = json.dumps(synthesize(schema, _last_user_text(messages)), ensure_ascii=False)
            return answer
        if fmt.get("type") == "json_object":
            answer.content = json.dumps(_json_object(messages), ensure_ascii=False)
            return answer
        if role == "tool":
            text = _tool_answer(messages)
        elif self.reply is not None:
            text = self.reply(body) if callable(self.reply) else self.reply
        else:
            said = " ".join(_last_user_text(messages).split()) or "nothing"
            text = f"You said: {said}"
        answer.content, answer.finish_reason = _limit(text, body)
        return answer

    def _reasons(self, body: dict[str, Any]) -> bool:
        effort = body.get("reasoning_effort")
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"):
            return thinking["type"] == "enabled"
        if effort is not None:
            return effort != "none"
        model = str(body.get("model") or "")
        return any(marker in model for marker in self.reasoning_models)

    def usage(self, body: dict[str, Any], answers: list[_Answer]) -> dict[str, Any]:
        prompt_text = _prompt_text(body)
        prompt = sum(
            4 + estimate_tokens(_content_text(m.get("content")))
            for m in body["messages"]
            if isinstance(m, dict)
        )
        prompt += (
            estimate_tokens(json.dumps(body.get("tools") or [], ensure_ascii=False))
            if body.get("tools")
            else 0
        )
        cached = min(self._cached_tokens(prompt_text, prompt), prompt)
        reasoning = sum(estimate_tokens(a.reasoning or "") for a in answers)
        completion = reasoning + sum(
            max(
                1,
                estimate_tokens(a.content or "")
                + sum(estimate_tokens(c["function"]["arguments"]) + 3 for c in a.tool_calls),
            )
            for a in answers
        )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }

    def _cached_tokens(self, prompt_text: str, prompt_tokens: int) -> int:
        """Tokens of the longest 512-character-block prefix of this prompt seen in an earlier request."""
        block = 512  # ~128 tokens
        digest = hashlib.blake2b(digest_size=16)
        prefixes: list[tuple[int, bytes]] = []  # (length, hash of the prompt's first `length` characters)
        for start in range(0, len(prompt_text) - block + 1, block):
            digest.update(prompt_text[start : start + block].encode("utf-8"))
            prefixes.append((start + block, digest.copy().digest()))
        with self._lock:
            hit = max((length for length, key in prefixes if key in self._prefixes), default=0)
            self._prefixes.update(key for _, key in prefixes)
        if prompt_tokens < self.cache_min_tokens or not hit:
            return 0
        return estimate_tokens(prompt_text[:hit])

    def _chunks(
        self, ident: str, model: str, answers: list[_Answer], usage: dict[str, Any] | None
    ) -> list[SSEItem]:
        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> SSEItem:
            return SSEItem(
                data={
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}],
                }
            )

        items: list[SSEItem] = []
        for index, answer in enumerate(answers):
            items.append(chunk(index, {"role": "assistant", "content": ""}))
            for piece in _pieces(answer.reasoning or "", self.chunk_words):
                items.append(chunk(index, {"reasoning_content": piece}))
            for piece in _pieces(answer.content or "", self.chunk_words):
                items.append(chunk(index, {"content": piece}))
            for position, call in enumerate(answer.tool_calls):
                head = {"index": position, "id": call["id"], "type": "function"}
                items.append(
                    chunk(
                        index,
                        {
                            "tool_calls": [
                                {**head, "function": {"name": call["function"]["name"], "arguments": ""}}
                            ]
                        },
                    )
                )
                arguments = call["function"]["arguments"]
                third = max(1, len(arguments) // 3)
                for start in range(0, len(arguments), third):
                    fragment = arguments[start : start + third]
                    items.append(
                        chunk(
                            index, {"tool_calls": [{"index": position, "function": {"arguments": fragment}}]}
                        )
                    )
            items.append(chunk(index, {}, answer.finish_reason))
        if usage is not None:
            items.append(
                SSEItem(
                    data={
                        "id": ident,
                        "object": "chat.completion.chunk",
                        "created": 1700000000,
                        "model": model,
                        "system_fingerprint": "fp_fake",
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        items.append(SSEItem(data="[DONE]"))
        return items

    # -- embeddings -----------------------------------------------------------------------------

    def embeddings(self, body: dict[str, Any]) -> ResponseSpec:
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return _error(400, "input must be a string or a non-empty list of strings", param="input")
        dimensions = body.get("dimensions") or self.embedding_dimensions
        if not isinstance(dimensions, int) or dimensions < 1:
            return _error(400, "dimensions must be a positive integer", param="dimensions")
        tokens = sum(max(1, estimate_tokens(t)) for t in texts)
        return ResponseSpec(
            json={
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": embed_text(t, dimensions)}
                    for i, t in enumerate(texts)
                ],
                "model": str(body.get("model") or "fake-embedding"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


def smart_openai_responder(
    *,
    reply: Reply | None = None,
    embedding_dimensions: int = 256,
    cache_min_tokens: int = 1024,
    reasoning_models: Iterable[str] = ("reasoner",),
    models: Iterable[str] = ("fake-model",),
    chunk_words: int = 1,
) -> SmartResponder:
    """A deterministic OpenAI-compatible responder that answers from the prompt (see module docs).

    Args:
        reply: the plain-text answer (a string, or a function of the request body); default
            ``"You said: <last user text>"``. Tool calls, tool results and JSON answers ignore it.
        embedding_dimensions: vector size when the request names no ``dimensions``.
        cache_min_tokens: prompts shorter than this never report cached tokens.
        reasoning_models: model-id substrings that always "think" (reasoning content and tokens).
        models: the ids ``GET /models`` lists.
        chunk_words: words per streamed content chunk.
    """
    return SmartResponder(
        reply=reply,
        embedding_dimensions=embedding_dimensions,
        cache_min_tokens=cache_min_tokens,
        reasoning_models=reasoning_models,
        models=models,
        chunk_words=chunk_words,
    )


# ------------------------------------------------------------------------------------ helpers


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _prompt_text(body: dict[str, Any]) -> str:
    parts = [
        f"{m.get('role')}: {_content_text(m.get('content'))}" for m in body["messages"] if isinstance(m, dict)
    ]
    if body.get("tools"):
        parts.insert(0, json.dumps(body["tools"], ensure_ascii=False, sort_keys=True))
    return "\n".join(parts)


def _pick_tool(tools: list[dict[str, Any]], choice: Any, text: str) -> dict[str, Any] | None:
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        return next((t for t in tools if (t.get("function") or {}).get("name") == wanted), None)
    lowered = text.lower()
    words = set(_words(text))
    asks = bool(_ASK_FOR_TOOL.search(text))
    best, best_score = None, 0
    for tool in tools:
        function = tool.get("function") or {}
        name = str(function.get("name") or "")
        score = 0
        if name and name.lower() in lowered:
            score += 100
        vocabulary = set(_split_identifier(name)) | set(_words(str(function.get("description") or "")))
        score += 2 * len(words & set(_split_identifier(name))) + len(words & vocabulary)
        if score > best_score:
            best, best_score = tool, score
    if best is not None:
        return best
    if choice in ("required", "any") or asks:
        return tools[0]
    return None


def _json_object(messages: list[Any]) -> dict[str, Any]:
    text = _last_user_text(messages)
    keys: list[str] = []
    for message in messages:
        if isinstance(message, dict) and message.get("role") in ("system", "developer", "user"):
            for value in Evidence(_content_text(message.get("content"))).quoted:
                if _IDENTIFIER.match(value) and value not in keys:
                    keys.append(value)
    if not keys:
        return {"answer": " ".join(text.split())}
    return {key: f"{key}: {' '.join(text.split())}" for key in keys}


def _tool_answer(messages: list[Any]) -> str:
    results = []
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "tool":
            break
        name = message.get("name") or _tool_name(messages, message.get("tool_call_id"))
        results.append(f"{name or 'the tool'} returned {_content_text(message.get('content')).strip()}")
    return "The " + "; the ".join(reversed(results)) + "."


def _tool_name(messages: list[Any], call_id: Any) -> str | None:
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict) and call.get("id") == call_id:
                    return (call.get("function") or {}).get("name")
    return None


def _limit(text: str, body: dict[str, Any]) -> tuple[str, str]:
    """Apply ``stop`` and ``max_tokens`` (or ``max_completion_tokens``) to a reply."""
    finish = "stop"
    stops = body.get("stop")
    for stop in [stops] if isinstance(stops, str) else stops or []:
        if isinstance(stop, str) and stop and stop in text:
            text = text[: text.index(stop)]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0 and estimate_tokens(text) > limit:
        words = text.split(" ")
        while len(words) > 1 and estimate_tokens(" ".join(words)) > limit:
            words.pop()
        text, finish = " ".join(words), "length"
    return text, finish


def _pieces(text: str, words_per_piece: int) -> list[str]:
    if not text:
        return []
    words = text.split(" ")
    pieces = []
    for start in range(0, len(words), words_per_piece):
        piece = " ".join(words[start : start + words_per_piece])
        pieces.append(piece if start == 0 else " " + piece)
    return pieces
