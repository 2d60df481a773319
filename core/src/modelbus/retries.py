"""Retry timing: exponential backoff with jitter, ``Retry-After`` honoured, one overall deadline."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from modelbus.errors import ModelbusError, RequestTimeoutError


@dataclass(slots=True)
class Deadline:
    """A point in monotonic time after which a call gives up."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def check(self, what: str = "call") -> None:
        if self.remaining() <= 0:
            raise RequestTimeoutError(f"{what} exceeded its total timeout of {self.seconds:g}s")


@dataclass(slots=True)
class RetryPolicy:
    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, retry: int, error: ModelbusError, deadline: Deadline | None = None) -> float | None:
        """Seconds to wait before retry number ``retry`` (0-based), or ``None`` to give up."""
        if not error.retryable or retry >= self.max_retries:
            return None
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            wait = error.retry_after
        else:
            ceiling = min(self.backoff_max, self.backoff_base * (2**retry))
            wait = ceiling / 2 + random.uniform(0, ceiling / 2)
        if deadline is not None and wait >= deadline.remaining():
            return None
        return wait
