"""``GatewayProvider``: a modelbus gateway as a provider, for clients that talk to one over HTTP.

The gateway is OpenAI-compatible and owns the real provider keys, model tables, routing and billing,
so this provider accepts any model id and sends it unchanged (``gateway/deepseek/deepseek-chat``
reaches the gateway as ``deepseek/deepseek-chat``). The cost the gateway billed comes back in its
``x-modelbus-cost-usd`` header and lands on the response; there is no local price table to guess with.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from modelbus.http import HttpResponse
from modelbus.providers.openai_compatible import OpenAICompatibleProvider
from modelbus.types.chat import ChatRequest, ChatResponse
from modelbus.types.models import ModelInfo

GATEWAY = "gateway"
DEFAULT_GATEWAY_URL = "http://localhost:4000/v1"


def billed_cost(response: HttpResponse) -> Decimal | None:
    """The USD cost a modelbus gateway reported for a response, if any."""
    value = response.headers.get("x-modelbus-cost-usd")
    if not value:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


class GatewayProvider(OpenAICompatibleProvider):
    """A modelbus gateway: chat and embeddings with a virtual key, any model id."""

    name = GATEWAY
    display_name = "modelbus gateway"
    api_key_env = ("MODELBUS_API_KEY",)
    requires_api_key = False  # a gateway answers 401 itself when it wants a key
    regions = {"default": (DEFAULT_GATEWAY_URL, "LOCAL")}
    models_file = None
    # The gateway checks every model against its own tables: claim everything here and let it decide.
    unlisted_model: ClassVar[dict[str, Any] | None] = {
        "context_window": 128_000,
        "capabilities": [
            "streaming",
            "tools",
            "parallel_tool_calls",
            "vision",
            "json_object",
            "json_schema",
            "reasoning",
        ],
    }
    unlisted_embedding_model: ClassVar[dict[str, Any] | None] = {"context_window": 8192}

    def normalize_response(
        self, response: HttpResponse, request: ChatRequest, model: ModelInfo
    ) -> ChatResponse:
        result = super().normalize_response(response, request, model)
        result.cost = billed_cost(response)
        return result
