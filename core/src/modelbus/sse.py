"""An incremental Server-Sent Events decoder (WHATWG HTML "event stream" interpretation).

Handles what real providers send: multi-line ``data``, ``:`` comments and keep-alives, CRLF, CR or LF
line endings, a UTF-8 BOM, multi-byte characters and lines split across network chunks, ``event:``
names (Anthropic) and none (OpenAI). End-of-stream markers such as ``[DONE]`` are the provider's
business: the decoder yields them as ordinary events.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

_EOL = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed bytes in any chunking; get complete events out."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        text = self._utf8.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        return self._consume(self._buffer + text, final=False)

    def flush(self) -> list[ServerSentEvent]:
        """Call at end of input: yields a last event even if the stream did not end with a blank line."""
        events = self._consume(self._buffer + self._utf8.decode(b"", final=True), final=True)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _consume(self, buffer: str, *, final: bool) -> list[ServerSentEvent]:
        if "\r" in buffer:
            lines, rest = self._split_any(buffer, final=final)
        else:  # the common case (LF only): str.split is several times faster than a regex scan
            lines = buffer.split("\n")
            rest = lines.pop()
        if final and rest:
            lines.append(rest)
            rest = ""
        self._buffer = rest
        events: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if line.startswith("data: "):  # fast path for the line that matters
                data.append(line[6:])
                continue
            event = self._line(line)
            if event is not None:
                events.append(event)
                data = self._data
        return events

    @staticmethod
    def _split_any(buffer: str, *, final: bool) -> tuple[list[str], str]:
        lines = []
        pos = 0
        for match in _EOL.finditer(buffer):
            if not final and match.group() == "\r" and match.end() == len(buffer):
                break  # maybe the first half of a CRLF split across chunks
            lines.append(buffer[pos : match.start()])
            pos = match.end()
        return lines, buffer[pos:]

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            self.comments += 1
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if self._id is not None:
            self._last_id = self._id
            self._id = None
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(
            data="\n".join(self._data), event=self._event or "message", id=self._last_id, retry=self._retry
        )
        self._data = []
        self._event = ""
        return event


def iter_sse(chunks: Iterable[bytes]) -> Iterator[ServerSentEvent]:
    decoder = SSEDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.flush()


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event


def encode_sse(data: str, *, event: str | None = None, id: str | None = None) -> bytes:
    """One event in wire form (used by the gateway and FakeUpstream)."""
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if id is not None:
        lines.append(f"id: {id}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()
