"""``Client`` and ``AsyncClient``: one interface to every installed provider.

Both are cheap to construct: plugins, config and connection pools are set up on first use.
The data path of a call::

    resolve model -> plan (deployments) -> [ChatCall: translate, authenticate] -> send
        -> normalize (response | stream events | error) -> price -> response with usage, cost, route
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from modelbus.errors import BadRequestError, ModelbusError, RequestTimeoutError
from modelbus.retries import Deadline, RetryPolicy

# The modules below are imported where they are first needed, so that ``import modelbus; Client()``
# stays cheap: no pydantic, httpx or aiohttp until the first call (bench/startup.py measures it).
if TYPE_CHECKING:
    import httpx

    from modelbus.calls import Compat
    from modelbus.config import ModelbusConfig
    from modelbus.context import CallContext
    from modelbus.http import HttpResponse
    from modelbus.plugins import PluginRecord
    from modelbus.routing import AttemptLoop, RoutePlan
    from modelbus.runtime import Runtime
    from modelbus.streaming import AsyncStream, Stream
    from modelbus.transports import HttpPool
    from modelbus.types.chat import ChatChunk, ChatRequest, ChatResponse
    from modelbus.types.embeddings import EmbeddingRequest, EmbeddingResponse
    from modelbus.types.models import ModelInfo

logger = logging.getLogger("modelbus")

__all__ = ["AsyncClient", "Client", "HealthStatus"]


class HealthStatus:
    """The outcome of a provider health probe."""

    def __init__(
        self,
        provider: str,
        ok: bool,
        latency_ms: float | None,
        error: ModelbusError | None = None,
        detail: str = "",
    ) -> None:
        self.provider = provider
        self.ok = ok
        self.latency_ms = latency_ms
        self.error = error
        self.detail = detail or (str(error) if error else "ok")

    def __repr__(self) -> str:
        return f"HealthStatus(provider={self.provider!r}, ok={self.ok}, detail={self.detail!r})"


class _BaseClient:
    def __init__(
        self,
        *,
        config: ModelbusConfig | dict[str, Any] | str | Path | None = None,
        providers: dict[str, dict[str, Any]] | None = None,
        plugins: Sequence[object] = (),
        load_entrypoints: bool = True,
        max_retries: int | None = None,
        timeout: float | None = None,
        compat: Compat = "strict",
        transport: httpx.BaseTransport | None = None,
        async_transport: Callable[[], httpx.AsyncBaseTransport] | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        """
        Args:
            config: a config object, a dict in config.toml's shape, or a path; default: the usual file.
            providers: per-provider settings over the config, e.g. ``{"deepseek": {"api_key": ...}}``.
            plugins: plugin objects or modules to register in code (besides entry points).
            load_entrypoints: load plugins from the ``modelbus`` entry-point group.
            max_retries: retries per deployment on retryable errors (default from config: 2).
            timeout: total seconds per call, retries included (default from config: 600).
            compat: ``"strict"`` raises on parameters a model lacks; ``"drop"`` drops them.
            transport / async_transport: custom httpx transports (tests, proxies).
        """
        self._config_arg = config
        self._providers_arg = providers
        self._plugins_arg = list(plugins)
        self._load_entrypoints = load_entrypoints
        self._max_retries = max_retries
        self._timeout = timeout
        self.compat: Compat = compat
        self._transport = transport
        self._async_transport = async_transport
        self._runtime = runtime
        self._pool: HttpPool | None = None

    # -- lazy state -----------------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            from modelbus.config import ModelbusConfig
            from modelbus.plugins import PluginHost
            from modelbus.runtime import Runtime

            if isinstance(self._config_arg, ModelbusConfig):
                config = self._config_arg
            elif isinstance(self._config_arg, dict):
                config = ModelbusConfig.from_dict(self._config_arg)
            else:
                config = ModelbusConfig.load(self._config_arg)
            host = None
            if self._plugins_arg or not self._load_entrypoints:
                host = PluginHost(load_entrypoints=self._load_entrypoints, plugins=self._plugins_arg)
            self._runtime = Runtime(config=config, host=host, provider_overrides=self._providers_arg)
        return self._runtime

    @property
    def pool(self) -> HttpPool:
        if self._pool is None:
            from modelbus.transports import HttpPool

            self._pool = HttpPool(
                self.runtime.host,
                self.runtime.config.client,
                sync_transport=self._transport,
                async_transport=self._async_transport,
            )
        return self._pool

    def _policy(self) -> RetryPolicy:
        cfg = self.runtime.config.client
        return RetryPolicy(
            max_retries=cfg.max_retries if self._max_retries is None else self._max_retries,
            backoff_base=cfg.backoff_base,
            backoff_max=cfg.backoff_max,
            max_retry_after=cfg.max_retry_after,
        )

    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline(timeout or self._timeout or self.runtime.config.client.timeout.total)

    # -- models and plugins ---------------------------------------------------------------------

    def resolve(self, model: str | None) -> ModelInfo:
        """The model table row for a model id or alias (``None``: the default model)."""
        return self.runtime.registry.resolve(model)

    def models(self, pattern: str | None = None) -> list[ModelInfo]:
        """Installed models, optionally filtered by a glob such as ``'deepseek/*'``."""
        return self.runtime.registry.list(pattern)

    def plugins(self) -> list[PluginRecord]:
        """Every plugin found, loaded or not (see ``.error``)."""
        self.runtime.host.load()
        return list(self.runtime.host.records)

    def register_plugin(self, plugin: object, name: str | None = None) -> PluginRecord:
        """Register a plugin object or module in code."""
        record = self.runtime.host.register(plugin, name=name)
        self.runtime.invalidate()
        return record

    # -- request building -----------------------------------------------------------------------

    def _chat_request(
        self, model: str | None, messages: Any, stream: bool, params: dict[str, Any]
    ) -> ChatRequest:
        from modelbus.types.chat import ChatRequest
        from modelbus.validation import parse_model

        if messages is None:
            raise BadRequestError(
                "messages is required: a list of {role, content} dicts or a string", param="messages"
            )
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if model is None:
            model = self.runtime.registry.default_model_id()
        return parse_model(
            ChatRequest,
            {"model": model, "messages": messages, "stream": stream, **params},
            what="chat request",
        )

    def _context(self, request: ChatRequest | EmbeddingRequest) -> CallContext:
        from modelbus.context import CallContext

        metadata = dict(getattr(request, "metadata", None) or {})
        return CallContext(requested_model=request.model, metadata=metadata)

    def _plan(self, request: ChatRequest | EmbeddingRequest, context: CallContext | None = None) -> RoutePlan:
        from modelbus.routing import RoutePlan

        router = self.runtime.router
        if router is not None and router.handles(request.model):
            scope = str((context.metadata.get("key_id") if context is not None else None) or "")
            return router.plan(request, scope=scope)
        kind = "embedding" if type(request).__name__ == "EmbeddingRequest" else "chat"
        registry = self.runtime.registry
        model = registry.resolve(request.model, kind=kind)
        fallbacks = self.runtime.config.fallbacks
        chain = fallbacks.get(request.model) or fallbacks.get(model.full_id)
        if chain:
            deployments = [model, *(registry.resolve(name, kind=kind) for name in chain)]
            return RoutePlan.fallback_chain(request.model, [self.runtime.deployment(m) for m in deployments])
        return RoutePlan.direct(request.model, self.runtime.deployment(model))

    def _planned(self, request: ChatRequest | EmbeddingRequest, context: CallContext) -> RoutePlan:
        """:meth:`_plan`, with a refusal (no route, unknown model) reported to the after-call hooks."""
        try:
            return self._plan(request, context)
        except ModelbusError as error:
            self._after_call(request, None, error, context)
            raise

    def _before_call(self, request: ChatRequest | EmbeddingRequest, context: CallContext) -> Any:
        return self.runtime.hook.modelbus_before_call(request=request, context=context)

    def _after_call(
        self, request: Any, response: Any, error: ModelbusError | None, context: CallContext
    ) -> None:
        # each observer on its own: one that raises must never break the call or the other observers
        failures = self.runtime.host.call_isolated(
            "modelbus_after_call", request=request, response=response, error=error, context=context
        )
        for plugin, exc in failures:
            logger.error(
                "after_call hook of plugin %s failed (request %s): %s: %s",
                plugin,
                context.request_id,
                type(exc).__name__,
                exc,
            )

    def _provider_request(self, provider: str, hook: str, deployment: Any = None) -> tuple[Any, Any]:
        """(authenticated request or None, call) for a provider-level hook (health, model listing), for
        the provider's default deployment or the ``deployment`` given (another key or region)."""
        from modelbus.calls import BaseCall

        deployment = deployment or self.runtime.provider_deployment(provider)
        call = BaseCall(self.runtime, deployment)
        request = getattr(self.runtime.hook, hook)(
            provider=provider, settings=deployment.settings, base_url=deployment.base_url
        )
        return (call.authenticate(request) if request is not None else None), call

    def _parse_model_list(self, provider: str, call: Any, http: HttpResponse) -> list[ModelInfo]:
        if http.status_code >= 400:
            raise call.error(http)
        models = call.guarded(
            "parse_model_list",
            lambda: self.runtime.hook.modelbus_parse_model_list(provider=provider, response=http),
            malformed=True,
        )
        models = list(models or [])
        self.runtime.registry.add_live(models)
        return models


class Client(_BaseClient):
    """The synchronous client. Use it as a context manager or call :meth:`close`."""

    @overload
    def chat(
        self,
        model: str | None = ...,
        messages: Any = ...,
        *,
        stream: Literal[False] = ...,
        timeout: float | None = ...,
        **params: Any,
    ) -> ChatResponse: ...
    @overload
    def chat(
        self,
        model: str | None = ...,
        messages: Any = ...,
        *,
        stream: Literal[True],
        timeout: float | None = ...,
        **params: Any,
    ) -> Stream: ...

    def chat(
        self,
        model: str | None = None,
        messages: Any = None,
        *,
        stream: bool = False,
        timeout: float | None = None,
        **params: Any,
    ) -> ChatResponse | Stream:
        """A chat completion; with ``stream=True``, a :class:`Stream`.

        ``params`` are :class:`~modelbus.types.ChatRequest` fields (``tools``, ``temperature``,
        ``max_tokens``, ``extra`` ...)."""
        request = self._chat_request(model, messages, stream, params)
        return self.send_chat(request, timeout=timeout)

    def send_chat(
        self, request: ChatRequest, *, timeout: float | None = None, context: CallContext | None = None
    ) -> ChatResponse | Stream:
        """Send an already-built :class:`ChatRequest` (``request.stream`` picks the return type)."""
        from modelbus.routing import AttemptLoop
        from modelbus.streaming import Stream

        stream = request.stream
        context = context or self._context(request)
        if not stream:
            cached = self._before_call(request, context)
            if cached is not None:
                return cached
        plan = self._planned(request, context)
        loop = AttemptLoop(plan, self._policy(), self._deadline(timeout))
        if stream:
            result = Stream(lambda s: self._stream(s, request, loop, context))
            result.route = plan.route
            result._prime()
            return result
        try:
            response = self._complete(request, loop)
        except ModelbusError as error:
            self._after_call(request, None, error, context)
            raise
        response.route = plan.route
        self._after_call(request, response, None, context)
        return response

    def _complete(self, request: ChatRequest, loop: AttemptLoop) -> ChatResponse:
        from modelbus.calls import ChatCall

        while True:
            loop.begin()
            try:
                call = ChatCall(self.runtime, loop.deployment, request, compat=self.compat)
                loop.plan.route.dropped_params = call.dropped
                http = self.pool.send(call.http_request(), provider=call.provider, read=_read(loop))
                response = call.parse(http)
                loop.succeeded()
                return response
            except ModelbusError as error:
                delay = loop.failed(error)
                if delay is None:
                    raise
                time.sleep(delay)

    def _stream(
        self, stream: Stream, request: ChatRequest, loop: AttemptLoop, context: CallContext
    ) -> Iterator[ChatChunk]:
        from modelbus.calls import ChatCall
        from modelbus.streaming import StreamProcessor

        response_error: ModelbusError | None = None
        try:
            while True:
                loop.begin()
                held: list[ChatChunk] = []  # chunks before the first token: failover stays invisible
                try:
                    call = ChatCall(self.runtime, loop.deployment, request, compat=self.compat)
                    loop.plan.route.dropped_params = call.dropped
                    upstream = self.pool.open(
                        call.http_request(), provider=call.provider, read=_read(loop), deadline=loop.deadline
                    )
                    try:
                        if upstream.status_code >= 400:
                            raise call.error(upstream.read())
                        processor = stream.processor = StreamProcessor(call)
                        if not processor.is_event_stream(upstream.headers):
                            tail = processor.complete_from(upstream.read())
                        else:
                            for data in upstream.iter_bytes():
                                for chunk in processor.feed(data):
                                    if processor.first_token_at is None:
                                        held.append(chunk)
                                        continue
                                    yield from held
                                    held.clear()
                                    yield chunk
                            tail = processor.finish()
                    finally:
                        upstream.close()
                    loop.succeeded(processor.ttft)
                    yield from held
                    yield from tail
                    return
                except ModelbusError as error:
                    if stream.processor is not None and stream.processor.first_token_at is not None:
                        loop.ended_mid_stream(error)
                        raise  # the caller has tokens: end the stream with the error
                    delay = loop.failed(error)
                    if delay is None:
                        raise
                    stream.processor = None
                    time.sleep(delay)
        except ModelbusError as error:
            response_error = error
            raise
        finally:
            if not sys.is_finalizing():  # a stream left open at interpreter exit: nothing to report to
                self._after_call(request, stream.response, response_error, context)

    def embed(
        self,
        model: str | None = None,
        input: str | list[str] | None = None,
        *,
        timeout: float | None = None,
        **params: Any,
    ) -> EmbeddingResponse:
        """Embeddings for one text or a list of texts."""
        from modelbus.types.embeddings import EmbeddingRequest
        from modelbus.validation import parse_model

        request = parse_model(
            EmbeddingRequest, {"model": model or "", "input": input, **params}, what="embeddings request"
        )
        return self.send_embeddings(request, timeout=timeout)

    def send_embeddings(
        self, request: EmbeddingRequest, *, timeout: float | None = None, context: CallContext | None = None
    ) -> EmbeddingResponse:
        """Send an already-built :class:`EmbeddingRequest`."""
        from modelbus.calls import EmbeddingCall
        from modelbus.routing import AttemptLoop

        context = context or self._context(request)
        cached = self._before_call(request, context)
        if cached is not None:
            return cached
        plan = self._planned(request, context)
        loop = AttemptLoop(plan, self._policy(), self._deadline(timeout))
        try:
            while True:
                loop.begin()
                try:
                    call = EmbeddingCall(self.runtime, loop.deployment, request)
                    response = call.parse(self.pool.send(call.http_request(), provider=call.provider))
                    loop.succeeded()
                    break
                except ModelbusError as error:
                    delay = loop.failed(error)
                    if delay is None:
                        raise
                    time.sleep(delay)
        except ModelbusError as error:
            self._after_call(request, None, error, context)
            raise
        response.route = plan.route
        self._after_call(request, response, None, context)
        return response

    def health(self, provider: str, deployment: Any = None) -> HealthStatus:
        """Probe a provider (or one of its deployments) with its cheapest authenticated request.

        Never raises for the probe itself: a failure is reported in the returned status."""
        start = time.monotonic()
        try:
            request, call = self._provider_request(provider, "modelbus_health_request", deployment)
            if request is None:
                return HealthStatus(provider, True, None, detail="no health probe; assumed healthy")
            http = self.pool.send(request, provider=provider)
            if http.status_code >= 400:
                raise call.error(http)
            hidden = self.runtime.hook.modelbus_health_response(provider=provider, response=http)
            if hidden is not None:
                raise call.redacted(hidden)
        except ModelbusError as error:
            if isinstance(error, BadRequestError) and error.param == "provider":
                raise
            return HealthStatus(provider, False, (time.monotonic() - start) * 1000, error)
        return HealthStatus(provider, True, (time.monotonic() - start) * 1000)

    def list_models(self, provider: str) -> list[ModelInfo]:
        """The models a provider's server offers right now (Ollama...); merged into :meth:`models`.

        Providers whose static table is the whole truth return ``[]``.
        """
        request, call = self._provider_request(provider, "modelbus_list_models_request")
        if request is None:
            return []
        return self._parse_model_list(provider, call, self.pool.send(request, provider=provider))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_BaseClient):
    """The asynchronous twin of :class:`Client` (httpx API over aiohttp's connection pool)."""

    @overload
    async def chat(
        self,
        model: str | None = ...,
        messages: Any = ...,
        *,
        stream: Literal[False] = ...,
        timeout: float | None = ...,
        **params: Any,
    ) -> ChatResponse: ...
    @overload
    async def chat(
        self,
        model: str | None = ...,
        messages: Any = ...,
        *,
        stream: Literal[True],
        timeout: float | None = ...,
        **params: Any,
    ) -> AsyncStream: ...

    async def chat(
        self,
        model: str | None = None,
        messages: Any = None,
        *,
        stream: bool = False,
        timeout: float | None = None,
        **params: Any,
    ) -> ChatResponse | AsyncStream:
        request = self._chat_request(model, messages, stream, params)
        return await self.send_chat(request, timeout=timeout)

    async def send_chat(
        self, request: ChatRequest, *, timeout: float | None = None, context: CallContext | None = None
    ) -> ChatResponse | AsyncStream:
        """Send an already-built :class:`ChatRequest` (``request.stream`` picks the return type)."""
        from modelbus.routing import AttemptLoop
        from modelbus.streaming import AsyncStream

        stream = request.stream
        context = context or self._context(request)
        if not stream:
            cached = self._before_call(request, context)
            if cached is not None:
                return cached
        plan = self._planned(request, context)
        loop = AttemptLoop(plan, self._policy(), self._deadline(timeout))
        if stream:
            result = AsyncStream(lambda s: self._stream(s, request, loop, context))
            result.route = plan.route
            await result._prime()
            return result
        try:
            response = await self._complete(request, loop)
        except ModelbusError as error:
            self._after_call(request, None, error, context)
            raise
        response.route = plan.route
        self._after_call(request, response, None, context)
        return response

    async def _complete(self, request: ChatRequest, loop: AttemptLoop) -> ChatResponse:
        import asyncio

        from modelbus.calls import ChatCall

        while True:
            loop.begin()
            try:
                call = ChatCall(self.runtime, loop.deployment, request, compat=self.compat)
                loop.plan.route.dropped_params = call.dropped
                http = await self.pool.asend(call.http_request(), provider=call.provider, read=_read(loop))
                response = call.parse(http)
                loop.succeeded()
                return response
            except ModelbusError as error:
                delay = loop.failed(error)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    async def _stream(
        self, stream: AsyncStream, request: ChatRequest, loop: AttemptLoop, context: CallContext
    ) -> AsyncIterator[ChatChunk]:
        import asyncio

        from modelbus.calls import ChatCall
        from modelbus.streaming import StreamProcessor

        response_error: ModelbusError | None = None
        try:
            while True:
                loop.begin()
                held: list[ChatChunk] = []
                try:
                    call = ChatCall(self.runtime, loop.deployment, request, compat=self.compat)
                    loop.plan.route.dropped_params = call.dropped
                    upstream = await self.pool.aopen(
                        call.http_request(), provider=call.provider, read=_read(loop), deadline=loop.deadline
                    )
                    try:
                        if upstream.status_code >= 400:
                            raise call.error(await upstream.read())
                        processor = stream.processor = StreamProcessor(call)
                        if not processor.is_event_stream(upstream.headers):
                            tail = processor.complete_from(await upstream.read())
                        else:
                            async for data in upstream.iter_bytes():
                                for chunk in processor.feed(data):
                                    if processor.first_token_at is None:
                                        held.append(chunk)
                                        continue
                                    for early in held:
                                        yield early
                                    held.clear()
                                    yield chunk
                            tail = processor.finish()
                    finally:
                        await upstream.close()
                    loop.succeeded(processor.ttft)
                    for chunk in [*held, *tail]:
                        yield chunk
                    return
                except ModelbusError as error:
                    if stream.processor is not None and stream.processor.first_token_at is not None:
                        loop.ended_mid_stream(error)
                        raise
                    delay = loop.failed(error)
                    if delay is None:
                        raise
                    stream.processor = None
                    await asyncio.sleep(delay)
        except ModelbusError as error:
            response_error = error
            raise
        finally:
            if not sys.is_finalizing():  # a stream left open at interpreter exit: nothing to report to
                self._after_call(request, stream.response, response_error, context)

    async def embed(
        self,
        model: str | None = None,
        input: str | list[str] | None = None,
        *,
        timeout: float | None = None,
        **params: Any,
    ) -> EmbeddingResponse:
        from modelbus.types.embeddings import EmbeddingRequest
        from modelbus.validation import parse_model

        request = parse_model(
            EmbeddingRequest, {"model": model or "", "input": input, **params}, what="embeddings request"
        )
        return await self.send_embeddings(request, timeout=timeout)

    async def send_embeddings(
        self, request: EmbeddingRequest, *, timeout: float | None = None, context: CallContext | None = None
    ) -> EmbeddingResponse:
        import asyncio

        from modelbus.calls import EmbeddingCall
        from modelbus.routing import AttemptLoop

        context = context or self._context(request)
        cached = self._before_call(request, context)
        if cached is not None:
            return cached
        plan = self._planned(request, context)
        loop = AttemptLoop(plan, self._policy(), self._deadline(timeout))
        try:
            while True:
                loop.begin()
                try:
                    call = EmbeddingCall(self.runtime, loop.deployment, request)
                    response = call.parse(await self.pool.asend(call.http_request(), provider=call.provider))
                    loop.succeeded()
                    break
                except ModelbusError as error:
                    delay = loop.failed(error)
                    if delay is None:
                        raise
                    await asyncio.sleep(delay)
        except ModelbusError as error:
            self._after_call(request, None, error, context)
            raise
        response.route = plan.route
        self._after_call(request, response, None, context)
        return response

    async def health(self, provider: str, deployment: Any = None) -> HealthStatus:
        """Probe a provider (or one of its deployments) with its cheapest authenticated request."""
        start = time.monotonic()
        try:
            request, call = self._provider_request(provider, "modelbus_health_request", deployment)
            if request is None:
                return HealthStatus(provider, True, None, detail="no health probe; assumed healthy")
            http = await self.pool.asend(request, provider=provider)
            if http.status_code >= 400:
                raise call.error(http)
            hidden = self.runtime.hook.modelbus_health_response(provider=provider, response=http)
            if hidden is not None:
                raise call.redacted(hidden)
        except ModelbusError as error:
            if isinstance(error, BadRequestError) and error.param == "provider":
                raise
            return HealthStatus(provider, False, (time.monotonic() - start) * 1000, error)
        return HealthStatus(provider, True, (time.monotonic() - start) * 1000)

    async def list_models(self, provider: str) -> list[ModelInfo]:
        request, call = self._provider_request(provider, "modelbus_list_models_request")
        if request is None:
            return []
        return self._parse_model_list(provider, call, await self.pool.asend(request, provider=provider))

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# -- byte pumps (the only I/O the two twins do differently) ------------------------------------


def _read(loop: AttemptLoop) -> float | None:
    """The read timeout for this attempt: never past the call's deadline."""
    remaining = loop.deadline.remaining()
    if remaining <= 0:
        raise RequestTimeoutError(f"call exceeded its total timeout of {loop.deadline.seconds:g}s")
    return remaining
