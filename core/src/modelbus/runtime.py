"""What a client shares across calls: plugins, config, the model registry and provider settings."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from modelbus.config import ModelbusConfig, base_url_for, jurisdiction_for
from modelbus.plugins import PluginHost, default_host
from modelbus.registry import ModelRegistry
from modelbus.types.models import ModelInfo, ProviderInfo, ProviderSettings


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a model can be served from: a provider, a model, settings (key, region, base URL)."""

    id: str
    model: ModelInfo
    provider: ProviderInfo
    settings: ProviderSettings
    base_url: str
    jurisdiction: str

    @property
    def provider_name(self) -> str:
        return self.provider.name


class Runtime:
    """Plugins + config + registry, built lazily and shared by sync and async clients."""

    def __init__(
        self,
        *,
        config: ModelbusConfig | None = None,
        host: PluginHost | None = None,
        provider_overrides: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.config = config if config is not None else ModelbusConfig.load()
        self.host = host if host is not None else default_host()
        self.provider_overrides = provider_overrides or {}
        self._registry: ModelRegistry | None = None
        self._settings: dict[str, ProviderSettings] = {}

    @property
    def hook(self) -> Any:
        return self.host.hook

    @property
    def registry(self) -> ModelRegistry:
        registry = self._registry
        if registry is None:
            self.host.load()
            registry = self._registry = ModelRegistry(self.host.providers, self.config)
        return registry

    def invalidate(self) -> None:
        """Forget the registry and settings (after registering a plugin in code)."""
        self._registry = None
        self._settings.clear()

    @property
    def fx_rates(self) -> dict[str, Decimal]:
        return self.config.pricing.rates()

    def settings(self, provider: ProviderInfo) -> ProviderSettings:
        settings = self._settings.get(provider.name)
        if settings is None:
            settings = self.config.provider_settings(provider, self.provider_overrides.get(provider.name))
            self._settings[provider.name] = settings
        return settings

    def provider_deployment(self, provider: str) -> Deployment:
        """A deployment for provider-level calls (health, model listing): its first model, or a stand-in."""
        from modelbus.errors import BadRequestError

        info = self.registry.providers.get(provider)
        if info is None:
            installed = ", ".join(sorted(self.registry.providers)) or "none"
            raise BadRequestError(
                f"provider {provider!r} is not installed (installed: {installed})", param="provider"
            )
        model = (
            info.models[0] if info.models else ModelInfo(provider=provider, id="(provider)", context_window=1)
        )
        return self.deployment(model)

    def deployment(self, model: ModelInfo) -> Deployment:
        """The direct deployment of a model: its provider with the configured settings."""
        provider = self.registry.providers[model.provider]
        settings = self.settings(provider)
        region = settings.region or provider.default_region
        if region in model.regional_prices:  # e.g. CNY prices on a provider's China endpoint
            model = model.model_copy(update={"price": model.regional_prices[region]})
        return Deployment(
            id=model.full_id,
            model=model,
            provider=provider,
            settings=settings,
            base_url=base_url_for(provider, settings),
            jurisdiction=jurisdiction_for(provider, settings),
        )
