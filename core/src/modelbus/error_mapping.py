"""Shared pieces for mapping upstream failures to typed errors."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from modelbus.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    ModelbusError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    UpstreamServerError,
)

_CONTEXT_LENGTH = re.compile(
    r"context[_ ]length|maximum context|context window|prompt is too long|too many (input )?tokens"
    r"|input (is )?too long|exceeds the (model's )?(maximum|max)"
    r"|token length too long|exceeded model token limit",
    re.IGNORECASE,
)
_CONTENT_FILTER = re.compile(
    r"content[_ ]?(policy|filter|management)|safety (policy|system|filter|reason)|blocked (for|by) safety"
    r"|\bunsafe\b|sensitive|inappropriate",
    re.I,
)

STATUS_ERRORS: dict[int, type[ModelbusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: QuotaExceededError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    409: UpstreamServerError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
    500: UpstreamServerError,
    502: UpstreamServerError,
    503: OverloadedError,
    504: RequestTimeoutError,
    529: OverloadedError,
}


def class_for_status(status: int, message: str = "") -> type[ModelbusError]:
    """The error class for an HTTP status, refined by the message for 400s."""
    cls = STATUS_ERRORS.get(status)
    if cls is None:
        cls = UpstreamServerError if status >= 500 else BadRequestError
    if cls is BadRequestError and _CONTEXT_LENGTH.search(message):
        return ContextLengthExceededError
    if cls is BadRequestError and _CONTENT_FILTER.search(message):
        return ContentFilteredError
    return cls


_TYPE_PATTERNS: list[tuple[re.Pattern[str], type[ModelbusError]]] = [
    (re.compile(r"quota|billing|balance|arrear", re.I), QuotaExceededError),
    (re.compile(r"rate.?limit|too.?many|throttl", re.I), RateLimitError),
    (re.compile(r"overload|unavailable|capacity", re.I), OverloadedError),
    (re.compile(r"auth|api.?key|unauthori", re.I), AuthenticationError),
    (re.compile(r"permission|forbidden", re.I), PermissionDeniedError),
    (re.compile(r"not.?found", re.I), NotFoundError),
    (re.compile(r"timeout|deadline", re.I), RequestTimeoutError),
    (re.compile(r"server|internal|api_error", re.I), UpstreamServerError),
    (re.compile(r"invalid|bad.?request", re.I), BadRequestError),
]


def class_for_error_type(kind: str | None, message: str = "") -> type[ModelbusError]:
    """The error class for an error *type or code* when there is no HTTP status to go by
    (an error event in the middle of a 200 stream). Unknown types count as upstream failures."""
    text = kind or ""
    if _CONTEXT_LENGTH.search(message) or _CONTEXT_LENGTH.search(text):
        return ContextLengthExceededError
    if _CONTENT_FILTER.search(text):
        return ContentFilteredError
    for pattern, cls in _TYPE_PATTERNS:
        if pattern.search(text):
            return cls
    return UpstreamServerError


def classify_error(status: int, code: str | None, kind: str | None, message: str) -> type[ModelbusError]:
    """By HTTP status when there is one (>= 400), else by the error's type/code."""
    if status >= 400:
        return class_for_status(status, f"{message} {code or ''} {kind or ''}")
    return class_for_error_type(f"{kind or ''} {code or ''}".strip(), message)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(when - (now if now is not None else time.time()), 0.0)


_RETRY_HINT = re.compile(
    r"(?:try again|retry)(?: it)? (?:in|after) (\d+(?:\.\d+)?)\s*"
    r"(ms|milliseconds?|s|sec|seconds?|m|min|minutes?)?",
    re.IGNORECASE,
)


def parse_retry_hint(message: str) -> float | None:
    """Seconds from a hint in an error message: "Please try again in 1.146s", "try again after 3 seconds"."""
    match = _RETRY_HINT.search(message)
    if not match:
        return None
    value = float(match.group(1))
    unit = (match.group(2) or "s").lower()
    if unit.startswith("ms") or unit.startswith("milli"):
        return value / 1000
    if unit.startswith("m"):
        return value * 60
    return value


_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$"
)


def parse_duration(text: str) -> float | None:
    """Seconds in a Go/protobuf-style duration: ``'37s'``, ``'3.957s'``, ``'6m0s'``, ``'12ms'``."""
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000
