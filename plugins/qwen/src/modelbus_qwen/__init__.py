"""Alibaba Qwen on Model Studio (Bailian / DashScope), through DashScope's OpenAI-compatible mode.

Wire reference: https://help.aliyun.com/zh/model-studio/qwen-api-via-openai-chat-completions (zh) and
https://www.alibabacloud.com/help/en/model-studio/qwen-api-via-openai-chat-completions (en). Error codes:
https://help.aliyun.com/zh/model-studio/error-code and https://www.alibabacloud.com/help/en/model-studio/error-code.

What differs from OpenAI, and where it is handled:

* regions are separate deployments with separate API keys (``regions``);
* thinking is switched by ``enable_thinking`` / ``thinking_budget`` in the body, not ``reasoning_effort``
  (``reasoning_params`` maps the canonical effort, see ``THINKING``); thinking text arrives as
  ``reasoning_content`` (the base's default ``reasoning_field``);
* streamed tool-call continuation deltas carry ``"id": ""`` -- the base already treats ``""`` as no id;
* errors carry DashScope's own codes (``Arrearage``, ``DataInspectionFailed`` ...) as well as lower-case
  compatible-mode codes (``data_inspection_failed``, ``invalid_parameter_error``) (``error_codes``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from modelbus.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ModelbusError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    UpstreamServerError,
)
from modelbus.providers import OpenAICompatibleProvider

__all__ = ["THINKING", "Qwen", "plugin"]

# Canonical reasoning_effort -> DashScope thinking parameters, for the hybrid-thinking models (those with
# the "reasoning" capability in models.toml). "none" and "minimal" turn thinking off; "high" and above leave
# the budget at the model's own maximum chain-of-thought length (DashScope has no level above it). Keys the
# caller sets in ``extra`` win, key by key.
THINKING: dict[str, dict[str, Any]] = {
    "none": {"enable_thinking": False},
    "minimal": {"enable_thinking": False},
    "low": {"enable_thinking": True, "thinking_budget": 1024},
    "medium": {"enable_thinking": True, "thinking_budget": 8192},
    "high": {"enable_thinking": True},
    "xhigh": {"enable_thinking": True},
    "max": {"enable_thinking": True},
}


class Qwen(OpenAICompatibleProvider):
    name = "qwen"
    display_name = "Alibaba Qwen (DashScope)"
    api_key_env = ("DASHSCOPE_API_KEY",)
    docs_url = "https://help.aliyun.com/zh/model-studio/qwen-api-via-openai-chat-completions"
    # Each region is its own deployment with its own API keys (a Beijing key fails in Singapore with 401).
    regions = {
        "cn": ("https://dashscope.aliyuncs.com/compatible-mode/v1", "CN"),  # China (Beijing)
        "intl": ("https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "SG"),  # Singapore
        "us": ("https://dashscope-us.aliyuncs.com/compatible-mode/v1", "US"),  # US (Virginia)
        "hk": ("https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1", "HK"),  # China (Hong Kong)
    }
    default_region = "cn"

    error_codes: ClassVar[dict[str, type[ModelbusError]]] = {
        # DashScope status codes (https://help.aliyun.com/zh/model-studio/error-code); OpenAI's own
        # (invalid_api_key, model_not_found ...) are in the base's table already
        "InvalidParameter": BadRequestError,
        "invalid_parameter_error": BadRequestError,
        "InvalidParameter.DataInspection": BadRequestError,  # media format unsupported by moderation
        "DataInspectionFailed": ContentFilteredError,
        "data_inspection_failed": ContentFilteredError,
        "InternalError.Algo.DataInspectionFailed": ContentFilteredError,
        "Arrearage": QuotaExceededError,  # overdue account: HTTP 400, not retryable
        "InvalidApiKey": AuthenticationError,
        "AccessDenied": PermissionDeniedError,
        "AccessDenied.Unpurchased": PermissionDeniedError,
        "Throttling": RateLimitError,
        "Throttling.RateQuota": RateLimitError,
        "Throttling.AllocationQuota": RateLimitError,  # per-minute token allocation, HTTP 429
        "limit_requests": RateLimitError,
        "RequestTimeOut": RequestTimeoutError,
        "InternalError": UpstreamServerError,
        "InternalError.Algo": UpstreamServerError,
    }

    # DashScope accepts reasoning_effort only for hosted DeepSeek models; Qwen models take
    # enable_thinking / thinking_budget instead.
    reasoning_params: ClassVar[dict[str, dict[str, Any]]] = THINKING


plugin = Qwen()
