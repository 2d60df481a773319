"""modelbus provider plugin for Mistral AI (La Plateforme, ``https://api.mistral.ai/v1``).

Mistral speaks OpenAI Chat Completions with these differences (https://docs.mistral.ai/api/endpoint/chat,
the official SDK ``mistralai/client-python`` generated from the same OpenAPI spec):

* ``seed`` is called ``random_seed``; ``safe_prompt`` is Mistral-only and travels in ``extra``.
* ``tool_choice`` takes ``"any"`` where OpenAI says ``"required"`` (``tool_choice_values``).
* tool-call ids must match ``^[a-zA-Z0-9]{9}$``. Ids minted by other providers (``call_abc123``) in the
  conversation history are rejected with a 400, so they are rewritten, deterministically and the same way
  in assistant ``tool_calls[].id`` and in the tool message's ``tool_call_id``.
* no ``stream_options``: the usage comes on the last chunk of every stream by itself.
* ``finish_reason`` may be ``model_length`` (the context is full) or ``error``.
* reasoning models (Magistral, Small 4 with ``reasoning_effort``) answer with ``content`` as a list of
  chunks: ``{"type": "thinking", "thinking": [{"type": "text", ...}]}`` and ``{"type": "text", ...}``.
  The thinking goes to ``reasoning_content`` (the base's ``split_content``, re-exported here).
* embeddings call the output size ``output_dimension``.
* errors: ``{"object": "error", "message", "type", "param", "code"}`` (e.g. ``type: rate_limited``), and
  a bare ``{"message": "Unauthorized", "request_id"}`` from the gateway for bad keys.
"""

from __future__ import annotations

import hashlib
import re
import string
from typing import Any, ClassVar

from modelbus.errors import ModelbusError, RateLimitError
from modelbus.http import HttpRequest
from modelbus.providers import OpenAICompatibleProvider
from modelbus.providers.openai_compatible import split_content
from modelbus.types.chat import ChatRequest, FinishReason
from modelbus.types.embeddings import EmbeddingRequest
from modelbus.types.models import ModelInfo, ProviderSettings

__all__ = ["Mistral", "mistral_tool_call_id", "plugin", "split_content"]

TOOL_CALL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
_ID_ALPHABET = string.ascii_letters + string.digits


def mistral_tool_call_id(original: str, salt: int = 0) -> str:
    """A 9-character alphanumeric id for ``original``: itself when already valid, else a stable hash.

    The same input always gives the same id, so a conversation replayed turn after turn keeps its ids
    and the assistant's call and the tool's answer still match.
    """
    if salt == 0 and TOOL_CALL_ID.match(original):
        return original
    seed = original if salt == 0 else f"{original}#{salt}"
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, position = divmod(number, len(_ID_ALPHABET))
        chars.append(_ID_ALPHABET[position])
    return "".join(chars)


def _rewrite_tool_call_ids(messages: list[dict[str, Any]]) -> None:
    """Give every tool-call id in ``messages`` a Mistral-valid replacement, consistently, in place."""
    originals: list[str] = []
    for message in messages:
        if message.get("role") == "assistant":
            originals.extend(call["id"] for call in message.get("tool_calls") or [] if call.get("id"))
        elif message.get("role") == "tool" and message.get("tool_call_id"):
            originals.append(message["tool_call_id"])
    used = {original for original in originals if TOOL_CALL_ID.match(original)}
    mapping: dict[str, str] = {original: original for original in used}
    for original in originals:
        if original in mapping:
            continue
        salt = 0
        candidate = mistral_tool_call_id(original)
        while candidate in used:  # a clash with another id of this conversation: vanishingly rare
            salt += 1
            candidate = mistral_tool_call_id(original, salt)
        mapping[original] = candidate
        used.add(candidate)
    for message in messages:
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                if call.get("id"):
                    call["id"] = mapping[call["id"]]
        elif message.get("role") == "tool" and message.get("tool_call_id"):
            message["tool_call_id"] = mapping[message["tool_call_id"]]


class Mistral(OpenAICompatibleProvider):
    name = "mistral"
    display_name = "Mistral AI"
    api_key_env = ("MISTRAL_API_KEY",)
    # La Plateforme is hosted in the EU; no other public region is documented.
    regions = {"default": ("https://api.mistral.ai/v1", "EU")}
    default_region = "default"
    docs_url = "https://docs.mistral.ai/api/"

    stream_usage: ClassVar[bool] = False  # stream_options is not in the request schema
    param_renames: ClassVar[dict[str, str]] = {"seed": "random_seed"}
    tool_choice_values: ClassVar[dict[str, str]] = {"required": "any"}
    finish_reasons: ClassVar[dict[str, FinishReason]] = {"model_length": "length", "error": "error"}
    error_codes: ClassVar[dict[str, type[ModelbusError]]] = {"rate_limited": RateLimitError}

    # -- request: tool-call ids --------------------------------------------------------------------

    def request_body(self, request: ChatRequest, model: ModelInfo) -> dict[str, Any]:
        body = super().request_body(request, model)
        _rewrite_tool_call_ids(body["messages"])
        return body

    # -- embeddings: output_dimension ------------------------------------------------------------

    def translate_embedding_request(
        self, request: EmbeddingRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest | None:
        http_request = super().translate_embedding_request(request, model, settings, base_url)
        if http_request is not None and "dimensions" in http_request.json:
            http_request.json["output_dimension"] = http_request.json.pop("dimensions")
        return http_request


plugin = Mistral()
