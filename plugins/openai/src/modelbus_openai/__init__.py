"""modelbus provider plugin for OpenAI (Chat Completions and embeddings).

Wire reference: https://platform.openai.com/docs/api-reference/chat/create and
https://platform.openai.com/docs/api-reference/embeddings/create. OpenAI *is* the protocol the core's
``OpenAICompatibleProvider`` speaks, so this plugin is data only:

* ``max_completion_tokens`` instead of the deprecated ``max_tokens`` ("This value is now deprecated in
  favor of max_completion_tokens, and is not compatible with o1 series models", chat/create reference;
  GPT-5 models reject ``max_tokens`` with ``unsupported_parameter``). It is accepted by every current
  chat model, so it is sent for all of them.
* ``stream_options.include_usage`` on every stream (the base's default): the usage arrives in a last
  chunk whose ``choices`` is ``[]``.
* usage details ``prompt_tokens_details.cached_tokens`` / ``cache_write_tokens`` and
  ``completion_tokens_details.reasoning_tokens`` are read by the base and priced by the core with the
  model table's ``cached_input`` / ``cache_write`` prices.
* error codes from https://platform.openai.com/docs/guides/error-codes mapped below.
"""

from __future__ import annotations

from typing import ClassVar

from modelbus.errors import (
    ModelbusError,
    OverloadedError,
    QuotaExceededError,
    RateLimitError,
    UnsupportedFeatureError,
    UpstreamServerError,
)
from modelbus.providers import OpenAICompatibleProvider

__all__ = ["OpenAI", "plugin"]

# error.code / error.type values -> typed errors. The core already knows insufficient_quota,
# context_length_exceeded, invalid_api_key, model_not_found and content_policy_violation.
ERROR_CODES: dict[str, type[ModelbusError]] = {
    # 429s that are billing, not pacing: retrying does not help (error-codes guide: "inspect error.code,
    # error.type can still be insufficient_quota")
    "credit_balance_exhausted": QuotaExceededError,
    "organization_spend_limit_exceeded": QuotaExceededError,
    "project_spend_limit_exceeded": QuotaExceededError,
    "organization_usage_limit_exceeded": QuotaExceededError,
    # 429s that are pacing: retry after a pause
    "rate_limit_exceeded": RateLimitError,
    "slow_down": RateLimitError,
    "rate_limit_error": RateLimitError,
    # 503 service_unavailable_error / server_is_overloaded
    "server_is_overloaded": OverloadedError,
    "service_unavailable_error": OverloadedError,
    # a parameter this model refuses (e.g. max_tokens or temperature on reasoning models)
    "unsupported_parameter": UnsupportedFeatureError,
    "unsupported_value": UnsupportedFeatureError,
    # error events inside a 200 stream carry type server_error
    "server_error": UpstreamServerError,
}


class OpenAI(OpenAICompatibleProvider):
    name = "openai"
    display_name = "OpenAI"
    api_key_env = ("OPENAI_API_KEY",)
    # EU data residency exists for eligible (Enterprise, ZDR) projects, but its base URL is not
    # confirmed from an official page: set base_url in config for it.
    regions = {"default": ("https://api.openai.com/v1", "US")}
    default_region = "default"
    docs_url = "https://platform.openai.com/docs/api-reference/chat"

    max_tokens_param: ClassVar[str] = "max_completion_tokens"
    error_codes: ClassVar[dict[str, type[ModelbusError]]] = ERROR_CODES


plugin = OpenAI()
