"""Zhipu GLM on the BigModel open platform (China) and Z.ai (international).

Wire reference: the OpenAPI of https://docs.bigmodel.cn/api-reference/模型-api/对话补全 (servers
``https://open.bigmodel.cn/api/`` + path ``/paas/v4/chat/completions``) and, for errors,
https://docs.z.ai/api-reference/api-code. What differs from OpenAI, and where it is handled:

* ``temperature`` is [0, 1] and ``top_p`` [0.01, 1] (canonical: [0, 2] and [0, 1]): clamped to the nearest
  bound in ``request_body`` (``SAMPLING_RANGES``); values inside GLM's range pass unchanged.
* thinking is ``thinking: {"type": "enabled" | "disabled"}``, not ``reasoning_effort`` (``reasoning_params``);
* ``tool_choice`` accepts only ``"auto"``: ``"none"`` is honoured by not sending the tools
  (``omit_tools_for_none``), a forced choice is refused; ``stop`` takes at most one sequence; ``user`` is
  called ``user_id``;
* stream usage arrives in the last content chunk without ``stream_options`` (not in GLM's schema: not sent);
* ``finish_reason`` adds ``sensitive`` (safety review), ``network_error`` and
  ``model_context_window_exceeded``;
* errors are ``{"error": {"code": "1302", "message": ...}}`` with business codes that the HTTP status does
  not determine (1113 arrears comes as 429 like the rate limits): mapped by code (``error_codes``);
* the key (``<id>.<secret>``) is sent as a bearer token; signing a short-lived JWT with it instead is optional
  (``auth = "jwt"`` in the settings, ``jwt_token``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field

from modelbus.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ModelbusError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    UnsupportedFeatureError,
    UpstreamServerError,
)
from modelbus.http import HttpRequest
from modelbus.providers import OpenAICompatibleProvider
from modelbus.types.chat import ChatRequest, FinishReason, ReasoningEffort
from modelbus.types.models import ModelInfo, ProviderSettings

__all__ = ["SAMPLING_RANGES", "Zhipu", "ZhipuSettings", "jwt_token", "plugin"]

# GLM's accepted ranges (docs.bigmodel.cn chat reference): temperature [0.0, 1.0], top_p [0.01, 1.0].
SAMPLING_RANGES: dict[str, tuple[float, float]] = {"temperature": (0.0, 1.0), "top_p": (0.01, 1.0)}


class ZhipuSettings(ProviderSettings):
    """``[providers.zhipu]`` settings: the common ones plus the optional JWT signing."""

    auth: Literal["api_key", "jwt"] = Field(
        default="api_key",
        description="'api_key' sends the key as the bearer token (documented and sufficient); 'jwt' sends "
        "a short-lived HS256 token signed with the key's secret part instead.",
    )
    jwt_ttl_seconds: int = Field(default=180, ge=30, le=86400, description="Lifetime of a signed token.")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_token(api_key: str, ttl_seconds: int = 180, *, now: float | None = None) -> str:
    """An HS256 JWT for a ``<id>.<secret>`` key, as Zhipu's SDKs sign it: header
    ``{"alg": "HS256", "sign_type": "SIGN"}``, payload
    ``{"api_key": <id>, "exp": <ms>, "timestamp": <ms>}``."""
    key_id, _, secret = api_key.partition(".")
    if not key_id or not secret:
        raise AuthenticationError(
            "Zhipu JWT signing needs an API key of the form <id>.<secret>", provider="zhipu"
        )
    now_ms = int((time.time() if now is None else now) * 1000)
    header = {"alg": "HS256", "sign_type": "SIGN"}
    payload = {"api_key": key_id, "exp": now_ms + ttl_seconds * 1000, "timestamp": now_ms}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)
    )
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


class Zhipu(OpenAICompatibleProvider):
    name = "zhipu"
    display_name = "Zhipu GLM"
    api_key_env = ("ZHIPUAI_API_KEY", "ZHIPU_API_KEY")
    docs_url = "https://docs.bigmodel.cn/api-reference/"
    regions = {
        "cn": ("https://open.bigmodel.cn/api/paas/v4", "CN"),  # BigModel open platform
        "intl": ("https://api.z.ai/api/paas/v4", "SG"),  # Z.ai (separate accounts and keys)
    }
    default_region = "cn"
    settings_model = ZhipuSettings

    # "none" and "minimal" switch thinking off, every other effort on (GLM has no budget levels)
    reasoning_params: ClassVar[dict[str, dict[str, Any]]] = {
        effort: {"thinking": {"type": "disabled" if effort in ("none", "minimal") else "enabled"}}
        for effort in get_args(ReasoningEffort)
    }
    omit_tools_for_none = True  # GLM only knows "auto": not offering the tools has the same effect as "none"
    stream_usage = False  # usage comes in the last content chunk; stream_options is not in GLM's schema
    param_renames: ClassVar[dict[str, str]] = {"user": "user_id"}
    finish_reasons: ClassVar[dict[str, FinishReason]] = {
        "sensitive": "content_filter",  # blocked by the safety review
        "network_error": "error",  # inference failed mid-generation
        "model_context_window_exceeded": "length",
    }
    # Business codes (https://docs.z.ai/api-reference/api-code); the HTTP status alone is ambiguous.
    error_codes: ClassVar[dict[str, type[ModelbusError]]] = {
        "500": UpstreamServerError,
        "1000": AuthenticationError,
        "1001": AuthenticationError,  # no Authorization header
        "1002": AuthenticationError,  # invalid token
        "1003": AuthenticationError,  # token expired
        "1004": AuthenticationError,
        "1110": PermissionDeniedError,  # account inactive
        "1111": PermissionDeniedError,  # account does not exist
        "1112": PermissionDeniedError,  # account locked
        "1113": QuotaExceededError,  # in arrears / no resource package -- arrives as HTTP 429
        "1120": UpstreamServerError,  # account temporarily unreachable, try later
        "1121": PermissionDeniedError,  # locked for irregular activity
        "1200": BadRequestError,
        "1210": BadRequestError,
        "1211": NotFoundError,  # model does not exist (HTTP 400)
        "1212": UnsupportedFeatureError,  # model does not support this call method
        "1213": BadRequestError,
        "1214": BadRequestError,
        "1215": BadRequestError,
        "1220": PermissionDeniedError,
        "1221": NotFoundError,  # API taken offline
        "1222": NotFoundError,
        "1230": UpstreamServerError,
        "1231": BadRequestError,  # a request with this request_id is already running
        "1234": UpstreamServerError,  # network error
        "1300": PermissionDeniedError,  # blocked by policy
        "1301": ContentFilteredError,  # unsafe or sensitive content in input or output
        "1302": RateLimitError,  # concurrency too high
        "1303": RateLimitError,  # frequency too high
        "1304": QuotaExceededError,  # daily call limit reached (unconfirmed text)
        "1305": OverloadedError,  # "当前API请求过多" -- platform-wide load, HTTP 429
    }

    def request_body(self, request: ChatRequest, model: ModelInfo) -> dict[str, Any]:
        body = super().request_body(request, model)
        for field, (low, high) in SAMPLING_RANGES.items():
            if field in body:
                body[field] = min(max(body[field], low), high)
        if request.stop is not None and len(request.stop) > 1:
            raise BadRequestError(
                f"{model.full_id} accepts at most one stop sequence, got {len(request.stop)}",
                provider=self.name,
                model=model.id,
                param="stop",
            )
        if request.tool_choice not in (None, "auto", "none"):
            raise UnsupportedFeatureError(
                f"{model.full_id} supports only tool_choice 'auto' (or 'none')",
                provider=self.name,
                model=model.id,
                param="tool_choice",
            )
        return body

    def authenticate(self, http_request: HttpRequest, settings: ProviderSettings) -> HttpRequest:
        http_request = super().authenticate(http_request, settings)
        key = settings.secret()
        if isinstance(settings, ZhipuSettings) and settings.auth == "jwt" and key:
            http_request.headers[self.auth_header] = self.auth_prefix + jwt_token(
                key, settings.jwt_ttl_seconds
            )
        return http_request


plugin = Zhipu()
