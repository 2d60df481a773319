"""Shared connection pools and the mapping of transport failures onto typed errors.

Sync calls use httpx's own pool; async calls use httpx over aiohttp's pool
(:class:`~modelbus.transports.aiohttp.AiohttpTransport`). Plugins add URL schemes (``local://``) with
``modelbus_register_transports``. One pool per client, shared by every provider it calls.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

import httpx

from modelbus.config import ClientConfig
from modelbus.errors import APIConnectionError, ConfigError, ModelbusError, RequestTimeoutError
from modelbus.http import HttpRequest, HttpResponse
from modelbus.plugins import PluginHost

USER_AGENT = "modelbus/0.1"


def map_transport_error(exc: httpx.HTTPError, *, provider: str | None = None) -> ModelbusError:
    """The typed modelbus error for an httpx transport exception (never includes headers)."""
    where = f" talking to {provider}" if provider else ""
    if isinstance(exc, httpx.TimeoutException):
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for data",
            httpx.WriteTimeout: "sending",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "waiting")
        return RequestTimeoutError(f"timed out {phase}{where}", provider=provider)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ConfigError(f"invalid upstream URL{where}: {exc}", provider=provider)
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(f"could not connect{where}: {exc}", provider=provider)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return APIConnectionError(f"connection dropped{where}: {exc}", provider=provider)
    return APIConnectionError(f"transport error{where}: {type(exc).__name__}: {exc}", provider=provider)


def lower_headers(headers: httpx.Headers) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


class HttpPool:
    """The sync and async httpx clients of one modelbus client."""

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
        # aiohttp sessions belong to one event loop: one async client per running loop
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._scheme_transports: list[tuple[str, Callable[[], Any], Callable[[], Any]]] | None = None

    def timeout(self, read: float | None = None) -> httpx.Timeout:
        cfg = self._config.timeout
        read = cfg.read if read is None else min(read, cfg.read)
        return httpx.Timeout(connect=cfg.connect, read=read, write=cfg.read, pool=cfg.connect)

    def _schemes(self) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
        if self._scheme_transports is None:
            found: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = []

            def register(scheme: str, make_sync: Callable[[], Any], make_async: Callable[[], Any]) -> None:
                found.append((scheme.rstrip(":/") + "://", make_sync, make_async))

            self._host.hook.modelbus_register_transports(register=register)
            self._scheme_transports = found
        return self._scheme_transports

    def sync_client(self) -> httpx.Client:
        if self._sync is None:
            limits = httpx.Limits(max_connections=self._config.max_connections, max_keepalive_connections=64)
            self._sync = httpx.Client(
                transport=self._sync_transport or httpx.HTTPTransport(limits=limits),
                mounts={scheme: make_sync() for scheme, make_sync, _ in self._schemes()},
                timeout=self.timeout(),
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,
            )
        return self._sync

    def async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None or client.is_closed:
            transport = (
                self._async_transport()
                if self._async_transport
                else _default_async_transport(self._config.max_connections)
            )
            client = httpx.AsyncClient(
                transport=transport,
                mounts={scheme: make_async() for scheme, _, make_async in self._schemes()},
                timeout=self.timeout(),
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,
            )
            self._async[loop] = client
        return client

    # -- sending ---------------------------------------------------------------------------------

    def _build(
        self, client: httpx.Client | httpx.AsyncClient, request: HttpRequest, read: float | None
    ) -> httpx.Request:
        return client.build_request(
            request.method,
            request.url,
            headers=request.headers,
            params=request.params or None,
            content=request.body_bytes(),
            timeout=self.timeout(read),
        )

    def open(self, request: HttpRequest, *, provider: str, read: float | None = None) -> httpx.Response:
        """Send and return the response with its body not yet read (caller closes it)."""
        client = self.sync_client()
        try:
            return client.send(self._build(client, request, read), stream=True)
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, provider=provider) from None

    async def aopen(
        self, request: HttpRequest, *, provider: str, read: float | None = None
    ) -> httpx.Response:
        client = self.async_client()
        try:
            return await client.send(self._build(client, request, read), stream=True)
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, provider=provider) from None

    def send(self, request: HttpRequest, *, provider: str, read: float | None = None) -> HttpResponse:
        """Send and read the whole body."""
        response = self.open(request, provider=provider, read=read)
        try:
            content = response.read()
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, provider=provider) from None
        finally:
            response.close()
        return HttpResponse(response.status_code, lower_headers(response.headers), content)

    async def asend(self, request: HttpRequest, *, provider: str, read: float | None = None) -> HttpResponse:
        response = await self.aopen(request, provider=provider, read=read)
        try:
            content = await response.aread()
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, provider=provider) from None
        finally:
            await response.aclose()
        return HttpResponse(response.status_code, lower_headers(response.headers), content)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        client = self._async.pop(loop, None)
        if client is not None:
            await client.aclose()


def _default_async_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    from modelbus.transports.aiohttp import AiohttpTransport

    return AiohttpTransport(max_connections=max_connections)
