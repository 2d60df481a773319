"""Connection pools, and the one small response interface the clients read from.

Which transport carries a call:

* async calls to ``http(s)://`` URLs go straight onto aiohttp's connection pool. httpx's async pool
  (httpcore) collapses under concurrency on this kind of machine, and even over an aiohttp transport
  httpx's per-request machinery costs ~0.2 ms of CPU per call; ``bench/client_overhead.py`` measures
  all of them side by side.
* sync calls, URL schemes that plugins mount (``local://``) and user-supplied transports go through
  httpx, so anything that speaks httpx's transport API plugs in (``httpx.MockTransport``, proxies).

Either way the client sees :class:`UpstreamResponse` / :class:`AsyncUpstreamResponse`, and every
transport failure becomes a typed, retryable-or-not modelbus error here.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx

from modelbus.config import ClientConfig
from modelbus.errors import APIConnectionError, ConfigError, ModelbusError, RequestTimeoutError
from modelbus.http import HttpRequest, HttpResponse
from modelbus.plugins import PluginHost

if TYPE_CHECKING:
    from modelbus.retries import Deadline

USER_AGENT = "modelbus/0.1"


# -- failure mapping ---------------------------------------------------------------------------


def map_transport_error(exc: BaseException, *, provider: str | None = None) -> ModelbusError:
    """The typed modelbus error for an httpx or aiohttp failure (never includes headers)."""
    where = f" talking to {provider}" if provider else ""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        phase = (
            "connecting"
            if isinstance(exc, httpx.ConnectTimeout | aiohttp.ConnectionTimeoutError)
            else "waiting"
        )
        return RequestTimeoutError(f"timed out {phase}{where}", provider=provider)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL | aiohttp.InvalidURL):
        return ConfigError(f"invalid upstream URL{where}: {detail}", provider=provider)
    if isinstance(exc, httpx.ConnectError | aiohttp.ClientConnectorError):
        return APIConnectionError(f"could not connect{where}: {detail}", provider=provider)
    if isinstance(
        exc, httpx.RemoteProtocolError | aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError
    ):
        return APIConnectionError(f"connection dropped{where}: {detail}", provider=provider)
    return APIConnectionError(f"transport error{where}: {type(exc).__name__}: {detail}", provider=provider)


_TRANSPORT_ERRORS = (httpx.HTTPError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def _httpx_request(
    client: httpx.Client | httpx.AsyncClient, request: HttpRequest, connect: float, read: float
) -> httpx.Request:
    return client.build_request(
        request.method,
        request.url,
        headers=request.headers,
        params=request.params or None,
        content=request.body_bytes(),
        timeout=httpx.Timeout(connect=connect, read=read, write=read, pool=connect),
    )


# -- responses -----------------------------------------------------------------------------------


class UpstreamResponse:
    """A sync upstream response whose body has not been read yet."""

    def __init__(self, response: httpx.Response, provider: str, deadline: Deadline | None) -> None:
        self._response = response
        self._provider = provider
        self._deadline = deadline
        self.status_code = response.status_code
        self.headers = {key.lower(): value for key, value in response.headers.items()}

    def read(self) -> HttpResponse:
        try:
            content = self._response.read()
        except _TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, provider=self._provider) from None
        return HttpResponse(self.status_code, self.headers, content)

    def iter_bytes(self) -> Iterator[bytes]:
        try:
            for data in self._response.iter_bytes():
                yield data
                if self._deadline is not None:
                    self._deadline.check("stream")
        except _TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, provider=self._provider) from None

    def close(self) -> None:
        self._response.close()


class AsyncUpstreamResponse:
    """An async upstream response whose body has not been read yet (aiohttp or httpx underneath)."""

    def __init__(self, response: Any, provider: str, deadline: Deadline | None) -> None:
        self._response = response
        self._provider = provider
        self._deadline = deadline
        self._aiohttp = isinstance(response, aiohttp.ClientResponse)
        self.status_code: int = response.status if self._aiohttp else response.status_code
        self.headers = {key.lower(): value for key, value in response.headers.items()}

    async def read(self) -> HttpResponse:
        try:
            content = await (self._response.read() if self._aiohttp else self._response.aread())
        except _TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, provider=self._provider) from None
        return HttpResponse(self.status_code, self.headers, content)

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        source = self._response.content.iter_any() if self._aiohttp else self._response.aiter_bytes()
        try:
            async for data in source:
                yield data
                if self._deadline is not None:
                    self._deadline.check("stream")
        except _TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, provider=self._provider) from None

    async def close(self) -> None:
        if self._aiohttp:
            self._response.close()  # drops the connection if the body was not read to the end
        else:
            await self._response.aclose()


# -- the pool ------------------------------------------------------------------------------------


class HttpPool:
    """The connection pools of one modelbus client (sync httpx, async aiohttp, httpx for mounts)."""

    def __init__(
        self,
        host: PluginHost,
        config: ClientConfig,
        *,
        sync_transport: httpx.BaseTransport | None = None,
        async_transport: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self._host = host
        self._config = config
        self._sync_transport = sync_transport
        self._async_transport = async_transport
        self._sync: httpx.Client | None = None
        # aiohttp sessions and async httpx clients belong to one event loop each
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary()
        )
        self._async_httpx: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._mounts: list[tuple[str, Callable[[], Any], Callable[[], Any]]] | None = None

    def _mounted(self) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
        if self._mounts is None:
            found: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = []

            def register(scheme: str, make_sync: Callable[[], Any], make_async: Callable[[], Any]) -> None:
                found.append((scheme.rstrip(":/") + "://", make_sync, make_async))

            self._host.hook.modelbus_register_transports(register=register)
            self._mounts = found
        return self._mounts

    def _timeout(self, read: float | None) -> tuple[float, float]:
        cfg = self._config.timeout
        return cfg.connect, cfg.read if read is None else min(read, cfg.read)

    # -- sync (httpx) ----------------------------------------------------------------------------

    def _sync_client(self) -> httpx.Client:
        if self._sync is None:
            limits = httpx.Limits(max_connections=self._config.max_connections, max_keepalive_connections=64)
            self._sync = httpx.Client(
                transport=self._sync_transport or httpx.HTTPTransport(limits=limits),
                mounts={scheme: make_sync() for scheme, make_sync, _ in self._mounted()},
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,
            )
        return self._sync

    def open(
        self,
        request: HttpRequest,
        *,
        provider: str,
        read: float | None = None,
        deadline: Deadline | None = None,
    ) -> UpstreamResponse:
        """Send; the body is read by the caller (``read()`` or ``iter_bytes()``), who closes it."""
        client = self._sync_client()
        connect, read_timeout = self._timeout(read)
        try:
            response = client.send(_httpx_request(client, request, connect, read_timeout), stream=True)
        except _TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, provider=provider) from None
        return UpstreamResponse(response, provider, deadline)

    def send(self, request: HttpRequest, *, provider: str, read: float | None = None) -> HttpResponse:
        response = self.open(request, provider=provider, read=read)
        try:
            return response.read()
        finally:
            response.close()

    # -- async (aiohttp directly; httpx for mounts and custom transports) -------------------------

    def _uses_httpx(self, url: str) -> bool:
        return self._async_transport is not None or not url.startswith(("http://", "https://"))

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._config.max_connections,
                    limit_per_host=0,
                    keepalive_timeout=30,
                    ttl_dns_cache=300,
                ),
                headers={"User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._sessions[loop] = session
        return session

    def _async_httpx_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._async_httpx.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                transport=self._async_transport() if self._async_transport else None,
                mounts={scheme: make_async() for scheme, _, make_async in self._mounted()},
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,
            )
            self._async_httpx[loop] = client
        return client

    async def aopen(
        self,
        request: HttpRequest,
        *,
        provider: str,
        read: float | None = None,
        deadline: Deadline | None = None,
    ) -> AsyncUpstreamResponse:
        connect, read_timeout = self._timeout(read)
        try:
            if self._uses_httpx(request.url):
                client = self._async_httpx_client()
                response: Any = await client.send(
                    _httpx_request(client, request, connect, read_timeout), stream=True
                )
            else:
                response = await self._session().request(
                    request.method,
                    request.url,
                    headers=request.headers,
                    params=request.params or None,
                    data=request.body_bytes(),
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read_timeout),
                )
        except _TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, provider=provider) from None
        return AsyncUpstreamResponse(response, provider, deadline)

    async def asend(self, request: HttpRequest, *, provider: str, read: float | None = None) -> HttpResponse:
        response = await self.aopen(request, provider=provider, read=read)
        try:
            return await response.read()
        finally:
            await response.close()

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        session = self._sessions.pop(loop, None)
        if session is not None:
            await session.close()
        client = self._async_httpx.pop(loop, None)
        if client is not None:
            await client.aclose()
