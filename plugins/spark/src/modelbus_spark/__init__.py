"""iFlytek Spark (讯飞星火) through its OpenAI-compatible HTTP API.

Wire reference: https://www.xfyun.cn/doc/spark/HTTP调用文档.html (v1 models) and
https://www.xfyun.cn/doc/spark/X1http.html (X1.5, model ``spark-x`` on ``/v2``); error codes from the Spark
error-code tables. What differs from OpenAI, and where it is handled:

* responses carry an envelope ``{"code": 0, "message": "Success", "sid": ...}``; a business error can come
  back with HTTP 200 and ``code != 0``, in a body or in a stream event (``check_envelope``,
  ``check_stream_envelope``), also as ``{"code", "msg", "Sid"}`` -- all mapped by code (``error_codes``);
* documented responses carry no ``finish_reason`` (and non-streamed ones no ``id``): the core infers
  ``tool_calls`` when the reply calls tools, else ``stop``; the ``sid`` becomes the id
  (``response_from_json``);
* tool calls come back as OpenAI ``tool_calls`` arrays only with ``"tool_calls_switch": true``, sent whenever
  tools are (``request_body``); function names are limited to 32 characters;
* ``data:`` lines have no space after the colon (the core's SSE decoder accepts both);
* usage comes in the last content chunk, without ``stream_options`` (not a Spark parameter: not sent);
* each model version has its own APIPassword; ``"<APIKey>:<APISecret>"`` works for every version of an app
  (``SparkSettings.passwords``, ``authenticate``);
* X1.5 (``spark-x``) lives under ``/v2`` while the others are under ``/v1`` (``model_chat_paths``).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from modelbus.context import StreamState
from modelbus.errors import (
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    ModelbusError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    UpstreamServerError,
)
from modelbus.http import HttpRequest, HttpResponse, join_url
from modelbus.providers import OpenAICompatibleProvider
from modelbus.types.chat import ChatRequest, ChatResponse
from modelbus.types.models import ModelInfo, ProviderSettings

__all__ = ["MAX_FUNCTION_NAME", "Spark", "SparkSettings", "plugin"]

MAX_FUNCTION_NAME = 32  # "tools.function.name ... 最大长度32" (HTTP调用文档)


class SparkSettings(ProviderSettings):
    """``[providers.spark]`` settings: per-version passwords and the health-probe model."""

    passwords: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="APIPassword per model id (each Spark version has its own); api_key is the fallback.",
    )
    health_model: str = Field(
        default="lite", description="Model id or alias of the 1-token health probe (Lite is free)."
    )

    def secrets(self) -> list[str]:
        return [*super().secrets(), *(password.get_secret_value() for password in self.passwords.values())]


class Spark(OpenAICompatibleProvider):
    name = "spark"
    display_name = "iFlytek Spark"
    api_key_env = ("SPARK_API_PASSWORD",)
    docs_url = "https://www.xfyun.cn/doc/spark/HTTP%E8%B0%83%E7%94%A8%E6%96%87%E6%A1%A3.html"
    regions = {
        "cn": ("https://spark-api-open.xf-yun.com", "CN")
    }  # host root: /v1 and /v2 hold different models
    default_region = "cn"
    settings_model = SparkSettings

    chat_path = "/v1/chat/completions"
    model_chat_paths: ClassVar[dict[str, str]] = {"spark-x": "/v2/chat/completions"}  # X1.5
    embeddings_path = None  # not offered on this API
    models_path = None  # no model list: health_request sends a 1-token chat instead
    stream_usage = False  # usage comes in the last content chunk; stream_options is not a Spark parameter

    # Spark error-code tables ("http错误码列表" and the engine codes of the WebSocket list)
    error_codes: ClassVar[dict[str, type[ModelbusError]]] = {
        "10003": BadRequestError,  # malformed message
        "10004": BadRequestError,  # schema error
        "10005": BadRequestError,  # bad parameter value
        "10163": BadRequestError,  # engine parameter check failed
        "10006": RateLimitError,  # concurrent use of the same user
        "10007": RateLimitError,  # previous answer still running for this user
        "10013": ContentFilteredError,  # input failed moderation
        "10014": ContentFilteredError,  # output failed moderation
        "10019": ContentFilteredError,  # conversation tends to violate the rules
        "10021": ContentFilteredError,  # input failed moderation
        "10022": ContentFilteredError,  # generated image failed moderation
        "10907": ContextLengthExceededError,  # history + question exceed the token limit
        "10015": PermissionDeniedError,  # appid blacklisted
        "10016": PermissionDeniedError,  # appid not authorised (version not enabled, no tokens, ...)
        "11200": PermissionDeniedError,  # no authorisation for the feature, or volume over the limit
        "11201": QuotaExceededError,  # daily limit exceeded
        "11202": RateLimitError,  # per-second limit exceeded
        "11203": RateLimitError,  # concurrency limit exceeded
        "10008": OverloadedError,  # service capacity insufficient
        "10110": OverloadedError,  # service busy
        "10223": OverloadedError,  # no engine node available
        "10009": UpstreamServerError,  # engine connection failed
        "10010": UpstreamServerError,
        "10011": UpstreamServerError,
        "10012": UpstreamServerError,  # engine internal error
        "10222": UpstreamServerError,  # engine network error
    }

    # -- request -------------------------------------------------------------------------------------

    def request_body(self, request: ChatRequest, model: ModelInfo) -> dict[str, Any]:
        body = super().request_body(request, model)
        if request.tools:
            long = [t.function.name for t in request.tools if len(t.function.name) > MAX_FUNCTION_NAME]
            if long:
                raise BadRequestError(
                    f"Spark function names are limited to {MAX_FUNCTION_NAME} characters: {', '.join(long)}",
                    provider=self.name,
                    model=model.id,
                    param="tools",
                )
            if "tool_calls_switch" not in request.extra:
                body["tool_calls_switch"] = True  # else calls come back as one JSON object, not tool_calls[]
        return body

    def authenticate(self, http_request: HttpRequest, settings: ProviderSettings) -> HttpRequest:
        body = http_request.json if isinstance(http_request.json, dict) else {}
        password = (
            settings.passwords.get(body.get("model", "")) if isinstance(settings, SparkSettings) else None
        )
        if password is not None:
            settings = settings.model_copy(update={"api_key": password})
        return super().authenticate(http_request, settings)

    # -- the envelope ------------------------------------------------------------------------------

    @staticmethod
    def failed(data: Any) -> bool:
        """Whether ``data`` is an envelope reporting an error (``code`` other than 0; absent: success)."""
        return isinstance(data, dict) and data.get("code") not in (None, 0, "0")

    def business_error(
        self, data: Any, response: HttpResponse, model: ModelInfo | None
    ) -> ModelbusError | None:
        """The error a ``code != 0`` envelope reports, or ``None`` for success (``code`` 0 or absent)."""
        return self.error_from_body(response, data, model) if self.failed(data) else None

    def check_envelope(self, data: Any, response: HttpResponse, model: ModelInfo | None) -> None:
        super().check_envelope(data, response, model)
        error = self.business_error(data, response, model)
        if error is not None:
            raise error

    def check_stream_envelope(self, obj: Any, state: StreamState) -> None:
        if self.failed(obj):  # checked on the parsed chunk: only an error's body is re-encoded (its text)
            raise self.error_from_body(HttpResponse(200, {}, json.dumps(obj).encode()), obj, state.model)

    def error_from_body(self, response: HttpResponse, body: Any, model: ModelInfo | None) -> ModelbusError:
        error = super().error_from_body(response, body, model)
        if isinstance(body, dict) and not error.request_id:
            error.request_id = body.get("sid") or body.get("Sid")  # Spark's request id
        return error

    # -- missing id ------------------------------------------------------------------------------------
    # A missing finish_reason needs nothing here: the core infers ``tool_calls`` / ``stop`` for complete
    # responses and streams that name none.

    def response_from_json(
        self, data: Any, response: HttpResponse, request: ChatRequest, model: ModelInfo
    ) -> ChatResponse:
        result = super().response_from_json(data, response, request, model)
        if not data.get("id") and data.get("sid"):
            result.id = data["sid"]  # non-streamed answers carry only Spark's request id
        return result

    # -- health ------------------------------------------------------------------------------------

    def health_request(self, settings: ProviderSettings, base_url: str) -> HttpRequest | None:
        name = settings.health_model if isinstance(settings, SparkSettings) else "lite"
        model = next((m for m in self.provider_info.models if name in (m.id, *m.aliases)), None)
        return HttpRequest(
            "POST",
            join_url(base_url, self.chat_path_for(model) if model is not None else self.chat_path),
            headers={"Content-Type": "application/json"},
            json={
                "model": model.id if model is not None else name,
                "messages": [{"role": "user", "content": "ping"}],
                "max_tokens": 1,
            },
        )


plugin = Spark()
