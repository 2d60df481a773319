"""Worst-case cost of a request, reserved before it goes upstream.

The bound must really be an upper bound, or concurrent requests could overspend a wallet: prompt tokens
are bounded by the prompt's UTF-8 byte count (a BPE token covers at least one byte) plus per-message
and per-image allowances, output tokens by ``max_tokens`` or the model's output limit, and both are
priced at the most expensive rate the model's table has (cache writes, reasoning, long-context tiers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal

from modelbus.pricing import MILLION, fx_rate
from modelbus.types.chat import ChatRequest, ImagePart
from modelbus.types.embeddings import EmbeddingRequest
from modelbus.types.models import ModelInfo

MESSAGE_ALLOWANCE = 16
IMAGE_ALLOWANCE = 4096


def prompt_token_bound(request: ChatRequest | EmbeddingRequest) -> int:
    if isinstance(request, EmbeddingRequest):
        return sum(len(text.encode()) + MESSAGE_ALLOWANCE for text in request.input)
    total = 0
    for message in request.messages:
        total += MESSAGE_ALLOWANCE + len(message.model_dump_json(exclude_none=True).encode())
        content = getattr(message, "content", None)
        if isinstance(content, list):
            total += IMAGE_ALLOWANCE * sum(isinstance(part, ImagePart) for part in content)
    if request.tools:
        total += len(json.dumps([tool.to_wire() for tool in request.tools]).encode())
    if request.response_format is not None:
        total += len(request.response_format.model_dump_json().encode())
    return total


def worst_case_cost(
    request: ChatRequest | EmbeddingRequest,
    model: ModelInfo,
    fx_rates: Mapping[str, Decimal],
    default_max_output: int,
) -> Decimal:
    price = model.price
    if price is None or price.is_free:
        return Decimal(0)
    prompt = min(prompt_token_bound(request), model.context_window)
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
