"""Configuration: ``config.toml`` plus environment variables, validated with errors that name the key
and the file.

Where the file is looked for, first match wins: the ``path`` argument, ``$MODELBUS_CONFIG``,
``$XDG_CONFIG_HOME/modelbus/config.toml`` (default ``~/.config/modelbus/config.toml``). No file is
fine: everything has a default. API keys come from ``[providers.<name>] api_key`` or, when that is
absent, from the provider's environment variables (e.g. ``DEEPSEEK_API_KEY``).
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelbus.errors import ConfigError
from modelbus.pricing import DEFAULT_FX_RATES
from modelbus.types.models import ProviderInfo, ProviderSettings
from modelbus.validation import describe_validation_error


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeoutConfig(_Section):
    connect: float = Field(default=10.0, gt=0)
    read: float = Field(default=120.0, gt=0, description="Longest wait for the next bytes.")
    total: float = Field(default=600.0, gt=0, description="Deadline for a whole call, retries included.")


class ClientConfig(_Section):
    max_retries: int = Field(default=2, ge=0, le=10)
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=8.0, ge=0)
    max_retry_after: float = Field(default=60.0, ge=0, description="Longest Retry-After honoured.")
    timeout: TimeoutConfig = Field(default_factory=TimeoutConfig)
    max_connections: int = Field(default=256, ge=1)


class PricingConfig(_Section):
    fx_rates: dict[str, Decimal] = Field(default_factory=dict, description="USD per unit of currency.")

    def rates(self) -> dict[str, Decimal]:
        return {**DEFAULT_FX_RATES, **self.fx_rates}


class ModelbusConfig(_Section):
    default_model: str | None = None
    aliases: dict[str, str] = Field(default_factory=dict)
    fallbacks: dict[str, list[str]] = Field(
        default_factory=dict, description="Model id or alias -> ids tried in order when it fails (retryable)."
    )
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Extra model table rows or overrides, keyed 'provider/model'."
    )
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    client: ClientConfig = Field(default_factory=ClientConfig)
    router: dict[str, Any] = Field(default_factory=dict)
    gateway: dict[str, Any] = Field(default_factory=dict)

    source: str = Field(default="(defaults)", exclude=True)

    @field_validator("aliases")
    @classmethod
    def _alias_targets_are_ids(cls, value: dict[str, str]) -> dict[str, str]:
        for alias, target in value.items():
            if not target or ("/" not in target and target not in value):
                raise ValueError(
                    f"alias {alias!r} must point at a 'provider/model' id or another alias, got {target!r}"
                )
        return value

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path | None = None) -> ModelbusConfig:
        """Read and validate the config file (see module docs for where it is looked for)."""
        file = _find_config_file(path)
        if file is None:
            return cls()
        try:
            with file.open("rb") as handle:
                data = tomllib.load(handle, parse_float=Decimal)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(file))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "(arguments)") -> ModelbusConfig:
        try:
            config = cls.model_validate(data)
        except ValidationError as exc:
            message, _ = describe_validation_error(exc)
            raise ConfigError(f"invalid configuration in {source}: {message}") from None
        config.source = source
        return config

    # -- provider settings ---------------------------------------------------------------------

    def provider_settings(
        self, info: ProviderInfo, overrides: dict[str, Any] | None = None
    ) -> ProviderSettings:
        """Validated settings for one provider: config file, then env vars for what the file leaves out."""
        raw: dict[str, Any] = {**self.providers.get(info.name, {}), **(overrides or {})}
        if raw.get("api_key") is None:
            for var in info.api_key_env:
                value = os.environ.get(var)
                if value:
                    raw["api_key"] = value
                    break
        base_url_env = f"{info.name.upper().replace('-', '_')}_BASE_URL"
        if raw.get("base_url") is None and os.environ.get(base_url_env):
            raw["base_url"] = os.environ[base_url_env]
        try:
            settings = info.settings_model.model_validate(raw)
        except ValidationError as exc:
            message, _ = describe_validation_error(exc)
            message = message.replace(": ", " ", 0)
            raise ConfigError(
                f"invalid settings for provider {info.name!r} in {self.source} "
                f"([providers.{info.name}]): {message}",
                provider=info.name,
            ) from None
        if settings.region is not None and settings.region not in info.regions:
            raise ConfigError(
                f"[providers.{info.name}] region {settings.region!r} in {self.source} is unknown; "
                f"choose one of {', '.join(sorted(info.regions))}",
                provider=info.name,
            )
        return settings


def _find_config_file(path: str | Path | None) -> Path | None:
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"config file {file} does not exist")
        return file
    env = os.environ.get("MODELBUS_CONFIG")
    if env:
        file = Path(env).expanduser()
        if not file.is_file():
            raise ConfigError(f"MODELBUS_CONFIG points at {file}, which does not exist")
        return file
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    file = base / "modelbus" / "config.toml"
    return file if file.is_file() else None


def base_url_for(info: ProviderInfo, settings: ProviderSettings) -> str:
    """The base URL a call goes to: the settings' own, else the configured or default region's."""
    if settings.base_url:
        return settings.base_url
    return info.regions[settings.region or info.default_region].base_url


def jurisdiction_for(info: ProviderInfo, settings: ProviderSettings) -> str:
    return info.regions[settings.region or info.default_region].jurisdiction
