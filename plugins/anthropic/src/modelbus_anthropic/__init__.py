"""modelbus provider plugin for Anthropic's Messages API (``POST /v1/messages``).

The Messages API is not OpenAI-compatible, so this plugin subclasses :class:`ProviderPlugin` directly:
requests are translated with :mod:`modelbus_anthropic.convert`, responses and the named-event SSE
stream are folded back into canonical types here.

Wire references (read through a mirror of platform.claude.com, see /work/research/anthropic.md):
https://platform.claude.com/docs/en/build-with-claude/working-with-messages,
https://platform.claude.com/docs/en/build-with-claude/streaming,
https://platform.claude.com/docs/en/agents-and-tools/tool-use/define-tools,
https://platform.claude.com/docs/en/api/errors,
https://platform.claude.com/docs/en/build-with-claude/effort,
https://platform.claude.com/docs/en/build-with-claude/thinking-troubleshooting,
https://platform.claude.com/docs/en/build-with-claude/structured-outputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

from modelbus.builtin import error_fields
from modelbus.context import StreamState
from modelbus.error_mapping import class_for_status, parse_retry_after
from modelbus.errors import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    ModelbusError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    UnsupportedFeatureError,
    UpstreamServerError,
)
from modelbus.http import HttpRequest, HttpResponse, join_url
from modelbus.providers.base import ProviderPlugin
from modelbus.sse import ServerSentEvent
from modelbus.types.chat import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    FinishReason,
    FunctionCall,
    FunctionCallDelta,
    NamedToolChoice,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
    ResponseMessage,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from modelbus.types.models import ModelInfo, ProviderSettings
from modelbus_anthropic.convert import (
    anthropic_to_canonical,
    canonical_to_anthropic,
    compact_system,
    request_from_anthropic,
    thinking_blocks,
    thinking_fields,
)

__all__ = [
    "ANTHROPIC_VERSION",
    "Anthropic",
    "ModelQuirks",
    "anthropic_to_canonical",
    "canonical_to_anthropic",
    "plugin",
    "request_from_anthropic",
    "thinking_blocks",
    "thinking_fields",
]

ANTHROPIC_VERSION = "2023-06-01"

# stop_reason -> finish_reason (SDK stop_reason.py; handling-stop-reasons page). Unknown values -> "stop".
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",  # server-tool loop paused: send the turn back as-is to continue
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# error.type -> typed error (https://platform.claude.com/docs/en/api/errors). Unknown types map by status.
ERROR_TYPES: dict[str, type[ModelbusError]] = {
    "authentication_error": AuthenticationError,
    "billing_error": QuotaExceededError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "request_too_large": BadRequestError,
    "rate_limit_error": RateLimitError,
    "api_error": UpstreamServerError,
    "timeout_error": RequestTimeoutError,
    "overloaded_error": OverloadedError,
}
# a 429 for a tier spend cap "has no retry-after header and keeps failing until access resumes";
# its message text is not documented, so this is a best guess (see README)
_SPEND_CAP = re.compile(r"spend|credit balance|billing|usage limit", re.IGNORECASE)

# reasoning_effort -> extended-thinking budget_tokens (models with thinking = "budget"). "none" sends no
# thinking; xhigh/max budgets are our choice (shrunk below max_tokens like the others).
THINKING_BUDGETS: dict[str, int] = {
    "minimal": 1024,
    "low": 4096,
    "medium": 16384,
    "high": 32768,
    "xhigh": 49152,
    "max": 57344,
}
MIN_THINKING_BUDGET = 1024
# reasoning_effort -> output_config.effort (models with thinking = "adaptive"; Anthropic's levels are
# low/medium/high/xhigh/max). "none" turns thinking off instead, where the model allows it.
ADAPTIVE_EFFORTS: dict[str, str] = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}

JSON_OBJECT_TOOL = "json_object"
JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."


@dataclass(frozen=True, slots=True)
class ModelQuirks:
    """Per-model protocol facts: a model row's ``quirks`` in models.toml (see the comments there) over
    these defaults."""

    thinking: Literal["budget", "adaptive"] = "adaptive"
    thinking_default: Literal["off", "on", "always"] = "off"
    forced_tool: bool = True
    native_json: bool = True
    prefill: bool = False


@dataclass(slots=True)
class _Plan:
    """How one request maps tools, JSON output and thinking onto the Messages API."""

    json_tool: str | None = None  # name of the synthetic tool that carries the JSON answer
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    extra_system: str | None = None
    max_tokens: int = 0


def _forcing(request: ChatRequest) -> bool:
    return request.tool_choice == "required" or isinstance(request.tool_choice, NamedToolChoice)


class Anthropic(ProviderPlugin):
    name = "anthropic"
    display_name = "Anthropic"
    api_key_env = ("ANTHROPIC_API_KEY",)
    regions = {"default": ("https://api.anthropic.com", "US")}
    docs_url = "https://platform.claude.com/docs/en/api/overview"
    auth_header = "x-api-key"
    auth_prefix = ""

    messages_path: ClassVar[str] = "/v1/messages"
    models_path: ClassVar[str] = "/v1/models"
    default_max_tokens: ClassVar[int] = 4096  # for rows without default_max_tokens (config extra rows)

    # -- data ----------------------------------------------------------------------------------

    @staticmethod
    def quirks(model: ModelInfo) -> ModelQuirks:
        """The protocol quirks of ``model``: its row's ``quirks`` over the defaults (rows added in config
        may set them too; unknown keys are ignored)."""
        known = {f.name for f in fields(ModelQuirks)}
        return ModelQuirks(**{key: value for key, value in model.quirks.items() if key in known})

    # -- request -------------------------------------------------------------------------------

    def headers(self, *, stream: bool = False) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
        }

    def json_tool_name(self, request: ChatRequest, model: ModelInfo) -> str | None:
        """The synthetic tool that carries a JSON answer for ``request``, if it uses one."""
        tool = self.json_tool(request, self.quirks(model))
        return tool["name"] if tool is not None else None

    @staticmethod
    def json_tool(request: ChatRequest, quirks: ModelQuirks) -> dict[str, Any] | None:
        """The synthetic tool whose forced call carries the JSON answer, when that is how ``request``
        gets JSON output: a JSON response_format, a model that allows forcing a tool, no thinking, and an
        object root (a tool's input is always an object). Part of :meth:`plan`, and all that the response
        side needs of it."""
        fmt = request.response_format
        if not isinstance(fmt, ResponseFormatJSONSchema | ResponseFormatJSONObject) or not quirks.forced_tool:
            return None
        if request.reasoning_effort not in (None, "none") or quirks.thinking_default == "always":
            return None  # thinking: forcing a tool is not allowed
        if isinstance(fmt, ResponseFormatJSONObject):
            return {
                "name": JSON_OBJECT_TOOL,
                "description": "Give your final answer by calling this tool: its input is the "
                "answer, as one JSON object.",
                "input_schema": {"type": "object"},
            }
        spec = fmt.json_schema
        if spec.schema_.get("type", "object") not in ("object", ["object"]):
            return None  # other root schemas need structured outputs
        tool: dict[str, Any] = {
            "name": spec.name,
            "description": spec.description
            or f"Give your final answer by calling this tool: its input is the {spec.name} "
            "object, as JSON matching the schema.",
            "input_schema": spec.schema_ or {"type": "object"},
        }
        if spec.strict:
            tool["strict"] = True
        return tool

    def plan(self, request: ChatRequest, model: ModelInfo, quirks: ModelQuirks | None = None) -> _Plan:
        """Decide tools, tool_choice, thinking, output_config and max_tokens for ``request`` (``quirks``:
        the model's, when the caller has them already)."""
        quirks = self.quirks(model) if quirks is None else quirks
        plan = _Plan()
        effort = request.reasoning_effort
        thinking_off = effort == "none"
        if thinking_off and quirks.thinking_default == "always":
            raise UnsupportedFeatureError(
                f"{model.full_id} always thinks: reasoning_effort 'none' cannot turn thinking off "
                "(use 'minimal' or 'low' for the least thinking)",
                param="reasoning_effort",
            )
        if thinking_off:
            effort = None  # below: no thinking asked for ("disabled" is sent where thinking is on by default)
        fmt = request.response_format
        caller_tools = [self._tool(tool.function) for tool in request.tools or ()]
        forced_by_caller = _forcing(request)

        # JSON output: a forced synthetic tool where forcing works, else structured outputs
        json_tool = self.json_tool(request, quirks)
        forced_json = json_tool is not None
        if json_tool is not None:
            if any(t["name"] == json_tool["name"] for t in caller_tools):
                raise BadRequestError(
                    f"a tool is named {json_tool['name']!r} like the response_format; Anthropic gets the "
                    "JSON answer through a tool of that name, so rename one of them",
                    param="response_format",
                )
            plan.json_tool = json_tool["name"]
            caller_tools.append(json_tool)
        elif isinstance(fmt, ResponseFormatJSONSchema) and quirks.native_json:
            plan.output_config = {"format": {"type": "json_schema", "schema": fmt.json_schema.schema_}}
        elif isinstance(fmt, ResponseFormatJSONObject):
            plan.extra_system = JSON_OBJECT_INSTRUCTION
        elif isinstance(fmt, ResponseFormatJSONSchema):
            raise UnsupportedFeatureError(
                f"{model.full_id} cannot carry this response_format json_schema: forcing a tool "
                "is not possible here (or the schema's root is not an object) and the model has "
                "no structured outputs",
                param="response_format",
            )

        # tool_choice
        if forced_by_caller and not quirks.forced_tool:
            raise UnsupportedFeatureError(
                f"{model.full_id} rejects forced tool use (tool_choice 'required' or a named tool); "
                "use 'auto' and say in the prompt when the tool applies",
                param="tool_choice",
            )
        if forced_by_caller and effort is not None and quirks.thinking_default == "off":
            # reasoning_effort would switch thinking on explicitly, and "tool_choice: any/tool are not
            # supported when extended thinking is enabled" (define-tools page)
            raise UnsupportedFeatureError(
                f"{model.full_id} does not allow forced tool use (tool_choice 'required' or a named tool) "
                "together with thinking (reasoning_effort)",
                param="tool_choice",
            )
        choice: dict[str, Any] | None = None
        if isinstance(request.tool_choice, NamedToolChoice):
            choice = {"type": "tool", "name": request.tool_choice.function.name}
        elif request.tool_choice == "required":
            choice = {"type": "any"}
        elif forced_json:
            # the answer comes through the synthetic tool, or through one of the caller's tools
            if request.tools and request.tool_choice != "none":
                choice = {"type": "any"}
            else:
                choice = {"type": "tool", "name": plan.json_tool}
        elif request.tool_choice == "none":
            choice = {"type": "none"} if caller_tools else None
        elif request.tool_choice == "auto":
            choice = {"type": "auto"}
        if request.parallel_tool_calls is False and caller_tools and (choice or {}).get("type") != "none":
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        plan.tools = caller_tools or None
        plan.tool_choice = choice

        # thinking and max_tokens
        max_tokens = request.max_tokens or model.default_max_tokens or self.default_max_tokens
        if effort is not None and quirks.thinking == "budget":
            budget = THINKING_BUDGETS[effort]
            if request.max_tokens is None:  # room for the answer on top of the thinking budget
                max_tokens = min(max_tokens + budget, model.max_output_tokens or max_tokens + budget)
            budget = min(budget, max_tokens - 1)
            if budget < MIN_THINKING_BUDGET:
                raise BadRequestError(
                    f"max_tokens={max_tokens} leaves no room for thinking: Anthropic's thinking budget is "
                    f"at least {MIN_THINKING_BUDGET} tokens and must be below max_tokens",
                    param="max_tokens",
                )
            plan.thinking = {"type": "enabled", "budget_tokens": budget}
        elif effort is not None:
            if quirks.thinking_default == "off":
                plan.thinking = {"type": "adaptive"}
            plan.output_config = {**(plan.output_config or {}), "effort": ADAPTIVE_EFFORTS[effort]}
        elif thinking_off and quirks.thinking_default == "on":
            plan.thinking = {"type": "disabled"}
        plan.max_tokens = max_tokens
        return plan

    @staticmethod
    def _tool(function: Any) -> dict[str, Any]:
        tool: dict[str, Any] = {"name": function.name}
        if function.description:
            tool["description"] = function.description
        tool["input_schema"] = function.parameters or {"type": "object", "properties": {}}
        if function.strict:
            tool["strict"] = True
        return tool

    def request_body(self, request: ChatRequest, model: ModelInfo) -> dict[str, Any]:
        """The JSON body of a Messages API request."""
        quirks = self.quirks(model)
        system, messages = canonical_to_anthropic(request.messages)
        if not messages:
            raise BadRequestError(
                "Anthropic needs at least one user or assistant message besides the system prompt",
                param="messages",
            )
        if messages[-1]["role"] == "assistant" and not quirks.prefill:
            raise UnsupportedFeatureError(
                f"{model.full_id} rejects a conversation that ends with an assistant message (prefill); "
                "end with a user message",
                param="messages",
            )
        plan = self.plan(request, model, quirks)
        if plan.extra_system:
            system.append({"type": "text", "text": plan.extra_system})
        body: dict[str, Any] = {"model": model.id, "max_tokens": plan.max_tokens}
        system_field = compact_system(system)
        if system_field is not None:
            body["system"] = system_field
        body["messages"] = messages
        if plan.tools:
            body["tools"] = plan.tools
        if plan.tool_choice:
            body["tool_choice"] = plan.tool_choice
        if plan.thinking:
            body["thinking"] = plan.thinking
        if plan.output_config:
            body["output_config"] = plan.output_config
        if request.stop:
            body["stop_sequences"] = request.stop
        if request.temperature is not None:
            body["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0..1
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.user is not None:
            body["metadata"] = {"user_id": request.user}
        if request.stream:
            body["stream"] = True
        body.update(request.extra)
        return body

    def translate_request(
        self, request: ChatRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest:
        return HttpRequest(
            "POST",
            join_url(base_url, self.messages_path),
            headers=self.headers(stream=request.stream),
            json=self.request_body(request, model),
            stream=request.stream,
        )

    def health_request(self, settings: ProviderSettings, base_url: str) -> HttpRequest:
        return HttpRequest(
            "GET", join_url(base_url, self.models_path), headers=self.headers(), params={"limit": "1"}
        )

    # -- response ------------------------------------------------------------------------------

    @staticmethod
    def finish_reason(native: str | None) -> FinishReason | None:
        if native is None:
            return None
        return STOP_REASONS.get(native, "stop")

    @staticmethod
    def parse_usage(raw: Mapping[str, Any] | None) -> Usage | None:
        """Anthropic usage in OpenAI's convention: the three input counts are disjoint, so
        prompt_tokens is their sum; cache reads and writes are reported (and priced) apart."""
        if not raw:
            return None
        fresh = raw.get("input_tokens") or 0
        written = raw.get("cache_creation_input_tokens") or 0
        read = raw.get("cache_read_input_tokens") or 0
        return Usage.of(
            fresh + written + read, raw.get("output_tokens") or 0, cached=read, cache_creation=written
        )

    def normalize_response(
        self, response: HttpResponse, request: ChatRequest, model: ModelInfo
    ) -> ChatResponse:
        data = response.json(provider=self.name)
        if isinstance(data, dict) and data.get("type") == "error":
            raise self.error_from_body(response.status_code, response.headers, data, model)
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise MalformedResponseError(
                "Anthropic response has no 'content' list",
                provider=self.name,
                status_code=response.status_code,
            )
        json_tool = self.json_tool_name(request, model)
        texts: list[str] = []
        thinking: list[dict[str, Any]] = []
        calls: list[ToolCall] = []
        answer: str | None = None
        for block in data["content"]:
            kind = block.get("type")
            if kind == "text":
                texts.append(block.get("text") or "")
            elif kind in ("thinking", "redacted_thinking"):
                thinking.append(block)
            elif kind == "tool_use":
                arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
                if json_tool is not None and block.get("name") == json_tool:
                    answer = arguments
                else:
                    calls.append(
                        ToolCall(
                            id=block.get("id") or f"toolu_{len(calls)}",
                            function=FunctionCall(name=block.get("name") or "", arguments=arguments),
                        )
                    )
            # server_tool_use, *_tool_result, fallback ...: no canonical slot
        reasoning, signature = thinking_fields(thinking)
        native = data.get("stop_reason")
        finish = self.finish_reason(native)
        if answer is not None:
            content: str | None = answer
            if finish == "tool_calls" and not calls:
                finish = "stop"
        else:
            content = "".join(texts) if texts or not calls else None
        return ChatResponse(
            id=data.get("id") or "msg-unknown",
            model=data.get("model") or model.id,
            choices=[
                Choice(
                    message=ResponseMessage(
                        content=content,
                        tool_calls=calls or None,
                        reasoning_content=reasoning,
                        reasoning_signature=signature,
                    ),
                    finish_reason=finish,
                    native_finish_reason=native,
                )
            ],
            usage=self.parse_usage(data.get("usage")),
            provider=self.name,
        )

    # -- stream --------------------------------------------------------------------------------

    def normalize_stream_event(self, event: ServerSentEvent, state: StreamState) -> list[ChatChunk]:
        obj = self.event_json(event)
        if obj is None:
            return []
        if not isinstance(obj, dict):
            raise MalformedResponseError("stream event is not a JSON object", provider=self.name)
        kind = obj.get("type") or event.event
        scratch = state.scratch
        if "blocks" not in scratch:
            scratch.update(
                blocks={},
                tools=0,
                thinking=[],
                json_tool=self.json_tool_name(state.request, state.model),
                usage={},
            )
        blocks: dict[int, dict[str, Any]] = scratch["blocks"]

        if kind == "message_start":
            message = obj.get("message") or {}
            state.id = message.get("id") or state.id
            state.model_name = message.get("model") or state.model_name
            scratch["usage"].update({k: v for k, v in (message.get("usage") or {}).items() if v is not None})
            return [state.chunk(role="assistant", content="")]
        if kind == "content_block_start":
            return self._block_start(int(obj.get("index", 0)), obj.get("content_block") or {}, state)
        if kind == "content_block_delta":
            block = blocks.get(int(obj.get("index", 0)), {"kind": "text"})
            return self._block_delta(block, obj.get("delta") or {}, state)
        if kind == "content_block_stop":
            block = blocks.get(int(obj.get("index", 0)))
            if block and block["kind"] == "thinking" and block["block"]["signature"]:
                return [state.chunk(reasoning_signature=block["block"]["signature"])]
            if block and block["kind"] in ("tool", "json") and not block["args"]:
                # no argument fragments arrived: the tool takes no input (or sent it whole at start)
                args = json.dumps(block["input"] or {}, ensure_ascii=False)
                if block["kind"] == "json":
                    return [state.chunk(content=args)]
                return [
                    state.chunk(
                        tool_calls=[
                            ToolCallDelta(index=block["tool"], function=FunctionCallDelta(arguments=args))
                        ]
                    )
                ]
            return []
        if kind == "message_delta":
            delta = obj.get("delta") or {}
            scratch["usage"].update({k: v for k, v in (obj.get("usage") or {}).items() if v is not None})
            native = delta.get("stop_reason")
            finish = self.finish_reason(native)
            if finish == "tool_calls" and scratch["tools"] == 0 and scratch.get("answered"):
                finish = "stop"  # the JSON answer came through the synthetic tool
            usage = self.parse_usage(scratch["usage"])
            thinking = scratch["thinking"]
            packed = None
            if len(thinking) > 1 or any(b["type"] == "redacted_thinking" for b in thinking):
                packed = thinking_fields(thinking)[1]  # every block, for an exact replay
            if finish is None and packed is None:
                return [state.chunk(usage=usage)] if usage else []
            return [
                state.chunk(
                    finish_reason=finish, native_finish_reason=native, usage=usage, reasoning_signature=packed
                )
            ]
        if kind == "message_stop":
            state.done = True
            return []
        if kind == "error":
            raise self.error_from_body(200, {}, obj, state.model)
        return []  # ping, and event types added later ("handle unknown event types gracefully")

    def _block_start(self, index: int, block: dict[str, Any], state: StreamState) -> list[ChatChunk]:
        scratch = state.scratch
        kind = block.get("type")
        if kind == "text":
            scratch["blocks"][index] = {"kind": "text"}
            return [state.chunk(content=block["text"])] if block.get("text") else []
        if kind == "thinking":
            record = {"type": "thinking", "thinking": block.get("thinking") or "", "signature": ""}
            scratch["thinking"].append(record)
            scratch["blocks"][index] = {"kind": "thinking", "block": record}
            out = []
            if block.get("thinking"):
                out.append(state.chunk(reasoning_content=block["thinking"]))
            record["signature"] = block.get("signature") or ""
            return out
        if kind == "redacted_thinking":
            scratch["thinking"].append(dict(block))
            scratch["blocks"][index] = {"kind": "other"}
            return []
        if kind == "tool_use":
            record = {"kind": "tool", "args": False, "input": block.get("input")}
            scratch["blocks"][index] = record
            if scratch["json_tool"] is not None and block.get("name") == scratch["json_tool"]:
                record["kind"] = "json"
                scratch["answered"] = True
                return []
            record["tool"] = scratch["tools"]
            scratch["tools"] += 1
            return [
                state.chunk(
                    tool_calls=[
                        ToolCallDelta(
                            index=record["tool"],
                            id=block.get("id"),
                            type="function",
                            function=FunctionCallDelta(name=block.get("name"), arguments=""),
                        )
                    ]
                )
            ]
        scratch["blocks"][index] = {"kind": "other"}  # redacted_thinking, server tools, fallback ...
        return []

    @staticmethod
    def _block_delta(block: dict[str, Any], delta: dict[str, Any], state: StreamState) -> list[ChatChunk]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [state.chunk(content=delta["text"])]
        if kind == "thinking_delta" and delta.get("thinking"):
            if "block" in block:
                block["block"]["thinking"] += delta["thinking"]
            return [state.chunk(reasoning_content=delta["thinking"])]
        if kind == "signature_delta" and delta.get("signature") and "block" in block:
            block["block"]["signature"] += delta["signature"]  # sent whole at content_block_stop
            return []
        if kind == "input_json_delta" and delta.get("partial_json") and block["kind"] in ("tool", "json"):
            block["args"] = True
            if block["kind"] == "json":
                return [state.chunk(content=delta["partial_json"])]
            return [
                state.chunk(
                    tool_calls=[
                        ToolCallDelta(
                            index=block["tool"], function=FunctionCallDelta(arguments=delta["partial_json"])
                        )
                    ]
                )
            ]
        return []

    # -- errors --------------------------------------------------------------------------------

    def error_from_body(
        self, status: int, headers: Mapping[str, str], body: Any, model: ModelInfo | None
    ) -> ModelbusError:
        """The typed error for an Anthropic error body ``{"type": "error", "error": {type, message}}``
        (``status`` 200 for an ``error`` event inside a stream)."""
        inner = body.get("error") if isinstance(body, dict) else None
        # read only inside Anthropic's envelope: other JSON (a proxy's) is mapped by status alone
        message, _code, kind = error_fields(body) if isinstance(inner, dict) else (None, None, None)
        message = message or f"HTTP {status}"
        cls = ERROR_TYPES.get(kind or "")
        if cls is RateLimitError and _SPEND_CAP.search(message) and parse_retry_after(headers) is None:
            cls = QuotaExceededError
        if cls is None:  # invalid_request_error, conflict_error, and types added later
            # inside a stream (HTTP 200) only a request error is the caller's fault
            fallback = 400 if kind == "invalid_request_error" else 500
            cls = class_for_status(status if status >= 400 else fallback, message)
        return cls(
            f"{self.display_name} {kind or 'error'}: {message}",
            provider=self.name,
            model=model.id if model else None,
            status_code=status if status >= 400 else None,
            provider_code=kind,
            retry_after=parse_retry_after(headers),
            request_id=headers.get("request-id")
            or (body.get("request_id") if isinstance(body, dict) else None),
        )

    def normalize_error(self, response: HttpResponse, model: ModelInfo | None) -> ModelbusError:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None  # e.g. Cloudflare's 413 page: mapped by status
        error = self.error_from_body(response.status_code, response.headers, body, model)
        if body is None or not isinstance(body, dict) or "error" not in body:
            text = response.text[:300].strip()
            error.message = f"{self.display_name} returned HTTP {response.status_code}" + (
                f": {text}" if text else ""
            )
            error.args = (error.message,)
        return error


plugin = Anthropic()
