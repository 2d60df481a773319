"""Worst-case cost of a request, reserved before it goes upstream.

The bound must really be an upper bound, or concurrent requests could overspend a wallet: prompt tokens
are bounded by the request body's byte count (a BPE token covers at least one byte) plus per-message
and per-image allowances, output tokens by ``max_tokens`` or the model's output limit, and both are
priced at the most expensive rate the model's table has (cache writes, reasoning, long-context tiers).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from modelbus.pricing import MILLION, fx_rate
from modelbus.types.chat import ChatRequest, ImagePart
from modelbus.types.embeddings import EmbeddingRequest
from modelbus.types.models import ModelInfo

MESSAGE_ALLOWANCE = 16
IMAGE_ALLOWANCE = 4096


def prompt_token_bound(request: ChatRequest | EmbeddingRequest, body_bytes: int) -> int:
    """An upper bound on prompt tokens: the JSON body's size in bytes (it holds every message, tool and
    schema, escaped, and a BPE token covers at least one byte) plus per-message and per-image allowances."""
    if isinstance(request, EmbeddingRequest):
        return body_bytes + MESSAGE_ALLOWANCE * len(request.input)
    images = sum(
        isinstance(part, ImagePart)
        for message in request.messages
        if isinstance(getattr(message, "content", None), list)
        for part in message.content  # type: ignore[union-attr]
    )
    return body_bytes + MESSAGE_ALLOWANCE * len(request.messages) + IMAGE_ALLOWANCE * images


def worst_case_cost(
    request: ChatRequest | EmbeddingRequest,
    model: ModelInfo,
    fx_rates: Mapping[str, Decimal],
    default_max_output: int,
    body_bytes: int,
) -> Decimal:
    price = model.price
    if price is None or price.is_free:
        return Decimal(0)
    prompt = min(prompt_token_bound(request, body_bytes), model.context_window)
    if isinstance(request, EmbeddingRequest):
        output = 0
    else:
        output = request.max_tokens or model.max_output_tokens or default_max_output
        output = min(output, model.context_window) * (request.n or 1)
    rates = [price, *price.tiers]
    max_input = max(max(r.input, r.cache_write or 0, r.cached_input or 0) for r in rates)
    max_output = max(max(r.output, r.reasoning_output or 0) for r in rates)
    rate = fx_rate(price.currency, fx_rates)
    return (Decimal(prompt) * max_input + Decimal(output) * max_output) * rate / MILLION
