"""Keep secrets out of messages, logs and errors."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Shapes of credentials commonly echoed back by upstreams or pasted into messages.
_SECRET_PATTERNS = re.compile(
    r"(?P<bearer>(?i:bearer)\s+)[A-Za-z0-9._~+/=:-]{8,}"
    r"|\bsk-[A-Za-z0-9_-]{8,}"
    r"|\bmb-[A-Za-z0-9_-]{8,}"
    r"|\bAIza[0-9A-Za-z_-]{20,}"
    r"|(?P<query>[?&](?:key|api_key|apikey|token)=)[^&\s\"']+"
)

MASK = "***"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with every known secret and every credential-shaped token masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)

    def _mask(match: re.Match[str]) -> str:
        prefix = match.group("bearer") or match.group("query") or ""
        return prefix + MASK

    return _SECRET_PATTERNS.sub(_mask, text)


SENSITIVE_HEADERS = frozenset(
    {"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization", "cookie"}
)


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """A copy of ``headers`` safe to log: credential headers are masked."""
    return {k: (MASK if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}
