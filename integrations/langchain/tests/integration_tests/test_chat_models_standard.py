"""langchain-tests' ``ChatModelIntegrationTests``, fully offline.

The "provider" is ``modelbus.testing.FakeUpstream`` answering with
``modelbus.testing.responders.smart_openai_responder``: a deterministic OpenAI-compatible server that
synthesizes tool calls and JSON from the prompt and the schemas, so the suite's semantic checks
(``magic_function(3)`` -> ``{"input": 3}``, Chinese names in tool arguments, exact JSON keys) are
really exercised. Two wirings are tested: directly through the DeepSeek plugin, and through a modelbus
gateway (``base_url``). Capabilities are declared as they are, not to make tests pass.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_modelbus import ChatModelBus
from langchain_tests.integration_tests import ChatModelIntegrationTests

from modelbus.testing import FakeUpstream

pytest.importorskip("modelbus_deepseek", reason="the direct-mode suite calls DeepSeek's plugin")

# A 1x1 PNG: the image tests download a picture from GitHub; here they get this one instead.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
LONG_SYSTEM_PROMPT = "You are a meticulous assistant. " + " ".join(
    f"Rule {number}: answer politely and cite rule {number} when it applies." for number in range(150)
)


class _OfflineSuite(ChatModelIntegrationTests):
    """What both wirings share: the fake upstream and the usage-detail hooks."""

    upstream_url: str = ""

    @pytest.fixture(autouse=True)
    def _fake_upstream(self, modelbus_smart_upstream: FakeUpstream) -> None:
        type(self).upstream_url = modelbus_smart_upstream.url

    @pytest.fixture
    async def model(self, request: pytest.FixtureRequest) -> AsyncIterator[BaseChatModel]:
        """The suite's own fixture, plus closing the model's connections in the test's event loop
        (an aiohttp session left open would be reported when it is collected, in a later test)."""
        extra = getattr(request, "param", None) or {}
        params = {**self.standard_chat_model_params, **self.chat_model_params, **extra}
        model = self.chat_model_class(**params)
        yield model
        await model.aclose()  # type: ignore[attr-defined]

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatModelBus

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True  # response_format json_object (deepseek-chat has it)

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True  # Anthropic-style tools, image sources and signed thinking blocks are translated

    @property
    def supported_usage_metadata_details(self) -> dict[str, list[str]]:  # type: ignore[override]
        return {
            "invoke": ["reasoning_output", "cache_read_input"],
            "stream": ["reasoning_output", "cache_read_input"],
        }

    def _run(self, model: BaseChatModel, messages: list[Any], *, stream: bool) -> AIMessage:
        if not stream:
            result = model.invoke(messages)
            assert isinstance(result, AIMessage)
            return result
        full: AIMessageChunk | None = None
        for chunk in model.stream(messages):
            full = chunk if full is None else full + chunk  # type: ignore[assignment]
        assert full is not None
        return full

    def invoke_with_reasoning_output(self, *, stream: bool = False) -> AIMessage:
        model = self.chat_model_class(**{**self.chat_model_params, "model": "deepseek/deepseek-reasoner"})
        message = self._run(model, [HumanMessage("Why is the sky blue? Think first.")], stream=stream)
        assert message.usage_metadata is not None
        assert message.usage_metadata["output_token_details"]["reasoning"] > 0  # type: ignore[typeddict-item]
        assert message.additional_kwargs["reasoning_content"]
        return message

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> AIMessage:
        model = self.chat_model_class(**self.chat_model_params)
        messages = [SystemMessage(LONG_SYSTEM_PROMPT), HumanMessage("Which rule comes first?")]
        self._run(model, messages, stream=stream)  # the first call writes the prompt to the cache
        message = self._run(model, messages, stream=stream)
        assert message.usage_metadata is not None
        assert message.usage_metadata["input_token_details"]["cache_read"] >= 1024  # type: ignore[typeddict-item]
        return message


class TestChatModelBusDirect(_OfflineSuite):
    """``ChatModelBus(model="deepseek/deepseek-chat")`` through the DeepSeek plugin.

    deepseek-chat has no vision and no ``json_schema`` in its model table, so images stay off and
    ``with_structured_output`` defaults to function calling (as ``ChatModelBus`` does for such models).
    """

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": "deepseek/deepseek-chat",
            "providers": {"deepseek": {"api_key": "sk-test", "base_url": self.upstream_url}},
            "max_retries": 0,
        }

    @property
    def model_override_value(self) -> str:
        return "deepseek/deepseek-v4-flash"


class TestChatModelBusGateway(_OfflineSuite):
    """``ChatModelBus(..., base_url=<gateway>/v1, api_key="mb-...")``: the fake plays the gateway.

    The gateway provider claims every capability and leaves the decision to the gateway, so image
    inputs are on here (the suite's image download is served locally), and structured output uses
    ``json_schema`` (``response_format``) to cover that path too.
    """

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": "deepseek/deepseek-chat",
            "base_url": self.upstream_url + "/v1",
            "api_key": "mb-test-virtual-key",
            "max_retries": 0,
        }

    @property
    def model_override_value(self) -> str:
        return "openai/gpt-5.4-mini"

    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        return {"method": "json_schema"}

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @pytest.fixture(autouse=True)
    def _local_image_download(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_get = httpx.get

        def get(url: str, *args: Any, **kwargs: Any) -> httpx.Response:
            if url.startswith("https://raw.githubusercontent.com/") and url.endswith(".png"):
                return httpx.Response(200, content=PNG, request=httpx.Request("GET", url))
            return real_get(url, *args, **kwargs)

        monkeypatch.setattr(httpx, "get", get)
