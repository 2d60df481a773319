"""The modelbus gateway: one OpenAI-compatible endpoint for every provider.

Install with ``pip install modelbus[gateway]``.

Virtual keys, wallets and budgets, rate limits, a usage ledger with invoices, metrics, traces and
structured logs. ``modelbus serve`` runs it; :func:`create_app` builds the ASGI app.
"""

from __future__ import annotations

from modelbus.gateway.app import create_app
from modelbus.gateway.settings import GatewaySettings

__all__ = ["GatewaySettings", "create_app"]
