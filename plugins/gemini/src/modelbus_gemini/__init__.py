"""modelbus provider plugin for the Google Gemini API (``generativelanguage.googleapis.com``).

Gemini's ``generateContent`` protocol is not OpenAI-compatible, so this plugin subclasses
:class:`~modelbus.providers.ProviderPlugin` directly. Wire references:

* https://ai.google.dev/api/generate-content (request, response, stream, usage, finish reasons)
* https://ai.google.dev/gemini-api/docs/function-calling, .../thought-signatures, .../thinking
* https://ai.google.dev/api/embeddings (embedContent, batchEmbedContents)
* https://ai.google.dev/gemini-api/docs/troubleshooting (google.rpc error statuses)

Message conversion lives in :mod:`modelbus_gemini.convert`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from modelbus.context import StreamState
from modelbus.error_mapping import class_for_status, parse_duration, parse_retry_after
from modelbus.errors import (
    APIConnectionError,
    AuthenticationError,
    ContentFilteredError,
    MalformedResponseError,
    ModelbusError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    UpstreamServerError,
)
from modelbus.http import HttpRequest, HttpResponse, join_url
from modelbus.providers.base import ProviderPlugin
from modelbus.sse import ServerSentEvent
from modelbus.tokens import estimate_tokens
from modelbus.types.chat import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    FinishReason,
    FunctionCallDelta,
    NamedToolChoice,
    ResponseMessage,
    Tool,
    ToolCallDelta,
    Usage,
)
from modelbus.types.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from modelbus.types.models import ModelInfo, ProviderSettings
from modelbus_gemini.convert import (
    Signatures,
    gemini_to_messages,
    messages_to_gemini,
    parse_parts,
)

__all__ = ["GeminiProvider", "gemini_to_messages", "messages_to_gemini", "plugin"]

BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

# Candidate.FinishReason (https://ai.google.dev/api/generate-content#FinishReason). STOP becomes
# "tool_calls" when the candidate called functions; values not listed here map to "stop", except
# unknown ones naming a safety/block reason, which map to "content_filter".
FINISH_REASONS: dict[str, FinishReason] = {
    "FINISH_REASON_UNSPECIFIED": "stop",
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "LANGUAGE": "error",
    "OTHER": "error",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "IMAGE_OTHER": "error",
    "NO_IMAGE": "error",
}
_FILTER_WORDS = re.compile(r"SAFETY|PROHIBITED|BLOCK|SPII|RECITATION")

# google.rpc.Status codes (https://ai.google.dev/gemini-api/docs/troubleshooting). RESOURCE_EXHAUSTED
# and INVALID_ARGUMENT are refined in ``rpc_error``.
RPC_STATUS_ERRORS: dict[str, type[ModelbusError]] = {
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "FAILED_PRECONDITION": PermissionDeniedError,  # e.g. free tier not available in the country
    "NOT_FOUND": NotFoundError,
    "RESOURCE_EXHAUSTED": RateLimitError,
    "CANCELLED": APIConnectionError,
    "INTERNAL": UpstreamServerError,
    "UNAVAILABLE": OverloadedError,
    "DEADLINE_EXCEEDED": RequestTimeoutError,
}
# google.rpc.ErrorInfo reasons that mean the key itself is bad (sent with 400 INVALID_ARGUMENT)
AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})

_MODEL_GENERATION = re.compile(r"gemini-(\d+)")


def gemini_generation(model_id: str) -> int | None:
    """The major version in a Gemini model id (``gemini-3.8-flash`` -> 3), if it has one."""
    match = _MODEL_GENERATION.match(model_id)
    return int(match.group(1)) if match else None


@dataclass(slots=True)
class _Candidates:
    """What a stream remembers about its candidates, by candidate index (``state.scratch["candidates"]``)."""

    started: set[int] = field(default_factory=set)  # sent their first chunk (with the role)
    finished: set[int] = field(default_factory=set)  # sent a finishReason
    called: set[int] = field(default_factory=set)  # called a tool
    next_tool: dict[int, int] = field(default_factory=dict)  # position of the next tool call
    signatures: dict[int, Signatures] = field(default_factory=dict)  # thought signatures so far


class GeminiProvider(ProviderPlugin):
    name = "gemini"
    display_name = "Google Gemini"
    # GEMINI_API_KEY is the name the docs use; GOOGLE_API_KEY is the older one (the google-genai SDK
    # prefers GOOGLE_API_KEY when both are set; modelbus takes the first it finds, in this order).
    api_key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    regions = {"global": (BASE_URL, "US")}
    default_region = "global"
    docs_url = "https://ai.google.dev/api/generate-content"
    auth_header = "x-goog-api-key"
    auth_prefix = ""

    # reasoning_effort -> thinkingConfig. Gemini 3+ models take a level, 2.x models a token budget
    # (1K/8K/24K as Gemini's own OpenAI-compatible endpoint maps low/medium/high; none/minimal = off).
    # Gemini has nothing above HIGH / 24K (the 2.5 Flash maximum): xhigh and max ask for the most there is;
    # Gemini 3 cannot turn thinking off, so none asks for the least (MINIMAL).
    level_order: ClassVar[tuple[str, ...]] = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
    thinking_levels: ClassVar[dict[str, str]] = {
        "none": "MINIMAL",
        "minimal": "MINIMAL",
        "low": "LOW",
        "medium": "MEDIUM",
        "high": "HIGH",
        "xhigh": "HIGH",
        "max": "HIGH",
    }
    thinking_budgets: ClassVar[dict[str, int]] = {
        "none": 0,
        "minimal": 0,
        "low": 1024,
        "medium": 8192,
        "high": 24576,
        "xhigh": 24576,
        "max": 24576,
    }
    # models that accept only some levels (the nearest accepted level is sent)
    supported_thinking_levels: ClassVar[dict[str, tuple[str, ...]]] = {
        "gemini-3.8-flash": ("LOW", "MEDIUM", "HIGH"),  # "MINIMAL is not available" (Vertex model page)
    }
    # models that cannot turn thinking off: the smallest budget they accept
    min_thinking_budget: ClassVar[dict[str, int]] = {"gemini-2.5-pro": 128}

    # -- request -------------------------------------------------------------------------------

    def requires_thought_signatures(self, model: ModelInfo) -> bool:
        """Gemini 3 and later reject a function-call turn without its thought signature."""
        generation = gemini_generation(model.id)
        return generation is not None and generation >= 3

    def thinking_config(self, effort: str, model: ModelInfo) -> dict[str, Any]:
        generation = gemini_generation(model.id)
        if generation is not None and generation >= 3:
            order = list(self.level_order)
            wanted = self.thinking_levels[effort]
            allowed = self.supported_thinking_levels.get(model.id, tuple(order))
            if wanted not in allowed:  # the nearest allowed level, preferring more thinking
                wanted = min(
                    allowed, key=lambda lvl: (abs(order.index(lvl) - order.index(wanted)), -order.index(lvl))
                )
            return {"thinkingLevel": wanted, "includeThoughts": True}
        budget = max(self.thinking_budgets[effort], self.min_thinking_budget.get(model.id, 0))
        return {"thinkingBudget": budget, "includeThoughts": budget != 0}

    def generation_config(self, request: ChatRequest, model: ModelInfo) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for canonical, native in (
            ("temperature", "temperature"),
            ("top_p", "topP"),
            ("max_tokens", "maxOutputTokens"),
            ("stop", "stopSequences"),
            ("n", "candidateCount"),
            ("seed", "seed"),
            ("presence_penalty", "presencePenalty"),
            ("frequency_penalty", "frequencyPenalty"),
        ):
            value = getattr(request, canonical)
            if value is not None:
                config[native] = value
        if request.max_tokens is None and model.default_max_tokens:
            config["maxOutputTokens"] = model.default_max_tokens
        fmt = request.response_format
        if fmt is not None and fmt.type == "json_object":
            config["responseMimeType"] = "application/json"
        elif fmt is not None and fmt.type == "json_schema":
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = fmt.json_schema.schema_
        if request.reasoning_effort is not None:
            config["thinkingConfig"] = self.thinking_config(request.reasoning_effort, model)
        return config

    @staticmethod
    def function_declaration(tool: Tool) -> dict[str, Any]:
        function = tool.function
        declaration: dict[str, Any] = {"name": function.name}
        if function.description is not None:
            declaration["description"] = function.description
        if function.parameters is not None:
            declaration["parametersJsonSchema"] = function.parameters
        return declaration

    @staticmethod
    def tool_config(request: ChatRequest) -> dict[str, Any] | None:
        choice = request.tool_choice
        if choice is None or not request.tools:
            return None
        if isinstance(choice, NamedToolChoice):
            config = {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
        else:
            config = {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]}
        return {"functionCallingConfig": config}

    def request_body(self, request: ChatRequest, model: ModelInfo) -> dict[str, Any]:
        """The JSON body of ``generateContent`` / ``streamGenerateContent``."""
        system, contents = messages_to_gemini(
            request.messages, require_signatures=self.requires_thought_signatures(model)
        )
        body: dict[str, Any] = {"contents": contents}
        if system is not None:
            body["systemInstruction"] = system
        if request.tools:
            body["tools"] = [{"functionDeclarations": [self.function_declaration(t) for t in request.tools]}]
        tool_config = self.tool_config(request)
        if tool_config is not None:
            body["toolConfig"] = tool_config
        generation = self.generation_config(request, model)
        if generation:
            body["generationConfig"] = generation
        for key, value in request.extra.items():  # provider-only fields; objects merge one level deep
            current = body.get(key)
            body[key] = (
                {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
            )
        return body

    def translate_request(
        self, request: ChatRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest:
        method = "streamGenerateContent" if request.stream else "generateContent"
        return HttpRequest(
            "POST",
            join_url(base_url, f"models/{model.id}:{method}"),
            headers={
                "Content-Type": "application/json",
                "Accept": "text/event-stream" if request.stream else "application/json",
            },
            params={"alt": "sse"} if request.stream else {},
            json=self.request_body(request, model),
            stream=request.stream,
        )

    # -- response ------------------------------------------------------------------------------

    @staticmethod
    def parse_usage(raw: Any) -> Usage | None:
        """usageMetadata -> canonical usage: thoughts are output (and reasoning); the prompt count
        already includes the cached tokens."""
        if not isinstance(raw, dict) or not raw:
            return None
        prompt = raw.get("promptTokenCount") or 0
        thoughts = raw.get("thoughtsTokenCount") or 0
        completion = (raw.get("candidatesTokenCount") or 0) + thoughts
        return Usage.of(
            prompt,
            completion,
            cached=raw.get("cachedContentTokenCount") or 0,
            reasoning=thoughts,
            total=raw.get("totalTokenCount")
            or prompt + completion + (raw.get("toolUsePromptTokenCount") or 0),
        )

    @staticmethod
    def finish_reason(native: str | None, *, called_tools: bool) -> FinishReason | None:
        if not native:
            return None
        if native == "STOP" and called_tools:
            return "tool_calls"
        return FINISH_REASONS.get(native) or ("content_filter" if _FILTER_WORDS.search(native) else "stop")

    def check_body(self, data: Any, status: int, model: ModelInfo | None) -> dict[str, Any]:
        """The response object, or the error it carries raised as a typed error."""
        if isinstance(data, list) and len(data) == 1:  # a JSON-array stream (no alt=sse) of one item
            data = data[0]
        if not isinstance(data, dict):
            raise MalformedResponseError(
                "upstream response is not a JSON object", provider=self.name, status_code=status
            )
        if isinstance(data.get("error"), dict):
            raise self.rpc_error(data["error"], status if status >= 400 else 0, {}, model)
        return data

    def blocked_prompt_error(
        self, data: dict[str, Any], status: int, model: ModelInfo | None
    ) -> ModelbusError | None:
        """The error for a response whose prompt was blocked (promptFeedback.blockReason, no candidates)."""
        feedback = data.get("promptFeedback") or {}
        reason = feedback.get("blockReason")
        if not reason:
            return None
        detail = feedback.get("blockReasonMessage")
        return ContentFilteredError(
            f"{self.display_name} blocked the prompt ({reason})" + (f": {detail}" if detail else ""),
            provider=self.name,
            model=model.id if model else None,
            status_code=status,
            provider_code=reason,
        )

    def normalize_response(
        self, response: HttpResponse, request: ChatRequest, model: ModelInfo
    ) -> ChatResponse:
        data = self.check_body(response.json(provider=self.name), response.status_code, model)
        candidates = data.get("candidates")
        if not candidates:
            blocked = self.blocked_prompt_error(data, response.status_code, model)
            if blocked is not None:
                raise blocked
            raise MalformedResponseError(
                "upstream response has no candidates and no promptFeedback.blockReason",
                provider=self.name,
                status_code=response.status_code,
            )
        choices = []
        for position, candidate in enumerate(candidates):
            parsed = parse_parts((candidate.get("content") or {}).get("parts") or [])
            native = candidate.get("finishReason")
            choices.append(
                Choice(
                    index=candidate.get("index", position),
                    message=ResponseMessage(
                        content="".join(parsed.texts) if parsed.texts or not parsed.tool_calls else None,
                        tool_calls=parsed.tool_calls or None,
                        reasoning_content=parsed.reasoning,
                        reasoning_signature=parsed.signatures.encode(),
                    ),
                    finish_reason=self.finish_reason(native, called_tools=bool(parsed.tool_calls)),
                    native_finish_reason=native,
                )
            )
        return ChatResponse(
            id=data.get("responseId") or "gemini-" + uuid.uuid4().hex[:24],
            created=int(time.time()),
            model=data.get("modelVersion") or model.id,
            choices=choices,
            usage=self.parse_usage(data.get("usageMetadata")),
            provider=self.name,
        )

    # -- stream --------------------------------------------------------------------------------

    def normalize_stream_event(self, event: ServerSentEvent, state: StreamState) -> list[ChatChunk]:
        """One ``data:`` event (a whole GenerateContentResponse holding only the NEW parts).

        Gemini sends no ``[DONE]``: the stream ends when the connection closes, and it may end there once
        every requested candidate has sent a ``finishReason`` (``state.may_end``; later events, such as a
        trailing usage record, are still read). ``usageMetadata`` repeats with running totals on many
        events; each is put on its chunk and the core keeps the last one.
        """
        obj = self.event_json(event)
        if obj is None:
            return []
        obj = self.check_body(obj, 200, state.model)
        state.id = state.id or obj.get("responseId") or ""
        state.model_name = state.model_name or obj.get("modelVersion") or ""
        usage = self.parse_usage(obj.get("usageMetadata"))
        candidates = obj.get("candidates") or []
        if not candidates:
            blocked = self.blocked_prompt_error(obj, 200, state.model)
            if blocked is not None:
                state.done = True
                raise blocked
            return [state.chunk(usage=usage)] if usage is not None else []
        seen: _Candidates | None = state.scratch.get("candidates")
        if seen is None:
            seen = state.scratch["candidates"] = _Candidates()
        chunks = [
            self._candidate_chunk(candidate, candidate.get("index", position), state, seen)
            for position, candidate in enumerate(candidates)
        ]
        chunks[-1].usage = usage
        if len(seen.finished) >= (state.request.n or 1):
            state.may_end = True  # complete; a trailing usage-only event may still follow before close
        return chunks

    def _candidate_chunk(
        self, candidate: dict[str, Any], index: int, state: StreamState, seen: _Candidates
    ) -> ChatChunk:
        parsed = parse_parts((candidate.get("content") or {}).get("parts") or [])
        deltas = []
        for call in parsed.tool_calls:  # Gemini sends each call whole, in one part
            position = seen.next_tool.get(index, 0)
            seen.next_tool[index] = position + 1
            deltas.append(
                ToolCallDelta(
                    index=position,
                    id=call.id,
                    type="function",
                    function=FunctionCallDelta(name=call.function.name, arguments=call.function.arguments),
                )
            )
        if deltas:
            seen.called.add(index)
        signature = None
        if parsed.signatures:
            signatures = seen.signatures.get(index)
            if signatures is None:
                signatures = seen.signatures[index] = Signatures()
            if signatures.update(parsed.signatures):
                signature = signatures.encode()  # cumulative: the accumulator keeps the last value
        native = candidate.get("finishReason")
        if native:
            seen.finished.add(index)
        role = None if index in seen.started else "assistant"
        seen.started.add(index)
        return state.chunk(
            content="".join(parsed.texts) or None,
            reasoning_content=parsed.reasoning or None,
            tool_calls=deltas or None,
            finish_reason=self.finish_reason(native, called_tools=index in seen.called),
            native_finish_reason=native,
            role=role,
            index=index,
            reasoning_signature=signature,
        )

    # -- errors --------------------------------------------------------------------------------

    def rpc_error(
        self, error: dict[str, Any], status: int, headers: dict[str, str], model: ModelInfo | None
    ) -> ModelbusError:
        """A google.rpc.Status (``{"code", "message", "status", "details"}``) as a typed error."""
        status = status or (error.get("code") if isinstance(error.get("code"), int) else 0) or 500
        rpc_status = error.get("status") if isinstance(error.get("status"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else ""
        details = [d for d in error.get("details") or () if isinstance(d, dict)]
        reason = next((d.get("reason") for d in details if d.get("reason")), None)
        retry_delay = next((d["retryDelay"] for d in details if isinstance(d.get("retryDelay"), str)), None)
        retry_after = parse_duration(retry_delay) if retry_delay else None
        if retry_after is None:
            retry_after = parse_retry_after(headers)
        per_day = any(
            "PerDay" in str(violation.get("quotaId", ""))
            for d in details
            for violation in d.get("violations") or ()
            if isinstance(violation, dict)
        )
        cls: type[ModelbusError]
        if reason in AUTH_REASONS:
            cls = AuthenticationError
        elif rpc_status == "RESOURCE_EXHAUSTED" and (status == 402 or per_day):
            cls = QuotaExceededError  # prepaid credit gone, or a daily quota: not worth a quick retry
        elif rpc_status in RPC_STATUS_ERRORS:
            cls = RPC_STATUS_ERRORS[rpc_status]
        else:
            cls = class_for_status(status if status >= 400 else 400, f"{message} {rpc_status or ''}")
        return cls(
            f"{self.display_name} error: {message or rpc_status or f'HTTP {status}'}",
            provider=self.name,
            model=model.id if model else None,
            status_code=status,
            provider_code=reason if reason in AUTH_REASONS else rpc_status,
            retry_after=retry_after,
            request_id=headers.get("x-request-id"),
        )

    def normalize_error(self, response: HttpResponse, model: ModelInfo | None) -> ModelbusError:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if isinstance(body, list) and body:
            body = body[0]
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            error = {"message": response.text[:300].strip()}
        return self.rpc_error(error, response.status_code, response.headers, model)

    # -- embeddings and health -----------------------------------------------------------------

    def translate_embedding_request(
        self, request: EmbeddingRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest:
        """One text -> ``embedContent``; several -> ``batchEmbedContents`` (one request per text)."""
        items = []
        for text in request.input:
            item: dict[str, Any] = {"model": f"models/{model.id}", "content": {"parts": [{"text": text}]}}
            if request.input_type is not None:
                item["taskType"] = {"query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT"}[
                    request.input_type
                ]
            if request.dimensions is not None:
                item["outputDimensionality"] = request.dimensions
            item.update(request.extra)
            items.append(item)
        single = len(items) == 1
        return HttpRequest(
            "POST",
            join_url(base_url, f"models/{model.id}:{'embedContent' if single else 'batchEmbedContents'}"),
            headers={"Content-Type": "application/json"},
            json=items[0] if single else {"requests": items},
        )

    def normalize_embedding_response(
        self, response: HttpResponse, request: EmbeddingRequest, model: ModelInfo
    ) -> EmbeddingResponse:
        data = self.check_body(response.json(provider=self.name), response.status_code, model)
        raw = data.get("embeddings") if "embeddings" in data else [data.get("embedding")]
        if not isinstance(raw, list) or not all(
            isinstance(e, dict) and isinstance(e.get("values"), list) for e in raw
        ):
            raise MalformedResponseError(
                "upstream embeddings response has no embedding values",
                provider=self.name,
                status_code=response.status_code,
            )
        # The Gemini API reports no token count for embeddings: estimate it (and say so) to price the call.
        reported = (data.get("usageMetadata") or {}).get("promptTokenCount")
        tokens = reported or sum(estimate_tokens(text) for text in request.input)
        return EmbeddingResponse(
            data=[Embedding(index=position, embedding=item["values"]) for position, item in enumerate(raw)],
            model=model.id,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens, estimated=not reported),
            provider=self.name,
        )

    def health_request(self, settings: ProviderSettings, base_url: str) -> HttpRequest:
        """``GET models`` (one page of one model): proves reachability and the key, costs nothing."""
        return HttpRequest("GET", join_url(base_url, "models"), params={"pageSize": "1"})


plugin = GeminiProvider()
