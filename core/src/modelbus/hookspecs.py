"""The hooks a modelbus plugin can implement.

The data path of one call, and the hook that does each step::

    resolve the model id      (core registry, filled by ``modelbus_register_providers``)
    before_call               cross-cutting: cache lookup, guardrails       (first result wins)
    translate_request         canonical request -> HttpRequest              (first result wins)
    authenticate              add credentials to the HttpRequest            (first result wins)
    send                      core transport (``modelbus_register_transports`` adds URL schemes)
    normalize_response        HttpResponse -> ChatResponse                  (first result wins)
      or normalize_stream_event   each SSE event -> canonical chunks        (first result wins)
      or normalize_error      HttpResponse with status >= 400 -> error      (first result wins)
    price_usage               Usage -> CostBreakdown in USD                 (first result wins)
    after_call                cross-cutting: logging, metrics, cache fill   (every plugin)

Every provider hook receives ``provider`` (the provider's name) first. A plugin answers only for
the providers it registered and returns ``None`` for the others, so the first plugin that knows the
provider wins. Another plugin can take over one step for an existing provider with
``@hookimpl(tryfirst=True)``, or wrap it with ``@hookimpl(wrapper=True)``, without forking it.
The core registers trylast defaults for ``authenticate`` (bearer token), ``normalize_error`` (by
HTTP status), ``price_usage`` (the model table's prices) and ``classify_task`` (a heuristic).

Hooks are called with keyword arguments; an implementation may accept any subset of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import httpx

    from modelbus.context import CallContext, StreamState
    from modelbus.errors import ModelbusError
    from modelbus.http import HttpRequest, HttpResponse
    from modelbus.sse import ServerSentEvent
    from modelbus.types import (
        ChatChunk,
        ChatRequest,
        ChatResponse,
        CostBreakdown,
        EmbeddingRequest,
        EmbeddingResponse,
        ModelInfo,
        ProviderInfo,
        ProviderSettings,
        Usage,
    )

PROJECT = "modelbus"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ------------------------------------------------------------------------------ registration


@hookspec
def modelbus_register_providers(register: Callable[[ProviderInfo], None]) -> None:
    """Register providers and their model tables.

    Called once, when the plugin manager is first used. Call ``register(ProviderInfo(...))`` once per
    provider. Every plugin is called; registering a name that another plugin already registered is
    reported as a plugin error and the later registration is ignored.
    """


@hookspec
def modelbus_register_transports(
    register: Callable[
        [str, Callable[[], httpx.BaseTransport], Callable[[], httpx.AsyncBaseTransport]], None
    ],
) -> None:
    """Register an httpx transport pair for a URL scheme (e.g. ``local://`` for in-process models).

    Called once, when a client builds its connection pools. ``register(scheme, make_sync, make_async)``;
    every plugin is called.
    """


# ------------------------------------------------------------------------------ request side


@hookspec(firstresult=True)
def modelbus_translate_request(
    provider: str, request: ChatRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
) -> HttpRequest | None:
    """Translate a canonical chat request into the provider's HTTP request (without credentials).

    Called once per attempt, after the core checked ``request`` against ``model``'s capabilities.
    Return an :class:`~modelbus.http.HttpRequest` (with ``stream`` set when ``request.stream``), or
    ``None`` if ``provider`` is not yours. First result wins.
    """


@hookspec(firstresult=True)
def modelbus_translate_embedding_request(
    provider: str, request: EmbeddingRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
) -> HttpRequest | None:
    """Translate a canonical embeddings request into the provider's HTTP request.

    Called once per attempt. Return ``None`` if ``provider`` is not yours. First result wins.
    """


@hookspec(firstresult=True)
def modelbus_authenticate(
    provider: str, http_request: HttpRequest, settings: ProviderSettings
) -> HttpRequest | None:
    """Add credentials to a translated request: a bearer token, an ``x-api-key`` or
    ``x-goog-api-key`` header, a query key, or a signature over the final body.

    Called after translation so that signing schemes see the final request. Return the request
    (modified or new), or ``None`` if ``provider`` is not yours. Raise
    :class:`~modelbus.errors.MissingCredentialsError` when a required key is absent. The core's
    trylast default sends ``Authorization: Bearer <api_key>``. First result wins.
    """


# ------------------------------------------------------------------------------ response side


@hookspec(firstresult=True)
def modelbus_normalize_response(
    provider: str, response: HttpResponse, request: ChatRequest, model: ModelInfo
) -> ChatResponse | None:
    """Turn a successful (status < 400) non-streamed upstream response into a :class:`ChatResponse`.

    Usage must follow OpenAI's convention (prompt tokens include cached ones, completion tokens
    include reasoning ones); cost is filled in later by ``price_usage``. Raise
    :class:`~modelbus.errors.MalformedResponseError` for a body that breaks the protocol. Return
    ``None`` if ``provider`` is not yours. First result wins.
    """


@hookspec(firstresult=True)
def modelbus_normalize_stream_event(
    provider: str, event: ServerSentEvent, state: StreamState
) -> list[ChatChunk] | None:
    """Turn one server-sent event of a successful stream into zero or more canonical chunks.

    Called for every event in order. Set ``state.done`` at the provider's end-of-stream marker;
    put usage on the chunk that carries it (the core prices it). Raise a
    :class:`~modelbus.errors.ModelbusError` for an error event sent mid-stream. Return ``[]`` for
    events that carry nothing (pings), ``None`` if ``provider`` is not yours. First result wins.
    """


@hookspec(firstresult=True)
def modelbus_normalize_embedding_response(
    provider: str, response: HttpResponse, request: EmbeddingRequest, model: ModelInfo
) -> EmbeddingResponse | None:
    """Turn a successful embeddings response into an :class:`EmbeddingResponse`.

    Return ``None`` if ``provider`` is not yours. First result wins.
    """


@hookspec(firstresult=True)
def modelbus_normalize_error(
    provider: str, response: HttpResponse, model: ModelInfo | None
) -> ModelbusError | None:
    """Map an upstream error response (status >= 400, or a provider's error envelope) to a typed error.

    Return the error (the core raises it; do not raise here), or ``None`` if ``provider`` is not
    yours. Never put credentials in the message. The core's trylast default maps by HTTP status and
    reads ``Retry-After``. First result wins.
    """


# ------------------------------------------------------------------------------ money and health


@hookspec(firstresult=True)
def modelbus_price_usage(
    provider: str, model: ModelInfo, usage: Usage, fx_rates: Mapping[str, Decimal]
) -> CostBreakdown | None:
    """Price a usage record in USD.

    Called after every successful call (and at the end of every stream) with the final usage.
    ``fx_rates`` maps a currency to its USD rate (from config). The core's trylast default applies
    the model table's per-million prices: uncached input, cached input, cache writes and output
    (reasoning tokens are output). Return ``None`` to leave the call unpriced. First result wins.
    """


@hookspec(firstresult=True)
def modelbus_health_request(provider: str, settings: ProviderSettings, base_url: str) -> HttpRequest | None:
    """The cheapest request that proves the provider is reachable and the key works.

    Called by ``Client.health()`` and the scheduler's active probes. A 2xx answer means healthy;
    anything else is normalized with ``normalize_error``. Return ``None`` if ``provider`` is not
    yours (or it has no probe). First result wins.
    """


@hookspec(firstresult=True)
def modelbus_health_response(provider: str, response: HttpResponse) -> ModelbusError | None:
    """Judge a 2xx answer to the health probe whose body may still carry an error (error envelopes).

    Return the error (not raised), or ``None`` when the answer proves health or ``provider`` is not
    yours. First result wins.
    """


@hookspec(firstresult=True)
def modelbus_list_models_request(
    provider: str, settings: ProviderSettings, base_url: str
) -> HttpRequest | None:
    """A request that lists the models a server offers right now (for providers such as Ollama).

    Return ``None`` when the static model table is the whole truth. First result wins.
    """


@hookspec(firstresult=True)
def modelbus_parse_model_list(provider: str, response: HttpResponse) -> list[ModelInfo] | None:
    """Parse the answer to ``list_models_request`` into model table rows. First result wins."""


# ------------------------------------------------------------------------------ routing


@hookspec(firstresult=True)
def modelbus_classify_task(request: ChatRequest | EmbeddingRequest) -> str | None:
    """Name the task of a request: ``chat``, ``code``, ``reasoning``, ``summarize``, ``extract``, ``embed``.

    Called by the router when the request carries no ``metadata["task"]``. The core's trylast
    default is a cheap keyword heuristic; plugins may supply better classifiers. First result wins.
    """


# ------------------------------------------------------------------------------ cross-cutting


@hookspec(firstresult=True)
def modelbus_before_call(request: ChatRequest | EmbeddingRequest, context: CallContext) -> Any | None:
    """Runs before a call is routed.

    Return a response to answer without calling upstream (a cache hit), raise a
    :class:`~modelbus.errors.ModelbusError` to refuse the call (a guardrail), or return ``None`` to
    let it through. Not called for streamed requests' cache lookups. First result wins.
    """


@hookspec
def modelbus_after_call(
    request: ChatRequest | EmbeddingRequest,
    response: ChatResponse | EmbeddingResponse | None,
    error: ModelbusError | None,
    context: CallContext,
) -> None:
    """Runs after every call, with the final response (streams: the accumulated one) or the error.

    For logging, metrics, auditing and filling caches. Every plugin is called; return values are
    ignored and exceptions are reported, not raised to the caller. Do not log ``request``'s
    messages unless ``context.log_content`` is true.
    """
