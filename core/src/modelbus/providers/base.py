"""``ProviderPlugin``: the class a provider plugin instantiates and exposes as its entry point.

It turns the hook specs into plain methods: each ``modelbus_*`` hook implementation checks that the
``provider`` argument is this plugin's and then calls the undecorated method of the same job
(``translate_request``, ``normalize_response`` ...). Subclasses override those methods freely; the
hook markers stay on the base class, so an override can never silently unhook itself.

Class attributes are data: name, regions, key env vars, the model table file, the auth style.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from modelbus.context import StreamState
from modelbus.errors import MalformedResponseError, MissingCredentialsError, ModelbusError
from modelbus.hookspecs import hookimpl
from modelbus.http import HttpRequest, HttpResponse, loads_json
from modelbus.sse import ServerSentEvent
from modelbus.types.chat import ChatChunk, ChatRequest, ChatResponse, CostBreakdown, Usage
from modelbus.types.embeddings import EmbeddingRequest, EmbeddingResponse
from modelbus.types.models import (
    ModelInfo,
    ProviderInfo,
    ProviderSettings,
    RegionInfo,
    load_model_table,
)


class ProviderPlugin:
    """Base class of every provider plugin. Subclass, set the class attributes, override methods."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    api_key_env: ClassVar[tuple[str, ...]] = ()
    requires_api_key: ClassVar[bool] = True
    regions: ClassVar[dict[str, tuple[str, str]]] = {}  # region -> (base URL, jurisdiction)
    default_region: ClassVar[str] = "default"
    models_file: ClassVar[str | None] = "models.toml"  # next to the subclass's module
    settings_model: ClassVar[type[ProviderSettings]] = ProviderSettings
    docs_url: ClassVar[str | None] = None
    unlisted_model: ClassVar[dict[str, Any] | None] = None  # template row for chat ids not in the table
    unlisted_embedding_model: ClassVar[dict[str, Any] | None] = None  # the same for embedding ids

    # auth style: a header with a prefix, or a query parameter
    auth_header: ClassVar[str] = "Authorization"
    auth_prefix: ClassVar[str] = "Bearer "
    auth_query_param: ClassVar[str | None] = None

    @property
    def plugin_name(self) -> str:
        return f"modelbus-{self.name}"

    @property
    def answers_for(self) -> frozenset[str]:
        """The providers this plugin's hooks answer for (every hook returns None for the others)."""
        return frozenset({self.name})

    # -- data ----------------------------------------------------------------------------------

    def model_table(self) -> list[ModelInfo]:
        if not self.models_file:
            return []
        path = Path(inspect.getfile(type(self))).with_name(self.models_file)
        return load_model_table(path, provider=self.name)

    @cached_property
    def provider_info(self) -> ProviderInfo:
        return ProviderInfo(
            name=self.name,
            display_name=self.display_name,
            api_key_env=list(self.api_key_env),
            requires_api_key=self.requires_api_key,
            default_region=self.default_region,
            regions={
                region: RegionInfo(base_url=url, jurisdiction=jurisdiction)
                for region, (url, jurisdiction) in self.regions.items()
            },
            models=self.model_table(),
            unlisted_model=self._template(self.unlisted_model, "chat"),
            unlisted_embedding_model=self._template(self.unlisted_embedding_model, "embedding"),
            docs_url=self.docs_url,
            settings_model=self.settings_model,
        )

    def _template(self, row: dict[str, Any] | None, kind: str) -> ModelInfo | None:
        if row is None:
            return None
        return ModelInfo.model_validate({"provider": self.name, "id": "*", "kind": kind, **row})

    # -- overridable steps ---------------------------------------------------------------------

    def translate_request(
        self, request: ChatRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest:
        raise NotImplementedError

    def translate_embedding_request(
        self, request: EmbeddingRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest | None:
        return None

    def authenticate(self, http_request: HttpRequest, settings: ProviderSettings) -> HttpRequest:
        key = settings.secret()
        if key:
            if self.auth_query_param:
                http_request.params[self.auth_query_param] = key
            else:
                http_request.headers[self.auth_header] = self.auth_prefix + key
        elif self.requires_api_key:
            where = " or ".join(self.api_key_env) if self.api_key_env else "an environment variable"
            raise MissingCredentialsError(
                f"no API key for {self.display_name}: set {where}, or api_key under "
                f"[providers.{self.name}] in config.toml",
                provider=self.name,
            )
        http_request.headers.update(settings.headers)
        return http_request

    def normalize_response(
        self, response: HttpResponse, request: ChatRequest, model: ModelInfo
    ) -> ChatResponse:
        raise NotImplementedError

    def normalize_stream_event(self, event: ServerSentEvent, state: StreamState) -> list[ChatChunk]:
        raise NotImplementedError

    def event_json(self, event: ServerSentEvent) -> Any:
        """The event's ``data`` parsed as JSON, ``None`` when it is empty (keep-alives).

        Raises :class:`MalformedResponseError` (with a short preview) when it is not JSON.
        """
        data = event.data.strip()
        if not data:
            return None
        try:
            return loads_json(data)
        except ValueError:
            raise MalformedResponseError(
                f"stream event is not JSON: {data[:80]!r}", provider=self.name
            ) from None

    def normalize_embedding_response(
        self, response: HttpResponse, request: EmbeddingRequest, model: ModelInfo
    ) -> EmbeddingResponse | None:
        return None

    def normalize_error(self, response: HttpResponse, model: ModelInfo | None) -> ModelbusError | None:
        """``None`` falls back to the core's mapping by HTTP status."""
        return None

    def health_request(self, settings: ProviderSettings, base_url: str) -> HttpRequest | None:
        return None

    def price_usage(
        self, model: ModelInfo, usage: Usage, fx_rates: Mapping[str, Decimal]
    ) -> CostBreakdown | None:
        """``None`` falls back to the core's pricing from the model table (tiers and regions included)."""
        return None

    def health_response(self, response: HttpResponse) -> ModelbusError | None:
        """An error hidden in a 2xx health answer (``None``: healthy)."""
        return None

    def list_models_request(self, settings: ProviderSettings, base_url: str) -> HttpRequest | None:
        return None

    def parse_model_list(self, response: HttpResponse) -> list[ModelInfo] | None:
        return None

    # -- hook implementations: dispatch by provider name -----------------------------------------

    @hookimpl
    def modelbus_register_providers(self, register: Any) -> None:
        register(self.provider_info)

    @hookimpl
    def modelbus_translate_request(
        self, provider: str, request: ChatRequest, model: ModelInfo, settings: ProviderSettings, base_url: str
    ) -> HttpRequest | None:
        return self.translate_request(request, model, settings, base_url) if provider == self.name else None

    @hookimpl
    def modelbus_translate_embedding_request(
        self,
        provider: str,
        request: EmbeddingRequest,
        model: ModelInfo,
        settings: ProviderSettings,
        base_url: str,
    ) -> HttpRequest | None:
        if provider != self.name:
            return None
        return self.translate_embedding_request(request, model, settings, base_url)

    @hookimpl
    def modelbus_authenticate(
        self, provider: str, http_request: HttpRequest, settings: ProviderSettings
    ) -> HttpRequest | None:
        return self.authenticate(http_request, settings) if provider == self.name else None

    @hookimpl
    def modelbus_normalize_response(
        self, provider: str, response: HttpResponse, request: ChatRequest, model: ModelInfo
    ) -> ChatResponse | None:
        return self.normalize_response(response, request, model) if provider == self.name else None

    @hookimpl
    def modelbus_normalize_stream_event(
        self, provider: str, event: ServerSentEvent, state: StreamState
    ) -> list[ChatChunk] | None:
        return self.normalize_stream_event(event, state) if provider == self.name else None

    @hookimpl
    def modelbus_normalize_embedding_response(
        self, provider: str, response: HttpResponse, request: EmbeddingRequest, model: ModelInfo
    ) -> EmbeddingResponse | None:
        return self.normalize_embedding_response(response, request, model) if provider == self.name else None

    @hookimpl
    def modelbus_normalize_error(
        self, provider: str, response: HttpResponse, model: ModelInfo | None
    ) -> ModelbusError | None:
        return self.normalize_error(response, model) if provider == self.name else None

    @hookimpl
    def modelbus_health_request(
        self, provider: str, settings: ProviderSettings, base_url: str
    ) -> HttpRequest | None:
        return self.health_request(settings, base_url) if provider == self.name else None

    @hookimpl
    def modelbus_price_usage(
        self, provider: str, model: ModelInfo, usage: Usage, fx_rates: Mapping[str, Decimal]
    ) -> CostBreakdown | None:
        return self.price_usage(model, usage, fx_rates) if provider == self.name else None

    @hookimpl
    def modelbus_health_response(self, provider: str, response: HttpResponse) -> ModelbusError | None:
        return self.health_response(response) if provider == self.name else None

    @hookimpl
    def modelbus_list_models_request(
        self, provider: str, settings: ProviderSettings, base_url: str
    ) -> HttpRequest | None:
        return self.list_models_request(settings, base_url) if provider == self.name else None

    @hookimpl
    def modelbus_parse_model_list(self, provider: str, response: HttpResponse) -> list[ModelInfo] | None:
        return self.parse_model_list(response) if provider == self.name else None
