"""Deployment health: EWMA latency and TTFT, in-flight counts, a circuit breaker, 429 cool-downs.

Passive signals come from every attempt (:meth:`HealthBook.record`); active probes (the providers'
health hooks, run by the gateway) go through :meth:`HealthBook.record_probe`, which counts failures
like real traffic but leaves the latency averages to real requests. The breaker per deployment:

    closed --(N retryable failures within the window)--> open --(cooldown, or a successful probe)-->
    half-open --(a success)--> closed;  half-open --(a failure)--> open again

A 429 with ``Retry-After`` cools that deployment down for that long, whatever the breaker says.
Non-retryable errors (a bad request) say nothing about the deployment and are ignored.

:class:`HealthBook` keeps this per process: each gateway replica learns health on its own. Sharing it
between replicas (Redis, PostgreSQL) would be an implementation with the same methods; none exists yet.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from modelbus.errors import ModelbusError, RateLimitError
from modelbus.router.config import BreakerConfig


@dataclass
class DeploymentHealth:
    state: str = "closed"  # closed, open, half_open
    failures: deque[float] = field(default_factory=deque)
    opened_at: float = 0.0
    cooldown_until: float = 0.0
    trial_in_flight: bool = False
    in_flight: int = 0
    ewma_latency: float | None = None
    ewma_ttft: float | None = None
    successes: int = 0
    errors: int = 0


class HealthBook:
    def __init__(
        self, breaker: BreakerConfig, alpha: float = 0.2, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.breaker = breaker
        self.alpha = alpha
        self.clock = clock
        self._deployments: dict[str, DeploymentHealth] = {}

    def get(self, deployment: str) -> DeploymentHealth:
        health = self._deployments.get(deployment)
        if health is None:
            health = self._deployments[deployment] = DeploymentHealth()
        return health

    def unavailable(self, deployment: str) -> str | None:
        """Why a deployment should not be tried now, or ``None`` when it may be."""
        health = self.get(deployment)
        now = self.clock()
        if health.cooldown_until > now:
            return f"cooling down after a 429 for {health.cooldown_until - now:.1f}s more"
        if health.state == "open":
            if now - health.opened_at >= self.breaker.cooldown:
                health.state = "half_open"
                health.trial_in_flight = False
            else:
                wait = self.breaker.cooldown - (now - health.opened_at)
                return f"circuit open ({len(health.failures)} failures); half-open in {wait:.1f}s"
        if health.state == "half_open" and health.trial_in_flight:
            return "circuit half-open: a trial request is in flight"
        return None

    def started(self, deployment: str) -> None:
        health = self.get(deployment)
        health.in_flight += 1
        if health.state == "half_open":
            health.trial_in_flight = True

    def record(
        self,
        deployment: str,
        *,
        error: ModelbusError | None,
        latency: float | None,
        ttft: float | None = None,
    ) -> None:
        """One attempt's outcome (also called for active probes, with ``latency`` only)."""
        health = self.get(deployment)
        health.in_flight = max(health.in_flight - 1, 0)
        now = self.clock()
        if error is None:
            health.successes += 1
            if latency is not None:
                health.ewma_latency = self._ewma(health.ewma_latency, latency)
            if ttft is not None:
                health.ewma_ttft = self._ewma(health.ewma_ttft, ttft)
            if health.state != "closed":
                health.state = "closed"
                health.failures.clear()
            health.trial_in_flight = False
            return
        self._failure(health, error, now)

    def record_probe(self, deployment: str, *, error: ModelbusError | None) -> None:
        """An active health probe's outcome. A failure counts like a failed request; a success lets an
        open circuit through to half-open at once (one real request then decides), and says nothing
        about latency: a probe is not a chat completion."""
        health = self.get(deployment)
        if error is None:
            if health.state == "open":
                health.state = "half_open"
                health.trial_in_flight = False
            return
        self._failure(health, error, self.clock())

    def _failure(self, health: DeploymentHealth, error: ModelbusError, now: float) -> None:
        if isinstance(error, RateLimitError) and error.retry_after:
            health.cooldown_until = max(health.cooldown_until, now + error.retry_after)
        if not error.retryable:
            health.trial_in_flight = False
            return
        health.errors += 1
        health.failures.append(now)
        while health.failures and health.failures[0] < now - self.breaker.window:
            health.failures.popleft()
        if health.state == "half_open" or len(health.failures) >= self.breaker.failures:
            health.state = "open"
            health.opened_at = now
        health.trial_in_flight = False

    def _ewma(self, previous: float | None, value: float) -> float:
        return value if previous is None else previous + self.alpha * (value - previous)
