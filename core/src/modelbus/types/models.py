"""Model tables, prices and provider descriptions."""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, JsonValue, SecretStr, field_validator, model_validator

from modelbus.types.base import WireModel

Capability = Literal[
    "streaming",
    "tools",
    "parallel_tool_calls",
    "vision",
    "json_object",
    "json_schema",
    "reasoning",
]
ALL_CAPABILITIES: tuple[str, ...] = Capability.__args__  # type: ignore[attr-defined]


class PriceTier(WireModel):
    """Prices that apply instead of the base ones when the prompt is longer than ``above_prompt_tokens``."""

    above_prompt_tokens: int = Field(ge=0)
    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0)
    cache_write: Decimal | None = Field(default=None, ge=0)
    reasoning_output: Decimal | None = Field(default=None, ge=0)


class ModelPrice(WireModel):
    """Prices per one million tokens, in the provider's own currency, with where and when they were read."""

    currency: Literal["USD", "CNY", "EUR"]
    input: Decimal = Field(ge=0)
    output: Decimal = Field(default=Decimal(0), ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0, description="Cache-hit input price.")
    cache_write: Decimal | None = Field(default=None, ge=0, description="Cache-write input price.")
    reasoning_output: Decimal | None = Field(
        default=None,
        ge=0,
        description="Price of reasoning (thinking) output tokens when it differs from output.",
    )
    as_of: date
    source: str = Field(pattern=r"^https?://", description="The page the price was read from.")
    tiers: list[PriceTier] = Field(default_factory=list, description="Long-context tiers, ascending.")

    def for_prompt(self, prompt_tokens: int) -> ModelPrice | PriceTier:
        """The price that applies to a prompt of this length (the highest tier it passes, else the base)."""
        chosen: ModelPrice | PriceTier = self
        for tier in sorted(self.tiers, key=lambda t: t.above_prompt_tokens):
            if prompt_tokens > tier.above_prompt_tokens:
                chosen = tier
        return chosen

    @property
    def is_free(self) -> bool:
        return not (self.input or self.output or self.cached_input or self.cache_write)


class ModelInfo(WireModel):
    """One row of a provider's model table."""

    provider: str
    id: str = Field(description="The provider's own model name, e.g. 'deepseek-chat'.")
    kind: Literal["chat", "embedding"] = "chat"
    context_window: int = Field(ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    default_max_tokens: int | None = Field(
        default=None, ge=1, description="Sent when the caller gives none and the provider requires one."
    )
    capabilities: frozenset[Capability] = frozenset()
    quality_tier: int = Field(default=2, ge=1, le=5, description="1 = basic ... 5 = frontier.")
    price: ModelPrice | None = None
    regional_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Prices that replace `price` when the provider is used in that region.",
    )
    aliases: list[str] = Field(default_factory=list)
    unsupported_params: frozenset[str] = frozenset()
    embedding_dimensions: int | None = None
    deprecated: str | None = None
    description: str | None = None
    quirks: dict[str, JsonValue] = Field(
        default_factory=dict, description="Provider-specific facts about this model, read by its plugin."
    )

    @property
    def full_id(self) -> str:
        return f"{self.provider}/{self.id}"

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    @model_validator(mode="after")
    def _embedding_has_dimensions(self) -> ModelInfo:
        if self.kind == "embedding" and self.capabilities - {"streaming"}:
            raise ValueError(f"embedding model {self.id!r} cannot have chat capabilities")
        return self


class RegionInfo(WireModel):
    base_url: str = Field(pattern=r"^[a-z][a-z0-9+.-]*://")
    jurisdiction: str = Field(
        description="Where data is processed, ISO-like: 'CN', 'US', 'EU', 'SG', 'LOCAL'."
    )


class ProviderSettings(WireModel):
    """Settings common to every provider; plugins subclass it to add their own keys."""

    api_key: SecretStr | None = None
    base_url: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9+.-]*://")
    region: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)

    def secret(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key is not None else None

    def secrets(self) -> list[str]:
        """Every secret value in these settings (for redaction)."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                values.append(value.get_secret_value())
        return values


class ProviderInfo(WireModel):
    """What a plugin registers for one provider."""

    model_config = WireModel.model_config | {"arbitrary_types_allowed": True}

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    display_name: str
    api_key_env: list[str] = Field(
        default_factory=list, description="Env vars searched for the key, in order."
    )
    requires_api_key: bool = True
    default_region: str = "default"
    regions: dict[str, RegionInfo]
    models: list[ModelInfo] = Field(default_factory=list)
    unlisted_model: ModelInfo | None = Field(
        default=None,
        description="Template for model ids missing from the table (e.g. Ollama's local models); "
        "None means unknown ids are an error.",
    )
    unlisted_embedding_model: ModelInfo | None = Field(
        default=None, description="Template for embedding model ids missing from the table."
    )
    docs_url: str | None = None
    settings_model: type[ProviderSettings] = ProviderSettings

    @field_validator("regions")
    @classmethod
    def _at_least_one_region(cls, value: dict[str, RegionInfo]) -> dict[str, RegionInfo]:
        if not value:
            raise ValueError("a provider needs at least one region (base URL)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ProviderInfo:
        if self.default_region not in self.regions:
            raise ValueError(
                f"default_region {self.default_region!r} is not among regions {sorted(self.regions)}"
            )
        for model in self.models:
            if model.provider != self.name:
                raise ValueError(f"model {model.id!r} names provider {model.provider!r}, not {self.name!r}")
        return self


def load_model_table(path: str | Path, *, provider: str) -> list[ModelInfo]:
    """Read a ``models.toml`` model table.

    Layout: an optional ``[price_defaults]`` table (currency, as_of, source) inherited by every
    ``[[models]]`` entry's ``price`` and ``regional_prices.<region>``; ``capabilities`` is a list of
    capability names; ``price.tiers`` lists long-context tiers (``above_prompt_tokens``, prices).
    """
    path = Path(path)
    with path.open("rb") as handle:
        data = tomllib.load(handle, parse_float=Decimal)
    defaults: dict[str, Any] = data.get("price_defaults", {})
    models = []
    for index, row in enumerate(data.get("models", [])):
        row = dict(row)
        if "price" in row:
            row["price"] = {**defaults, **row["price"]}
        if "regional_prices" in row:
            row["regional_prices"] = {
                region: {**defaults, **price} for region, price in row["regional_prices"].items()
            }
        try:
            models.append(ModelInfo.model_validate({"provider": provider, **row}))
        except ValueError as exc:
            raise ValueError(f"{path}: models[{index}] ({row.get('id', '?')}): {exc}") from None
    return models
