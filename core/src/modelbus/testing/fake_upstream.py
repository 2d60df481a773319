"""``FakeUpstream``: a real local HTTP server that plays a provider, with faults on demand.

It listens on a random port (aiohttp, in its own thread and event loop, or in a separate process for
benchmarks: ``python -m modelbus.testing.fake_upstream``), records every request it receives, answers
from routes (wire samples or a responder function), and injects faults: error statuses with
``Retry-After``, latency, hangs, mid-stream disconnects, malformed and truncated bodies.

    with FakeUpstream() as upstream:
        upstream.replay(sample)                  # answer like the provider's docs say
        upstream.fail(status=429, retry_after=1) # the next request gets a 429
        client = Client(providers={"deepseek": {"base_url": upstream.url, "api_key": "k"}})
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from modelbus.testing.samples import ResponseSpec, SSEItem, WireSample


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Responder = Callable[[RecordedRequest], ResponseSpec]


@dataclass
class _Route:
    method: str
    path: str
    responder: Responder
    stream: bool | None = None  # match only (non-)streamed requests; None: both


@dataclass
class _Fault:
    kind: str  # "status" | "disconnect" | "malformed" | "truncate" | "hang"
    times: int
    status: int = 503
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    after_events: int = 0
    seconds: float = 0.0
    path: str | None = None


def _is_stream_request(request: RecordedRequest) -> bool:
    if "stream" in request.path.lower() or request.query.get("alt") == "sse":
        return True
    try:
        body = request.json
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body.get("stream"))


class FakeUpstream:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0) -> None:
        self.host = host
        self.port = port
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self._routes: list[_Route] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.record = True
        self.client_disconnects = 0  # streams the client closed before the end

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeUpstream:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._startup_error is not None:
            raise RuntimeError(f"FakeUpstream failed to start: {self._startup_error}")
        return self

    def _run(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._startup())
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
        self._loop.close()

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _startup(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- programming -------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._routes.clear()
            self._faults.clear()
            self.latency = 0.0

    def add(
        self, method: str, path: str, response: ResponseSpec | Responder, *, stream: bool | None = None
    ) -> None:
        """Answer ``method path`` with ``response`` (a spec, or a function of the request)."""
        responder = response if callable(response) else (lambda _request, spec=response: spec)
        with self._lock:
            self._routes.append(_Route(method.upper(), path, responder, stream))

    def respond_with(self, responder: Responder) -> None:
        """Answer every request that no route matches with ``responder(request)``."""
        self.add("*", "*", responder)

    def replay(self, sample: WireSample) -> None:
        """Answer the sample's request path like the sample's recorded response."""
        expected = sample.upstream.request
        self.add(
            expected.method,
            expected.path,
            sample.upstream.response,
            stream=sample.kind == "chat_stream" if sample.kind.startswith("chat") else None,
        )

    def fail(
        self,
        status: int = 503,
        *,
        times: int = 1,
        body: str | dict[str, Any] = "",
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        path: str | None = None,
    ) -> None:
        """The next ``times`` requests get ``status`` (with ``Retry-After`` when given)."""
        headers = dict(headers or {})
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        text = json.dumps(body) if isinstance(body, dict) else body
        if isinstance(body, dict):
            headers.setdefault("Content-Type", "application/json")
        self._fault(_Fault("status", times, status=status, body=text, headers=headers, path=path))

    def disconnect(self, *, after_events: int = 0, times: int = 1, path: str | None = None) -> None:
        """Drop the connection after ``after_events`` stream events (0: before any byte of body)."""
        self._fault(_Fault("disconnect", times, after_events=after_events, path=path))

    def malformed(self, *, times: int = 1, path: str | None = None) -> None:
        """Answer 200 with a body that is not JSON."""
        self._fault(_Fault("malformed", times, path=path))

    def truncate(self, *, times: int = 1, path: str | None = None) -> None:
        """Answer the route's response, cut: half a JSON body, or a stream without its last event."""
        self._fault(_Fault("truncate", times, path=path))

    def hang(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Wait ``seconds`` before answering (for timeout tests)."""
        self._fault(_Fault("hang", times, seconds=seconds, path=path))

    def _fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path is None or fault.path == path:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _route(self, request: RecordedRequest) -> _Route | None:
        streamed = _is_stream_request(request)
        with self._lock:
            for route in reversed(self._routes):
                if route.method not in ("*", request.method):
                    continue
                if route.path not in ("*", request.path):
                    continue
                if route.stream is not None and route.stream != streamed:
                    continue
                return route
        return None

    # -- serving -----------------------------------------------------------------------------

    async def _handle(self, http: web.Request) -> web.StreamResponse:
        request = RecordedRequest(
            method=http.method,
            path=http.path,
            query=dict(http.query),
            headers={k.lower(): v for k, v in http.headers.items()},
            body=await http.read(),
        )
        if self.record:
            with self._lock:
                self.requests.append(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._take_fault(request.path)
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "status":
            return web.Response(status=fault.status, body=fault.body.encode(), headers=fault.headers)
        if fault is not None and fault.kind == "malformed":
            return web.Response(
                status=200, body=b"<html>502 Bad Gateway</html>", content_type="application/json"
            )
        if fault is not None and fault.kind == "disconnect" and fault.after_events == 0:
            assert http.transport is not None
            http.transport.close()
            return web.Response(status=500)
        route = self._route(request)
        if route is None:
            return web.json_response(
                {
                    "error": {
                        "message": f"FakeUpstream has no route for {request.method} {request.path}",
                        "type": "fake_upstream",
                    }
                },
                status=404,
            )
        spec = route.responder(request)
        if spec.is_stream:
            return await self._stream(http, spec, fault)
        body = spec.body_bytes()
        if fault is not None and fault.kind == "truncate":
            body = body[: max(len(body) // 2, 1)]
        headers = {"Content-Type": "application/json", **spec.headers}
        return web.Response(status=spec.status, body=body, headers=headers)

    async def _stream(
        self, http: web.Request, spec: ResponseSpec, fault: _Fault | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=spec.status,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **spec.headers},
        )
        await response.prepare(http)
        parts = spec.stream_parts()
        if fault is not None and fault.kind == "truncate":
            parts = parts[:-1]
        try:
            for number, part in enumerate(parts):
                if fault is not None and fault.kind == "disconnect" and number >= fault.after_events:
                    assert http.transport is not None
                    http.transport.close()
                    return response
                await response.write(part)
                if spec.event_delay:
                    await asyncio.sleep(spec.event_delay)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            with self._lock:
                self.client_disconnects += 1
            raise
        return response

    def serve_forever(self) -> None:
        """Run in the foreground (for a separate benchmark process)."""
        web.run_app(self._app(), host=self.host, port=self.port, access_log=None, print=None)


def openai_chat_responder(text: str = "Hello from FakeUpstream.", *, model: str | None = None) -> Responder:
    """A minimal OpenAI-compatible responder: fixed text, streamed or not, with usage."""

    def respond(request: RecordedRequest) -> ResponseSpec:
        body = request.json or {}
        name = model or body.get("model", "fake")
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if body.get("stream"):
            words = text.split(" ")
            items = [
                SSEItem(
                    data={
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": name,
                        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
                    }
                )
            ]
            for position, word in enumerate(words):
                piece = word if position == 0 else " " + word
                items.append(
                    SSEItem(
                        data={
                            "id": "chatcmpl-fake",
                            "object": "chat.completion.chunk",
                            "created": 1,
                            "model": name,
                            "choices": [{"index": 0, "delta": {"content": piece}}],
                        }
                    )
                )
            items.append(
                SSEItem(
                    data={
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": name,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    }
                )
            )
            if (body.get("stream_options") or {}).get("include_usage"):
                items.append(
                    SSEItem(
                        data={
                            "id": "chatcmpl-fake",
                            "object": "chat.completion.chunk",
                            "created": 1,
                            "model": name,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                )
            items.append(SSEItem(data="[DONE]"))
            return ResponseSpec(sse=items)
        return ResponseSpec(
            json={
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1,
                "model": name,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": usage,
            }
        )

    return respond


def main() -> None:  # pragma: no cover - exercised by bench/
    import argparse

    parser = argparse.ArgumentParser(description="Run a FakeUpstream in the foreground (OpenAI-compatible).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--event-delay", type=float, default=0.0, help="seconds between stream events")
    parser.add_argument("--text", default="Hello from FakeUpstream, a local stand-in for a provider.")
    args = parser.parse_args()
    upstream = FakeUpstream(host=args.host, port=args.port, latency=args.latency)
    upstream.record = False
    responder = openai_chat_responder(args.text)

    def with_delay(request: RecordedRequest) -> ResponseSpec:
        spec = responder(request)
        spec.event_delay = args.event_delay
        return spec

    upstream.respond_with(with_delay)
    upstream.serve_forever()


if __name__ == "__main__":  # pragma: no cover
    main()
