"""Attempt bookkeeping shared by every client: retries, failover to the next candidate, the route record.

A :class:`RoutePlan` is an ordered list of candidate deployments plus the explanation of how they were
chosen. The direct plan has one candidate; the scheduler (``modelbus.router``) builds richer ones and
receives outcome reports through :meth:`RoutePlan.report`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from modelbus.errors import ModelbusError
from modelbus.retries import Deadline, RetryPolicy
from modelbus.runtime import Deployment
from modelbus.types.route import Attempt, Candidate, RouteInfo


class OutcomeListener(Protocol):
    def started(self, deployment: Deployment) -> None: ...

    def report(
        self, deployment: Deployment, *, error: ModelbusError | None, latency: float, ttft: float | None
    ) -> None: ...


@dataclass
class RoutePlan:
    candidates: list[Deployment]
    route: RouteInfo
    listener: OutcomeListener | None = None

    @classmethod
    def direct(cls, requested: str, deployment: Deployment) -> RoutePlan:
        return cls(
            candidates=[deployment],
            route=RouteInfo(
                requested=requested,
                resolved=deployment.id,
                policy="direct",
                reason="the model id names one deployment",
                candidates=[Candidate(deployment=deployment.id)],
            ),
        )

    @classmethod
    def fallback_chain(cls, requested: str, deployments: list[Deployment]) -> RoutePlan:
        return cls(
            candidates=deployments,
            route=RouteInfo(
                requested=requested,
                resolved=deployments[0].id,
                policy="fallback",
                reason=f"configured fallbacks for {requested}: tried in order on retryable errors",
                candidates=[Candidate(deployment=d.id) for d in deployments],
            ),
        )


@dataclass
class AttemptLoop:
    """After each failure: retry the same deployment, fail over to the next one, or give up."""

    plan: RoutePlan
    policy: RetryPolicy
    deadline: Deadline
    index: int = 0
    retry: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def deployment(self) -> Deployment:
        return self.plan.candidates[self.index]

    def begin(self) -> None:
        try:
            self.deadline.check()
        except ModelbusError as error:  # the deadline ran out between attempts: say what was tried
            error.route = self.plan.route
            raise
        self.started = time.monotonic()
        route = self.plan.route
        route.resolved = self.deployment.id
        route.provider = self.deployment.provider_name
        route.model = self.deployment.model.full_id
        if self.plan.listener is not None:
            self.plan.listener.started(self.deployment)

    def _record(self, outcome: str, error: ModelbusError | None, ttft: float | None) -> None:
        latency = time.monotonic() - self.started
        self.plan.route.attempts.append(
            Attempt(
                deployment=self.deployment.id,
                outcome=outcome,  # type: ignore[arg-type]
                error_type=type(error).__name__ if error else None,
                status_code=error.status_code if error else None,
                latency_ms=round(latency * 1000, 2),
                retry=self.retry,
            )
        )
        if self.plan.listener is not None:
            self.plan.listener.report(self.deployment, error=error, latency=latency, ttft=ttft)

    def succeeded(self, ttft: float | None = None) -> None:
        self._record("ok", None, ttft)

    def failed(self, error: ModelbusError, *, may_fail_over: bool = True) -> float | None:
        """Record the failure; return seconds to wait before the next attempt, or ``None`` to give up."""
        self._record("error", error, None)
        delay = self.policy.delay(self.retry, error, self.deadline)
        if delay is not None and (error.retry_after is None or not self._has_next()):
            self.retry += 1
            return delay
        if may_fail_over and error.retryable and self._has_next() and self.deadline.remaining() > 0:
            self.index += 1
            self.retry = 0
            return 0.0
        error.route = self.plan.route  # giving up: the error carries every attempt made
        return None

    def ended_mid_stream(self, error: ModelbusError) -> None:
        """A stream failed after tokens reached the caller: record it; no retry is possible."""
        self._record("error", error, None)
        error.route = self.plan.route

    def _has_next(self) -> bool:
        return self.index + 1 < len(self.plan.candidates)
