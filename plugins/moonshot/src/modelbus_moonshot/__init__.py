"""modelbus-moonshot: Moonshot AI's Kimi API (OpenAI-compatible Chat Completions).

Two separate platforms serve the same API and models:

* ``cn``   — https://api.moonshot.cn/v1, console platform.kimi.com (formerly platform.moonshot.cn),
  billed in CNY;
* ``intl`` — https://api.moonshot.ai/v1, console platform.kimi.ai (formerly platform.moonshot.ai),
  billed in USD, contracted with Moonshot AI PTE. LTD. (Singapore).

Keys cannot be mixed: "If you use a Key from platform.kimi.com on platform.kimi.ai (or vice versa),
you will receive a 401 error" (https://platform.kimi.ai/docs/api/errors). Choose the region that
issued the key (``region = "intl"`` under ``[providers.moonshot]``); a 401 says so.

Differences from OpenAI handled here or by the OpenAI-compatible base:

* ``max_tokens`` is deprecated in favour of ``max_completion_tokens`` (current API reference).
* Usage: ``usage.cached_tokens`` at the top level (not ``prompt_tokens_details``); the legacy stream
  format puts ``usage`` inside ``choices[0]`` of the last chunk. The base reads all three shapes.
* ``reasoning_content`` beside ``content`` for thinking models; models with preserved thinking
  (kimi-k2.6 with keep=all, kimi-k2.7-code, kimi-k3) require every historical assistant
  ``reasoning_content`` echoed back ("thinking is enabled but reasoning_content is missing"), so
  reasoning history is always replayed.
* Errors are told apart by ``error.type``, not status: three types share 429 and only two are
  retryable (``engine_overloaded_error``, ``rate_limit_reached_error``); ``exceeded_current_quota_error``
  (429 or 403) means the balance or quota is gone.
"""

from __future__ import annotations

from typing import Any, ClassVar

from modelbus.errors import (
    AuthenticationError,
    ModelbusError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    UpstreamServerError,
)
from modelbus.http import HttpResponse
from modelbus.providers import OpenAICompatibleProvider
from modelbus.types.models import ModelInfo

__all__ = ["Moonshot", "plugin"]

_KEY_HINT = (
    " (keys from platform.kimi.com / api.moonshot.cn and platform.kimi.ai / api.moonshot.ai cannot be "
    "mixed: set region = 'cn' or 'intl' under [providers.moonshot] to match the key)"
)


class Moonshot(OpenAICompatibleProvider):
    name = "moonshot"
    display_name = "Moonshot AI (Kimi)"
    api_key_env = ("MOONSHOT_API_KEY",)
    # Sources: https://platform.moonshot.cn/docs/api/chat (cn), https://platform.kimi.ai/docs/api/quickstart
    # (intl). "SG" for intl is the contracting entity's seat (Moonshot AI PTE. LTD., Terms of Service at
    # https://platform.kimi.ai/docs/agreement/modeluse); where intl inference runs is unconfirmed.
    regions = {
        "cn": ("https://api.moonshot.cn/v1", "CN"),
        "intl": ("https://api.moonshot.ai/v1", "SG"),
    }
    default_region = "cn"
    docs_url = "https://platform.kimi.ai/docs/overview"

    max_tokens_param = "max_completion_tokens"
    reasoning_field = "reasoning_content"
    send_reasoning_history = True
    error_codes: ClassVar[dict[str, type[ModelbusError]]] = {
        # 400: content_filter is one of OpenAI's codes, in the base's table already
        # 401 (incorrect_api_key_error on the current page, invalid_authentication_error before)
        "invalid_authentication_error": AuthenticationError,
        "incorrect_api_key_error": AuthenticationError,
        # 403 and 429: balance, quota or account state; not retryable
        "exceeded_current_quota_error": QuotaExceededError,
        "permission_denied_error": PermissionDeniedError,
        "access_terminated_error": PermissionDeniedError,
        # 404
        "resource_not_found_error": NotFoundError,
        # 429, retryable: cluster overload, and the account's concurrency/RPM/TPM/TPD limits
        "engine_overloaded_error": OverloadedError,
        "rate_limit_reached_error": RateLimitError,
        # 500
        "server_error": UpstreamServerError,
    }
    # invalid_request_error is deliberately absent: it covers both plain bad requests and
    # context-length overflows, which the core's status + message refinement tells apart.

    def error_from_body(self, response: HttpResponse, body: Any, model: ModelInfo | None) -> ModelbusError:
        """The base mapping (by ``error.type``, then status and message), plus the region hint on 401s.

        The core itself turns Moonshot's context-length wording ("Input token length too long",
        "exceeded model token limit") into ``ContextLengthExceededError`` and reads the delay of
        "please try again after N seconds" into ``retry_after``."""
        error = super().error_from_body(response, body, model)
        if isinstance(error, AuthenticationError):
            error.message += _KEY_HINT
            error.args = (error.message,)
        return error


plugin = Moonshot()
