"""OpenTelemetry spans following the GenAI semantic conventions (``pip install modelbus[otel]``).

One span per request, named ``"{operation} {model}"``, with ``gen_ai.*`` attributes: operation,
provider, request/response model, response id, finish reasons, input/output token usage, and
``error.type`` on failure. No prompt or completion text is ever put on a span.
"""

from __future__ import annotations

from typing import Any

from modelbus.errors import ConfigError


class Telemetry:
    def __init__(self, enabled: bool) -> None:
        self.tracer: Any = None
        if enabled:
            try:
                from opentelemetry import trace
            except ImportError:
                raise ConfigError(
                    "[gateway] otel = true needs the otel extra: pip install 'modelbus[otel]'"
                ) from None
            self.tracer = trace.get_tracer("modelbus.gateway")

    def start(self, operation: str, model: str, attributes: dict[str, Any]) -> Any:
        """Open a span for one request (ended by :meth:`finish`); ``None`` when telemetry is off."""
        if self.tracer is None:
            return None
        from opentelemetry.trace import SpanKind

        return self.tracer.start_span(
            f"{operation} {model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.request.model": model,
                **{key: value for key, value in attributes.items() if value is not None},
            },
        )

    @staticmethod
    def finish(span: Any, attributes: dict[str, Any], error: BaseException | None = None) -> None:
        if span is None:
            return
        for key, value in attributes.items():
            if value is not None:
                span.set_attribute(key, value)
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()
