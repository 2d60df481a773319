"""Streams: decode upstream bytes into canonical chunks, meter them, and hand them to the caller.

:class:`StreamProcessor` is transport-free: feed it bytes, get chunks. It withholds usage from
intermediate chunks and ends every complete stream with exactly one usage chunk (``choices == []``)
carrying the final usage and cost, whatever the provider did: usage on every event (Gemini), a
cumulative count (Anthropic), a final usage-only chunk (OpenAI) or none at all (then it is estimated
and marked ``estimated``). :class:`Stream` and :class:`AsyncStream` are the sync and async twins the
clients return.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

from modelbus.errors import StreamInterruptedError
from modelbus.http import HttpResponse
from modelbus.sse import ServerSentEvent, SSEDecoder
from modelbus.tokens import estimate_completion_tokens, estimate_prompt_tokens
from modelbus.types.chat import ChatChunk, ChatResponse, ChunkAccumulator, Usage, response_chunks

if TYPE_CHECKING:
    from modelbus.calls import ChatCall
    from modelbus.types.route import RouteInfo


class StreamProcessor:
    """Bytes in, canonical chunks out, for one upstream stream."""

    def __init__(self, call: ChatCall) -> None:
        self.call = call
        self.state = call.stream_state()
        self._decoder = SSEDecoder()
        self._acc = ChunkAccumulator()
        self._usage: Usage | None = None
        self.started_at = time.monotonic()
        self.first_token_at: float | None = None
        self.finished = False

    @property
    def ttft(self) -> float | None:
        """Seconds from the start of the stream to its first content, reasoning or tool-call delta."""
        return None if self.first_token_at is None else self.first_token_at - self.started_at

    def feed(self, data: bytes) -> list[ChatChunk]:
        out: list[ChatChunk] = []
        for event in self._decoder.feed(data):
            out.extend(self._event(event))
        return out

    def _event(self, event: ServerSentEvent) -> list[ChatChunk]:
        if self.state.done:
            return []  # nothing after the provider's end marker counts
        out = []
        for chunk in self.call.normalize_event(event, self.state):
            if chunk.usage is not None:
                self._usage = chunk.usage
                chunk.usage = None
            if not chunk.choices:
                continue
            self._acc.add(chunk)
            if self.first_token_at is None and self._acc.started:
                self.first_token_at = time.monotonic()
            out.append(chunk)
        return out

    def finish(self) -> list[ChatChunk]:
        """Call when the upstream body ends: the last chunks, ending with the usage chunk."""
        out: list[ChatChunk] = []
        for event in self._decoder.flush():
            out.extend(self._event(event))
        if not (self.state.done or self.state.may_end):
            raise self.call.redacted(
                StreamInterruptedError("the upstream stream ended before its end-of-stream marker")
            )
        for choice in self._acc.response().choices:  # a complete stream that named no finish reason
            if choice.finish_reason is None:
                inferred = "tool_calls" if choice.message.tool_calls else "stop"
                chunk = self.state.chunk(finish_reason=inferred, index=choice.index)
                self._acc.add(chunk)
                out.append(chunk)
        usage = self._usage or self.estimated_usage()
        cost, breakdown = self.call.price(usage)
        final = self.state.chunk(usage=usage)
        final.cost, final.cost_breakdown = cost, breakdown
        self._acc.add(final)
        self.finished = True
        out.append(final)
        return out

    @staticmethod
    def is_event_stream(headers: dict[str, str]) -> bool:
        """False when a server answered a stream request with one JSON body (an error envelope, or a
        server that ignores ``stream``)."""
        kind = headers.get("content-type", "")
        return not kind or "event-stream" in kind or "json" not in kind

    def complete_from(self, http: HttpResponse) -> list[ChatChunk]:
        """Handle a JSON answer to a stream request: normalized (envelope errors raise), then replayed
        as chunks so the caller still gets a stream that ends with the usage chunk."""
        response = self.call.parse(http)
        chunks = response_chunks(response)
        for chunk in chunks:
            self._acc.add(chunk)
        self._usage = response.usage
        self.state.done = self.finished = True
        if self._acc.started:
            self.first_token_at = time.monotonic()
        return chunks

    def estimated_usage(self) -> Usage:
        """Usage counted locally from what was streamed so far (marked ``estimated``)."""
        completion, reasoning = estimate_completion_tokens(self._acc.response())
        return Usage.of(
            estimate_prompt_tokens(self.call.request), completion, reasoning=reasoning, estimated=True
        )

    @property
    def usage(self) -> Usage | None:
        return self._usage

    def response(self) -> ChatResponse:
        """What has been streamed so far, as one response (complete once ``finished``)."""
        return self._acc.response()


class _StreamBase:
    processor: StreamProcessor | None
    route: RouteInfo | None

    @property
    def response(self) -> ChatResponse | None:
        """The accumulated response (after the stream was consumed; partial before)."""
        if self.processor is None:
            return None
        response = self.processor.response()
        response.route = self.route
        return response

    @property
    def usage(self) -> Usage | None:
        return self.response.usage if self.response else None

    @property
    def cost(self) -> Decimal | None:
        return self.response.cost if self.response else None


class Stream(_StreamBase, Iterator[ChatChunk]):
    """A streamed chat: iterate for chunks; ``close()`` (or ``with``) closes the upstream connection."""

    def __init__(self, source: Callable[[Stream], Iterator[ChatChunk]]) -> None:
        self.processor = None
        self.route = None
        self._iterator = source(self)
        self._first: ChatChunk | None = None

    def _prime(self) -> None:
        """Fetch the first chunk now, so that connection and HTTP errors raise at call time."""
        try:
            self._first = next(self._iterator)
        except StopIteration:
            self._first = None

    def __next__(self) -> ChatChunk:
        if self._first is not None:
            chunk, self._first = self._first, None
            return chunk
        return next(self._iterator)

    def __iter__(self) -> Stream:
        return self

    def close(self) -> None:
        self._iterator.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def until_done(self) -> ChatResponse:
        """Consume the rest of the stream and return the accumulated response."""
        for _ in self:
            pass
        assert self.response is not None
        return self.response


class AsyncStream(_StreamBase):
    """The async twin of :class:`Stream`: ``async for``; ``aclose()`` (or ``async with``)."""

    def __init__(self, source: Callable[[AsyncStream], AsyncIterator[ChatChunk]]) -> None:
        self.processor = None
        self.route = None
        self._iterator = source(self)
        self._first: ChatChunk | None = None

    async def _prime(self) -> None:
        try:
            self._first = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._first = None

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> ChatChunk:
        if self._first is not None:
            chunk, self._first = self._first, None
            return chunk
        return await self._iterator.__anext__()

    async def aclose(self) -> None:
        await self._iterator.aclose()  # type: ignore[attr-defined]

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def until_done(self) -> ChatResponse:
        async for _ in self:
            pass
        assert self.response is not None
        return self.response
