"""Where a Vision call goes and what a failed attempt leads to, for one resource or a pool.

Each resource has a ``Gate``: its pace, its pause, whether it is refused. ``dispatch`` makes one
attempt through a gate; a 429 pauses that gate for what the service asked (in paced bulk work
it counts against ``throttle_budget``, not ``max_retries``), and a 5xx, 408 or no answer backs
it off longer with each failure of that resource in a row. A resource with no answer at all for
``policy.down_after`` seconds is down: once every resource is, a call fails at once, so a bulk
run stops within about a minute. ``spread=True`` takes the gate free first, ``spread=False``
the first one neither paused nor refused. (design: docs/design.md#vision-dispatch-and-the-pool)
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from indexer.ratelimit import RateLimiter
from indexer.retry import RetryPolicy

logger = logging.getLogger(__name__)

T = TypeVar("T")

# What a 429 without any Retry-After pauses its resource for (S1 counts per second).
DEFAULT_THROTTLE_PAUSE = 1.0
# How long one call in bulk work may keep meeting 429s before it fails (transiently).
DEFAULT_THROTTLE_BUDGET = 600.0


class Retriable(Exception):
    """One attempt that may succeed if tried again: a 408/429/5xx answer or no answer.

    ``final(attempts)`` is the error to raise when no more attempts are made."""

    def __init__(
        self,
        final: Callable[[int], Exception],
        *,
        retry_after: float | None = None,
        throttled: bool = False,
        refused: bool = False,
        unanswered: bool = False,
        reason: str = "",
    ) -> None:
        super().__init__(reason)
        self.final = final
        self.retry_after = retry_after
        self.throttled = throttled
        self.refused = refused
        self.unanswered = unanswered  # no answer at all: refused connection, timeout, reset
        self.reason = reason


@dataclass(eq=False)
class Gate:
    """One resource's own pace, pause and standing."""

    name: str
    limiter: RateLimiter | None = None
    refused: str = ""  # why this resource is not used (it answered with another model version)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _paused_until: float = field(default=float("-inf"), repr=False)
    _failures: int = field(default=0, repr=False)  # failures in a row (5xx, 408, no answer)
    _silent_since: float | None = field(default=None, repr=False)  # first of the unanswered attempts in a row
    _last_unanswered: Retriable | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def paced(self) -> bool:
        return self.limiter is not None

    def now(self) -> float:
        """The time on this resource's clock (its limiter's, when paced)."""
        return self.limiter.now() if self.limiter is not None else self.clock()

    def paused_for(self) -> float:
        """Seconds until this resource may be asked again (0: now)."""
        if self.limiter is not None:
            return self.limiter.paused_for()
        with self._lock:
            return max(0.0, self._paused_until - self.clock())

    def take(self) -> float:
        """Take this resource's next slot if it is free now (0.0), else the seconds until it is."""
        if self.refused:
            return math.inf
        if self.limiter is not None:
            return self.limiter.try_acquire()
        return self.paused_for()

    def pause(self, seconds: float, *, since: float | None = None) -> None:
        """Send nothing through this resource for ``seconds``; ``since``: when the call that
        brought the answer left (``RateLimiter.penalize``)."""
        if not seconds or seconds <= 0 or not math.isfinite(seconds):
            return
        if self.limiter is not None:
            self.limiter.penalize(seconds, since=since)
            return
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)

    def throttled(self, retry_after: float | None, *, sent_at: float | None = None) -> float:
        """A 429: pause for what the service asked and slow the pace. Returns the pause.
        ``sent_at``: when the refused call left."""
        pause = DEFAULT_THROTTLE_PAUSE if retry_after is None else retry_after
        self.pause(pause, since=sent_at)
        if self.limiter is not None:
            self.limiter.slow_down(retry_after)
        return pause

    def failed(self, delay: float, policy: RetryPolicy) -> float:
        """A 5xx, 408 or no answer: back this resource off on its own, for at least ``delay``
        (the call's backoff, or the server's Retry-After) and for at least half the exponential
        backoff of its own failures in a row, whichever call they came from. So a resource that
        is down is left alone for longer and longer while the others go on, instead of being
        tried again at once by each new call. A success resets the count. Returns the pause."""
        with self._lock:
            self._failures += 1
            failures = self._failures
        ceiling = min(policy.backoff_max, policy.backoff_factor * 2 ** (failures - 1))
        pause = max(delay, ceiling / 2)
        self.pause(pause)
        return pause

    def unanswered(self, retry: Retriable) -> None:
        """An attempt got no answer at all; the silence runs from the first of them in a row."""
        with self._lock:
            if self._silent_since is None:
                self._silent_since = self.clock()
            self._last_unanswered = retry

    def answered(self) -> None:
        """An attempt got an answer (even a 5xx or a 429): the resource is reachable."""
        with self._lock:
            self._silent_since, self._last_unanswered = None, None

    def down(self, after: float) -> Retriable | None:
        """The last unanswered attempt, when nothing has answered for ``after`` seconds."""
        with self._lock:
            if self._silent_since is None or self.clock() - self._silent_since < after:
                return None
            return self._last_unanswered

    def succeeded(self) -> None:
        self.answered()
        with self._lock:
            self._failures = 0
        if self.limiter is not None:
            self.limiter.speed_up()


class NoResourceLeft(Exception):
    """Every resource of a pool was refused; ``reasons`` says why each was."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def choose(gates: Sequence[Gate], *, spread: bool, start: int = 0) -> tuple[Gate | None, float]:
    """The gate to use now (its slot taken), or None and the seconds until one is free
    (``math.inf`` when every gate is refused)."""
    usable = [g for g in gates if not g.refused]
    if not usable:
        return None, math.inf
    if not spread:
        # The first resource that is not paused; a paced one is waited for, not skipped.
        for gate in usable:
            if gate.paused_for() > 0:
                continue
            wait = gate.take()
            return (gate, 0.0) if wait <= 0 else (None, wait)
        return None, min(g.paused_for() for g in usable)
    shortest = math.inf
    for offset in range(len(usable)):
        gate = usable[(start + offset) % len(usable)]
        wait = gate.take()
        if wait <= 0:
            return gate, 0.0
        shortest = min(shortest, wait)
    return None, shortest


def dispatch(
    gates: Sequence[Gate],
    attempt: Callable[[Gate], T],
    *,
    policy: RetryPolicy,
    operation: str,
    spread: bool,
    throttle_budget: float = DEFAULT_THROTTLE_BUDGET,
    rotation: itertools.count | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Make ``attempt`` succeed through one of ``gates`` (see the module doc)."""
    clock = gates[0].clock  # the throttle budget runs on the resources' own clock
    started = clock()
    retries = 0
    while True:
        gate, wait = choose(gates, spread=spread, start=next(rotation) if rotation is not None else 0)
        if gate is None:
            if math.isinf(wait):
                raise NoResourceLeft([f"{g.name}: {g.refused}" for g in gates if g.refused])
            down = _all_down(gates, policy.down_after)
            if down is not None:
                raise down.final(max(1, retries)) from None  # no resource answers: do not wait for one
            sleep(wait)
            continue
        sent_at = gate.now()
        try:
            return _succeeded(gate, attempt(gate))
        except Retriable as retry:
            if retry.refused:
                continue  # the gate is refused now; another resource takes the call
            if retry.unanswered:
                gate.unanswered(retry)
                if _all_down(gates, policy.down_after) is not None:
                    raise retry.final(retries + 1) from None
            else:
                gate.answered()
            if retry.throttled:
                pause = gate.throttled(retry.retry_after, sent_at=sent_at)
                if retry.retry_after is not None and retry.retry_after > policy.retry_after_max:
                    raise retry.final(retries + 1) from None  # minutes: the caller reschedules
                if gate.paced:
                    if clock() - started > throttle_budget:
                        raise retry.final(retries + 1) from None
                    logger.debug("vision %s: throttled by %s; paused %.3fs", operation, gate.name, pause)
                    continue
            delay = policy.delay(retries, retry.retry_after)
            if delay is None:
                raise retry.final(retries + 1) from None
            retries += 1
            if not retry.throttled:
                delay = gate.failed(delay, policy)  # this resource is backed off on its own
            logger.warning(
                "vision %s: %s from %s; retry %d/%d in %.2fs%s",
                operation,
                retry.reason,
                gate.name,
                retries,
                policy.max_retries,
                delay,
                " (server's Retry-After)" if retry.retry_after is not None else "",
            )


def _all_down(gates: Sequence[Gate], after: float) -> Retriable | None:
    """The last unanswered attempt of one of them, when no usable gate has answered for ``after``
    seconds; None while any of them may still answer."""
    usable = [g for g in gates if not g.refused]
    downs = [g.down(after) for g in usable]
    if not usable or any(d is None for d in downs):
        return None
    return downs[-1]


def _succeeded(gate: Gate, result: T) -> T:
    gate.succeeded()
    return result
