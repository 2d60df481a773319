"""``Connection``: lazily built sync and async clients for one framework object (LangChain, LlamaIndex).

Two modes. Direct: the installed provider plugins and config, as ``Client()`` would use them. Gateway:
when a ``base_url`` is given, only a :class:`~modelbus.providers.gateway.GatewayProvider` pointing at it
is registered (no entry points, no config file unless one is passed), and model ids are sent to the
gateway unchanged.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from modelbus.errors import ModelbusError

if TYPE_CHECKING:
    from modelbus.client import AsyncClient, Client
    from modelbus.types.models import ModelInfo

#: The gateway provider's name (``GatewayProvider.name``), repeated here so that importing this module
#: stays cheap (``modelbus.providers`` pulls in pydantic and the provider base classes).
GATEWAY = "gateway"

#: ``ChatRequest`` fields a framework call may set by keyword; any other keyword goes to ``extra``.
REQUEST_FIELDS = frozenset(
    {
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",  # OpenAI's newer name, sent as max_tokens
        "stop",
        "seed",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "reasoning_effort",
        "user",
        "metadata",
        "stream_options",
    }
)


def endpoint_from_env(base_url: str | None, api_key: str | None) -> tuple[str | None, str | None]:
    """``(base_url, api_key)`` with ``MODELBUS_BASE_URL`` / ``MODELBUS_API_KEY`` filling the gaps.

    The env key is a gateway key, so it is only used when there is a gateway: it is never sent to a
    provider directly.
    """
    base_url = base_url or os.environ.get("MODELBUS_BASE_URL") or None
    if api_key is None and base_url:
        api_key = os.environ.get("MODELBUS_API_KEY") or None
    return base_url, api_key


def providers_without_keys(providers: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]] | None:
    """Provider settings fit to serialize: every ``api_key`` left out."""
    if providers is None:
        return None
    return {
        name: {key: value for key, value in settings.items() if key != "api_key"}
        for name, settings in providers.items()
    }


def embedding_params(
    *,
    dimensions: int | None,
    input_type: Literal["query", "document"] | None,
    extra: Mapping[str, Any] | None,
    timeout: float | None,
) -> dict[str, Any]:
    """``embed()`` keyword arguments from an integration object's settings."""
    params: dict[str, Any] = {}
    if dimensions is not None:
        params["dimensions"] = dimensions
    if input_type is not None:
        params["input_type"] = input_type
    if extra:
        params["extra"] = dict(extra)
    if timeout is not None:
        params["timeout"] = timeout
    return params


def embeddable(texts: list[str]) -> list[str]:
    """``texts`` with empty strings as a single space: modelbus rejects empty input, and a space embeds
    as "nothing" on every provider."""
    return [text if text else " " for text in texts]


def request_tool_choice(
    choice: dict[str, Any] | str | bool, names: Sequence[str], *, among: str = "the tools"
) -> dict[str, Any] | str:
    """A framework's tool choice as ``ChatRequest.tool_choice``.

    ``"auto"`` and ``"none"`` stay; ``"any"``, ``"required"`` and ``True`` mean some tool
    (``"required"``); a tool name (one of ``names``, else ``ValueError`` saying it is not among
    ``among``) becomes OpenAI's ``{"type": "function", ...}``; a dict is passed as it is.
    """
    if isinstance(choice, dict):
        return choice
    if choice is True or choice in ("any", "required"):
        return "required"
    if choice in ("auto", "none"):
        return choice  # type: ignore[return-value]
    if isinstance(choice, str):
        if choice not in names:
            raise ValueError(f"tool_choice {choice!r} is not among {among} ({', '.join(names)})")
        return {"type": "function", "function": {"name": choice}}
    raise ValueError(f"unsupported tool_choice {choice!r}")


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
        self._info: dict[str, ModelInfo | None] = {}

    @property
    def gateway(self) -> bool:
        return bool(self.base_url)

    def target(self, model: str | None = None) -> str:
        """The modelbus id a call asks for (``gateway/<id>`` in gateway mode)."""
        model = model or self.model
        return f"{GATEWAY}/{model}" if self.gateway else model

    def chat_params(
        self,
        defaults: Mapping[str, Any],
        call: Mapping[str, Any],
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """``(target model id, chat() keyword arguments but messages)`` for one framework call.

        ``defaults`` are the object's settings; ``call`` the keywords of this call, which win. A keyword
        naming a :data:`REQUEST_FIELDS` field sets it, ``model`` and ``timeout`` are taken out, ``extra``
        is merged, and any other keyword goes to ``extra`` (provider-only). ``None`` means unset.
        """
        params = {name: value for name, value in defaults.items() if value is not None}
        extra = dict(extra or {})
        call = dict(call)
        model = call.pop("model", None) or self.model
        timeout = call.pop("timeout", None)
        call.pop("stream", None)
        extra.update(call.pop("extra", None) or {})
        for key, value in call.items():
            if value is not None:
                (params if key in REQUEST_FIELDS else extra)[key] = value
        if "max_completion_tokens" in params:
            params["max_tokens"] = params.pop("max_completion_tokens")
        if extra:
            params["extra"] = extra
        if timeout is not None:
            params["timeout"] = timeout
        return self.target(model), params

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
        """The model table row, or ``None`` when the model is unknown here (looked up once per model).

        In gateway mode the local tables are asked first (when the provider's plugin is installed they
        know the real context window and capabilities); the gateway's catch-all row otherwise.
        """
        model = model or self.model
        if model not in self._info:
            self._info.setdefault(model, self._resolve(model))
        return self._info[model]

    def _resolve(self, model: str) -> ModelInfo | None:
        from modelbus.client import Client

        if self.gateway:
            try:
                with Client(config=self.config) as local:
                    return local.resolve(model)
            except ModelbusError:
                pass
        try:
            return self.client.resolve(self.target(model))
        except ModelbusError:
            return None
