"""Check that the ledger writer's driver path stores exactly what SQLAlchemy's ``execute`` stores."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from modelbus.gateway import db
from modelbus.gateway.store import LedgerWriter, Store

AT = datetime(2026, 11, 25, 17, 30, 1, 123456, tzinfo=UTC)


def pending_row(request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "created_at": AT,
        "key_id": "k1",
        "team": "driver",
        "endpoint": "chat",
        "requested_model": "deepseek/deepseek-chat",
        "resolved_model": None,
        "provider": None,
        "stream": True,
        "status": "pending",
        "reserved_usd": Decimal("0.0123456789"),
    }


def finished_values(route: Any) -> dict[str, Any]:
    return {
        "finished_at": AT,
        "status": "ok",
        "http_status": 200,
        "error_type": None,
        "resolved_model": "deepseek/deepseek-chat",
        "provider": "deepseek",
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "cached_tokens": 3,
        "cache_creation_tokens": 0,
        "reasoning_tokens": 2,
        "usage_estimated": False,
        "cost_usd": Decimal("0.0000123456"),
        "latency_ms": 12.5,
        "ttft_ms": 3.25,
        "route": route,
    }


def _stored(engine: sa.Engine, sql: str) -> dict[str, tuple[Any, ...]]:
    """Rows as the driver returns them (no SQLAlchemy result types), keyed by their first column."""
    with engine.connect() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.exec_driver_sql(sql)}


def assert_writer_stores_what_sqlalchemy_stores(engine: sa.Engine) -> None:
    store = Store(engine)
    for team in ("driver", "sqlalchemy"):
        store.topup(team, Decimal("10"), None)
    ledger = db.ledger
    routes = {"a": {"attempts": [{"model": "deepseek/deepseek-chat", "ok": True}]}, "b": None}
    with engine.begin() as conn:  # the reference: SQLAlchemy's own execute
        for name, route in routes.items():
            conn.execute(ledger.insert(), pending_row(f"sa-pending-{name}"))
            conn.execute(
                ledger.update()
                .where(ledger.c.request_id == f"sa-pending-{name}")
                .values(finished_values(route))
            )
            conn.execute(ledger.insert(), {**pending_row(f"sa-once-{name}"), **finished_values(route)})
        conn.execute(
            db.wallets.update()
            .where(db.wallets.c.team == "sqlalchemy")
            .values(balance_usd=db.wallets.c.balance_usd - Decimal("0.25"), updated_at=AT)
        )

    writer = LedgerWriter(engine, pending_hold=60.0)
    writer.start()

    async def write() -> None:
        for name, route in routes.items():
            await writer.record(pending_row(f"mb-pending-{name}"))  # written as it comes
            await writer.settle(f"mb-pending-{name}", finished_values(route), "driver", Decimal("0.125"))
            writer.open(pending_row(f"mb-once-{name}"))  # held, then written once as the finished row
            await writer.settle(f"mb-once-{name}", finished_values(route), None, Decimal(0))

    asyncio.run(write())
    writer.stop()

    rows = _stored(engine, "SELECT * FROM ledger")
    for name in routes:
        for form in ("pending", "once"):
            assert rows[f"mb-{form}-{name}"] == rows[f"sa-{form}-{name}"], (form, name)
    wallets = _stored(engine, "SELECT team, balance_usd FROM wallets")
    assert wallets["driver"] == wallets["sqlalchemy"]
    with engine.connect() as conn:  # and SQLAlchemy reads the writer's timestamp back as it wrote it
        updated = conn.execute(sa.select(db.wallets.c.updated_at).where(db.wallets.c.team == "driver"))
        assert isinstance(updated.scalar_one(), datetime)
