"""The ledger writer on a real SQLite file: held pending rows, merged finishes, durability on stop."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from ledger_rows import assert_writer_stores_what_sqlalchemy_stores

from modelbus.gateway.db import DriverStatement, open_database
from modelbus.gateway.store import CHECKPOINT_EVERY, LedgerWriter, Store, _resolve


def _pending(request_id: str) -> dict:
    return {
        "request_id": request_id,
        "created_at": datetime.now(UTC),
        "key_id": "k1",
        "team": "t1",
        "endpoint": "chat",
        "requested_model": "deepseek/deepseek-chat",
        "resolved_model": "deepseek/deepseek-chat",
        "provider": "deepseek",
        "stream": False,
        "status": "pending",
        "reserved_usd": Decimal("0.01"),
    }


def _finished(cost: str) -> dict:
    return {
        "finished_at": datetime.now(UTC),
        "status": "ok",
        "http_status": 200,
        "error_type": None,
        "resolved_model": "deepseek/deepseek-chat",
        "provider": "deepseek",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "cached_tokens": 0,
        "cache_creation_tokens": 0,
        "reasoning_tokens": 0,
        "usage_estimated": False,
        "cost_usd": Decimal(cost),
        "latency_ms": 12.5,
        "ttft_ms": None,
        "route": None,
    }


def _rows(engine: sa.Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {row.request_id: dict(row._mapping) for row in conn.execute(sa.text("SELECT * FROM ledger"))}


def _statements(engine: sa.Engine) -> list[str]:
    """The first word of every statement SQLite runs (its own trace hook: the writer executes on the
    driver's cursor, below SQLAlchemy's events), one per row of an ``executemany``."""
    seen: list[str] = []

    @sa.event.listens_for(engine, "checkout")
    def trace(dbapi_connection, record, proxy):  # type: ignore[no-untyped-def]
        dbapi_connection.set_trace_callback(lambda statement: seen.append(statement.split()[0].upper()))

    return seen


def test_a_short_request_is_written_once_and_a_long_one_is_pending_meanwhile(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'ledger.db'}")
    store = Store(engine)
    store.topup("t1", Decimal("1"), None)
    statements = _statements(engine)
    writer = LedgerWriter(engine, pending_hold=0.3)
    writer.start()

    async def scenario() -> None:
        writer.open(_pending("short"))
        await writer.settle("short", _finished("0.002"), "t1", Decimal("0.002"))
        writer.open(_pending("long"))
        deadline = time.monotonic() + 5
        while "long" not in _rows(engine) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert _rows(engine)["long"]["status"] == "pending"  # written once the hold ran out
        await writer.settle("long", _finished("0.003"), "t1", Decimal("0.003"))

    try:
        asyncio.run(scenario())
    finally:
        writer.stop()
    rows = _rows(engine)
    assert rows["short"]["status"] == "ok"
    assert rows["short"]["key_id"] == "k1"  # the pending fields are in the merged row
    assert rows["long"]["status"] == "ok"
    assert store.wallets()["t1"] == Decimal("0.995")
    # short: one INSERT; long: INSERT (pending) then UPDATE; one wallet UPDATE per commit
    ledger_writes = [s for s in statements if s in ("INSERT", "UPDATE")]
    assert ledger_writes.count("INSERT") == 2
    assert ledger_writes.count("UPDATE") == 3  # long's settlement + two wallet debits


def test_stopping_writes_held_pending_rows(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'ledger.db'}")
    writer = LedgerWriter(engine, pending_hold=60)
    writer.start()

    async def scenario() -> None:
        writer.open(_pending("in-flight"))  # held on the loop, far from due
        writer.open(_pending("in-flight-2"))
        await asyncio.sleep(0.2)
        assert _rows(engine) == {}
        writer.flush_held()  # what the gateway does at shutdown, before stopping the writer
        await asyncio.to_thread(writer.stop)

    asyncio.run(scenario())
    assert _rows(engine)["in-flight"]["status"] == "pending"
    assert Store(engine).reconcile_pending() == 2
    assert _rows(engine)["in-flight"]["status"] == "interrupted"


def test_serve_tunes_the_cyclic_gc_and_it_still_collects_cycles() -> None:
    import gc

    from modelbus.gateway.server import GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0

        class Node:
            pass

        node = Node()
        node.self = node  # type: ignore[attr-defined]
        del node
        assert gc.collect() >= 1  # cycles are still collected, only less often
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_finished_row_that_cannot_be_written_leaves_its_pending_row(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'ledger.db'}")
    writer = LedgerWriter(engine, pending_hold=60)
    writer.start()
    broken = {**_finished("0.001"), "cached_tokens": None}  # NOT NULL: the finished insert fails

    async def scenario() -> None:
        writer.open(_pending("doomed"))
        with pytest.raises(sa.exc.IntegrityError):
            await writer.settle("doomed", broken, None, Decimal(0))

    try:
        asyncio.run(scenario())
    finally:
        writer.stop()
    assert _rows(engine)["doomed"]["status"] == "pending"  # as after a crash: reconciled at start-up
    assert Store(engine).reconcile_pending() == 1


def test_the_writer_stores_exactly_what_sqlalchemy_would(tmp_path: Path) -> None:
    """The writer runs SQLAlchemy-compiled statements on the driver's cursor: same SQL, same bind
    processors, so every stored value (timestamps, money, JSON, booleans) matches ``execute``'s."""
    assert_writer_stores_what_sqlalchemy_stores(open_database(f"sqlite:///{tmp_path / 'ledger.db'}"))


def test_a_request_alone_in_flight_commits_inline_and_keeps_order_behind_queued_writes(
    tmp_path: Path,
) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'ledger.db'}")
    Store(engine).topup("t1", Decimal("1"), None)
    writer = LedgerWriter(engine, pending_hold=0.01)
    threads: list[str] = []
    gate = threading.Event()
    transaction = writer._transaction

    def observed_transaction(batch: list) -> None:
        threads.append(threading.current_thread().name)
        if threading.current_thread().name == "ledger-writer":
            gate.wait(5)  # the thread is slow: what is queued behind it must wait its turn
        transaction(batch)

    writer._transaction = observed_transaction  # type: ignore[method-assign]
    writer.start()

    async def scenario() -> None:
        # alone and the writer idle: committed on the event loop's thread, durable on return
        writer.open(_pending("first"))
        await writer.settle("first", _finished("0.001"), "t1", Decimal("0.001"), alone=True)
        assert _rows(engine)["first"]["status"] == "ok"
        # a pending row released to the (stalled) thread is ahead of its own settlement
        writer.open(_pending("second"))
        await asyncio.sleep(0.1)
        settled = asyncio.ensure_future(
            writer.settle("second", _finished("0.002"), "t1", Decimal("0.002"), alone=True)
        )
        await asyncio.sleep(0.1)
        assert not settled.done()  # queued behind the pending insert, not committed inline before it
        gate.set()
        await settled

    try:
        asyncio.run(scenario())
    finally:
        gate.set()
        writer.stop()
    rows = _rows(engine)
    assert rows["second"]["status"] == "ok"
    assert Store(engine).wallets()["t1"] == Decimal("0.997")
    assert threads == ["MainThread", "ledger-writer", "ledger-writer"]


def test_inline_commits_leave_wal_checkpoints_to_the_writer_thread(tmp_path: Path) -> None:
    """The writer's connection does not checkpoint when it commits (that would copy the WAL on the
    event loop); the thread checkpoints every CHECKPOINT_EVERY commits, so the WAL stays small."""
    path = tmp_path / "ledger.db"
    engine = open_database(f"sqlite:///{path}")
    writer = LedgerWriter(engine)
    checkpoints: list[str] = []
    checkpoint = writer._checkpoint

    def observed_checkpoint() -> None:
        checkpoints.append(threading.current_thread().name)
        checkpoint()

    writer._checkpoint = observed_checkpoint  # type: ignore[method-assign]
    writer.start()
    count = CHECKPOINT_EVERY * 5

    async def scenario() -> None:
        for i in range(count):
            writer.open(_pending(f"r{i}"))
            await writer.settle(f"r{i}", _finished("0.001"), None, Decimal(0), alone=True)

    wal = Path(f"{path}-wal")
    try:
        asyncio.run(scenario())
        deadline = time.monotonic() + 10
        while len(checkpoints) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        # measured while the writer's connection is open (closing the last one checkpoints anyway);
        # without checkpoints the WAL would hold every commit's pages (about 15 MB by now)
        assert wal.stat().st_size < 8 * 1024 * 1024, wal.stat().st_size
    finally:
        writer.stop()
    assert len(checkpoints) >= 4
    assert set(checkpoints) == {"ledger-writer"}
    assert len(_rows(engine)) == count


def test_an_inline_commit_never_waits_on_the_event_loop_for_another_writers_lock(tmp_path: Path) -> None:
    """Another process or connection holding SQLite's write lock must not freeze the event loop: the
    alone-in-flight commit gives up at once and the writer thread waits for the lock instead."""
    path = tmp_path / "ledger.db"
    engine = open_database(f"sqlite:///{path}")
    writer = LedgerWriter(engine)
    writer.start()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    ticks: list[float] = []

    async def scenario() -> None:
        async def tick() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        ticker = asyncio.ensure_future(tick())
        writer.open(_pending("blocked"))
        settled = asyncio.ensure_future(
            writer.settle("blocked", _finished("0.001"), None, Decimal(0), alone=True)
        )
        await asyncio.sleep(0.5)
        assert not settled.done()  # waiting in the writer thread, not on the loop
        other.execute("COMMIT")
        await asyncio.wait_for(settled, 10)
        ticker.cancel()

    try:
        asyncio.run(scenario())
    finally:
        other.close()
        writer.stop()
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.2  # the loop kept running
    assert _rows(engine)["blocked"]["status"] == "ok"


def test_driver_statements_refuse_python_side_column_defaults() -> None:
    """Such defaults are computed by ``execute`` per row; a driver statement would store NULL."""
    table = sa.Table(
        "with_defaults",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, default=7),
    )
    with pytest.raises(ValueError, match="Python-side column defaults"):
        DriverStatement(table.insert(), sa.create_engine("sqlite://").dialect, ["id"])
    assert DriverStatement(table.insert(), sa.create_engine("sqlite://").dialect, ["id", "n"]).names == (
        "id",
        "n",
    )


def test_a_caller_cancelled_while_its_row_is_written_does_not_stop_the_writer() -> None:
    """The writer settles a caller's future from its thread; if the caller was cancelled meanwhile
    (its future cancelled from the event loop), that is not an error that could end the thread."""
    for error in (None, RuntimeError("write failed")):
        future: Future[None] = Future()
        future.cancel()
        _resolve(future, error)  # no InvalidStateError
        assert future.cancelled()
