"""Errors the gateway itself raises (the provider errors come from modelbus.errors)."""

from __future__ import annotations

from modelbus.errors import AuthenticationError, BadRequestError, ModelbusError, PermissionDeniedError


class InvalidKeyError(AuthenticationError):
    """Missing, malformed, unknown, expired or revoked virtual key."""


class AdminAuthError(AuthenticationError):
    """The admin API needs the master key."""


class ModelNotAllowedError(PermissionDeniedError):
    """The key (or its team) may not use this model."""

    default_code = "model_not_allowed"


class InsufficientFundsError(ModelbusError):
    """The team's prepaid wallet cannot cover the request's worst-case cost."""

    http_status = 402
    openai_type = "insufficient_quota"
    default_code = "insufficient_funds"


class BudgetExceededError(ModelbusError):
    """The key's or team's budget for this period is used up."""

    http_status = 402
    openai_type = "insufficient_quota"
    default_code = "budget_exceeded"


class GatewayRateLimitError(ModelbusError):
    """The key's or team's RPM/TPM limit is reached (the caller's limit, not the provider's)."""

    http_status = 429
    openai_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    default_retryable = True


class RequestTooLargeError(BadRequestError):
    http_status = 413
    default_code = "request_too_large"


class NotFound(ModelbusError):
    http_status = 404
    openai_type = "not_found_error"
