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
        self._router: Any = None

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
        """Forget the registry, settings and router (after registering a plugin in code)."""
        self._registry = None
        self._settings.clear()
        self._router = None

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

    @property
    def router(self) -> Any:
        """The scheduler for the virtual models of ``[router]``, or ``None`` when none are configured."""
        if self._router is None and self.config.router:
            from modelbus.router import Router, RouterConfig

            self._router = Router(RouterConfig.from_config(self.config.router, self.config.source), self)
        return self._router

    def named_deployment(self, name: str, model: ModelInfo, overrides: dict[str, Any]) -> Deployment:
        """A deployment with its own settings (another key, region or base URL of the same provider)."""
        provider = self.registry.providers[model.provider]
        base = {
            **self.config.providers.get(provider.name, {}),
            **self.provider_overrides.get(provider.name, {}),
        }
        overrides = dict(overrides)
        key_env = overrides.pop("api_key_env", None)
        if key_env is not None:
            import os

            from modelbus.errors import ConfigError

            if not os.environ.get(key_env):
                raise ConfigError(
                    f"[router.deployments.{name}] api_key_env: ${key_env} is not set", provider=provider.name
                )
            overrides["api_key"] = os.environ[key_env]

        info: ProviderInfo = provider
        settings = self.config.provider_settings(info, {**base, **overrides})
        region = settings.region or provider.default_region
        if region in model.regional_prices:
            model = model.model_copy(update={"price": model.regional_prices[region]})
        return Deployment(
            id=name,
            model=model,
            provider=provider,
            settings=settings,
            base_url=base_url_for(provider, settings),
            jurisdiction=jurisdiction_for(provider, settings),
        )

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
