"""Plugins that misbehave or cross-cut, for the discovery and hook-wrapping tests."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from modelbus import hookimpl
from modelbus.errors import BadRequestError
from modelbus.providers import OpenAICompatibleProvider
from modelbus.types import ChatResponse, Choice, ResponseMessage


class TypoPlugin:
    @hookimpl
    def modelbus_translate_requests(self, provider: str) -> None:  # no such hook
        return None


class BadArgsPlugin:
    @hookimpl
    def modelbus_translate_request(self, provider: str, nonsense: int) -> None:  # arg not in the spec
        return None


class RaisingRegister:
    @hookimpl
    def modelbus_register_providers(self, register: Any) -> None:
        raise RuntimeError("boom while registering")


class NotAProviderInfo:
    @hookimpl
    def modelbus_register_providers(self, register: Any) -> None:
        register({"name": "dict-is-not-enough"})


class DuplicateAcme(OpenAICompatibleProvider):
    name = "acme"
    display_name = "Acme again"
    regions = {"default": ("https://dup.test", "US")}
    models_file = None


class Shouting:
    """Wraps acme's response normalization without forking the provider."""

    @hookimpl(wrapper=True)
    def modelbus_normalize_response(self, provider: str) -> Generator[None, Any, Any]:
        response = yield
        if provider == "acme" and response is not None:
            response.choices[0].message.content = (response.choices[0].message.content or "").upper()
        return response


class ExtraHeader:
    """Takes over one step (authenticate) for an existing provider with tryfirst."""

    @hookimpl(tryfirst=True)
    def modelbus_authenticate(self, provider: str, http_request: Any, settings: Any) -> Any:
        if provider != "acme":
            return None
        http_request.headers["Authorization"] = "Signed " + (settings.secret() or "")[::-1]
        http_request.headers["X-Signed"] = "yes"
        return http_request


class Cache:
    def __init__(self) -> None:
        self.stored: dict[str, ChatResponse] = {}
        self.seen: list[Any] = []

    @hookimpl
    def modelbus_before_call(self, request: Any, context: Any) -> Any:
        text = request.messages[-1].content if hasattr(request, "messages") else None
        if text == "cached?":
            return ChatResponse(
                id="cache", model="cache", choices=[Choice(message=ResponseMessage(content="hit"))]
            )
        if text == "forbidden":
            raise BadRequestError("blocked by guardrail")
        return None

    @hookimpl
    def modelbus_after_call(self, request: Any, response: Any, error: Any, context: Any) -> None:
        self.seen.append((response, error, context.request_id))


class BrokenObserver:
    @hookimpl
    def modelbus_after_call(self, request: Any, response: Any, error: Any, context: Any) -> None:
        raise RuntimeError("observer bug")
