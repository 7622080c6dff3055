"""A thread-safe token bucket that keeps bulk Vision calls at the pace the tier allows.

Pacing before sending costs less than meeting 429s. One limiter per Vision resource is shared
by every worker thread, and ``penalize`` holds them all back for the wait a 429 asked for. An
adaptive limiter (``adaptive=True``, what bulk work uses) paces at ``headroom`` (95%) of the
limit, slows down on a 429 and speeds up a little on each success, like TCP's congestion
control. (design: docs/design.md#pacing)
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
    """Allow ``rate_per_second`` acquisitions a second on average, ``burst`` at once at most.

    With ``adaptive=True`` the given rate is the service's limit (``limit_per_second``) and the
    pace (``rate_per_second``) moves between ``floor`` and ``headroom`` of it (see the module doc).
    """

    def __init__(  # noqa: PLR0913 (a constructor takes its options as keywords)
        self,
        rate_per_second: float,
        *,
        burst: int = 1,
        adaptive: bool = False,
        headroom: float = 0.95,
        floor: float = 0.25,
        decrease: float = 0.9,
        increase: float = 0.004,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (rate_per_second > 0 and math.isfinite(rate_per_second)):
            raise ValueError(f"rate_per_second must be a positive finite number, got {rate_per_second!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        if not (0 < floor <= headroom <= 1 and 0 < decrease < 1 and increase >= 0 and cooldown >= 0):
            raise ValueError("need 0 < floor <= headroom <= 1, 0 < decrease < 1, increase >= 0 and cooldown >= 0")
        self.limit_per_second = float(rate_per_second)
        self.adaptive = adaptive
        self.ceiling = self.limit_per_second * (headroom if adaptive else 1.0)
        self.floor = self.limit_per_second * (floor if adaptive else 1.0)
        self._decrease = decrease
        self._increase = increase * self.limit_per_second
        self._cooldown = cooldown
        self._last_decrease = -math.inf
        self.rate_per_second = self.ceiling
        self.burst = int(burst)
        self._clock = clock
        self._lock = threading.Lock()
        # Start full: the first ``burst`` calls go at once, as a fresh Azure resource allows.
        self._tokens = float(burst)
        self._updated = clock()
        self._blocked_until = -math.inf
        self._last_taken = -math.inf  # when the latest token was handed out

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
                self._last_taken = now
                return 0.0
            return wait

    def penalize(self, seconds: float, *, since: float | None = None) -> None:
        """Hand out no token for ``seconds`` from now (e.g. a 429's ``Retry-After``). When the
        pause ends one call may go, then the steady pace resumes (no burst into a service
        that has just refused us).

        ``since``: when the refused call left (this limiter's clock). A 429 comes back a round
        trip after its call, and other calls may have left at the pace meanwhile; the call that
        goes when the pause ends then keeps the pace after the latest of them, rather than
        following it too closely and being refused in turn."""
        if not seconds or seconds <= 0 or not math.isfinite(seconds):
            return
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._blocked_until = max(self._blocked_until, now + seconds)
            if since is not None and self._last_taken > since:
                self._blocked_until = max(self._blocked_until, self._last_taken + 1.0 / self.rate_per_second)
            # The refused call may go out the moment the pause ends (it has waited its turn).
            self._tokens = 1.0
            self._updated = max(self._updated, self._blocked_until)

    def slow_down(self, asked: float | None = None) -> bool:
        """A 429 came back: lower the pace (adaptive only), unless it was lowered less than
        ``cooldown`` seconds ago. Returns whether it was lowered.

        ``asked`` is the wait the service asked for, in seconds. The cut is in proportion to
        it, counted in intervals of the pace: a call that came 5 ms early (a strict limiter
        and a little jitter) cuts the pace by a small fraction, one refused for the rest of a
        whole window (or with no exact wait given) by the full ``decrease``."""
        if not self.adaptive:
            return False
        with self._lock:
            now = self._clock()
            if now - self._last_decrease < self._cooldown:
                return False
            self._refill(now)
            self._last_decrease = now
            share = 1.0 if asked is None else min(1.0, max(0.0, asked) * self.rate_per_second)
            factor = 1.0 - (1.0 - self._decrease) * share
            self.rate_per_second = max(self.floor, self.rate_per_second * factor)
            return True

    def speed_up(self) -> None:
        """A call succeeded: raise the pace a little towards the ceiling (adaptive only)."""
        if not self.adaptive or self.rate_per_second >= self.ceiling:
            return
        with self._lock:
            self._refill(self._clock())
            self.rate_per_second = min(self.ceiling, self.rate_per_second + self._increase)

    def now(self) -> float:
        """This limiter's clock (what ``penalize``'s ``since`` is counted on)."""
        return self._clock()

    def paused_for(self) -> float:
        """Seconds left of a pause (``penalize``), 0 when none."""
        with self._lock:
            return max(0.0, self._blocked_until - self._clock())

    def __repr__(self) -> str:
        kind = f", adaptive up to {self.ceiling:g}" if self.adaptive else ""
        return f"RateLimiter(rate_per_second={self.rate_per_second:g}{kind}, burst={self.burst})"
