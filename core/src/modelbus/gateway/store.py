"""Database access for the gateway: keys, teams, wallets, the usage ledger, and the ledger writer.

Reads and admin writes are plain synchronous methods (the app runs them in a thread). Ledger writes on
the request path go through :class:`LedgerWriter`: one thread that applies them in order with group
commits (whatever queued up while the last commit ran goes into the next), so a request's final
``settle`` is durable before its last bytes are sent, without a commit per request under load. Its
statements are compiled by SQLAlchemy once and run on the driver's cursor (:class:`db.DriverStatement`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelbus.gateway import db
from modelbus.gateway.keys import KeyRecord, TeamRecord, new_key

logger = logging.getLogger("modelbus.gateway")

GROUPS = {
    "team": db.ledger.c.team,
    "key": db.ledger.c.key_id,
    "model": db.ledger.c.resolved_model,
    "provider": db.ledger.c.provider,
    "status": db.ledger.c.status,
}


def now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything here is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _key_record(row: Any) -> KeyRecord:
    return KeyRecord(
        key_id=row.key_id,
        secret_hash=row.secret_hash,
        team=row.team,
        name=row.name,
        models=tuple(row.models) if row.models else None,
        rpm=row.rpm,
        tpm=row.tpm,
        budget_usd=row.budget_usd,
        budget_period=row.budget_period,
        log_content=bool(row.log_content),
        expires_at=_aware(row.expires_at),
        revoked_at=_aware(row.revoked_at),
        created_at=_aware(row.created_at),
    )


def _team_record(row: Any) -> TeamRecord:
    return TeamRecord(
        name=row.name,
        budget_usd=row.budget_usd,
        budget_period=row.budget_period,
        rpm=row.rpm,
        tpm=row.tpm,
        models=tuple(row.models) if row.models else None,
    )


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- teams ---------------------------------------------------------------------------------

    def ensure_team(self, conn: Connection, name: str) -> None:
        if conn.execute(sa.select(db.teams.c.name).where(db.teams.c.name == name)).first() is None:
            conn.execute(db.teams.insert().values(name=name, created_at=now()))

    def set_team(self, name: str, **fields: Any) -> TeamRecord:
        """Create or update a team's limits (fields: budget_usd, budget_period, rpm, tpm, models)."""
        with self.engine.begin() as conn:
            self.ensure_team(conn, name)
            if fields:
                conn.execute(db.teams.update().where(db.teams.c.name == name).values(**fields))
            row = conn.execute(sa.select(db.teams).where(db.teams.c.name == name)).one()
        return _team_record(row)

    def get_team(self, name: str) -> TeamRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.teams).where(db.teams.c.name == name)).first()
        return _team_record(row) if row is not None else None

    def list_teams(self) -> list[TeamRecord]:
        with self.engine.connect() as conn:
            return [_team_record(row) for row in conn.execute(sa.select(db.teams).order_by(db.teams.c.name))]

    # -- keys ----------------------------------------------------------------------------------

    def create_key(self, *, team: str | None = None, **fields: Any) -> tuple[str, KeyRecord]:
        """A new key; the full key string is returned once and never stored."""
        full, key_id, secret_hash = new_key()
        with self.engine.begin() as conn:
            if team is not None:
                self.ensure_team(conn, team)
            conn.execute(
                db.keys.insert().values(
                    key_id=key_id, secret_hash=secret_hash, team=team, created_at=now(), **fields
                )
            )
            row = conn.execute(sa.select(db.keys).where(db.keys.c.key_id == key_id)).one()
        return full, _key_record(row)

    def get_key(self, key_id: str) -> KeyRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.keys).where(db.keys.c.key_id == key_id)).first()
        return _key_record(row) if row is not None else None

    def list_keys(self, team: str | None = None) -> list[KeyRecord]:
        query = sa.select(db.keys).order_by(db.keys.c.created_at)
        if team is not None:
            query = query.where(db.keys.c.team == team)
        with self.engine.connect() as conn:
            return [_key_record(row) for row in conn.execute(query)]

    def revoke_key(self, key_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                db.keys.update()
                .where(db.keys.c.key_id == key_id, db.keys.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
        return result.rowcount == 1

    # -- wallets -------------------------------------------------------------------------------

    def topup(self, team: str, amount: Decimal, note: str | None = None, reason: str = "topup") -> Decimal:
        with self.engine.begin() as conn:
            self.ensure_team(conn, team)
            updated = conn.execute(
                db.wallets.update()
                .where(db.wallets.c.team == team)
                .values(balance_usd=db.wallets.c.balance_usd + amount, updated_at=now())
            )
            if updated.rowcount == 0:
                conn.execute(db.wallets.insert().values(team=team, balance_usd=amount, updated_at=now()))
            conn.execute(
                db.wallet_entries.insert().values(
                    team=team, amount_usd=amount, reason=reason, note=note, created_at=now()
                )
            )
            return conn.execute(
                sa.select(db.wallets.c.balance_usd).where(db.wallets.c.team == team)
            ).scalar_one()

    def wallets(self) -> dict[str, Decimal]:
        with self.engine.connect() as conn:
            return {row.team: row.balance_usd for row in conn.execute(sa.select(db.wallets))}

    # -- ledger reads --------------------------------------------------------------------------

    def spend_since(self, column: str, since: datetime) -> dict[str, Decimal]:
        """Settled spend per key id or team since ``since`` (to rebuild budget counters at start-up)."""
        col = db.ledger.c.key_id if column == "key" else db.ledger.c.team
        query = (
            sa.select(col, sa.func.coalesce(sa.func.sum(db.ledger.c.cost_usd), 0))
            .where(db.ledger.c.created_at >= since, col.is_not(None), db.ledger.c.status != "pending")
            .group_by(col)
        )
        with self.engine.connect() as conn:
            return {row[0]: Decimal(row[1]) for row in conn.execute(query)}

    def reconcile_pending(self) -> int:
        """Requests left pending by a crash: mark them interrupted (nothing was settled, nothing is held)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                db.ledger.update()
                .where(db.ledger.c.status == "pending")
                .values(status="interrupted", finished_at=now(), error_type="GatewayRestarted")
            )
        return result.rowcount

    def usage(
        self,
        *,
        group_by: Iterable[str] = (),
        start: datetime | None = None,
        end: datetime | None = None,
        team: str | None = None,
        key_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Totals grouped by any of team, key, model, provider, status, day."""
        columns = []
        for name in group_by:
            if name == "day":
                columns.append(sa.func.date(db.ledger.c.created_at).label("day"))
            else:
                columns.append(GROUPS[name].label(name))
        ledger = db.ledger.c
        totals = [
            sa.func.count().label("requests"),
            sa.func.coalesce(sa.func.sum(ledger.prompt_tokens), 0).label("prompt_tokens"),
            sa.func.coalesce(sa.func.sum(ledger.completion_tokens), 0).label("completion_tokens"),
            sa.func.coalesce(sa.func.sum(ledger.cached_tokens), 0).label("cached_tokens"),
            sa.func.coalesce(sa.func.sum(ledger.reasoning_tokens), 0).label("reasoning_tokens"),
            sa.func.coalesce(sa.func.sum(ledger.cost_usd), 0).label("cost_usd"),
        ]
        query = sa.select(*columns, *totals).where(*self._filters(start, end, team, key_id))
        if columns:
            query = query.group_by(*columns).order_by(*columns)
        with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            row["cost_usd"] = str(Decimal(row["cost_usd"]).normalize())
            if "day" in row and row["day"] is not None:
                row["day"] = str(row["day"])[:10]
        return rows

    def ledger_rows(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        team: str | None = None,
        key_id: str | None = None,
    ) -> list[dict[str, Any]]:
        query = (
            sa.select(db.ledger)
            .where(*self._filters(start, end, team, key_id))
            .order_by(db.ledger.c.created_at, db.ledger.c.request_id)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def ledger_row(self, request_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.ledger).where(db.ledger.c.request_id == request_id)).first()
        if row is None:
            return None
        found = {str(key): value for key, value in row._mapping.items()}
        if isinstance(found.get("route"), str):  # SQLite returns JSON columns as text on some paths
            found["route"] = json.loads(found["route"])
        return found

    @staticmethod
    def _filters(
        start: datetime | None, end: datetime | None, team: str | None, key_id: str | None
    ) -> list[Any]:
        filters: list[Any] = [db.ledger.c.status != "pending"]
        if start is not None:
            filters.append(db.ledger.c.created_at >= start)
        if end is not None:
            filters.append(db.ledger.c.created_at < end)
        if team is not None:
            filters.append(db.ledger.c.team == team)
        if key_id is not None:
            filters.append(db.ledger.c.key_id == key_id)
        return filters


SETTLE_COLUMNS = (
    "finished_at",
    "status",
    "http_status",
    "error_type",
    "resolved_model",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "usage_estimated",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "route",
)
SETTLE_COLUMN_SET = frozenset(SETTLE_COLUMNS)


def _resolve(future: Future[None], error: BaseException | None = None) -> None:
    """Settle a caller's future from any thread; a caller that was cancelled meanwhile (its future
    cancelled from the event loop) is not an error for the writer."""
    with contextlib.suppress(InvalidStateError):
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _first_line(error: BaseException) -> str:
    """An error's first line: drivers add row contents on the next ones (PostgreSQL's DETAIL)."""
    text = str(error)
    return text.splitlines()[0] if text else ""


PENDING_HOLD_SECONDS = 0.5  # a pending row is written this long after its request started, at the latest
CHECKPOINT_EVERY = 100  # SQLite: the writer checkpoints the WAL after this many commits


@dataclass
class _Op:
    kind: str  # "insert" (a pending or finished row), "settle" (finish a pending row), "checkpoint"
    row: dict[str, Any]
    wallet: str | None = None  # debited by ``cost`` in the same transaction
    cost: Decimal = Decimal(0)
    future: Future[None] | None = None
    pending: dict[str, Any] | None = None  # a finished row's pending form, written if it cannot be


class LedgerWriter:
    """The ledger's only writer on the request path: ordered, group-committed, durable before acking.

    Whatever queued up while the previous commit ran goes into the next transaction: all inserts of
    the batch as one ``executemany``, then all settlements as one ``executemany``, then one debit per
    wallet for the batch's total. Under load that is a handful of statements per commit however many
    requests it carries.

    A request's ``pending`` row is held for up to :data:`PENDING_HOLD_SECONDS` before it is written:
    a request that settles within that time is written once, as its finished row, instead of an insert
    and an update. A request still running after that has its pending row in the database, so a crash
    leaves it to be reconciled as ``interrupted``; a crash (``kill -9``) inside the hold window loses
    only the pending rows of requests younger than the window (nothing was billed for them, and their
    reservations lived in the crashed process). Settled rows are never held: ``settle`` returns once
    the row is durable.

    On SQLite, a request that is alone in flight has nothing to group its commit with: it commits on
    the event loop's thread when the writer is idle (a local commit costs less than the two thread
    hand-offs), and the writer thread checkpoints the WAL so no checkpoint runs on the loop.
    """

    def __init__(self, engine: Engine, pending_hold: float = PENDING_HOLD_SECONDS) -> None:
        self.engine = engine
        self.pending_hold = pending_hold
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: Any = None  # the writer's own DB-API connection (a pool-proxied one)
        # SQLite commits in a fraction of a thread handoff: a request alone in flight commits inline
        self._inline = self._sqlite = engine.dialect.name == "sqlite"
        self._conn_lock = threading.Lock()  # held by whoever uses the connection: the thread or inline
        self._count_lock = threading.Lock()
        self._queued = self._applied = 0  # operations put on the queue / taken off it and done
        self._commits = 0
        self._next_checkpoint = CHECKPOINT_EVERY
        self._busy_timeout_ms = 0  # the connection's own, restored after an inline commit
        # pending rows not written yet, oldest first: request id -> (write by, row); event-loop side
        self._held: dict[str, tuple[float, dict[str, Any]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        ledger, dialect = db.ledger, engine.dialect
        self._settle_sql = db.DriverStatement(
            ledger.update()
            .where(ledger.c.request_id == sa.bindparam("b_request_id"), ledger.c.status == "pending")
            .values({name: sa.bindparam(f"b_{name}") for name in SETTLE_COLUMNS}),
            dialect,
        )
        balance, updated = db.wallets.c.balance_usd, db.wallets.c.updated_at
        self._debit_sql = db.DriverStatement(
            db.wallets.update()
            .where(db.wallets.c.team == sa.bindparam("b_team"))
            .values(
                balance_usd=balance - sa.bindparam("b_amount", type_=balance.type),
                updated_at=sa.bindparam("b_now", type_=updated.type),
            ),
            dialect,
        )
        self._insert_sql: dict[tuple[str, ...], db.DriverStatement] = {}  # by the row's columns

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def _connection(self) -> Any:
        """The writer's own DB-API connection, kept for its lifetime (no pool checkout per commit).

        On SQLite it does not checkpoint the WAL when it commits (an inline commit would then copy
        megabytes on the event loop); the thread checkpoints every :data:`CHECKPOINT_EVERY` commits."""
        if self._conn is None:
            self._conn = self.engine.raw_connection()
            if self._sqlite:
                self._pragma("wal_autocheckpoint=0")
                self._busy_timeout_ms = int(self._pragma("busy_timeout")[0][0])
        return self._conn

    def _restore_busy_timeout(self) -> None:
        """Give the connection its own lock timeout back after an inline attempt (or drop it)."""
        if self._conn is None:
            return
        try:
            self._pragma(f"busy_timeout={self._busy_timeout_ms}")
        except Exception:
            self._drop_connection(broken=True)

    def _pragma(self, pragma: str) -> list[Any]:
        cursor = self._conn.cursor()
        try:
            cursor.execute(f"PRAGMA {pragma}")  # constant text from this module, never user input
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _drop_connection(self, broken: bool = False) -> None:
        """Give the connection back to the pool, or discard it: after a failed commit (it may be dead),
        or when it carries the writer's own settings (SQLite)."""
        if self._conn is not None:
            try:
                if broken or self._sqlite:
                    self._conn.invalidate()
                else:
                    self._conn.close()
            finally:
                self._conn = None

    def flush_held(self) -> None:
        """Queue every held pending row now (on the event loop, before :meth:`stop` at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release(float("inf"))

    def stop(self) -> None:
        """Flush everything queued, then stop (from any thread). Held pending rows belong to the event
        loop: call :meth:`flush_held` there first, as the gateway does at shutdown."""
        self._inline = False  # from now on nothing reopens the connection the thread closes
        if self._thread is not None:
            self._put(None)
            self._thread.join(60)
            self._thread = None

    # -- operations -----------------------------------------------------------------------------

    def open(self, row: dict[str, Any]) -> None:
        """Record a request as pending (not awaited). Called on the event loop: the row is held there
        until it is due or its request settles, so a short request wakes the writer thread once."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (scripts, tests): write it as it comes
            self._put(_Op("insert", row))
            return
        self._held[row["request_id"]] = (time.monotonic() + self.pending_hold, row)
        if self._timer is None:
            self._timer = loop.call_later(self.pending_hold, self._release_due)

    def _release(self, now_: float) -> float | None:
        """Queue the held rows due by ``now_`` (as pending inserts); returns when the next is due."""
        while self._held:
            request_id, (write_by, row) = next(iter(self._held.items()))
            if write_by > now_:
                return write_by
            del self._held[request_id]
            self._put(_Op("insert", row))
        return None

    def _release_due(self) -> None:
        next_due = self._release(time.monotonic())
        self._timer = (
            None
            if next_due is None
            else asyncio.get_running_loop().call_later(next_due - time.monotonic(), self._release_due)
        )

    async def settle(
        self,
        request_id: str,
        values: dict[str, Any],
        wallet: str | None,
        cost: Decimal,
        *,
        alone: bool = False,
    ) -> None:
        """Finish a request's row and debit its wallet in one transaction; returns once durable.
        ``alone``: no other request is in flight (see :meth:`_durably`)."""
        unknown = values.keys() - SETTLE_COLUMN_SET
        if unknown:
            raise ValueError(f"a settlement cannot set {sorted(unknown)}")
        row = {name: values.get(name) for name in SETTLE_COLUMNS}
        row["request_id"] = request_id
        future: Future[None] = Future()
        held = self._held.pop(request_id, None)
        if held is not None:  # never written: write the finished row in one go
            op = _Op("insert", {**held[1], **row}, wallet, cost, future, pending=held[1])
        else:
            op = _Op("settle", row, wallet, cost, future)
        await self._durably(op, alone)

    async def record(self, row: dict[str, Any]) -> None:
        """Write a finished row in one go (requests that failed before reaching upstream)."""
        await self._durably(_Op("insert", row, future=Future()), alone=False)

    async def _durably(self, op: _Op, alone: bool) -> None:
        """Commit ``op`` and return once it is durable (raising what the commit raised).

        ``alone`` says no other request is in flight, so there is nothing to group this commit with:
        on SQLite it is then committed right here, when the writer is idle and nothing is queued
        ahead of it (order is kept), which costs less than the two thread handoffs it saves."""
        assert op.future is not None
        if not (alone and self._commit_inline(op)):
            self._put(op)
            await asyncio.wrap_future(op.future)
        op.future.result()

    def _put(self, op: _Op | None) -> None:
        with self._count_lock:
            self._queued += op is not None
        self._queue.put(op)

    def _commit_inline(self, op: _Op) -> bool:
        """Commit on the calling thread if the writer is idle with nothing queued; False otherwise."""
        if not self._inline or not self._conn_lock.acquire(blocking=False):
            return False
        try:
            with self._count_lock:
                if self._queued != self._applied:
                    return False
            try:
                self._connection()
                self._pragma("busy_timeout=0")  # never wait for another writer's lock on the loop
                self._transaction([op])
            except Exception:  # locked by another writer, or failing: the thread waits and reports
                return False
            finally:
                self._restore_busy_timeout()  # never raises: a committed op stays committed
            _resolve(op.future)
            if self._commits >= self._next_checkpoint:  # the thread does it, off the event loop
                self._next_checkpoint = self._commits + CHECKPOINT_EVERY
                self._put(_Op("checkpoint", {}))
            return True
        finally:
            self._conn_lock.release()

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            batch = [] if first is None else [first]
            stop = first is None
            while not stop:  # group commit: take whatever queued up meanwhile
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stop = True
                else:
                    batch.append(op)
            if batch:
                with self._conn_lock:
                    writes = [op for op in batch if op.kind != "checkpoint"]
                    if writes:
                        self._commit(writes)
                    if self._sqlite and (len(writes) < len(batch) or self._commits >= self._next_checkpoint):
                        self._checkpoint()
                with self._count_lock:
                    self._applied += len(batch)
        with self._conn_lock:
            self._drop_connection()

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file (SQLite, PASSIVE: readers are never blocked)."""
        self._next_checkpoint = self._commits + CHECKPOINT_EVERY
        try:
            self._connection()
            self._pragma("wal_checkpoint(PASSIVE)")
        except Exception as exc:  # a later checkpoint catches up; the rows are durable in the WAL
            logger.warning("ledger WAL checkpoint failed: %s: %s", type(exc).__name__, exc)

    def _insert(self, columns: tuple[str, ...]) -> db.DriverStatement:
        statement = self._insert_sql.get(columns)
        if statement is None:
            statement = db.DriverStatement(db.ledger.insert(), self.engine.dialect, columns)
            self._insert_sql[columns] = statement
        return statement

    def _apply(self, cursor: Any, batch: list[_Op]) -> None:
        inserts: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for op in batch:
            if op.kind == "insert":
                inserts.setdefault(tuple(sorted(op.row)), []).append(op.row)
        for columns, rows in inserts.items():
            self._insert(columns).executemany(cursor, rows)
        settles = [op for op in batch if op.kind == "settle"]
        if settles:
            params = [{f"b_{key}": value for key, value in op.row.items()} for op in settles]
            rowcount = self._settle_sql.executemany(cursor, params)
            if rowcount not in (-1, len(settles)):
                raise RuntimeError(f"{len(settles) - rowcount} settlement(s) found no pending row")
        debits: dict[str, Decimal] = {}
        for op in batch:
            if op.wallet is not None and op.cost:
                debits[op.wallet] = debits.get(op.wallet, Decimal(0)) + op.cost
        if debits:
            at = now()
            self._debit_sql.executemany(
                cursor, [{"b_team": team, "b_amount": amount, "b_now": at} for team, amount in debits.items()]
            )

    def _transaction(self, batch: list[_Op]) -> None:
        """Apply ``batch`` in one transaction and commit it; on failure roll back, drop the
        connection (it may be what failed) and raise."""
        conn = self._connection()
        try:
            cursor = conn.cursor()
            try:
                self._apply(cursor, batch)
            finally:
                cursor.close()
            with db.sqlalchemy_errors(self.engine.dialect, "COMMIT"):
                conn.commit()
        except Exception:
            with contextlib.suppress(Exception):
                conn.rollback()
            self._drop_connection(broken=True)
            raise
        self._commits += 1

    def _commit(self, batch: list[_Op]) -> None:
        """Commit ``batch`` and settle its futures; a failed batch is retried one op at a time, and a
        failed op gets its exception (a finished row that cannot be written leaves its pending row)."""
        try:
            self._transaction(batch)
        except Exception as exc:
            if len(batch) == 1:
                op = batch[0]
                logger.error("ledger write failed: %s: %s", type(exc).__name__, _first_line(exc))
                if op.pending is not None:  # leave what a crash would: a pending row to reconcile
                    self._commit([_Op("insert", op.pending)])
                if op.future is not None:
                    _resolve(op.future, exc)
                return
            logger.error(
                "ledger batch of %d failed (%s); retrying one by one", len(batch), type(exc).__name__
            )
            for op in batch:
                self._commit([op])
            return
        for op in batch:
            if op.future is not None:
                _resolve(op.future)
