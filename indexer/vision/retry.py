"""When to try a Vision call again, and how long to wait first.

Retried: 429 and 5xx answers, connection failures, timeouts, a connection dropped mid-answer.
Never retried: any other 4xx. Those are validation errors (bad image, bad text, bad
parameter, bad key); the same request would fail the same way and cost another call.

The wait is the server's ``Retry-After`` when it gives one (that is the time the service
itself asked for), else exponential backoff with full jitter (AWS Architecture Blog,
"Exponential Backoff And Jitter"): uniform in [0, min(cap, base * 2**attempt)], which spreads
concurrent workers apart instead of having them retry in lock-step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_retriable_status(status: int) -> bool:
    return status in RETRIABLE_STATUSES or status >= 500


@dataclass
class RetryPolicy:
    max_retries: int = 5
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    # A Retry-After longer than this is not slept through: the call fails at once with the
    # hint attached, so a backfill or the Functions host can reschedule instead of a worker
    # blocking for minutes.
    retry_after_max: float = 60.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.backoff_factor < 0 or self.backoff_max < 0:
            raise ValueError("backoff_factor and backoff_max must not be negative")
        self.retry_after_max = max(self.retry_after_max, self.backoff_max)

    def backoff(self, retry_number: int) -> float:
        """Full-jitter delay before retry ``retry_number`` (0 for the first retry)."""
        ceiling = min(self.backoff_max, self.backoff_factor * (2 ** retry_number))
        return self.rng.uniform(0.0, ceiling)

    def delay(self, retry_number: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry ``retry_number``, or None to give up now."""
        if retry_number >= self.max_retries:
            return None
        if retry_after is not None:
            return None if retry_after > self.retry_after_max else retry_after
        return self.backoff(retry_number)
