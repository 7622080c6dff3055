"""Throttled blobs wait on a queue instead of failing, so a burst of uploads never poisons.

A handler still throttled after the client's retries puts a ``Deferral`` message on the
``imgsearch-deferred`` queue of the images account, invisible for the service's
``Retry-After`` plus full jitter that grows with each deferral (``deferral_delay``), and
returns normally; the ``index_deferred`` queue trigger handles the blob when it shows. Messages
are Base64 text, what the Functions queue trigger decodes by default.
(design: docs/design.md#throttled-blobs-wait-on-a-queue)
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass
from typing import Any, Protocol

from indexer.errors import ServiceError

log = logging.getLogger(__name__)

DEFERRED_QUEUE = "imgsearch-deferred"
# A Storage queue message can stay invisible for at most 7 days; a deferral never needs that.
MAX_DEFERRAL_SECONDS = 15 * 60.0
# The jitter of the n-th deferral spreads over up to BASE * 2**n seconds (then the cap).
JITTER_BASE_SECONDS = 2.0


@dataclass(frozen=True)
class Deferral:
    """A blob to index later, and how many times it has been deferred already."""

    container: str
    blob_name: str
    deferrals: int = 1

    def to_message(self) -> str:
        return json.dumps({"container": self.container, "blob": self.blob_name, "deferrals": self.deferrals})

    @classmethod
    def from_message(cls, text: str) -> Deferral:
        """Parse a queue message; ``ValueError`` names what is wrong with one that is not ours."""
        try:
            body = json.loads(text)
        except ValueError:
            raise ValueError(f"a deferred-indexing message must be JSON, got {text[:80]!r}") from None
        if not isinstance(body, dict) or not body.get("container") or not body.get("blob"):
            raise ValueError(f"a deferred-indexing message names a container and a blob, got {text[:80]!r}")
        deferrals = body.get("deferrals", 1)
        return cls(str(body["container"]), str(body["blob"]), int(deferrals) if isinstance(deferrals, int) else 1)

    @property
    def blob_path(self) -> str:
        return f"{self.container}/{self.blob_name}"


def deferral_delay(retry_after: float | None, deferrals: int, rng: random.Random | None = None) -> float:
    """Seconds a blob deferred for the ``deferrals``-th time stays invisible: what the service
    asked (at least a second), plus full jitter over ``JITTER_BASE * 2**(deferrals - 1)``
    seconds, capped at ``MAX_DEFERRAL_SECONDS``."""
    asked = max(1.0, retry_after or 0.0)
    spread = min(MAX_DEFERRAL_SECONDS, JITTER_BASE_SECONDS * 2 ** max(0, min(deferrals - 1, 20)))
    return min(MAX_DEFERRAL_SECONDS, asked + (rng or random).uniform(0.0, spread))


def is_throttling(exc: BaseException) -> bool:
    """Whether ``exc`` is a service saying "too many requests" (Vision or Search, after the
    client's own retries), as opposed to a failure."""
    return isinstance(exc, ServiceError) and exc.status_code == 429


class DeferralQueue(Protocol):
    def defer(self, deferral: Deferral, delay: float) -> None:
        """Make ``deferral`` visible to the queue trigger ``delay`` seconds from now."""


class StorageQueueDeferrals:
    """``DeferralQueue`` on an Azure Storage queue (azure-storage-queue ``QueueClient``), with
    Base64 messages; the queue is created on first use."""

    def __init__(self, queue_client: Any) -> None:
        self.queue = queue_client

    def defer(self, deferral: Deferral, delay: float) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        seconds = max(0, min(int(math.ceil(delay)), int(MAX_DEFERRAL_SECONDS)))
        try:
            self.queue.send_message(deferral.to_message(), visibility_timeout=seconds)
        except ResourceNotFoundError:
            from azure.core.exceptions import ResourceExistsError

            try:
                self.queue.create_queue()
            except ResourceExistsError:
                pass
            self.queue.send_message(deferral.to_message(), visibility_timeout=seconds)
