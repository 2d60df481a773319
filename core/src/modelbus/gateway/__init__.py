"""The modelbus gateway: one OpenAI-compatible endpoint for every provider.

Install with ``pip install modelbus[gateway]``.

Virtual keys, wallets and budgets, rate limits, a usage ledger with invoices, metrics, traces and
structured logs. ``modelbus serve`` runs it; :func:`create_app` builds the ASGI app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelbus.gateway.app import create_app
    from modelbus.gateway.settings import GatewaySettings

__all__ = ["GatewaySettings", "create_app"]


def __getattr__(name: str) -> Any:
    # lazy: the CLI imports modelbus.gateway.cli, which must not pay for Starlette, SQLAlchemy and the app
    if name == "create_app":
        from modelbus.gateway.app import create_app

        return create_app
    if name == "GatewaySettings":
        from modelbus.gateway.settings import GatewaySettings

        return GatewaySettings
    raise AttributeError(f"module 'modelbus.gateway' has no attribute {name!r}")
