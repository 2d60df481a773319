"""The state gateway replicas must share, behind one small interface.

:class:`SharedState` holds what several replicas would have to agree on: rate-limit windows and money
reserved but not yet settled (wallets and budgets). :class:`InProcessState` implements it for one
process; a Redis or PostgreSQL implementation for horizontal scale-out plugs in behind the same methods
without touching the callers. The router's per-deployment circuit state is the other piece replicas
would share; it sits behind :class:`modelbus.router.health.HealthBook`, which is per process today.

All methods are synchronous and non-blocking: check-and-reserve must be atomic, and in one asyncio
process that means "no ``await`` in between".
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from modelbus.errors import ConfigError
from modelbus.gateway.errors import BudgetExceededError, GatewayRateLimitError, InsufficientFundsError

WINDOW = 60.0  # seconds: RPM and TPM are per rolling minute
SLOT = 0.1  # seconds: events this close together share one entry (a window holds at most 600)


def period_start(period: str, now: datetime | None = None) -> datetime:
    """The start (UTC) of the budget period containing ``now``: daily, monthly or total. Periods are
    validated when a key or team is stored; an unknown one here (stored by an older version, or by
    hand) is an error, not a default."""
    now = now or datetime.now(UTC)
    if period == "daily":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "monthly":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if period == "total":
        return datetime(1970, 1, 1, tzinfo=UTC)
    raise ValueError(f"unknown budget period {period!r}: use daily, monthly or total")


def bucket_key(scope: str, period: str, now: datetime | None = None) -> str:
    """The counter a scope's spend in the period containing ``now`` is kept under."""
    try:
        start = period_start(period, now)
    except ValueError:
        kind, _, name = scope.partition(":")
        fix = f"modelbus teams set {name} --budget-period monthly" if kind == "team" else "the admin API"
        raise ConfigError(
            f"{scope} has the budget period {period!r} stored, which is not daily, monthly or total; "
            f"its requests are refused until it is fixed ({fix})"
        ) from None
    return f"{scope}@{start.date().isoformat()}:{period}"


@dataclass(frozen=True)
class Budget:
    """A spending cap for one scope (``key:<id>`` or ``team:<name>``) in one period."""

    scope: str
    limit: Decimal
    period: str


@dataclass
class Reservation:
    """Money held for one request. ``buckets`` are the budget counters it was reserved against, fixed at
    reservation time: a request that straddles midnight (or a month's end) settles where it reserved."""

    amount: Decimal
    wallet: str | None
    buckets: list[str] = field(default_factory=list)
    released: bool = False


class SharedState(Protocol):
    def check_rate(self, scope: str, rpm: int | None, tpm: int | None, tokens: int) -> None:
        """Count one request of ``tokens`` estimated tokens, or raise GatewayRateLimitError."""

    def add_tokens(self, scope: str, tokens: int) -> None:
        """Correct a scope's token count once actual usage is known (may be negative)."""

    def set_wallet(self, team: str, balance: Decimal) -> None: ...

    def credit_wallet(self, team: str, amount: Decimal, new_balance: Decimal) -> None:
        """Add a top-up (``new_balance`` is the stored balance, used when the wallet is new here)."""

    def set_spend(self, bucket: str, spent: Decimal) -> None: ...

    def spend(self, bucket: str) -> Decimal: ...

    def reserve(self, amount: Decimal, wallet: str | None, budgets: list[Budget]) -> Reservation:
        """Reserve ``amount`` against a wallet and budgets at once, or raise (402)."""

    def settle(self, reservation: Reservation, actual: Decimal) -> None:
        """Release a reservation and book the actual cost."""

    def wallet_available(self, team: str) -> Decimal | None: ...


class _Window:
    """A rolling minute of counts, in slots of :data:`SLOT` seconds: memory stays bounded whatever
    the request rate (an entry expires up to one slot late)."""

    __slots__ = ("events", "total")

    def __init__(self) -> None:
        self.events: deque[list[float]] = deque()  # [slot start, count]
        self.total = 0

    def trim(self, now: float) -> None:
        while self.events and self.events[0][0] <= now - WINDOW:
            self.total -= int(self.events.popleft()[1])

    def wait(self, now: float) -> float:
        """Seconds until the oldest entry leaves the window (for Retry-After)."""
        wait = WINDOW - (now - self.events[0][0]) if self.events else WINDOW
        return round(max(wait, 0.1), 2)

    def add(self, now: float, count: int) -> None:
        if self.events and now - self.events[-1][0] < SLOT:
            self.events[-1][1] += count
        else:
            self.events.append([now, count])
        self.total += count


class InProcessState:
    """SharedState for a single gateway process."""

    def __init__(self) -> None:
        self._requests: dict[str, _Window] = {}
        self._tokens: dict[str, _Window] = {}
        self._wallets: dict[str, Decimal] = {}  # balance as last settled
        self._reserved_wallet: dict[str, Decimal] = {}
        self._spent: dict[str, Decimal] = {}
        self._reserved_budget: dict[str, Decimal] = {}

    # -- rate limits --------------------------------------------------------------------------------

    def check_rate(self, scope: str, rpm: int | None, tpm: int | None, tokens: int) -> None:
        """Only limited scopes are counted: a key without limits costs no memory here."""
        now = time.monotonic()
        requests = used_tokens = None
        if rpm is not None:
            requests = self._requests.setdefault(scope, _Window())
            requests.trim(now)
            if requests.total + 1 > rpm:
                raise GatewayRateLimitError(
                    f"{scope} is limited to {rpm} requests per minute", retry_after=requests.wait(now)
                )
        if tpm is not None:
            used_tokens = self._tokens.setdefault(scope, _Window())
            used_tokens.trim(now)
            if used_tokens.total + tokens > tpm and used_tokens.total > 0:
                raise GatewayRateLimitError(
                    f"{scope} is limited to {tpm} tokens per minute", retry_after=used_tokens.wait(now)
                )
        if requests is not None:
            requests.add(now, 1)
        if used_tokens is not None:
            used_tokens.add(now, tokens)

    def add_tokens(self, scope: str, tokens: int) -> None:
        window = self._tokens.get(scope)
        if window is not None:  # only scopes with a TPM limit are counted
            window.add(time.monotonic(), tokens)

    # -- money --------------------------------------------------------------------------------------

    def set_wallet(self, team: str, balance: Decimal) -> None:
        self._wallets[team] = balance

    def credit_wallet(self, team: str, amount: Decimal, new_balance: Decimal) -> None:
        if team in self._wallets:
            self._wallets[team] += amount
        else:
            self._wallets[team] = new_balance

    def wallet_available(self, team: str) -> Decimal | None:
        if team not in self._wallets:
            return None
        return self._wallets[team] - self._reserved_wallet.get(team, Decimal(0))

    def set_spend(self, bucket: str, spent: Decimal) -> None:
        self._spent[bucket] = spent

    def spend(self, bucket: str) -> Decimal:
        return self._spent.get(bucket, Decimal(0))

    def reserve(self, amount: Decimal, wallet: str | None, budgets: list[Budget]) -> Reservation:
        if wallet is not None and wallet in self._wallets:
            available = self.wallet_available(wallet) or Decimal(0)
            if available < amount:
                raise InsufficientFundsError(
                    f"team {wallet!r} has ${max(available, Decimal(0)):.6f} available in its wallet; this "
                    f"request may cost up to ${amount:.6f}. Top up the wallet (modelbus wallet topup) or "
                    "lower max_tokens."
                )
        now = datetime.now(UTC)
        buckets = [bucket_key(budget.scope, budget.period, now) for budget in budgets]
        for budget, bucket in zip(budgets, buckets, strict=True):
            left = (
                budget.limit
                - self._spent.get(bucket, Decimal(0))
                - self._reserved_budget.get(bucket, Decimal(0))
            )
            if left < amount:
                raise BudgetExceededError(
                    f"{budget.scope} has ${max(left, Decimal(0)):.6f} of its {budget.period} budget "
                    f"(${budget.limit}) left; this request may cost up to ${amount:.6f}"
                )
        reservation = Reservation(amount, wallet if wallet in self._wallets else None, buckets)
        if reservation.wallet is not None:
            self._reserved_wallet[wallet] = self._reserved_wallet.get(wallet, Decimal(0)) + amount  # type: ignore[index]
        for bucket in buckets:
            self._reserved_budget[bucket] = self._reserved_budget.get(bucket, Decimal(0)) + amount
        return reservation

    def settle(self, reservation: Reservation, actual: Decimal) -> None:
        if reservation.released:
            return
        reservation.released = True
        if reservation.wallet is not None:
            team = reservation.wallet
            self._reserved_wallet[team] -= reservation.amount
            self._wallets[team] -= actual
        for bucket in reservation.buckets:
            self._reserved_budget[bucket] -= reservation.amount
            self._spent[bucket] = self._spent.get(bucket, Decimal(0)) + actual

    def reserved_total(self) -> Decimal:
        """Money reserved and not settled, across wallets (0 when nothing is in flight)."""
        return sum(self._reserved_wallet.values(), Decimal(0))
