"""The core's own plugin: trylast defaults that any provider plugin can override."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from modelbus.error_mapping import class_for_status, parse_retry_after
from modelbus.errors import MissingCredentialsError, ModelbusError
from modelbus.hookspecs import hookimpl
from modelbus.http import HttpRequest, HttpResponse
from modelbus.pricing import compute_cost
from modelbus.types.chat import ChatRequest, CostBreakdown, Usage
from modelbus.types.embeddings import EmbeddingRequest
from modelbus.types.models import ModelInfo, ProviderSettings


@hookimpl(trylast=True)
def modelbus_authenticate(
    provider: str, http_request: HttpRequest, settings: ProviderSettings
) -> HttpRequest:
    """Default: ``Authorization: Bearer <api_key>``."""
    key = settings.secret()
    if not key:
        raise MissingCredentialsError(f"no API key configured for provider {provider!r}", provider=provider)
    http_request.headers["Authorization"] = f"Bearer {key}"
    return http_request


def error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """(message, code, type) from the common error envelopes: OpenAI's, a bare string, a flat dict."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, str):
            return inner, _str(body.get("code")), _str(body.get("type"))
        if isinstance(inner, dict):
            message = inner.get("message") or inner.get("msg") or body.get("message")
            code = inner.get("code") if inner.get("code") is not None else body.get("code")
            kind = inner.get("type") or inner.get("status")
            return _str(message), _str(code), _str(kind)
    return None, None, None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@hookimpl(trylast=True)
def modelbus_normalize_error(provider: str, response: HttpResponse, model: ModelInfo | None) -> ModelbusError:
    """Default: classify by HTTP status, message from an OpenAI-style body, ``Retry-After`` honoured."""
    try:
        body = response.json()
    except ModelbusError:
        body = None
    message, code, _kind = error_fields(body)
    if not message:
        message = response.text[:300].strip() or f"HTTP {response.status_code}"
    cls = class_for_status(response.status_code, message + " " + (code or ""))
    return cls(
        f"{provider} returned HTTP {response.status_code}: {message}",
        provider=provider,
        model=model.id if model else None,
        status_code=response.status_code,
        provider_code=code,
        retry_after=parse_retry_after(response.headers),
        request_id=response.headers.get("x-request-id") or response.headers.get("request-id"),
    )


@hookimpl(trylast=True)
def modelbus_price_usage(
    provider: str, model: ModelInfo, usage: Usage, fx_rates: Mapping[str, Decimal]
) -> CostBreakdown | None:
    """Default: the model table's per-million-token prices."""
    if model.price is None:
        return None
    return compute_cost(usage, model.price, fx_rates)


_TASK_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "code",
        re.compile(
            r"```|\bdef |\bclass |\bfunction\b|\bcompile|\bstack ?trace|\bbug\b|\brefactor|"
            r"\b(python|javascript|typescript|rust|golang|java|sql|regex)\b|\bcode\b",
            re.I,
        ),
    ),
    ("summarize", re.compile(r"\bsummar|\btl;?dr\b|\bcondense|\bkey points\b|总结|摘要", re.I)),
    ("extract", re.compile(r"\bextract|\bparse\b|\bfields?\b.*\bjson\b|\bjson\b.*\bfields?\b|提取", re.I)),
    (
        "reasoning",
        re.compile(
            r"\bprove\b|\bstep by step\b|\bsolve\b|\bderive|\bcalculate|\bpuzzle|"
            r"\blogic|\bmath|\d+\s*[-+*/^]\s*\d+|推理|证明",
            re.I,
        ),
    ),
]


@hookimpl(trylast=True)
def modelbus_classify_task(request: ChatRequest | EmbeddingRequest) -> str:
    """Default: a keyword heuristic over the last user message (cheap, no model call)."""
    if isinstance(request, EmbeddingRequest):
        return "embed"
    if request.response_format is not None and request.response_format.type != "text":
        return "extract"
    last_user = next((m for m in reversed(request.messages) if m.role == "user"), None)
    from modelbus.types.chat import content_text

    text = content_text(last_user.content) if last_user is not None else ""
    for task, pattern in _TASK_PATTERNS:
        if pattern.search(text):
            return task
    return "chat"
