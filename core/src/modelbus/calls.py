"""One attempt of a call against one deployment: the hook pipeline, without the I/O.

The sync and async clients (and the gateway) drive the same :class:`ChatCall` / :class:`EmbeddingCall`;
only how bytes move differs. Every failure leaves here as a typed, redacted
:class:`~modelbus.errors.ModelbusError`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal, TypeVar

from modelbus.context import StreamState
from modelbus.error_mapping import parse_retry_hint
from modelbus.errors import (
    BadRequestError,
    MalformedResponseError,
    ModelbusError,
    PluginError,
    UnsupportedFeatureError,
)
from modelbus.http import HttpRequest, HttpResponse
from modelbus.redaction import redact
from modelbus.runtime import Deployment, Runtime
from modelbus.types.chat import ChatRequest, ChatResponse, CostBreakdown, Usage, UserMessage
from modelbus.types.embeddings import EmbeddingRequest, EmbeddingResponse

T = TypeVar("T")
Compat = Literal["strict", "drop"]

# request fields that are sampling knobs: a model that lacks one may simply go without it in "drop" mode
DROPPABLE = (
    "temperature",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "n",
    "reasoning_effort",
    "parallel_tool_calls",
    "user",
)


class BaseCall:
    def __init__(self, runtime: Runtime, deployment: Deployment) -> None:
        self.runtime = runtime
        self.deployment = deployment
        self.provider = deployment.provider_name
        self.model = deployment.model
        self.settings = deployment.settings

    @property
    def hook(self) -> Any:
        return self.runtime.host.provider_hooks(self.provider)

    def redacted(self, error: ModelbusError) -> ModelbusError:
        """Stamp provider/model on ``error``, mask any secret in its message, and take a retry hint
        from the message ("try again in 1.1s") when the provider sent no Retry-After."""
        error.provider = error.provider or self.provider
        error.model = error.model or self.model.id
        if error.retryable and error.retry_after is None:
            error.retry_after = parse_retry_hint(error.message)
        error.message = redact(error.message, self.settings.secrets())
        error.args = (error.message,)
        return error

    def guarded(self, step: str, fn: Callable[[], T], *, malformed: bool = False) -> T:
        """Run one hook step; typed errors pass (redacted), plugin bugs become typed errors."""
        try:
            return fn()
        except ModelbusError as exc:
            raise self.redacted(exc) from None
        except Exception as exc:
            detail = redact(f"{type(exc).__name__}: {exc}", self.settings.secrets())
            if malformed:
                raise self.redacted(
                    MalformedResponseError(f"could not read the upstream response ({step}): {detail}")
                ) from exc
            raise self.redacted(
                PluginError(f"plugin for {self.provider!r} failed in {step}: {detail}")
            ) from exc

    def authenticate(self, http_request: HttpRequest) -> HttpRequest:
        return self.guarded(
            "authenticate",
            lambda: self.hook.modelbus_authenticate(
                provider=self.provider, http_request=http_request, settings=self.settings
            ),
        )

    def error(self, response: HttpResponse) -> ModelbusError:
        """The typed error for an upstream error response."""
        error = self.guarded(
            "normalize_error",
            lambda: self.hook.modelbus_normalize_error(
                provider=self.provider, response=response, model=self.model
            ),
            malformed=True,
        )
        if error.status_code is None:
            error.status_code = response.status_code
        return self.redacted(error)

    def price(self, usage: Usage) -> tuple[Decimal | None, CostBreakdown | None]:
        breakdown = self.guarded(
            "price_usage",
            lambda: self.hook.modelbus_price_usage(
                provider=self.provider, model=self.model, usage=usage, fx_rates=self.runtime.fx_rates
            ),
        )
        return (breakdown.total, breakdown) if breakdown is not None else (None, None)


class ChatCall(BaseCall):
    """A chat request bound to one deployment."""

    def __init__(
        self, runtime: Runtime, deployment: Deployment, request: ChatRequest, *, compat: Compat = "strict"
    ) -> None:
        super().__init__(runtime, deployment)
        self.dropped: list[str] = []
        self.request = self._adapt(request, compat)

    # -- capability check ----------------------------------------------------------------------

    def _adapt(self, request: ChatRequest, compat: Compat) -> ChatRequest:
        model = self.model
        name = model.full_id

        def unsupported(what: str, param: str | None = None) -> UnsupportedFeatureError:
            return UnsupportedFeatureError(
                f"{name} does not support {what}", provider=self.provider, model=model.id, param=param
            )

        if model.kind != "chat":
            raise unsupported("chat completions (it is an embedding model)", "model")
        if request.stream and not model.supports("streaming"):
            raise unsupported("streaming", "stream")
        if (request.tools or request.tool_choice not in (None, "none")) and not model.supports("tools"):
            raise unsupported("tools", "tools")
        if request.uses_images() and not model.supports("vision"):
            raise unsupported("image inputs", "messages")
        fmt = request.response_format
        if fmt is not None and fmt.type == "json_schema" and not model.supports("json_schema"):
            raise unsupported("response_format json_schema", "response_format")
        if (
            fmt is not None
            and fmt.type == "json_object"
            and not (model.supports("json_object") or model.supports("json_schema"))
        ):
            raise unsupported("response_format json_object", "response_format")
        if any(isinstance(m, UserMessage) and m.content == "" for m in request.messages[-1:]):
            raise BadRequestError("the last user message is empty", param="messages")

        updates: dict[str, Any] = {}
        unsupported_params = set(model.unsupported_params)
        if request.reasoning_effort is not None and not model.supports("reasoning"):
            unsupported_params.add("reasoning_effort")
        if request.parallel_tool_calls is not None and not model.supports("parallel_tool_calls"):
            unsupported_params.add("parallel_tool_calls")
        if request.n == 1:  # OpenAI's default: the same as not asking, whatever the model supports
            updates["n"] = None
        for param in DROPPABLE:
            if param in unsupported_params and updates.get(param, getattr(request, param)) is not None:
                if compat == "strict":
                    raise unsupported(f"the parameter {param!r} (drop it or use compat='drop')", param)
                updates[param] = None
                self.dropped.append(param)
        rejected_extra = sorted(key for key in request.extra if key in unsupported_params)
        if rejected_extra:  # provider-only parameters the model table says this model rejects
            if compat == "strict":
                raise unsupported(
                    f"the parameter {rejected_extra[0]!r} (drop it or use compat='drop')", rejected_extra[0]
                )
            updates["extra"] = {k: v for k, v in request.extra.items() if k not in unsupported_params}
            self.dropped.extend(rejected_extra)
        if request.max_tokens and model.max_output_tokens and request.max_tokens > model.max_output_tokens:
            if compat == "strict":
                raise BadRequestError(
                    f"max_tokens={request.max_tokens} exceeds {name}'s maximum output of "
                    f"{model.max_output_tokens} tokens",
                    provider=self.provider,
                    model=model.id,
                    param="max_tokens",
                )
            updates["max_tokens"] = model.max_output_tokens
            self.dropped.append("max_tokens(clamped)")
        return request.model_copy(update=updates) if updates else request

    # -- pipeline ------------------------------------------------------------------------------

    def http_request(self) -> HttpRequest:
        """Translate and authenticate."""
        http_request = self.guarded(
            "translate_request",
            lambda: self.hook.modelbus_translate_request(
                provider=self.provider,
                request=self.request,
                model=self.model,
                settings=self.settings,
                base_url=self.deployment.base_url,
            ),
        )
        if http_request is None:
            raise PluginError(f"no installed plugin translates requests for provider {self.provider!r}")
        return self.authenticate(http_request)

    def parse(self, response: HttpResponse) -> ChatResponse:
        """The priced canonical response for a complete upstream response (raises typed errors)."""
        if response.status_code >= 400:
            raise self.error(response)
        result: ChatResponse | None = self.guarded(
            "normalize_response",
            lambda: self.hook.modelbus_normalize_response(
                provider=self.provider, response=response, request=self.request, model=self.model
            ),
            malformed=True,
        )
        if result is None:
            raise PluginError(f"no installed plugin normalizes responses for provider {self.provider!r}")
        result.provider = self.provider
        if result.usage is None:
            from modelbus.tokens import estimate_completion_tokens, estimate_prompt_tokens

            completion, reasoning = estimate_completion_tokens(result)
            result.usage = Usage.of(
                estimate_prompt_tokens(self.request), completion, reasoning=reasoning, estimated=True
            )
        cost, breakdown = self.price(result.usage)
        if cost is not None or result.cost is None:  # keep a cost the provider reported itself
            result.cost, result.cost_breakdown = cost, breakdown
        return result

    def stream_state(self) -> StreamState:
        return StreamState(provider=self.provider, model=self.model, request=self.request)

    def normalize_event(self, event: Any, state: StreamState) -> list[Any]:
        chunks = self.guarded(
            "normalize_stream_event",
            lambda: self.hook.modelbus_normalize_stream_event(
                provider=self.provider, event=event, state=state
            ),
            malformed=True,
        )
        if chunks is None:
            raise PluginError(f"no installed plugin normalizes stream events for provider {self.provider!r}")
        return chunks


class EmbeddingCall(BaseCall):
    """An embeddings request bound to one deployment."""

    def __init__(self, runtime: Runtime, deployment: Deployment, request: EmbeddingRequest) -> None:
        super().__init__(runtime, deployment)
        if self.model.kind != "embedding":
            raise UnsupportedFeatureError(
                f"{self.model.full_id} is not an embedding model",
                provider=self.provider,
                model=self.model.id,
                param="model",
            )
        self.request = request

    def http_request(self) -> HttpRequest:
        http_request = self.guarded(
            "translate_embedding_request",
            lambda: self.hook.modelbus_translate_embedding_request(
                provider=self.provider,
                request=self.request,
                model=self.model,
                settings=self.settings,
                base_url=self.deployment.base_url,
            ),
        )
        if http_request is None:
            raise UnsupportedFeatureError(
                f"provider {self.provider!r} does not offer embeddings", provider=self.provider, param="model"
            )
        return self.authenticate(http_request)

    def parse(self, response: HttpResponse) -> EmbeddingResponse:
        if response.status_code >= 400:
            raise self.error(response)
        result: EmbeddingResponse | None = self.guarded(
            "normalize_embedding_response",
            lambda: self.hook.modelbus_normalize_embedding_response(
                provider=self.provider, response=response, request=self.request, model=self.model
            ),
            malformed=True,
        )
        if result is None:
            raise PluginError(f"no installed plugin normalizes embeddings for provider {self.provider!r}")
        result.provider = self.provider
        if len(result.data) != len(self.request.input):
            raise self.redacted(
                MalformedResponseError(
                    f"asked for {len(self.request.input)} embeddings, upstream returned {len(result.data)}"
                )
            )
        usage = Usage.of(result.usage.prompt_tokens, 0)
        result.cost, result.cost_breakdown = self.price(usage)
        return result
