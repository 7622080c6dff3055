"""When to try a call to an Azure service again, and how long to wait first.

One policy for the Vision client and the Azure AI Search backend: 408, 429, 5xx and no answer
are retried (both services' calls are safe to repeat), any other 4xx never is. The wait is the
server's ``Retry-After`` when it gives one, else exponential backoff with full jitter (AWS
Architecture Blog, "Exponential Backoff And Jitter"). (design: docs/design.md#retries)
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field


def is_retriable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns None when absent or unreadable (the caller then uses its own backoff)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """The server's wait hint from an answer's headers (any case-insensitive mapping).
    Azure's finer-grained ``retry-after-ms`` wins over ``Retry-After``."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    return parse_retry_after(headers.get("Retry-After"))


@dataclass
class RetryPolicy:
    max_retries: int = 5
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    # A Retry-After longer than this is not slept through: the call fails at once with the
    # hint attached, so a backfill or the Functions host can reschedule instead of a worker
    # blocking for minutes.
    retry_after_max: float = 60.0
    # A resource that has given no answer at all (refused connections, timeouts) for this long
    # is down, not busy: calls stop retrying through it, so a bulk run ends within about a
    # minute instead of sleeping through every retry of every image (vision.dispatch).
    down_after: float = 30.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.backoff_factor < 0 or self.backoff_max < 0:
            raise ValueError("backoff_factor and backoff_max must not be negative")
        self.retry_after_max = max(self.retry_after_max, self.backoff_max)

    def backoff(self, retry_number: int) -> float:
        """Full-jitter delay before retry ``retry_number`` (0 for the first retry)."""
        ceiling = min(self.backoff_max, self.backoff_factor * (2**retry_number))
        return self.rng.uniform(0.0, ceiling)

    def delay(self, retry_number: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry ``retry_number``, or None to give up now."""
        if retry_number >= self.max_retries:
            return None
        if retry_after is not None:
            return None if retry_after > self.retry_after_max else retry_after
        return self.backoff(retry_number)
