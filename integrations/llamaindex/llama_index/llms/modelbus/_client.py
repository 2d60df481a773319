"""How a LlamaIndex object reaches modelbus: directly through the installed provider plugins, or through
a modelbus gateway (an OpenAI-compatible server) when a ``base_url`` is given.

Gateway mode registers, in code, a provider named ``gateway`` on the OpenAI-compatible base: its base
URL is the one given, it takes any model id (``unlisted_model``), and the id goes upstream unchanged,
so ``model="deepseek/deepseek-chat"`` reaches the gateway as ``"deepseek/deepseek-chat"``. Nothing
else is loaded (no entry points, no config file unless one is passed): the gateway owns the provider
keys, the model tables, routing and billing.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelbus import AsyncClient, Client, ModelInfo

GATEWAY = "gateway"
DEFAULT_GATEWAY_URL = "http://localhost:4000/v1"
_ALL_CHAT_CAPABILITIES = [
    "streaming",
    "tools",
    "parallel_tool_calls",
    "vision",
    "json_object",
    "json_schema",
    "reasoning",
]


@cache
def gateway_provider_class() -> type:
    """The provider class for a modelbus gateway (built on first use: importing it loads pydantic)."""
    from modelbus.providers import OpenAICompatibleProvider

    class ModelbusGateway(OpenAICompatibleProvider):
        """A modelbus gateway: OpenAI Chat Completions and embeddings, any model id, a virtual key."""

        name = GATEWAY
        display_name = "modelbus gateway"
        api_key_env = ("MODELBUS_API_KEY",)
        requires_api_key = False  # a local gateway may run without keys; it answers 401 otherwise
        regions = {"default": (DEFAULT_GATEWAY_URL, "LOCAL")}
        models_file = None
        # The gateway checks each model against its own tables: claim everything here, let it decide.
        unlisted_model = {"context_window": 128_000, "capabilities": _ALL_CHAT_CAPABILITIES}
        unlisted_embedding_model = {"context_window": 8192}

    return ModelbusGateway


class Connection:
    """Builds (lazily) the sync and async modelbus clients for one LlamaIndex object."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str | None,
        providers: dict[str, dict[str, Any]] | None,
        config: Any,
        max_retries: int | None,
        timeout: float | None,
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
                plugins=[gateway_provider_class()()],
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
                    from modelbus import Client

                    client = Client(**self._kwargs())
                    # Load the plugins now, under the lock: modelbus's PluginHost.load() is not safe
                    # against concurrent first calls (a thread pool, e.g. LangChain's batch(), would see
                    # a host marked loaded but still empty).
                    _ = client.runtime.registry
                    self._client = client
        return self._client

    @property
    def async_client(self) -> AsyncClient:
        if self._async_client is None:
            runtime = self.client.runtime  # the same plugins, config and registry (pools stay apart)
            with self._lock:
                if self._async_client is None:
                    from modelbus import AsyncClient

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

        In gateway mode the local tables are asked first (when the provider's plugin is installed
        they know the real context window and capabilities); the gateway's catch-all row otherwise.
        """
        from modelbus import Client
        from modelbus.errors import ModelbusError

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
