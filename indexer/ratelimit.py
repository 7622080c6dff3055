"""A thread-safe token bucket that keeps bulk Vision calls at the pace the tier allows.

Azure AI Vision answers 429 once a resource goes over its tier's rate (S1: 20 calls a
second; free F0: 20 a minute). Retrying after a 429 works, but every refused call still
costs a round trip and delays the whole batch, so a backfill paces itself *before* sending.

One bucket is shared by every worker thread of a batch. ``penalize`` lets a worker that got a
429 slow the whole batch down for the time the service asked for, instead of each thread
discovering the limit on its own. The local vectorizer server uses the same bucket, without
blocking (``try_acquire``), to answer 429 as Azure does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

# Refills are floating-point sums: 20 steps of 1/20 may add up to 0.9999999999. Without this
# slack a waiter could be told to sleep 1e-16 s, which a clock cannot even represent, forever.
_EPSILON = 1e-9


class RateLimiter:
    """Allow ``rate_per_second`` acquisitions a second on average, ``burst`` at once at most."""

    def __init__(
        self,
        rate_per_second: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (rate_per_second > 0 and math.isfinite(rate_per_second)):
            raise ValueError(f"rate_per_second must be a positive finite number, got {rate_per_second!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self.rate_per_second = float(rate_per_second)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Start full: the first ``burst`` calls go at once, as a fresh Azure resource allows.
        self._tokens = float(burst)
        self._updated = clock()
        self._blocked_until = float("-inf")

    def _refill(self, now: float) -> None:
        if now <= self._updated:  # still inside a penalty: nothing accrues
            return
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate_per_second)
        self._updated = now

    def _wait_time(self, now: float) -> float:
        """Seconds until one token is free (0 if now). Caller holds the lock, bucket refilled."""
        if now < self._blocked_until:
            return self._blocked_until - now
        if self._tokens >= 1.0 - _EPSILON:
            return 0.0
        return max((1.0 - self._tokens) / self.rate_per_second, _EPSILON)

    def try_acquire(self) -> float:
        """Take a token if one is free now and return 0.0; otherwise take nothing and return
        the seconds until one would be free (what a server puts in ``Retry-After``)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            wait = self._wait_time(now)
            if wait <= 0.0:
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0
            return wait

    def acquire(self) -> float:
        """Block until a token is free, take it, and return the seconds spent waiting.

        Waiters do not reserve slots: after sleeping each one checks again, so a
        ``penalize`` that arrives meanwhile holds back callers that are already waiting.
        """
        waited = 0.0
        while True:
            wait = self.try_acquire()
            if wait <= 0.0:
                return waited
            self._sleep(wait)
            waited += wait

    def penalize(self, seconds: float) -> None:
        """Hand out no token for ``seconds`` from now (e.g. a 429's ``Retry-After``). When the
        pause ends one call may go, then the steady pace resumes (no burst into a service
        that has just refused us)."""
        if not seconds or seconds <= 0 or not math.isfinite(seconds):
            return
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._blocked_until = max(self._blocked_until, now + seconds)
            self._tokens = min(self._tokens, 1.0)
            self._updated = max(self._updated, self._blocked_until)

    def __repr__(self) -> str:
        return f"RateLimiter(rate_per_second={self.rate_per_second}, burst={self.burst})"
