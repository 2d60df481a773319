"""Turn pydantic validation errors into typed modelbus errors that say what to fix.

The message names each bad field and what is wrong with it, never the submitted value:
a message body may carry prompt text, which stays out of errors and logs.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from modelbus.errors import BadRequestError

M = TypeVar("M", bound=BaseModel)


def describe_validation_error(exc: ValidationError, *, limit: int = 5) -> tuple[str, str | None]:
    """(message, first bad parameter) for ``exc``, without echoing input values."""
    parts = []
    first_param: str | None = None
    for error in exc.errors(include_url=False, include_input=False)[:limit]:
        loc = ".".join(str(p) for p in error["loc"]) or "(body)"
        first_param = first_param or loc
        msg = error["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        parts.append(f"{loc}: {msg}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts), first_param


def parse_model(model: type[M], data: Any, *, what: str = "request") -> M:
    """Validate ``data`` as ``model`` or raise :class:`BadRequestError`."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, param = describe_validation_error(exc)
        raise BadRequestError(f"invalid {what}: {message}", param=param) from None
