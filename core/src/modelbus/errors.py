"""One typed error hierarchy for every provider.

Every error carries what a caller needs to decide what to do next: ``retryable``, ``retry_after``
(seconds), the ``provider`` name, the upstream HTTP ``status_code`` and the provider's own error
``provider_code``. Messages never contain an API key: upstream text is passed through
:func:`modelbus.redaction.redact` before it lands here.

This module imports nothing heavy so that ``import modelbus`` stays fast.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "APIConnectionError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigError",
    "ContentFilteredError",
    "ContextLengthExceededError",
    "MalformedResponseError",
    "MissingCredentialsError",
    "ModelNotFoundError",
    "ModelbusError",
    "NoRouteError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "PluginError",
    "QuotaExceededError",
    "RateLimitError",
    "RequestTimeoutError",
    "StreamInterruptedError",
    "UnsupportedFeatureError",
    "UpstreamServerError",
    "error_class_by_name",
]


class ModelbusError(Exception):
    """Base class of every error modelbus raises.

    Class attributes give the defaults a gateway needs to answer in OpenAI's error format:
    ``http_status`` (what the gateway returns), ``openai_type`` and ``default_code``.
    """

    http_status: ClassVar[int] = 500
    openai_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        provider_code: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.provider_code = provider_code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.request_id = request_id
        self.param = param
        self.route: Any = None  # RouteInfo of the attempts, when a client gave up

    def __str__(self) -> str:
        context = [
            f"{name}={value}"
            for name, value in (
                ("provider", self.provider),
                ("model", self.model),
                ("status", self.status_code),
                ("code", self.provider_code),
                ("retry_after", self.retry_after),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(context)})" if context else self.message

    @property
    def code(self) -> str | None:
        """The code reported to OpenAI-style clients: the provider's code, else the class default."""
        return self.default_code or self.provider_code

    def to_openai_error(self) -> dict[str, Any]:
        """This error as OpenAI's error body: ``{"error": {message, type, param, code}}``."""
        return {
            "error": {
                "message": str(self),
                "type": self.openai_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (used in logs, ledgers and route explanations)."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "provider": self.provider,
            "model": self.model,
            "status_code": self.status_code,
            "provider_code": self.provider_code,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
        }


# --- configuration and plugins ------------------------------------------------------------


class ConfigError(ModelbusError):
    """The configuration (file, env or arguments) is invalid. The message names the key and file."""

    openai_type = "server_error"


class PluginError(ModelbusError):
    """A plugin failed to load, or violated the hook specs."""

    openai_type = "server_error"


# --- the request is wrong ------------------------------------------------------------------


class BadRequestError(ModelbusError):
    """The request is invalid (locally validated, or rejected upstream with 400/422)."""

    http_status = 400
    openai_type = "invalid_request_error"


class ContextLengthExceededError(BadRequestError):
    """The prompt plus requested output does not fit the model's context window."""

    default_code = "context_length_exceeded"


class ContentFilteredError(BadRequestError):
    """The provider refused the input or output on content-safety grounds."""

    default_code = "content_filter"


class UnsupportedFeatureError(BadRequestError):
    """The model cannot do what the request asks (tools, images, json_schema, a parameter...)."""

    default_code = "unsupported_feature"


class AuthenticationError(ModelbusError):
    """The credentials are missing, malformed or rejected (401)."""

    http_status = 401
    openai_type = "authentication_error"
    default_code = "invalid_api_key"


class MissingCredentialsError(AuthenticationError, ConfigError):
    """No API key was found in the arguments, the config file or the environment."""

    default_code = "missing_api_key"


class PermissionDeniedError(ModelbusError):
    """The credentials are valid but not allowed to do this (403)."""

    http_status = 403
    openai_type = "permission_error"


class NotFoundError(ModelbusError):
    """The resource does not exist (404)."""

    http_status = 404
    openai_type = "not_found_error"


class ModelNotFoundError(NotFoundError):
    """The model id is unknown; ``suggestions`` lists close matches."""

    default_code = "model_not_found"

    def __init__(self, message: str, *, suggestions: list[str] | None = None, **kwargs: Any) -> None:
        self.suggestions = suggestions or []
        if self.suggestions:
            message = f"{message}; did you mean {', '.join(repr(s) for s in self.suggestions)}?"
        super().__init__(message, **kwargs)


# --- limits and money ----------------------------------------------------------------------


class RateLimitError(ModelbusError):
    """Too many requests or tokens (429). Retry after ``retry_after`` seconds when given."""

    http_status = 429
    openai_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    default_retryable = True


class QuotaExceededError(ModelbusError):
    """The account, key or wallet has no quota or balance left. Not retryable."""

    http_status = 402
    openai_type = "insufficient_quota"
    default_code = "insufficient_quota"


# --- transport and upstream failures -------------------------------------------------------


class RequestTimeoutError(ModelbusError):
    """Connecting, reading or the whole call took longer than its timeout."""

    http_status = 504
    openai_type = "timeout"
    default_code = "timeout"
    default_retryable = True


class APIConnectionError(ModelbusError):
    """The upstream could not be reached or dropped the connection."""

    http_status = 502
    openai_type = "api_connection_error"
    default_code = "connection_error"
    default_retryable = True


class UpstreamServerError(ModelbusError):
    """The upstream failed with a 5xx status."""

    http_status = 502
    openai_type = "api_error"
    default_code = "upstream_error"
    default_retryable = True


class OverloadedError(UpstreamServerError):
    """The upstream is overloaded (503, Anthropic's 529, Gemini's UNAVAILABLE)."""

    http_status = 503
    default_code = "overloaded"


class MalformedResponseError(ModelbusError):
    """The upstream answered with a body that is not what its protocol promises (non-JSON, truncated)."""

    http_status = 502
    openai_type = "api_error"
    default_code = "malformed_response"
    default_retryable = True


class StreamInterruptedError(MalformedResponseError):
    """A stream ended before the provider's end-of-stream marker (no ``[DONE]``, no ``message_stop``)."""

    default_code = "stream_interrupted"


class NoRouteError(ModelbusError):
    """No candidate deployment of a virtual model can serve the request (the message says why each was
    excluded)."""

    http_status = 503
    openai_type = "service_unavailable"
    default_code = "no_route"


_ALL: dict[str, type[ModelbusError]] = {}


def error_class_by_name(name: str) -> type[ModelbusError]:
    """Look up an error class by its name (used by wire samples and the conformance kit)."""
    if not _ALL:
        pending: list[type[ModelbusError]] = [ModelbusError]
        while pending:
            cls = pending.pop()
            _ALL[cls.__name__] = cls
            pending.extend(cls.__subclasses__())
    try:
        return _ALL[name]
    except KeyError:
        raise KeyError(f"unknown modelbus error class {name!r}; known: {', '.join(sorted(_ALL))}") from None
