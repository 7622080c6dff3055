"""Deliberate failures for the local vectorizer server, so retries are tested for real.

A client's retry logic is only trustworthy if it has met the failures it claims to handle:
408, 429 with ``Retry-After``, 5xx, a connection dropped mid-answer, an answer that never comes in
time. The injector decides, per request, whether to fail and how. It is deterministic for a
given ``seed`` and request order, so a failing test can be replayed.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["status", "drop", "slow"]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int | None = None  # for kind == "status"


class FaultInjector:
    """Fail a ``rate`` share of requests (and always the first ``first`` ones).

    The kinds to choose from, uniformly: each HTTP status in ``statuses``, plus ``"drop"``
    when ``drop_connection`` is set and ``"slow"`` when ``slow_seconds`` > 0.
    """

    def __init__(
        self,
        *,
        rate: float = 0.0,
        statuses: Sequence[int] = (),
        drop_connection: bool = False,
        slow_seconds: float = 0.0,
        seed: int | None = 0,
        first: int = 0,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {rate!r}")
        for status in statuses:
            if not (status in (408, 429) or 500 <= status <= 599):
                raise ValueError(f"fault statuses must be 408, 429 or 5xx (what a client should retry), got {status}")
        self._kinds: list[Fault] = [Fault("status", int(s)) for s in statuses]
        if drop_connection:
            self._kinds.append(Fault("drop"))
        if slow_seconds > 0:
            self._kinds.append(Fault("slow"))
        if (rate > 0 or first > 0) and not self._kinds:
            raise ValueError(
                "faults were asked for but no kind is enabled: give fault statuses, drop_connection or slow_seconds"
            )
        self.rate = rate
        self.first = first
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._seen = 0

    @property
    def enabled(self) -> bool:
        return bool(self._kinds) and (self.rate > 0 or self.first > 0)

    def draw(self) -> Fault | None:
        """The fault for the next request, or None to serve it normally."""
        if not self.enabled:
            return None
        with self._lock:
            self._seen += 1
            forced = self._seen <= self.first
            if not forced and self._rng.random() >= self.rate:
                return None
            return self._kinds[self._rng.randrange(len(self._kinds))]
