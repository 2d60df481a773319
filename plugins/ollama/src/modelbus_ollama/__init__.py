"""modelbus provider plugin for Ollama, through its OpenAI-compatible ``/v1`` endpoints.

Sources: ``ollama/ollama`` ``docs/api/openai-compatibility.mdx`` (what ``/v1`` supports),
``openai/openai.go`` and ``middleware/openai.go`` (the shim's wire types and SSE writer),
``docs/api/errors.mdx`` and ``docs/api.md`` (``/api/tags``, ``/api/version``).

* The base URL is the server root (default ``http://localhost:11434``; ``OLLAMA_BASE_URL`` or
  ``base_url`` in config). Chat and embeddings go to ``/v1/...``; the model list (``/api/tags``) and the
  health probe (``/api/version``) use the native API. A base URL that already ends in ``/v1`` (the OpenAI
  SDK habit) is accepted too.
* No key: a local server needs none. When one is configured (a hosted Ollama behind a proxy, Ollama's
  cloud) it is sent as a bearer token.
* Any model id works (``ollama/<name>`` for whatever is pulled: the chat template, or the embedding
  template for ``embed()``); the static table only describes a few documented models.
  ``list_models_request`` / ``parse_model_list`` read what the server has right now
  (``Client.list_models("ollama")``, ``modelbus models --live``).
* Thinking text is ``message.reasoning`` / ``delta.reasoning``; it is sent back on assistant turns (the
  shim forwards it as native ``thinking``).
* ``tool_choice`` is not supported by the shim (dropped silently): ``"none"`` is emulated by not sending
  the tools (``omit_tools_for_none``); other values are sent and ignored by the server.
* Images: only ``data:`` URLs; an http(s) image URL is refused before sending.
* Prices are 0 (local inference).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from modelbus.errors import ModelbusError, ModelNotFoundError, UnsupportedFeatureError
from modelbus.http import HttpRequest, HttpResponse, join_url
from modelbus.providers import OpenAICompatibleProvider
from modelbus.types.chat import ChatRequest, ImagePart, UserMessage
from modelbus.types.embeddings import EmbeddingRequest
from modelbus.types.models import ModelInfo, ProviderSettings

__all__ = ["Ollama", "plugin", "server_root"]

DEFAULT_URL = "http://localhost:11434"
PRICE = {
    "currency": "USD",
    "input": 0,
    "output": 0,
    "as_of": "2026-11-25",
    "source": "https://github.com/ollama/ollama/blob/main/docs/api/openai-compatibility.mdx",
}
# families of the embedding-only architectures Ollama serves (all-minilm, mxbai-embed-large, bge-m3:
# bert; nomic-embed-text: nomic-bert): a heuristic, /api/tags says nothing more direct
_EMBEDDING_FAMILIES = {"bert", "nomic-bert", "xlm-roberta", "jina-bert-v2"}
_V1_SUFFIX = re.compile(r"/v1/?$")


def server_root(base_url: str) -> str:
    """The Ollama server root for a configured base URL (``.../v1`` is tolerated)."""
    return _V1_SUFFIX.sub("", base_url.rstrip("/"))


class Ollama(OpenAICompatibleProvider):
    name = "ollama"
    display_name = "Ollama"
    api_key_env = ("OLLAMA_API_KEY",)  # only for a server that asks for one
    requires_api_key = False
    regions = {"local": (DEFAULT_URL, "LOCAL")}
    default_region = "local"
    docs_url = "https://github.com/ollama/ollama/blob/main/docs/api/openai-compatibility.mdx"
    # any pulled model: chat with the capabilities the /v1 shim supports; the server refuses what the
    # model cannot do (e.g. "does not support tools"). Context: Ollama's default num_ctx (4096) unless
    # the model or server sets another; /v1 cannot change it.
    unlisted_model: ClassVar[dict[str, Any] | None] = {
        "context_window": 4096,
        "quality_tier": 2,
        "capabilities": ["streaming", "tools", "vision", "json_object", "json_schema", "reasoning"],
        "unsupported_params": ["n", "user"],
        "price": PRICE,
        "description": "a model pulled on the Ollama server (not in the static table)",
    }
    unlisted_embedding_model: ClassVar[dict[str, Any] | None] = {
        "context_window": 8192,
        "price": PRICE,
        "description": "an embedding model pulled on the Ollama server (not in the static table)",
    }

    chat_path: ClassVar[str] = "/v1/chat/completions"
    embeddings_path: ClassVar[str | None] = "/v1/embeddings"
    tags_path: ClassVar[str] = "/api/tags"  # native: the models pulled on the server
    health_path: ClassVar[str] = "/api/version"  # native: cheap, needs no model loaded
    reasoning_field: ClassVar[str] = "reasoning"
    send_reasoning_history: ClassVar[bool] = True
    omit_tools_for_none: ClassVar[bool] = True  # the shim drops tool_choice: "none" means sending no tools
    error_codes: ClassVar[dict[str, type[ModelbusError]]] = {
        # the shim's only 404 on /v1/chat/completions and /v1/embeddings: 'model "x" not found, try
        # pulling it first'
        "not_found_error": ModelNotFoundError,
    }

    # -- request -------------------------------------------------------------------------------

    def request_body(self, request: ChatRequest, model: ModelInfo) -> dict[str, Any]:
        for message in request.messages:
            if isinstance(message, UserMessage) and isinstance(message.content, list):
                for part in message.content:
                    if isinstance(part, ImagePart) and not part.image_url.url.startswith("data:"):
                        raise UnsupportedFeatureError(
                            "Ollama takes images only as base64 data: URLs, not http(s) links",
                            provider=self.name,
                            model=model.id,
                            param="messages",
                        )
        return super().request_body(request, model)

    def translate_request(
        self, request: ChatRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest:
        return super().translate_request(request, model, settings, server_root(base_url))

    def translate_embedding_request(
        self, request: EmbeddingRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest | None:
        return super().translate_embedding_request(request, model, settings, server_root(base_url))

    # -- health and the live model list ------------------------------------------------------

    def health_request(self, settings: ProviderSettings, base_url: str) -> HttpRequest | None:
        return HttpRequest("GET", join_url(server_root(base_url), self.health_path))

    def list_models_request(self, settings: ProviderSettings, base_url: str) -> HttpRequest | None:
        return HttpRequest("GET", join_url(server_root(base_url), self.tags_path))

    def parse_model_list(self, response: HttpResponse) -> list[ModelInfo] | None:
        """``/api/tags`` -> model rows: the static row when the model is known, else a template row."""
        data = response.json(provider=self.name)
        self.check_envelope(data, response, None)
        known = {model.id: model for model in self.provider_info.models}
        rows = []
        for item in data.get("models") or []:
            name = item.get("model") or item.get("name")
            if not name:
                continue
            row = known.get(name) or known.get(name.removesuffix(":latest")) or self._row_from_tag(name, item)
            rows.append(row.model_copy(update={"id": name}))
        return rows

    def _row_from_tag(self, name: str, item: dict[str, Any]) -> ModelInfo:
        """The chat or embedding template, described by the tag's family, size and quantization.

        /api/tags does not say what a model can do: chat rows keep the template's permissive
        capabilities and the server refuses what a model cannot do (e.g. 'does not support tools')."""
        details = item.get("details") or {}
        families = {details.get("family") or "", *(details.get("families") or [])}
        size = " ".join(filter(None, (details.get("parameter_size"), details.get("quantization_level"))))
        description = f"{details.get('family') or 'model'} {size}".strip()
        info = self.provider_info
        embedding = families & _EMBEDDING_FAMILIES or "embed" in name
        template = info.unlisted_embedding_model if embedding else info.unlisted_model
        assert template is not None  # both are set on this class
        return template.model_copy(update={"id": name, "description": description})


plugin = Ollama()
