"""``OpenAICompatibleProvider``: one base for every provider that speaks OpenAI Chat Completions.

A plugin for such a provider is mostly data: its name, regions (base URLs), key env vars, the model
table, and the quirks below as class attributes. What differs in code (DeepSeek replaying reasoning on
tool-call turns, Mistral's tool-call id rules, Spark's 200-with-error envelope) is an override of one
small method.

Wire format reference: https://platform.openai.com/docs/api-reference/chat (request/response/chunk
shapes); the OpenAPI spec at github.com/openai/openai-openapi.
"""

from __future__ import annotations

import copy
import json
from typing import Any, ClassVar

from modelbus.builtin import error_fields
from modelbus.context import StreamState
from modelbus.error_mapping import classify_error, parse_retry_after
from modelbus.errors import (
    AuthenticationError,
    ContentFilteredError,
    ContextLengthExceededError,
    MalformedResponseError,
    ModelbusError,
    NotFoundError,
    QuotaExceededError,
)
from modelbus.http import HttpRequest, HttpResponse, join_url
from modelbus.providers.base import ProviderPlugin
from modelbus.sse import ServerSentEvent
from modelbus.types.chat import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChoiceDelta,
    FinishReason,
    FunctionCall,
    FunctionCallDelta,
    Message,
    ResponseMessage,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from modelbus.types.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from modelbus.types.models import ModelInfo, ProviderSettings

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}

# OpenAI's own error codes, understood by most compatible servers
OPENAI_ERROR_CODES: dict[str, type[ModelbusError]] = {
    "insufficient_quota": QuotaExceededError,
    "context_length_exceeded": ContextLengthExceededError,
    "invalid_api_key": AuthenticationError,
    "model_not_found": NotFoundError,
    "content_policy_violation": ContentFilteredError,
    "content_filter": ContentFilteredError,
}

# request fields copied to the body as they are (after renames); the rest is handled explicitly
_SAMPLING = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "parallel_tool_calls",
    "reasoning_effort",
    "user",
)


class OpenAICompatibleProvider(ProviderPlugin):
    """Configure with class attributes; override a method only for a real protocol difference."""

    chat_path: ClassVar[str] = "/chat/completions"
    model_chat_paths: ClassVar[dict[str, str]] = {}  # model id -> its own chat path (Spark's /v2 models)
    embeddings_path: ClassVar[str | None] = "/embeddings"
    models_path: ClassVar[str | None] = "/models"
    stream_usage: ClassVar[bool] = True  # ask for the final usage chunk (stream_options.include_usage)
    done_marker: ClassVar[str] = "[DONE]"
    param_renames: ClassVar[dict[str, str]] = {}  # canonical name -> provider's name
    max_tokens_param: ClassVar[str] = "max_tokens"
    tool_choice_values: ClassVar[dict[str, str]] = {}  # canonical tool_choice string -> the provider's word
    omit_tools_for_none: ClassVar[bool] = False  # tool_choice "none" unsupported: send no tools instead
    finish_reasons: ClassVar[dict[str, FinishReason]] = {}  # extra provider values
    error_codes: ClassVar[dict[str, type[ModelbusError]]] = {}  # provider error code/type -> class
    reasoning_field: ClassVar[str] = "reasoning_content"
    # reasoning_effort -> the provider's own body fields sent instead (every effort a key); empty: sent as is
    reasoning_params: ClassVar[dict[str, dict[str, Any]]] = {}
    send_reasoning_history: ClassVar[bool] = False  # replay reasoning_content of earlier turns
    extra_body: ClassVar[dict[str, Any]] = {}  # always sent

    # -- request -------------------------------------------------------------------------------

    def message_to_wire(self, message: Message) -> dict[str, Any]:
        """One canonical message as the provider expects it in ``messages``."""
        wire = message.to_wire(exclude={"is_error"})
        if isinstance(message, AssistantMessage):
            wire.pop("reasoning_signature", None)
            reasoning = wire.pop("reasoning_content", None)
            if reasoning and self.send_reasoning_history:
                wire[self.reasoning_field] = reasoning
            if wire.get("content") is None and message.tool_calls:
                wire["content"] = None  # several providers require the key to be present
        return wire

    def messages_to_wire(self, messages: list[Message]) -> list[dict[str, Any]]:
        """The whole ``messages`` array; override for rules that span messages (DeepSeek's replay)."""
        return [self.message_to_wire(message) for message in messages]

    def chat_path_for(self, model: ModelInfo) -> str:
        """The chat endpoint for ``model`` (``model_chat_paths`` overrides ``chat_path`` per model)."""
        return self.model_chat_paths.get(model.id, self.chat_path)

    def request_body(self, request: ChatRequest, model: ModelInfo) -> dict[str, Any]:
        """The JSON body of a chat request."""
        body: dict[str, Any] = {
            "model": model.id,
            "messages": self.messages_to_wire(request.messages),
        }
        for field in _SAMPLING:
            value = getattr(request, field)
            if value is not None:
                body[self.max_tokens_param if field == "max_tokens" else field] = value
        choice = request.tool_choice
        if not (self.omit_tools_for_none and choice == "none"):
            if request.tools:
                body["tools"] = [tool.to_wire() for tool in request.tools]
            if isinstance(choice, str):
                body["tool_choice"] = self.tool_choice_values.get(choice, choice)
            elif choice is not None:
                body["tool_choice"] = choice.to_wire()
        if request.response_format is not None:
            body["response_format"] = request.response_format.to_wire()
        if request.stream:
            body["stream"] = True
            if self.stream_usage:
                body["stream_options"] = {"include_usage": True}
        if self.reasoning_params and request.reasoning_effort is not None:
            del body["reasoning_effort"]
            body.update(copy.deepcopy(self.reasoning_params[request.reasoning_effort]))
        for canonical, native in self.param_renames.items():
            if canonical in body:
                body[native] = body.pop(canonical)
        body.update(self.extra_body)
        body.update(request.extra)
        return body

    def translate_request(
        self, request: ChatRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest:
        return HttpRequest(
            "POST",
            join_url(base_url, self.chat_path_for(model)),
            headers={
                "Content-Type": "application/json",
                "Accept": "text/event-stream" if request.stream else "application/json",
            },
            json=self.request_body(request, model),
            stream=request.stream,
        )

    # -- response ------------------------------------------------------------------------------

    def finish_reason(self, native: str | None) -> FinishReason | None:
        if native is None:
            return None
        return self.finish_reasons.get(native) or FINISH_REASONS.get(native) or "stop"

    def parse_usage(self, raw: dict[str, Any] | None) -> Usage | None:
        """OpenAI usage, plus the common variants (DeepSeek's cache hit count, a top-level cached count)."""
        if not raw:
            return None
        prompt_details = raw.get("prompt_tokens_details") or {}
        completion_details = raw.get("completion_tokens_details") or {}
        cached = (
            prompt_details.get("cached_tokens")
            or raw.get("prompt_cache_hit_tokens")
            or raw.get("cached_tokens")
            or 0
        )
        prompt = raw.get("prompt_tokens") or 0
        completion = raw.get("completion_tokens") or 0
        return Usage.of(
            prompt,
            completion,
            cached=cached,
            cache_creation=prompt_details.get("cache_write_tokens")
            or prompt_details.get("cache_creation_input_tokens")
            or 0,
            reasoning=completion_details.get("reasoning_tokens") or 0,
            total=raw.get("total_tokens") or prompt + completion,
        )

    def parse_tool_calls(self, raw: list[dict[str, Any]] | None) -> list[ToolCall] | None:
        if not raw:
            return None
        calls = []
        for position, item in enumerate(raw):
            function = item.get("function") or {}
            arguments = function.get("arguments")
            if not isinstance(arguments, str):  # some servers send an object
                arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
            calls.append(
                ToolCall(
                    id=item.get("id") or f"call_{position}",
                    function=FunctionCall(name=function.get("name", ""), arguments=arguments),
                )
            )
        return calls

    def parse_message(self, raw: dict[str, Any]) -> ResponseMessage:
        content, thinking = split_content(raw.get("content"))
        return ResponseMessage(
            content=content,
            tool_calls=self.parse_tool_calls(raw.get("tool_calls")),
            reasoning_content=raw.get(self.reasoning_field) or thinking,
            refusal=raw.get("refusal"),
        )

    def check_envelope(self, data: Any, response: HttpResponse, model: ModelInfo | None) -> None:
        """Raise the error a 200 response carries in its body (an ``error`` object)."""
        if isinstance(data, dict) and isinstance(data.get("error"), dict | str):
            raise self.error_from_body(response, data, model)

    def normalize_response(
        self, response: HttpResponse, request: ChatRequest, model: ModelInfo
    ) -> ChatResponse:
        return self.response_from_json(response.json(provider=self.name), response, request, model)

    def response_from_json(
        self, data: Any, response: HttpResponse, request: ChatRequest, model: ModelInfo
    ) -> ChatResponse:
        """The canonical response for the decoded body ``data`` of ``response`` (override this, not
        ``normalize_response``, to read provider fields: the body is decoded once)."""
        self.check_envelope(data, response, model)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise MalformedResponseError(
                "upstream response has no 'choices' list",
                provider=self.name,
                status_code=response.status_code,
            )
        choices = []
        for position, raw in enumerate(data["choices"]):
            native = raw.get("finish_reason")
            message = self.parse_message(raw.get("message") or {})
            choices.append(
                Choice(
                    index=raw.get("index", position),
                    message=message,
                    # a complete response that names no reason (Spark) stopped, or stopped to call tools
                    finish_reason=self.finish_reason(native)
                    or ("tool_calls" if message.tool_calls else "stop"),
                    native_finish_reason=native,
                )
            )
        return ChatResponse(
            id=data.get("id") or "chatcmpl-unknown",
            created=data.get("created") or 0,
            model=data.get("model") or model.id,
            choices=choices,
            usage=self.parse_usage(data.get("usage")),
            system_fingerprint=data.get("system_fingerprint"),
            provider=self.name,
        )

    # -- stream --------------------------------------------------------------------------------

    def parse_delta(self, raw: dict[str, Any]) -> ChoiceDelta:
        tool_calls = None
        if raw.get("tool_calls"):
            tool_calls = []
            for position, item in enumerate(raw["tool_calls"]):
                function = item.get("function") or {}
                arguments = function.get("arguments")
                if arguments is not None and not isinstance(arguments, str):
                    arguments = json.dumps(arguments, ensure_ascii=False)
                tool_calls.append(
                    ToolCallDelta(
                        index=item.get("index", position),
                        id=item.get("id") or None,  # continuation chunks may carry "" (DashScope)
                        type="function" if item.get("id") else None,
                        function=FunctionCallDelta(name=function.get("name") or None, arguments=arguments),
                    )
                )
        content, thinking = split_content(raw.get("content"))
        return ChoiceDelta(
            role="assistant" if raw.get("role") == "assistant" else None,
            content=content or None,
            reasoning_content=raw.get(self.reasoning_field) or thinking,
            tool_calls=tool_calls,
            refusal=raw.get("refusal") or None,
        )

    def normalize_stream_event(self, event: ServerSentEvent, state: StreamState) -> list[ChatChunk]:
        data = event.data.strip()
        if data == self.done_marker:
            state.done = True
            return []
        obj = self.event_json(event)
        if obj is None:
            return []
        if event.event == "error" or (isinstance(obj, dict) and "error" in obj and "choices" not in obj):
            raise self.error_from_body(HttpResponse(200, {}, data.encode()), obj, state.model)
        self.check_stream_envelope(obj, state)
        state.id = state.id or obj.get("id") or ""
        state.model_name = state.model_name or obj.get("model") or ""
        choices = []
        usage = self.parse_usage(obj.get("usage"))
        for position, raw in enumerate(obj.get("choices") or []):
            native = raw.get("finish_reason")
            choices.append(
                {
                    "index": raw.get("index", position),
                    "delta": self.parse_delta(raw.get("delta") or {}),
                    "finish_reason": self.finish_reason(native),
                    "native_finish_reason": native,
                }
            )
            usage = usage or self.parse_usage(raw.get("usage"))  # older Moonshot: usage inside the choice
        # one validation for the whole event: it is hot-path work
        return [
            ChatChunk.model_validate(
                {
                    "id": state.id or "chatcmpl-stream",
                    "created": obj.get("created") or state.created,
                    "model": state.model_name or state.model.id,
                    "choices": choices,
                    "usage": usage,
                    "system_fingerprint": obj.get("system_fingerprint"),
                    "provider": self.name,
                }
            )
        ]

    def check_stream_envelope(self, obj: Any, state: StreamState) -> None:
        """Raise the error a stream chunk carries in a provider envelope (none by default)."""

    # -- errors --------------------------------------------------------------------------------

    def error_from_body(self, response: HttpResponse, body: Any, model: ModelInfo | None) -> ModelbusError:
        message, code, kind = error_fields(body)
        message = message or response.text[:300].strip() or f"HTTP {response.status_code}"
        codes = {**OPENAI_ERROR_CODES, **self.error_codes}
        cls = (
            codes.get(code or "")
            or codes.get(kind or "")
            or classify_error(response.status_code, code, kind, message)
        )
        return cls(
            f"{self.display_name} error: {message}",
            provider=self.name,
            model=model.id if model else None,
            status_code=response.status_code,
            provider_code=code or kind,
            retry_after=parse_retry_after(response.headers),
            request_id=response.headers.get("x-request-id"),
            param=_param(body),
        )

    def normalize_error(self, response: HttpResponse, model: ModelInfo | None) -> ModelbusError:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        return self.error_from_body(response, body, model)

    # -- embeddings and health -----------------------------------------------------------------

    def translate_embedding_request(
        self, request: EmbeddingRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest | None:
        if not self.embeddings_path:
            return None
        body: dict[str, Any] = {"model": model.id, "input": request.input, "encoding_format": "float"}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.user is not None:
            body["user"] = request.user
        body.update(request.extra)
        return HttpRequest(
            "POST",
            join_url(base_url, self.embeddings_path),
            headers={"Content-Type": "application/json"},
            json=body,
        )

    def normalize_embedding_response(
        self, response: HttpResponse, request: EmbeddingRequest, model: ModelInfo
    ) -> EmbeddingResponse:
        data = response.json(provider=self.name)
        self.check_envelope(data, response, model)
        usage = data.get("usage") or {}
        return EmbeddingResponse(
            data=[
                Embedding(index=item.get("index", position), embedding=item["embedding"])
                for position, item in enumerate(data["data"])
            ],
            model=data.get("model") or model.id,
            usage=EmbeddingUsage(
                prompt_tokens=usage.get("prompt_tokens") or 0,
                total_tokens=usage.get("total_tokens") or usage.get("prompt_tokens") or 0,
            ),
            provider=self.name,
        )

    def health_response(self, response: HttpResponse) -> ModelbusError | None:
        try:
            data = json.loads(response.content)
        except ValueError:
            return None  # a non-JSON 2xx (some servers answer plain text) still proves reachability
        try:
            self.check_envelope(data, response, None)
        except ModelbusError as error:
            return error
        return None

    def health_request(self, settings: ProviderSettings, base_url: str) -> HttpRequest | None:
        if not self.models_path:
            return None
        return HttpRequest("GET", join_url(base_url, self.models_path))


def split_content(content: Any) -> tuple[str | None, str | None]:
    """(answer text, thinking text) of a message's or delta's ``content``: a string, or a list of content
    chunks -- text chunks, and thinking chunks ``{"type": "thinking", "thinking": str | [text chunks]}``
    (Mistral's reasoning models)."""
    if not isinstance(content, list):
        return content, None
    text: list[str] = []
    thinking: list[str] = []
    for chunk in content:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("type") == "thinking":
            inner = chunk.get("thinking")
            if isinstance(inner, str):
                thinking.append(inner)
            elif isinstance(inner, list):
                thinking.extend(part.get("text", "") for part in inner if isinstance(part, dict))
        elif isinstance(chunk.get("text"), str):
            text.append(chunk["text"])
    return "".join(text), "".join(thinking) or None


def _param(body: Any) -> str | None:
    """The request parameter an OpenAI-style error body blames (``error.param``), if any."""
    inner = body.get("error") if isinstance(body, dict) else None
    param = inner.get("param") if isinstance(inner, dict) else None
    return param if isinstance(param, str) else None
