"""``Connection``: lazily built sync and async clients for one framework object (LangChain, LlamaIndex).

Two modes. Direct: the installed provider plugins and config, as ``Client()`` would use them. Gateway:
when a ``base_url`` is given, only a :class:`~modelbus.providers.gateway.GatewayProvider` pointing at it
is registered (no entry points, no config file unless one is passed), and model ids are sent to the
gateway unchanged.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from modelbus.errors import ModelbusError

if TYPE_CHECKING:
    from modelbus.client import AsyncClient, Client
    from modelbus.types.models import ModelInfo

GATEWAY = "gateway"


class Connection:
    """Builds (once, thread-safely) the sync and async modelbus clients an integration object uses."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        providers: dict[str, dict[str, Any]] | None = None,
        config: Any = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        compat: str = "strict",
        client: Client | None = None,
        async_client: AsyncClient | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.api_key = api_key
        self.providers = providers
        self.config = config
        self.max_retries = max_retries
        self.timeout = timeout
        self.compat = compat
        self._client = client
        self._async_client = async_client
        self._lock = threading.Lock()

    @property
    def gateway(self) -> bool:
        return bool(self.base_url)

    def target(self, model: str | None = None) -> str:
        """The modelbus id a call asks for (``gateway/<id>`` in gateway mode)."""
        model = model or self.model
        return f"{GATEWAY}/{model}" if self.gateway else model

    def _kwargs(self) -> dict[str, Any]:
        from modelbus.providers.gateway import GatewayProvider

        providers = {name: dict(settings) for name, settings in (self.providers or {}).items()}
        kwargs: dict[str, Any] = {
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "compat": self.compat,
        }
        if self.gateway:
            settings = providers.setdefault(GATEWAY, {})
            settings.setdefault("base_url", self.base_url)
            if self.api_key:
                settings.setdefault("api_key", self.api_key)
            kwargs.update(
                plugins=[GatewayProvider()],
                load_entrypoints=False,
                config=self.config if self.config is not None else {},
            )
        else:
            if self.api_key:  # a key given in code belongs to the provider the model id names
                providers.setdefault(self.model.partition("/")[0], {}).setdefault("api_key", self.api_key)
            kwargs["config"] = self.config
        kwargs["providers"] = providers or None
        return kwargs

    @property
    def client(self) -> Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from modelbus.client import Client

                    client = Client(**self._kwargs())
                    _ = client.runtime.registry  # load plugins now, once, before any thread uses them
                    self._client = client
        return self._client

    @property
    def async_client(self) -> AsyncClient:
        if self._async_client is None:
            runtime = self.client.runtime  # the same plugins, config and registry (pools stay apart)
            with self._lock:
                if self._async_client is None:
                    from modelbus.client import AsyncClient

                    self._async_client = AsyncClient(**{**self._kwargs(), "runtime": runtime})
        return self._async_client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        if self._async_client is not None:
            await self._async_client.aclose()
        self.close()

    def model_info(self, model: str | None = None) -> ModelInfo | None:
        """The model table row, or ``None`` when the model is unknown here.

        In gateway mode the local tables are asked first (when the provider's plugin is installed they
        know the real context window and capabilities); the gateway's catch-all row otherwise.
        """
        from modelbus.client import Client

        model = model or self.model
        if self.gateway:
            try:
                return Client(config=self.config).resolve(model)
            except ModelbusError:
                pass
        try:
            return self.client.resolve(self.target(model))
        except ModelbusError:
            return None
