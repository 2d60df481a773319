"""Validation of the limits an admin sets on keys and teams, shared by the admin API and the CLI.

Every value is checked before anything is stored: an unknown budget period, a negative budget or a
zero rate limit is a :class:`~modelbus.errors.BadRequestError` naming the field, never a silent default.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from modelbus.errors import BadRequestError

PERIODS = ("daily", "monthly", "total")
KEY_FIELDS = frozenset(
    {"team", "name", "models", "rpm", "tpm", "budget_usd", "budget_period", "log_content", "expires_at"}
)
TEAM_FIELDS = frozenset({"budget_usd", "budget_period", "rpm", "tpm", "models"})


def money(value: Any, what: str) -> Decimal | None:
    """A non-negative amount of US dollars (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequestError(f"{what} must be a number of US dollars, got {value!r}", param=what)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise BadRequestError(f"{what} must be a number of US dollars, got {value!r}", param=what) from None
    if not amount.is_finite() or amount < 0:
        raise BadRequestError(f"{what} must be a finite amount, not negative; got {value!r}", param=what)
    return amount


def timestamp(value: str | None, what: str) -> datetime | None:
    """An ISO date or datetime; naive values are UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise BadRequestError(f"{what} must be an ISO date or datetime, got {value!r}", param=what) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def limit_fields(
    body: Mapping[str, Any], allowed: frozenset[str], *, names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Check the fields of a key or team and return them converted (Decimal, datetime). An empty
    ``models`` list means "no restriction".

    ``names`` maps a field to what the caller called it (``--budget-period`` on the CLI) for messages."""

    def label(field: str) -> str:
        return (names or {}).get(field, field)

    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequestError(f"unknown fields {unknown}; allowed: {sorted(allowed)}", param=unknown[0])
    fields = dict(body)
    if "budget_usd" in fields:
        fields["budget_usd"] = money(fields["budget_usd"], label("budget_usd"))
    if "budget_period" in fields and fields["budget_period"] not in PERIODS:
        raise BadRequestError(
            f"{label('budget_period')} is daily, monthly or total, got {fields['budget_period']!r}",
            param="budget_period",
        )
    for name in ("rpm", "tpm"):
        value = fields.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise BadRequestError(f"{label(name)} must be a positive integer, got {value!r}", param=name)
    models = fields.get("models")
    if models is not None and not (
        isinstance(models, list) and all(isinstance(m, str) and m.strip() for m in models)
    ):
        raise BadRequestError(
            f"{label('models')} is a list of model ids or globs such as 'deepseek/*'", param="models"
        )
    if "expires_at" in fields and not isinstance(fields["expires_at"], datetime):
        fields["expires_at"] = timestamp(fields["expires_at"], label("expires_at"))
    for name in ("team", "name"):
        if fields.get(name) is not None and not isinstance(fields[name], str):
            raise BadRequestError(f"{label(name)} must be a string", param=name)
    if "log_content" in fields and not isinstance(fields["log_content"], bool):
        raise BadRequestError(f"{label('log_content')} must be true or false", param="log_content")
    return fields
