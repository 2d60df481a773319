"""The gateway's ASGI app: OpenAI-compatible endpoints, the admin API, health and metrics.

app = create_app()                 # embedded defaults: SQLite ledger, config.toml, env
uvicorn.run(app, port=4000)        # or `modelbus serve`
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hmac
import io
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from modelbus.client import AsyncClient
from modelbus.config import ModelbusConfig
from modelbus.errors import BadRequestError, ModelbusError
from modelbus.gateway.admin_fields import KEY_FIELDS, TEAM_FIELDS, limit_fields, money, timestamp
from modelbus.gateway.db import open_database
from modelbus.gateway.errors import AdminAuthError, NotFound, RequestTooLargeError
from modelbus.gateway.keys import bearer_token
from modelbus.gateway.metrics import Metrics
from modelbus.gateway.service import Caller, GatewayService, Job, dumps, error_body, http_status_for
from modelbus.gateway.settings import GatewaySettings
from modelbus.gateway.state import InProcessState, SharedState
from modelbus.gateway.store import LedgerWriter, Store
from modelbus.gateway.telemetry import Telemetry

logger = logging.getLogger("modelbus.gateway")
T = TypeVar("T")


class ClientDisconnected(Exception):
    """The caller hung up before the answer was ready."""


def error_response(error: ModelbusError, request_id: str | None = None) -> Response:
    headers = {}
    if error.retry_after is not None and error.retryable:
        headers["retry-after"] = str(max(int(error.retry_after + 0.999), 1))
    if request_id:
        headers["x-modelbus-request-id"] = request_id
    return Response(
        dumps(error_body(error)),
        status_code=http_status_for(error),
        headers=headers,
        media_type="application/json",
    )


class Gateway:
    """Everything the app holds: settings, the modelbus client, storage and the service."""

    def __init__(
        self,
        config: ModelbusConfig | None = None,
        settings: GatewaySettings | None = None,
        *,
        client: AsyncClient | None = None,
        state: SharedState | None = None,
    ) -> None:
        self.config = config if config is not None else ModelbusConfig.load()
        self.settings = settings if settings is not None else GatewaySettings.load(self.config)
        self._client = client
        self._state = state
        self.service: GatewayService | None = None
        self.engine: sa.Engine | None = None
        self._probes: asyncio.Task[None] | None = None

    async def start(self) -> None:
        engine = await asyncio.to_thread(open_database, self.settings.database_url)
        self.engine = engine
        store = Store(engine)
        writer = LedgerWriter(engine)
        writer.start()
        client = self._client or AsyncClient(config=self.config, compat=self.settings.compat)
        self.service = GatewayService(
            self.settings,
            client,
            store,
            writer,
            self._state or InProcessState(),
            Metrics(),
            Telemetry(self.settings.otel),
        )
        interrupted = await asyncio.to_thread(self.service.load_state)
        if interrupted:
            logger.warning("reconciled %d request(s) left pending by an earlier crash", interrupted)
        router = client.runtime.router
        if router is not None and router.config.probe_interval > 0:
            self._probes = asyncio.create_task(self._probe_forever(router, client))

    async def _probe_forever(self, router: Any, client: AsyncClient) -> None:
        """Active health checks: every deployment the router may use, every probe_interval seconds."""
        while True:
            try:
                await router.probe(client)
            except Exception as exc:  # a probe must never take the gateway down
                logger.warning("health probe round failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(router.config.probe_interval)

    async def stop(self) -> None:
        if self._probes is not None:
            self._probes.cancel()
        if self.service is not None:
            self.service.writer.flush_held()
            await asyncio.to_thread(self.service.writer.stop)
            await self.service.client.aclose()
        if self.engine is not None:
            self.engine.dispose()

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def svc(self) -> GatewayService:
        assert self.service is not None, "gateway not started"
        return self.service

    def require_master(self, request: Request) -> None:
        master = self.settings.master_key
        if master is None:
            raise AdminAuthError(
                "the admin API is disabled: set MODELBUS_MASTER_KEY (or [gateway] master_key)"
            )
        given = bearer_token(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(given.encode(), master.get_secret_value().encode()):
            raise AdminAuthError("the admin API needs the master key")


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON; 413 past ``limit`` bytes, whether or not Content-Length was sent.

    The body's size is kept on ``request.state.body_bytes`` (it bounds the prompt for reservations)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise RequestTooLargeError(f"request body over {limit} bytes; send less (or raise max_request_bytes)")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(
                f"request body over {limit} bytes; send less (or raise max_request_bytes)"
            )
        chunks.append(chunk)
    body = b"".join(chunks)
    request.state.body_bytes = size
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequestError("the request body is not valid JSON") from None


async def guard_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` in this task; if the caller disconnects first, cancel it (which cancels the
    upstream call) and raise :class:`ClientDisconnected`. One watcher task per call, no other."""
    current = asyncio.current_task()
    assert current is not None
    hung_up = False

    async def watch() -> None:
        nonlocal hung_up
        while (await request.receive())["type"] != "http.disconnect":
            pass
        hung_up = True
        current.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not hung_up:
            raise  # cancelled from outside (shutdown): not ours to swallow
        current.uncancel()
        raise ClientDisconnected from None
    finally:
        watcher.cancel()


def month_range(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a 'YYYY-MM' month in UTC."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise BadRequestError(f"month must look like 2026-11, got {month!r}", param="month") from None
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def usage_query(params: Any) -> dict[str, Any]:
    group_by = [g for g in (params.get("group_by") or "").split(",") if g]
    unknown = sorted(set(group_by) - {"team", "key", "model", "provider", "status", "day"})
    if unknown:
        raise BadRequestError(
            f"cannot group by {', '.join(unknown)}; use team, key, model, provider, status, day",
            param="group_by",
        )
    start, end = timestamp(params.get("start"), "start"), timestamp(params.get("end"), "end")
    if params.get("month"):
        start, end = month_range(params["month"])
    return {"group_by": group_by, "start": start, "end": end}


def rows_as_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (orjson.dumps(v).decode() if isinstance(v, dict | list) else v) for k, v in row.items()}
            )
    return buffer.getvalue()


def _team_view(team: Any) -> dict[str, Any]:
    return {
        "team": team.name,
        "budget_usd": str(team.budget_usd) if team.budget_usd is not None else None,
        "budget_period": team.budget_period,
        "rpm": team.rpm,
        "tpm": team.tpm,
        "models": list(team.models) if team.models else None,
    }


def _key_view(record: Any) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "team": record.team,
        "name": record.name,
        "models": list(record.models) if record.models else None,
        "rpm": record.rpm,
        "tpm": record.tpm,
        "budget_usd": str(record.budget_usd) if record.budget_usd is not None else None,
        "budget_period": record.budget_period,
        "log_content": record.log_content,
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "created_at": record.created_at.isoformat() if record.created_at else None,
    }


Handler = Callable[[Request], Awaitable[Response]]


def unexpected_response(request: Request, exc: BaseException) -> Response:
    """A 500 in OpenAI's error format; the details go to the log only."""
    logger.error(
        "unhandled %s on %s %s",
        type(exc).__name__,
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return error_response(ModelbusError("internal gateway error; see the gateway's logs"))


class HotPaths:
    """The ASGI app ``modelbus serve`` runs: ``POST`` to the completion endpoints goes straight to its
    handler (errors answered here, as the Starlette app's handlers would), everything else to Starlette.
    The hot path skips Starlette's routing table and middleware stack, which cost more per request than
    the gateway's own admission checks."""

    def __init__(self, app: Starlette, handlers: dict[str, Handler]) -> None:
        self.app = app
        self.handlers = handlers
        self._entry: ASGIApp = self._dispatch

    def __getattr__(self, name: str) -> Any:
        """Everything else (``state``, ``routes``, ``url_path_for``...) is the Starlette app's."""
        if name == "app":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.app, name)

    def add_middleware(self, middleware: Any, *args: Any, **kwargs: Any) -> None:
        """Wrap the whole app, hot paths included (the last one added runs first, as in Starlette)."""
        self._entry = middleware(self._entry, *args, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except ModelbusError as error:
            response = error_response(error)
        except ClientDisconnected:
            response = Response(status_code=499)
        except Exception as exc:
            response = unexpected_response(request, exc)
        await response(scope, receive, send)


def create_app(
    config: ModelbusConfig | None = None,
    settings: GatewaySettings | None = None,
    *,
    client: AsyncClient | None = None,
    state: SharedState | None = None,
) -> HotPaths:
    gateway = Gateway(config, settings, client=client, state=state)

    # -- OpenAI-compatible ---------------------------------------------------------------------

    async def admitted(request: Request, endpoint: str) -> Job | Response:
        """Authenticate, read and admit a call; a refusal is booked and answered here."""
        svc = gateway.svc
        started = time.monotonic()
        caller: Caller | None = None
        body: Any = None
        try:
            caller = await svc.authenticate(request.headers.get("authorization"))
            body = await read_json(request, gateway.settings.max_request_bytes)
            return svc.admit(caller, body, endpoint, request.state.body_bytes, request.headers)
        except ModelbusError as error:
            request_id = await svc.refuse(caller, endpoint, body, error, started)
            return error_response(error, request_id)

    async def chat_completions(request: Request) -> Response:
        svc = gateway.svc
        job = await admitted(request, "chat")
        if isinstance(job, Response):
            return job
        try:
            if getattr(job.request, "stream", False):
                stream = await guard_disconnect(request, svc.open_stream(job))
                return StreamingResponse(
                    svc.stream_events(job, stream),
                    media_type="text/event-stream",
                    headers={**svc.headers(job, stream.route, None), "cache-control": "no-cache"},
                )
            response, headers = await guard_disconnect(request, svc.complete(job))
        except ModelbusError as error:
            return error_response(error, job.request_id)
        return Response(dumps(response.to_openai()), media_type="application/json", headers=headers)

    async def embeddings(request: Request) -> Response:
        svc = gateway.svc
        job = await admitted(request, "embeddings")
        if isinstance(job, Response):
            return job
        try:
            response, headers = await guard_disconnect(request, svc.complete(job))
        except ModelbusError as error:
            return error_response(error, job.request_id)
        body = response.to_openai(getattr(job.request, "encoding_format", None))  # type: ignore[call-arg]
        return Response(dumps(body), media_type="application/json", headers=headers)

    def _model_entry(model: Any) -> dict[str, Any]:
        return {"id": model.full_id, "object": "model", "created": 0, "owned_by": model.provider}

    async def list_models(request: Request) -> Response:
        caller = await gateway.svc.authenticate(request.headers.get("authorization"))
        models = [_model_entry(m) for m in gateway.svc.visible_models(caller)]
        models += [
            {"id": name, "object": "model", "created": 0, "owned_by": "modelbus-router"}
            for name in gateway.svc.visible_virtual_models(caller)
        ]
        return Response(dumps({"object": "list", "data": models}), media_type="application/json")

    async def get_model(request: Request) -> Response:
        svc = gateway.svc
        caller = await svc.authenticate(request.headers.get("authorization"))
        name = request.path_params["model"]
        model = svc.client.resolve(name)
        if not (svc.allowed(caller, name) or svc.allowed(caller, model.full_id)):
            raise NotFound(f"model {name!r} does not exist or this key may not use it")
        return Response(dumps(_model_entry(model)), media_type="application/json")

    async def own_usage(request: Request) -> Response:
        svc = gateway.svc
        caller = await svc.authenticate(request.headers.get("authorization"))
        query = usage_query(request.query_params)
        rows = await asyncio.to_thread(svc.store.usage, key_id=caller.key.key_id, **query)
        return Response(dumps({"key_id": caller.key.key_id, "data": rows}), media_type="application/json")

    # -- health and metrics --------------------------------------------------------------------

    async def live(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> Response:
        if gateway.service is None or gateway.engine is None:
            return JSONResponse({"status": "starting"}, status_code=503)

        def ping() -> None:
            with gateway.engine.connect() as conn:  # type: ignore[union-attr]
                conn.execute(sa.text("SELECT 1"))

        try:
            await asyncio.to_thread(ping)
        except Exception as exc:  # the database is down
            return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ready", "in_flight": gateway.svc.in_flight})

    async def metrics(request: Request) -> Response:
        if not gateway.settings.metrics_public:
            gateway.require_master(request)
        return Response(gateway.svc.metrics.render(), media_type=gateway.svc.metrics.content_type)

    # -- admin ---------------------------------------------------------------------------------

    async def create_key(request: Request) -> Response:
        gateway.require_master(request)
        body = await read_json(request, gateway.settings.max_request_bytes)
        if not isinstance(body, dict):
            raise BadRequestError("send a JSON object")
        fields = limit_fields(body, KEY_FIELDS)
        full, record = await asyncio.to_thread(gateway.svc.store.create_key, **fields)
        return JSONResponse({"key": full, **_key_view(record)}, status_code=201)

    async def list_keys(request: Request) -> Response:
        gateway.require_master(request)
        records = await asyncio.to_thread(gateway.svc.store.list_keys, request.query_params.get("team"))
        return Response(dumps({"data": [_key_view(r) for r in records]}), media_type="application/json")

    async def revoke_key(request: Request) -> Response:
        gateway.require_master(request)
        key_id = request.path_params["key_id"]
        if not await asyncio.to_thread(gateway.svc.store.revoke_key, key_id):
            raise NotFound(f"no active key {key_id!r}")
        gateway.svc.forget_key(key_id)
        return JSONResponse({"key_id": key_id, "revoked": True})

    async def set_team(request: Request) -> Response:
        gateway.require_master(request)
        body = await read_json(request, gateway.settings.max_request_bytes)
        if not isinstance(body, dict):
            raise BadRequestError(f"send a JSON object with any of {sorted(TEAM_FIELDS)}")
        fields = limit_fields(body, TEAM_FIELDS)
        name = request.path_params["team"]
        team = await asyncio.to_thread(gateway.svc.store.set_team, name, **fields)
        gateway.svc.forget_team(name)
        return JSONResponse(_team_view(team))

    async def list_teams(request: Request) -> Response:
        gateway.require_master(request)
        teams = await asyncio.to_thread(gateway.svc.store.list_teams)
        return JSONResponse({"data": [_team_view(team) for team in teams]})

    async def topup(request: Request) -> Response:
        gateway.require_master(request)
        body = await read_json(request, gateway.settings.max_request_bytes)
        amount = money(body.get("amount_usd") if isinstance(body, dict) else None, "amount_usd")
        if not amount:
            raise BadRequestError("amount_usd must be a positive number", param="amount_usd")
        team = request.path_params["team"]
        balance = await asyncio.to_thread(gateway.svc.store.topup, team, amount, body.get("note"))
        gateway.svc.state.credit_wallet(team, amount, balance)
        gateway.svc.forget_team(team)
        return JSONResponse({"team": team, "balance_usd": str(balance)})

    async def wallets(request: Request) -> Response:
        gateway.require_master(request)
        data = await asyncio.to_thread(gateway.svc.store.wallets)
        return JSONResponse(
            {
                "data": [
                    {
                        "team": team,
                        "balance_usd": str(balance),
                        "available_usd": str(gateway.svc.state.wallet_available(team)),
                    }
                    for team, balance in sorted(data.items())
                ]
            }
        )

    async def admin_usage(request: Request) -> Response:
        gateway.require_master(request)
        params = request.query_params
        query = usage_query(params)
        rows = await asyncio.to_thread(
            gateway.svc.store.usage, team=params.get("team"), key_id=params.get("key"), **query
        )
        if params.get("format") == "csv":
            return Response(rows_as_csv(rows), media_type="text/csv")
        return Response(dumps({"data": rows}), media_type="application/json")

    async def admin_request(request: Request) -> Response:
        gateway.require_master(request)
        row = await asyncio.to_thread(gateway.svc.store.ledger_row, request.path_params["request_id"])
        if row is None:
            raise NotFound("no such request id")
        return Response(dumps(row), media_type="application/json")

    # -- errors --------------------------------------------------------------------------------

    async def on_modelbus_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ModelbusError)
        return error_response(exc)

    async def on_disconnect(_: Request, __: Exception) -> Response:
        return Response(status_code=499)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return unexpected_response(request, exc)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/v1/usage", own_usage, methods=["GET"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/admin/keys", create_key, methods=["POST"]),
        Route("/admin/keys", list_keys, methods=["GET"]),
        Route("/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
        Route("/admin/teams", list_teams, methods=["GET"]),
        Route("/admin/teams/{team}", set_team, methods=["PUT"]),
        Route("/admin/teams/{team}/wallet", topup, methods=["POST"]),
        Route("/admin/wallets", wallets, methods=["GET"]),
        Route("/admin/usage", admin_usage, methods=["GET"]),
        Route("/admin/requests/{request_id}", admin_request, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ModelbusError: on_modelbus_error,
            ClientDisconnected: on_disconnect,
            Exception: on_unexpected,
        },
    )
    app.state.gateway = gateway
    return HotPaths(app, {"/v1/chat/completions": chat_completions, "/v1/embeddings": embeddings})
