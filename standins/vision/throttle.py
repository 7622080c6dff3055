"""How the Vision stand-in decides a request is over the tier's rate (answered 429).

A token bucket: ``rate`` requests a second on average, ``burst`` at once. The stand-in keeps
its own, apart from the client's pacing limiter, so that the client's assumptions about the
gateway are tested against the stand-in's rather than against themselves.
"""

from __future__ import annotations

import threading
import time


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"the rate must be positive and the burst at least 1, got {rate!r}, {burst!r}")
        self.rate = float(rate)
        self.burst = int(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take a token and return 0, or take nothing and return the seconds until one is free
        (what goes into ``Retry-After``)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1.0 - 1e-9:
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0
            return (1.0 - self._tokens) / self.rate
