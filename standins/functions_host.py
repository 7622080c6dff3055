"""A stand-in for the Azure Functions host under a burst: N workers run the blob trigger and
the deferred-indexing queue trigger with the host's retry and poison rules.

Events arrive at least once (``duplicate_rate`` of them twice); a blob whose function raises
is retried up to ``poisonBlobThreshold`` runs, then poisoned. The queue trigger polls a real
Storage queue on Azurite; a message poisoned after ``maxDequeueCount`` dequeues is deleted and
counted in ``stats.poisoned_messages``. Limits come from ``functions/host.json`` through
``host_rules``; the handlers are given as callables. (FIDELITY.md H1-H4)
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from standins.host_rules import HostRules

logger = logging.getLogger(__name__)


@dataclass
class HostStats:
    blob_runs: int = 0
    blob_failures: int = 0
    queue_runs: int = 0
    queue_failures: int = 0
    poisoned: list[str] = field(default_factory=list)  # blob paths parked in webjobs-blobtrigger-poison
    poisoned_messages: list[str] = field(default_factory=list)  # what the host moves to <queue>-poison


class SimulatedHost:
    """Run ``blob_trigger(path)`` for delivered events and ``queue_trigger(text)`` for the
    messages of ``queue`` (an azure-storage-queue ``QueueClient`` that decodes Base64 text)."""

    def __init__(  # noqa: PLR0913 (a constructor takes its options as keywords)
        self,
        *,
        workers: int,
        blob_trigger: Callable[[str], Any],
        queue_trigger: Callable[[str], Any],
        queue: Any,
        rules: HostRules | None = None,
        batch_size: int = 16,
        max_polling_interval: float = 2.0,
        message_visibility: float = 60.0,
        duplicate_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        if workers < 1:
            raise ValueError("the host needs at least one worker")
        self.workers = workers
        self.blob_trigger = blob_trigger
        self.queue_trigger = queue_trigger
        self.queue = queue
        self.rules = rules or HostRules.from_host_json()
        self.batch_size = batch_size
        self.max_polling_interval = max_polling_interval
        self.message_visibility = message_visibility
        self.duplicate_rate = duplicate_rate
        self.stats = HostStats()
        self._rng = random.Random(seed)
        self._work: collections.deque[tuple[str, Any, int]] = collections.deque()
        self._cond = threading.Condition()
        self._busy = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []

    # --- what Event Grid does --------------------------------------------------------------

    def deliver(self, blob_path: str) -> None:
        """A BlobCreated event reaches the host (and now and then, a second copy of it)."""
        copies = 2 if self._rng.random() < self.duplicate_rate else 1
        with self._cond:
            for _ in range(copies):
                self._work.append(("blob", blob_path, 1))
            self._cond.notify_all()

    # --- running -----------------------------------------------------------------------------

    def start(self) -> SimulatedHost:
        for number in range(self.workers):
            thread = threading.Thread(target=self._worker, name=f"host-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        poller = threading.Thread(target=self._poll_queue, name="host-queue-poller", daemon=True)
        poller.start()
        self._threads.append(poller)
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    def __enter__(self) -> SimulatedHost:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def idle(self) -> bool:
        """No event waiting or running, and no message in the queue, visible or not."""
        with self._cond:
            if self._work or self._busy:
                return False
        try:
            return self.queue.get_queue_properties().approximate_message_count == 0
        except Exception as exc:  # noqa: BLE001 - no queue yet (nothing was ever deferred): empty
            if type(exc).__name__ == "ResourceNotFoundError":
                return True
            raise

    def wait_until(self, done: Callable[[], bool], *, timeout: float, poll: float = 0.5) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            time.sleep(poll)
        return done()

    # --- internals ---------------------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            with self._cond:
                while not self._work and not self._stopping:
                    self._cond.wait(0.5)
                if self._stopping:
                    return
                kind, payload, attempt = self._work.popleft()
                self._busy += 1
            try:
                if kind == "blob":
                    self._run_blob(payload, attempt)
                else:
                    self._run_message(payload)
            finally:
                with self._cond:
                    self._busy -= 1

    def _run_blob(self, blob_path: str, attempt: int) -> None:
        self.stats.blob_runs += 1
        try:
            self.blob_trigger(blob_path)
        except Exception as exc:  # noqa: BLE001 - the host catches whatever the function raises
            self.stats.blob_failures += 1
            if self.rules.gives_up("blob", attempt):
                logger.warning("poisoned after %d attempts: %s (%s)", attempt, blob_path, exc)
                self.stats.poisoned.append(blob_path)
                return
            with self._cond:
                self._work.append(("blob", blob_path, attempt + 1))
                self._cond.notify()

    def _run_message(self, message: Any) -> None:
        self.stats.queue_runs += 1
        try:
            self.queue_trigger(message.content)
        except Exception as exc:  # noqa: BLE001
            self.stats.queue_failures += 1
            if self.rules.gives_up("queue", message.dequeue_count):
                logger.warning("message poisoned after %d dequeues: %s (%s)", message.dequeue_count, message.id, exc)
                self.stats.poisoned_messages.append(message.content)
                self.queue.delete_message(message)
            else:
                self.queue.update_message(message, visibility_timeout=0)
            return
        self.queue.delete_message(message)

    def _poll_queue(self) -> None:
        pause = 0.1
        while True:
            with self._cond:
                if self._stopping:
                    return
                backlog = len(self._work)
            if backlog > 2 * self.workers:  # the host takes a new batch only when it has room
                time.sleep(0.05)
                continue
            try:
                batch = list(
                    self.queue.receive_messages(
                        messages_per_page=self.batch_size,
                        max_messages=self.batch_size,
                        visibility_timeout=int(self.message_visibility),
                    )
                )
            except Exception as exc:  # noqa: BLE001 - the queue may not exist before the first deferral
                logger.debug("queue poll failed: %s", exc)
                batch = []
            if batch:
                pause = 0.1
                with self._cond:
                    for message in batch:
                        self._work.append(("message", message, 1))
                    self._cond.notify_all()
                continue
            time.sleep(pause)
            pause = min(self.max_polling_interval, pause * 2)
