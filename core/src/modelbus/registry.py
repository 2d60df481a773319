"""Model addressing: ``provider/model`` ids, aliases, ``provider/*`` listings, close-match suggestions."""

from __future__ import annotations

import difflib
import fnmatch
from typing import Any

from pydantic import ValidationError

from modelbus.config import ModelbusConfig
from modelbus.errors import BadRequestError, ConfigError, ModelNotFoundError
from modelbus.types.models import ModelInfo, ProviderInfo
from modelbus.validation import describe_validation_error

LOCAL_DEFAULT_MODEL = "local/smollm2-135m"
_MAX_ALIAS_DEPTH = 8


class ModelRegistry:
    """Every model the installed providers offer, plus the config's aliases and extra rows."""

    def __init__(self, providers: dict[str, ProviderInfo], config: ModelbusConfig) -> None:
        self.providers = providers
        self.config = config
        self.models: dict[str, ModelInfo] = {}
        self.aliases: dict[str, str] = {}
        for info in providers.values():
            for model in info.models:
                self.models[model.full_id] = model
                for alias in model.aliases:
                    self.aliases.setdefault(f"{info.name}/{alias}", model.full_id)
        for full_id, row in config.models.items():
            self.models[full_id] = self._config_model(full_id, row)
        self.aliases.update(config.aliases)

    def _config_model(self, full_id: str, row: dict[str, Any]) -> ModelInfo:
        provider, sep, name = full_id.partition("/")
        where = f'[models."{full_id}"] in {self.config.source}'
        if not sep or not name:
            raise ConfigError(f"{where}: model ids are 'provider/model'")
        if provider not in self.providers:
            raise ConfigError(f"{where}: provider {provider!r} is not installed")
        base = self.models.get(full_id)
        data = {**(base.model_dump() if base else {}), **row, "provider": provider, "id": name}
        try:
            return ModelInfo.model_validate(data)
        except ValidationError as exc:
            message, _ = describe_validation_error(exc)
            raise ConfigError(f"{where}: {message}") from None

    def default_model_id(self) -> str:
        if self.config.default_model:
            return self.config.default_model
        if LOCAL_DEFAULT_MODEL in self.models:
            return LOCAL_DEFAULT_MODEL
        raise BadRequestError(
            "no model given and no default: pass model='provider/model', set default_model in config.toml, "
            "or install modelbus-local for a no-key local model",
            param="model",
        )

    def canonical_id(self, name: str) -> str:
        """Follow aliases to a ``provider/model`` id (not checked against the tables)."""
        seen = [name]
        while name in self.aliases:
            name = self.aliases[name]
            if name in seen or len(seen) > _MAX_ALIAS_DEPTH:
                raise ConfigError(f"alias loop: {' -> '.join([*seen, name])}")
            seen.append(name)
        return name

    def resolve(self, name: str | None, *, kind: str = "chat") -> ModelInfo:
        """The model table row for ``name`` (an id or alias); ``None`` means the default model.

        ``kind`` picks the provider's template for ids missing from its table (Ollama's local models).
        """
        requested = name if name else self.default_model_id()
        full_id = self.canonical_id(requested)
        model = self.models.get(full_id)
        if model is not None:
            return model
        provider, sep, model_name = full_id.partition("/")
        if not sep or not model_name:
            raise ModelNotFoundError(
                f"model id {requested!r} is not 'provider/model' and is not an alias",
                suggestions=self._close(requested, list(self.models) + list(self.aliases)),
                param="model",
            )
        info = self.providers.get(provider)
        if info is None:
            installed = ", ".join(sorted(self.providers)) or "none"
            raise ModelNotFoundError(
                f"provider {provider!r} is not installed (installed: {installed}); "
                f"pip install modelbus-{provider} if it exists",
                suggestions=[f"{p}/{model_name}" for p in self._close(provider, list(self.providers))],
                param="model",
            )
        template = info.unlisted_embedding_model if kind == "embedding" else info.unlisted_model
        if template is not None:
            return template.model_copy(update={"id": model_name})
        in_provider = [m for m in self.models if m.startswith(provider + "/")]
        raise ModelNotFoundError(
            f"provider {provider!r} has no model {model_name!r} (see `modelbus models {provider}/*`)",
            suggestions=self._close(full_id, in_provider),
            param="model",
        )

    def add_live(self, models: list[ModelInfo]) -> None:
        """Merge rows a server reported live (table rows for the same id win: they know prices)."""
        for model in models:
            self.models.setdefault(model.full_id, model)

    def list(self, pattern: str | None = None) -> list[ModelInfo]:
        """Models whose id matches a glob such as ``deepseek/*`` (all when ``pattern`` is None)."""
        rows = sorted(self.models.values(), key=lambda m: m.full_id)
        if pattern:
            rows = [m for m in rows if fnmatch.fnmatchcase(m.full_id, pattern)]
        return rows

    @staticmethod
    def _close(word: str, candidates: list[str]) -> list[str]:
        return difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
