"""What the gateway does for one request, from key to ledger row.

    authenticate key -> validate body -> model allowed? -> rate limits -> reserve worst-case cost
      -> ledger row (pending) -> upstream through modelbus.AsyncClient (retries, fallbacks, metering)
      -> settle: ledger row + wallet debit, durable before the last byte goes out -> metrics, log, span

Every failure ends as OpenAI's error body with the right status; every request that got past
authentication is in the ledger exactly once, including the ones refused at admission (bad body, model
not allowed, rate limit, budget, wallet: status ``refused``). Requests without a valid key are counted in
the metrics and the log, not the ledger: there is nobody to bill, and a row each would let anyone grow
the database.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import ValidationError

from modelbus.client import AsyncClient
from modelbus.context import CallContext, new_request_id
from modelbus.errors import (
    AuthenticationError,
    BadRequestError,
    ModelbusError,
    PermissionDeniedError,
)
from modelbus.gateway.admin_fields import PERIODS
from modelbus.gateway.billing import worst_case_cost
from modelbus.gateway.errors import AdminAuthError, InvalidKeyError, ModelNotAllowedError
from modelbus.gateway.keys import KeyRecord, TeamRecord, bearer_token, secret_matches, split_key
from modelbus.gateway.logs import ACCESS
from modelbus.gateway.metrics import Metrics
from modelbus.gateway.settings import GatewaySettings
from modelbus.gateway.state import Budget, Reservation, SharedState, bucket_key, period_start
from modelbus.gateway.store import LedgerWriter, Store
from modelbus.gateway.telemetry import Telemetry
from modelbus.streaming import AsyncStream
from modelbus.tokens import estimate_prompt_tokens, estimate_tokens
from modelbus.types.chat import ChatRequest, ChatResponse, Usage
from modelbus.types.embeddings import EmbeddingRequest, EmbeddingResponse
from modelbus.types.models import ModelInfo
from modelbus.validation import describe_validation_error

logger = logging.getLogger("modelbus.gateway")
FORBIDDEN_BODY_KEYS = frozenset({"api_base", "base_url", "api_key", "organization", "custom_llm_provider"})
KEY_CACHE_SECONDS = 5.0  # CLI revocations reach a running gateway within this time


@dataclass
class Caller:
    key: KeyRecord
    team: TeamRecord | None


@dataclass
class Outcome:
    """What a finished request settles with."""

    status: str
    http_status: int
    usage: Usage | None = None
    cost: Decimal = Decimal(0)
    response_model: str | None = None
    error: ModelbusError | None = None
    ttft: float | None = None
    route: Any = None


@dataclass
class Job:
    """One request in flight."""

    request_id: str
    caller: Caller
    endpoint: str
    request: ChatRequest | EmbeddingRequest
    model: ModelInfo
    reservation: Reservation
    virtual: bool = False  # a router model: ``model`` only sized the reservation
    expected_tokens: int = 0  # counted against TPM limits at admission, corrected at settlement
    log_content: bool = False  # prompt and completion text go to the access log
    completion_text: str | None = None
    started: float = field(default_factory=time.monotonic)
    span: Any = None

    @property
    def scopes(self) -> list[str]:
        scopes = [f"key:{self.caller.key.key_id}"]
        if self.caller.team is not None:
            scopes.append(f"team:{self.caller.team.name}")
        return scopes


ROUTING_HEADERS = {
    "x-modelbus-task": "task",
    "x-modelbus-session": "session_id",
    "x-modelbus-min-quality-tier": "min_quality_tier",
    "x-modelbus-max-input-price": "max_input_price",
    "x-modelbus-max-output-price": "max_output_price",
    "x-modelbus-require": "require",
    "x-modelbus-providers-allow": "providers_allow",
    "x-modelbus-providers-deny": "providers_deny",
    "x-modelbus-regions-allow": "regions_allow",
    "x-modelbus-regions-deny": "regions_deny",
}


def routing_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """Routing hints sent as ``x-modelbus-*`` headers, as the request metadata keys the router reads.
    ``headers`` has lower-case names (ASGI, Starlette); one pass over them, not a lookup per hint."""
    hints = ROUTING_HEADERS
    return {hints[name]: value for name, value in headers.items() if value and name in hints}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


def error_body(error: ModelbusError) -> dict[str, Any]:
    return error.to_openai_error()


def http_status_for(error: ModelbusError) -> int:
    """The status the caller sees. Upstream credential failures are the gateway's problem: 502."""
    own = isinstance(error, InvalidKeyError | AdminAuthError | ModelNotAllowedError)
    if isinstance(error, AuthenticationError | PermissionDeniedError) and not own:
        return 502
    return error.http_status


class GatewayService:
    def __init__(
        self,
        settings: GatewaySettings,
        client: AsyncClient,
        store: Store,
        writer: LedgerWriter,
        state: SharedState,
        metrics: Metrics,
        telemetry: Telemetry,
    ) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.writer = writer
        self.state = state
        self.metrics = metrics
        self.telemetry = telemetry
        self._keys: dict[str, tuple[float, KeyRecord | None]] = {}
        self._teams: dict[str, tuple[float, TeamRecord | None]] = {}
        self.in_flight = 0

    # -- start-up ----------------------------------------------------------------------------------

    def load_state(self) -> int:
        """Reconcile what a crash left behind, then rebuild wallet and budget counters from the DB."""
        interrupted = self.store.reconcile_pending()
        for team, balance in self.store.wallets().items():
            self.state.set_wallet(team, balance)
        for period in PERIODS:
            since = period_start(period)
            for column, prefix in (("key", "key"), ("team", "team")):
                for scope_id, spent in self.store.spend_since(column, since).items():
                    self.state.set_spend(bucket_key(f"{prefix}:{scope_id}", period), spent)
        return interrupted

    def forget_key(self, key_id: str) -> None:
        self._keys.pop(key_id, None)

    def forget_team(self, name: str) -> None:
        self._teams.pop(name, None)

    # -- identity ----------------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Caller:
        token = bearer_token(authorization)
        if token is None:
            raise InvalidKeyError("missing API key: send 'Authorization: Bearer mb-...'")
        parts = split_key(token)
        if parts is None:
            raise InvalidKeyError("malformed API key: modelbus keys look like 'mb-<id>-<secret>'")
        key_id, secret = parts
        record = await self._cached(self._keys, key_id, self.store.get_key)
        if record is None or not secret_matches(secret, record.secret_hash):
            raise InvalidKeyError("invalid API key")
        now = datetime.now(UTC)
        if record.revoked_at is not None:
            raise InvalidKeyError("this API key was revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise InvalidKeyError("this API key has expired")
        team = await self._cached(self._teams, record.team, self.store.get_team) if record.team else None
        return Caller(record, team)

    async def _cached(self, cache: dict[str, Any], key: str, load: Any) -> Any:
        """``load(key)`` (in a thread), cached for :data:`KEY_CACHE_SECONDS`. Callers that miss while a
        load is running wait for that load instead of starting their own: when an entry expires under
        load, one query refreshes it, not one per request in flight."""
        hit = cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            value = hit[1]
            return await asyncio.shield(value) if isinstance(value, asyncio.Future) else value
        task = asyncio.ensure_future(asyncio.to_thread(load, key))
        entry = (float("inf"), task)
        cache[key] = entry

        def loaded(_: asyncio.Future[Any]) -> None:
            if cache.get(key) is not entry:  # forgotten (revoked, changed) meanwhile: not cached
                return
            if task.cancelled() or task.exception() is not None:
                del cache[key]  # the next caller tries again
            else:
                cache[key] = (time.monotonic() + KEY_CACHE_SECONDS, task.result())

        task.add_done_callback(loaded)
        return await asyncio.shield(task)  # a caller that goes away does not cancel the others' load

    @staticmethod
    def allowed(caller: Caller, model_id: str) -> bool:
        """Both the key's and the team's model patterns (when set) must admit ``model_id``."""
        for patterns in (caller.key.models, caller.team.models if caller.team else None):
            if patterns and not any(fnmatch.fnmatchcase(model_id, pattern) for pattern in patterns):
                return False
        return True

    def visible_models(self, caller: Caller) -> list[ModelInfo]:
        return [model for model in self.client.models() if self.allowed(caller, model.full_id)]

    def visible_virtual_models(self, caller: Caller) -> list[str]:
        router = self.client.runtime.router
        if router is None:
            return []
        return [name for name in sorted(router.config.models) if self.allowed(caller, name)]

    # -- admission -----------------------------------------------------------------------------------

    def _parse(self, body: Any, kind: str) -> ChatRequest | EmbeddingRequest:
        if not isinstance(body, dict):
            raise BadRequestError("the request body must be a JSON object")
        forbidden = sorted(FORBIDDEN_BODY_KEYS & set(body))
        if forbidden:
            raise BadRequestError(
                f"{', '.join(forbidden)} cannot be set per request: upstreams are configured on the gateway",
                param=forbidden[0],
            )
        model: type[ChatRequest] | type[EmbeddingRequest] = (
            ChatRequest if kind == "chat" else EmbeddingRequest
        )
        try:
            return model.from_openai(body)
        except ValidationError as exc:
            message, param = describe_validation_error(exc)
            raise BadRequestError(f"invalid {kind} request: {message}", param=param) from None

    def admit(
        self, caller: Caller, body: Any, kind: str, body_bytes: int, headers: Mapping[str, str] | None = None
    ) -> Job:
        """Validate, authorize, rate-limit and reserve; raises typed errors (nothing reserved on error)."""
        request = self._parse(body, kind)
        routing = routing_metadata(headers) if headers is not None else None
        if routing and isinstance(request, ChatRequest):
            request.metadata = {**(request.metadata or {}), **routing}
        kind_name = "embedding" if kind == "embeddings" else "chat"
        router = self.client.runtime.router
        virtual = router is not None and router.handles(request.model)

        def cost_of(model: ModelInfo) -> Decimal:
            return worst_case_cost(
                request,
                model,
                self.client.runtime.fx_rates,
                self.settings.default_max_output_tokens,
                body_bytes,
            )

        if virtual:
            assert router is not None
            if not self.allowed(caller, request.model):
                raise ModelNotAllowedError(f"this key may not use model {request.model!r}", param="model")
            # reserve for the most expensive deployment the router might pick
            amount, model = max(
                ((cost_of(m), m) for m in router.candidate_models(request.model, kind_name)),
                key=lambda pair: pair[0],
            )
        else:
            model = self.client.runtime.registry.resolve(request.model, kind=kind_name)
            if not self.allowed(caller, request.model) and not self.allowed(caller, model.full_id):
                raise ModelNotAllowedError(f"this key may not use model {request.model!r}", param="model")
            amount = cost_of(model)
        key, team = caller.key, caller.team
        expected = 0
        if key.tpm is not None or (team is not None and team.tpm is not None):
            if isinstance(request, ChatRequest):
                expected = estimate_prompt_tokens(request) + min(request.max_tokens or 512, 4096)
            else:
                expected = sum(estimate_tokens(text) for text in request.input)
        self.state.check_rate(f"key:{key.key_id}", key.rpm, key.tpm, expected)
        if team is not None:
            self.state.check_rate(f"team:{team.name}", team.rpm, team.tpm, expected)
        budgets = []
        if key.budget_usd is not None:
            budgets.append(Budget(f"key:{key.key_id}", key.budget_usd, key.budget_period))
        if team is not None and team.budget_usd is not None:
            budgets.append(Budget(f"team:{team.name}", team.budget_usd, team.budget_period))
        reservation = self.state.reserve(amount, team.name if team else None, budgets)
        job = Job(
            new_request_id(),
            caller,
            kind,
            request,
            model,
            reservation,
            virtual=virtual,
            expected_tokens=expected,
            log_content=caller.key.log_content or self.settings.log_content,
        )
        job.span = self.telemetry.start(
            "chat" if kind == "chat" else "embeddings",
            request.model,
            {
                "gen_ai.request.max_tokens": getattr(request, "max_tokens", None),
                "gen_ai.request.temperature": getattr(request, "temperature", None),
            },
        )
        self.writer.open(
            {
                "request_id": job.request_id,
                "created_at": datetime.now(UTC),
                "key_id": key.key_id,
                "team": team.name if team else None,
                "endpoint": kind,
                "requested_model": request.model,
                "resolved_model": None if virtual else model.full_id,
                "provider": None if virtual else model.provider,
                "stream": bool(getattr(request, "stream", False)),
                "status": "pending",
                "reserved_usd": amount,
            }
        )
        self.in_flight += 1
        self.metrics.in_flight.inc()
        return job

    async def refuse(
        self, caller: Caller | None, endpoint: str, body: Any, error: ModelbusError, started: float
    ) -> str:
        """Book a request refused before it went upstream; returns its request id.

        Authenticated callers get a finished ledger row (``refused``, no cost, durable on return); every
        refusal is counted in the metrics and logged."""
        request_id = new_request_id()
        model = body.get("model") if isinstance(body, dict) else None
        model = model[:256] if isinstance(model, str) else ""
        status = http_status_for(error)
        error_type = type(error).__name__
        latency_ms = round((time.monotonic() - started) * 1000, 3)
        team = caller.team.name if caller is not None and caller.team is not None else None
        if caller is not None:
            now = datetime.now(UTC)
            await self.writer.record(
                {
                    "request_id": request_id,
                    "created_at": now,
                    "finished_at": now,
                    "key_id": caller.key.key_id,
                    "team": team,
                    "endpoint": endpoint,
                    "requested_model": model,
                    "stream": bool(body.get("stream")) if isinstance(body, dict) else False,
                    "status": "refused",
                    "http_status": status,
                    "error_type": error_type,
                    "latency_ms": latency_ms,
                }
            )
        m = self.metrics
        m.child(m.requests, endpoint, "-", model or "-", "refused").inc()
        m.child(m.errors, endpoint, "-", model or "-", str(status), error_type).inc()
        if self.settings.log_requests:
            fields = {
                "request_id": request_id,
                "key_id": caller.key.key_id if caller is not None else None,
                "team": team,
                "endpoint": endpoint,
                "model": model,
                "status": "refused",
                "http_status": status,
                "error_type": error_type,
                "latency_ms": latency_ms,
            }
            ACCESS.info("request refused", extra={"fields": fields})
        return request_id

    def context(self, job: Job) -> CallContext:
        return CallContext(
            request_id=job.request_id,
            requested_model=job.request.model,
            metadata={
                "key_id": job.caller.key.key_id,
                "team": job.caller.team.name if job.caller.team else None,
                **(getattr(job.request, "metadata", None) or {}),
            },
            log_content=job.log_content,
        )

    # -- settlement ----------------------------------------------------------------------------------

    async def settle(self, job: Job, outcome: Outcome, *, wait: bool = True) -> None:
        """Book the outcome: release the reservation, write the ledger row and debit the wallet
        (durable before returning when ``wait``), then metrics, log and span."""
        usage = outcome.usage or Usage()
        self.state.settle(job.reservation, outcome.cost)
        for scope in job.scopes:
            self.state.add_tokens(scope, usage.total_tokens - job.expected_tokens)
        route = outcome.route
        latency = time.monotonic() - job.started
        # a virtual model's row names what served (or was last tried), never the model the
        # reservation was sized on; when nothing was tried (no route) it names nothing
        fallback = None if job.virtual else job.model
        values = {
            "finished_at": datetime.now(UTC),
            "status": outcome.status,
            "http_status": outcome.http_status,
            "error_type": type(outcome.error).__name__ if outcome.error else None,
            "resolved_model": route.model
            if route is not None and route.model
            else (fallback.full_id if fallback else None),
            "provider": route.provider
            if route is not None and route.provider
            else (fallback.provider if fallback else None),
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "cached_tokens": usage.cached_tokens,
            "cache_creation_tokens": usage.cache_creation_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "usage_estimated": usage.estimated,
            "cost_usd": outcome.cost,
            "latency_ms": round(latency * 1000, 3),
            "ttft_ms": round(outcome.ttft * 1000, 3) if outcome.ttft is not None else None,
            "route": route.model_dump(mode="json") if route is not None else None,
        }
        wallet = job.reservation.wallet
        try:
            if wait:
                alone = self.in_flight == 1  # this request: nothing to group its commit with
                await self.writer.settle(job.request_id, values, wallet, outcome.cost, alone=alone)
            else:  # the caller is gone (cancelled): queue it, the writer still makes it durable
                asyncio.get_running_loop().create_task(
                    self.writer.settle(job.request_id, values, wallet, outcome.cost)
                )
        finally:  # also when the write fails or the caller is cancelled while it waits
            self.in_flight -= 1
            self.metrics.in_flight.dec()
        self._observe(job, outcome, values, latency)

    def _observe(self, job: Job, outcome: Outcome, values: dict[str, Any], latency: float) -> None:
        provider = values["provider"] or "-"
        model = values["resolved_model"] or job.request.model
        team = job.caller.team.name if job.caller.team else "-"
        m = self.metrics
        m.child(m.requests, job.endpoint, provider, model, outcome.status).inc()
        m.child(m.latency, job.endpoint, provider, model).observe(latency)
        if outcome.ttft is not None:
            m.child(m.ttft, provider, model).observe(outcome.ttft)
        if outcome.error is not None:
            m.child(
                m.errors, job.endpoint, provider, model, str(outcome.http_status), values["error_type"]
            ).inc()
        usage = outcome.usage
        if usage is not None:
            m.child(m.tokens, provider, model, "prompt").inc(usage.prompt_tokens)
            m.child(m.tokens, provider, model, "completion").inc(usage.completion_tokens)
            m.child(m.tokens, provider, model, "cached").inc(usage.cached_tokens)
            m.child(m.tokens, provider, model, "reasoning").inc(usage.reasoning_tokens)
        if outcome.cost:
            m.child(m.cost, provider, model, team).inc(float(outcome.cost))
        if self.settings.log_requests:
            fields = {
                "request_id": job.request_id,
                "key_id": job.caller.key.key_id,
                "team": job.caller.team.name if job.caller.team else None,
                "endpoint": job.endpoint,
                "model": job.request.model,
                "resolved_model": model,
                "provider": provider,
                "status": outcome.status,
                "http_status": outcome.http_status,
                "error_type": values["error_type"],
                "latency_ms": values["latency_ms"],
                "ttft_ms": values["ttft_ms"],
                "prompt_tokens": values["prompt_tokens"],
                "completion_tokens": values["completion_tokens"],
                "cost_usd": str(outcome.cost),
            }
            if job.log_content:
                fields["prompt"] = _prompt_text(job.request)
                fields["completion"] = job.completion_text
            ACCESS.info("request finished", extra={"fields": fields})
        self.telemetry.finish(
            job.span,
            {
                "gen_ai.provider.name": provider,
                "gen_ai.response.model": outcome.response_model,
                "gen_ai.response.id": job.request_id,
                "gen_ai.usage.input_tokens": usage.prompt_tokens if usage else None,
                "gen_ai.usage.output_tokens": usage.completion_tokens if usage else None,
                "modelbus.cost_usd": float(outcome.cost),
                "modelbus.team": team,
            },
            outcome.error,
        )

    # -- the calls -----------------------------------------------------------------------------------

    async def complete(self, job: Job) -> tuple[ChatResponse | EmbeddingResponse, dict[str, str]]:
        """A non-streamed chat or embeddings call, settled before it returns."""
        context = self.context(job)
        try:
            if isinstance(job.request, ChatRequest):
                response: Any = await self.client.send_chat(job.request, context=context)
            else:
                response = await self.client.send_embeddings(job.request, context=context)
        except ModelbusError as error:
            await self.settle(
                job,
                Outcome("error", http_status_for(error), error=error, route=error.route),
            )
            raise
        except asyncio.CancelledError:
            await self.settle(job, Outcome("cancelled", 499), wait=False)
            raise
        usage = (
            response.usage
            if isinstance(response, ChatResponse)
            else Usage.of(response.usage.prompt_tokens, 0, estimated=response.usage.estimated)
        )
        if isinstance(response, ChatResponse) and job.log_content:
            job.completion_text = response.text
        await self.settle(
            job,
            Outcome(
                "ok",
                200,
                usage=usage,
                cost=response.cost or Decimal(0),
                response_model=response.model,
                route=response.route,
            ),
        )
        return response, self.headers(job, response.route, response.cost)

    def headers(self, job: Job, route: Any, cost: Decimal | None) -> dict[str, str]:
        headers = {"x-modelbus-request-id": job.request_id}
        if route is not None:
            headers["x-modelbus-route"] = _header_value(route.summary())
            if route.dropped_params:
                headers["x-modelbus-dropped-params"] = ",".join(route.dropped_params)
        if cost is not None:
            headers["x-modelbus-cost-usd"] = f"{cost:.10f}"
        return headers

    async def open_stream(self, job: Job) -> AsyncStream:
        """Start a streamed chat; connection and HTTP errors (before any token) raise here."""
        assert isinstance(job.request, ChatRequest)
        try:
            stream = await self.client.send_chat(job.request, context=self.context(job))
        except ModelbusError as error:
            await self.settle(job, Outcome("error", http_status_for(error), error=error, route=error.route))
            raise
        except asyncio.CancelledError:
            await self.settle(job, Outcome("cancelled", 499), wait=False)
            raise
        assert isinstance(stream, AsyncStream)
        return stream

    async def stream_events(self, job: Job, stream: AsyncStream) -> AsyncIterator[bytes]:
        """The SSE body. The ledger row is settled (durably) before the usage chunk and ``[DONE]``."""
        request = job.request
        assert isinstance(request, ChatRequest)
        include_usage = request.wants_usage_in_stream()
        final = None
        settled = False
        try:
            async for chunk in stream:
                if chunk.usage is not None and not chunk.choices:
                    final = chunk  # held back until the ledger row is durable
                    continue
                yield b"data: " + dumps(chunk.to_openai()) + b"\n\n"
            response = stream.response
            assert response is not None
            if job.log_content:
                job.completion_text = response.text
            ttft = stream.processor.ttft if stream.processor else None
            settled = True
            await self.settle(
                job,
                Outcome(
                    "ok",
                    200,
                    usage=response.usage,
                    cost=response.cost or Decimal(0),
                    response_model=response.model,
                    route=stream.route,
                    ttft=ttft,
                ),
            )
            if include_usage and final is not None:
                yield b"data: " + dumps(final.to_openai()) + b"\n\n"
            yield b"data: [DONE]\n\n"
        except ModelbusError as error:
            # the caller already has tokens: end the stream with an error event (OpenAI's convention)
            if not settled:
                settled = True
                usage, cost = _partial(stream)
                await self.settle(
                    job,
                    Outcome(
                        "error",
                        http_status_for(error),
                        usage=usage,
                        cost=cost,
                        error=error,
                        route=stream.route,
                    ),
                )
            yield b"data: " + dumps(error_body(error)) + b"\n\n"
        finally:
            if not settled:  # the client went away: stop the upstream and bill what was generated
                usage, cost = _partial(stream)
                asyncio.get_running_loop().create_task(stream.aclose())
                await self.settle(
                    job, Outcome("cancelled", 499, usage=usage, cost=cost, route=stream.route), wait=False
                )


def _partial(stream: AsyncStream) -> tuple[Usage | None, Decimal]:
    """Usage and cost of what a stream produced before it stopped (estimated when the provider sent none)."""
    processor = stream.processor
    if processor is None:
        return None, Decimal(0)
    usage = processor.usage or processor.estimated_usage()
    cost, _ = processor.call.price(usage)
    return usage, cost or Decimal(0)


def _prompt_text(request: ChatRequest | EmbeddingRequest) -> str:
    if isinstance(request, EmbeddingRequest):
        return "\n".join(request.input)
    return request.prompt_text()


def _header_value(text: str) -> str:
    return text.encode("ascii", "replace").decode()[:1024]
