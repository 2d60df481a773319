"""Transport-neutral HTTP request and response records passed between hooks.

Plain dataclasses on purpose: they sit on the hot path and are built by translators, not by users.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from modelbus.errors import MalformedResponseError


@dataclass(slots=True)
class HttpRequest:
    """What a provider's ``translate_request`` hook asks the transport to send."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    stream: bool = False

    def body_bytes(self) -> bytes | None:
        if self.content is not None:
            return self.content
        if self.json is not None:
            return dumps_json(self.json)
        return None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@dataclass(slots=True)
class HttpResponse:
    """A complete (non-streamed) upstream response. Header names are lower-case."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self, *, provider: str | None = None) -> Any:
        """The body decoded as JSON, or a :class:`MalformedResponseError` saying what arrived instead."""
        try:
            return loads_json(self.content)
        except (ValueError, UnicodeDecodeError):
            preview = self.content[:120].decode("utf-8", "replace")
            raise MalformedResponseError(
                f"upstream answered HTTP {self.status_code} with a body that is not JSON: {preview!r}",
                provider=provider,
                status_code=self.status_code,
            ) from None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def dumps_json(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact UTF-8 JSON through orjson, and through the standard library for what orjson refuses
    (integers past 64 bits, int subclasses it does not know, lone surrogates)."""
    try:
        return orjson.dumps(value, default=default)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, default=default, separators=(",", ":"), ensure_ascii=False).encode()


def loads_json(data: bytes | str) -> Any:
    """JSON through orjson, and through the standard library when orjson refuses what it accepts
    (NaN and Infinity, lone surrogate escapes, a byte-order mark, integers past 64 bits): the fast
    path for every body, the lenient one only on the error path."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        if isinstance(data, bytes | bytearray):
            data = data.decode("utf-8-sig")
        return json.loads(data)


def join_url(base: str, path: str) -> str:
    """``base`` + ``path`` with exactly one slash between them."""
    return base.rstrip("/") + "/" + path.lstrip("/")
