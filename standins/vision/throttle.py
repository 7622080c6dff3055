"""How the Vision stand-in decides a request is over the tier's rate (answered 429).

``FixedWindow`` (the default) is Azure's gateway: a resource's requests are counted over fixed
intervals (S1: 20 in each second; F0: 20 in each minute), so an idle resource may take a whole
interval's allowance at once (evidence and assumptions: ``standins/FIDELITY.md``, V7a).
``TokenBucket`` (``rate`` a second, ``burst`` at once; ``burst=1`` is the strictest limiter)
tests that a client's pacing does not stand on the limit. Both answer ``take()`` with 0 or the
exact wait. Kept apart from the client's limiter on purpose (design: docs/design.md#stand-ins).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"the rate must be positive and the burst at least 1, got {rate!r}, {burst!r}")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self, at: float | None = None) -> float:
        """Take a token and return 0, or take nothing and return the seconds until one is free
        (what goes into ``Retry-After``). ``at``: the moment the request arrived (default now;
        never before an earlier request's)."""
        with self._lock:
            now = max(self._clock() if at is None else at, self._stamp)
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1.0 - 1e-9:
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0
            return (1.0 - self._tokens) / self.rate

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate:g}/s, burst={self.burst})"


def default_window(rate: float) -> float:
    """The counting interval for a tier's rate: a second for per-second tiers (S1: 20/s), a
    minute for per-minute ones (F0: 20 a minute, i.e. a rate below 1/s)."""
    return 1.0 if rate >= 1.0 else 60.0


class FixedWindow:
    """At most ``allowance`` requests in each interval of ``window`` seconds, counted from the
    moment the stand-in started (the intervals are aligned to its clock)."""

    def __init__(
        self, rate: float, window: float | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or not math.isfinite(rate):
            raise ValueError(f"the rate must be a positive number, got {rate!r}")
        self.window = float(window if window is not None else default_window(rate))
        if self.window <= 0:
            raise ValueError(f"the window must be positive, got {window!r}")
        self.rate = float(rate)
        # 20/s over 1 s = 20; 0.33/s over 60 s = 20 (rounded, at least one request).
        self.allowance = max(1, round(rate * self.window))
        self._clock = clock
        self._origin = clock()
        self._index = 0
        self._count = 0
        self._lock = threading.Lock()

    def take(self, at: float | None = None) -> float:
        """Count the request and return 0, or return the seconds until the interval ends. ``at``:
        the moment the request arrived (default now)."""
        with self._lock:
            elapsed = (self._clock() if at is None else at) - self._origin
            index = max(int(elapsed // self.window), self._index)
            elapsed = max(elapsed, index * self.window)
            if index != self._index:
                self._index, self._count = index, 0
            if self._count < self.allowance:
                self._count += 1
                return 0.0
            return max((index + 1) * self.window - elapsed, 1e-6)

    def __repr__(self) -> str:
        return f"FixedWindow({self.allowance} per {self.window:g} s)"
