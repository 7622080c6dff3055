"""Bulk indexing: many images through the one-image pipeline, concurrently, in batches.

The engine of every run over a source (``run.index_source``). ``pipeline.prepare`` does each
image's work; this module adds a bounded thread pool (``_Window``), batched upserts, the
content-hash skip from one listing, and the failure rules: a bad image is recorded and the run
goes on, a transient failure leaves the item to the next run, ``max_consecutive_failures`` of
those in a row stop the run, and set-up errors stop it at once. ``on_outcome`` sees each item
once, in order, and "indexed" only after its batch was written. (design: docs/design.md#bulk-runs)
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from indexer.backends.base import IndexBackend, WriteResult
from indexer.documents import Document, IndexPin
from indexer.errors import BulkIndexingAborted, ServiceError, classify, describe
from indexer.filters import Condition
from indexer.indexing.pipeline import Outcome, Prepared, prepare
from indexer.indexing.visibility import DEFAULT_TIMEOUT_SECONDS
from indexer.sources.base import ImageItem
from indexer.vectorizers import Vectorizer

log = logging.getLogger(__name__)

MAX_DELETE_BATCH = 1000  # Azure AI Search: at most 1000 actions per indexing request
MAX_WAITING_OUTCOMES = 1000  # outcomes held back behind a batch not yet written
MAX_HELD_PER_WORKER = 8  # finished items that may wait behind a slow oldest one, per worker
MIN_FAILURES_FOR_TIME_LIMIT = 3  # one slow failure alone is no outage


@dataclass(frozen=True)
class RunOptions:
    """How a bulk run goes (``index_items`` and a run over a source). ``max_consecutive_failures``
    transient failures in a row, or a few lasting ``max_failing_seconds`` with no success, stop
    the run; ``list_first`` and ``visibility_timeout`` apply to a run over a source only.
    (design: docs/design.md#bulk-runs)"""

    concurrency: int = 8
    batch_size: int = 100
    force: bool = False
    progress: Any = None
    on_outcome: Callable[[Outcome], None] | None = None
    max_consecutive_failures: int | None = 25
    max_failing_seconds: float = 45.0
    clock: Callable[[], float] = time.monotonic
    list_first: bool = False
    visibility_timeout: float = DEFAULT_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass
class IndexSummary:
    """What a bulk run did. ``failed`` holds both kinds; see ``Outcome.transient``."""

    indexed: int = 0
    unchanged: int = 0
    failed: list[Outcome] = field(default_factory=list)
    upserts: int = 0  # number of backend.upsert calls (batches written)
    written: dict[str, str] = field(default_factory=dict)  # key -> content_hash of each document written

    @property
    def seen(self) -> int:
        return self.indexed + self.unchanged + len(self.failed)

    @property
    def transient_failures(self) -> list[Outcome]:
        return [o for o in self.failed if o.transient]


def _prepare_one(
    item: ImageItem, vectorizer: Vectorizer, pin: IndexPin, stored_hash: str | None, force: bool
) -> Prepared:
    try:
        return prepare(item, vectorizer, pin, stored_hash=stored_hash, force=force)
    except Exception as exc:
        if not classify(exc).retriable:
            raise  # set-up errors stop the run; bugs keep their traceback
        return Prepared(
            Outcome(
                item.key,
                item.source,
                "failed",
                transient=True,
                reason=f"{_with_type(exc)} (not indexed; the next run retries it)",
            )
        )


def _with_type(exc: Exception) -> str:
    """``describe(exc)`` led by the error's type, once (an Azure SDK error's text has it already)."""
    text = describe(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"


class _Run:
    """The ordered hand-off from prepared items to batched writes and reported outcomes."""

    def __init__(self, backend: IndexBackend, options: RunOptions) -> None:
        self.backend = backend
        self.batch_size = options.batch_size
        self.on_outcome = options.on_outcome
        self.progress = options.progress
        self.max_consecutive_failures = options.max_consecutive_failures
        self.summary = IndexSummary()
        self.documents: list[Document] = []
        self.waiting: list[Outcome] = []  # outcomes held back until the pending batch is written
        self.consecutive_failures = 0
        self.failing_since = 0.0
        self.max_failing_seconds = options.max_failing_seconds
        self.clock = options.clock

    def take(self, prepared: Prepared) -> None:
        outcome = prepared.outcome
        self._watch_failures(outcome)
        if prepared.document is not None:
            self.documents.append(prepared.document)
            self.waiting.append(outcome)
        elif self.waiting:
            self.waiting.append(outcome)  # keep the order of outcomes
        else:
            self._emit(outcome)
        # A full batch is written; so is a short one once many outcomes wait behind it (a
        # mostly unchanged listing), so memory stays bounded and checkpoints keep moving.
        if len(self.documents) >= self.batch_size or len(self.waiting) >= MAX_WAITING_OUTCOMES:
            self.flush()

    def flush(self) -> None:
        result = WriteResult()
        if self.documents:
            result = self.backend.upsert(self.documents)
            self.summary.upserts += 1
            for document in self.documents:
                if document.key not in result.failed:
                    self.summary.written[document.key] = str(document.fields.get("content_hash") or "")
        waiting, self.waiting, self.documents = self.waiting, [], []
        for outcome in waiting:
            if outcome.status == "indexed" and outcome.key in result.failed:
                # A document the index could not take *yet* (busy or unreachable after the
                # backend's own retries) stays not done, so the next run writes it; it also
                # counts towards stopping a run whose index is down, before more paid
                # Vision calls are made for documents that cannot be written.
                outcome = Outcome(
                    outcome.key,
                    outcome.source,
                    "failed",
                    transient=outcome.key in result.retriable,
                    reason=f"the index refused the document: {result.failed[outcome.key]}",
                )
                self._watch_failures(outcome)
            self._emit(outcome)

    def _watch_failures(self, outcome: Outcome) -> None:
        # Only a success shows the services are back: a permanent failure (a bad image) in
        # between says nothing about them, so it neither counts nor resets the count.
        if outcome.status != "failed":
            self.consecutive_failures = 0
            return
        if not outcome.transient:
            return
        self.consecutive_failures += 1
        if self.consecutive_failures == 1:
            self.failing_since = self.clock()
        limit = self.max_consecutive_failures
        if limit is None:
            return
        # Few images at a time, each failing only after its client's retries, take long to make
        # the count: a streak that has lasted max_failing_seconds with no success stops too.
        lasted = self.clock() - self.failing_since
        long_streak = self.consecutive_failures >= MIN_FAILURES_FOR_TIME_LIMIT and lasted >= self.max_failing_seconds
        if self.consecutive_failures >= limit or long_streak:
            raise BulkIndexingAborted(
                f"stopped after {self.consecutive_failures} images in a row failed with transient errors "
                f"({lasted:.0f} s without a success); the service looks unavailable. Last: {outcome.source}: "
                f"{outcome.reason}"
            )

    def _emit(self, outcome: Outcome) -> None:
        if outcome.status == "indexed":
            self.summary.indexed += 1
        elif outcome.status == "unchanged":
            self.summary.unchanged += 1
        else:
            self.summary.failed.append(outcome)
            log.debug("not indexed: %s: %s", outcome.source, outcome.reason)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        if self.progress is not None:
            self.progress.update(1)


def index_items(
    items: Iterable[ImageItem],
    *,
    vectorizer: Vectorizer,
    backend: IndexBackend,
    stored_hashes: dict[str, str] | None = None,
    options: RunOptions | None = None,
) -> IndexSummary:
    """Index ``items`` into ``backend`` (which must exist: see ``pipeline.ensure_index``).

    ``stored_hashes`` maps document keys to their stored ``content_hash``; when None it is
    fetched once with ``backend.keys_with_hashes()``. Pacing is the vectorizer's own business
    (``VisionClient(rate_limiter=...)``, which paces its retries too).
    """
    options = options or RunOptions()
    force, concurrency = options.force, options.concurrency
    pin = backend.get_pin()
    if stored_hashes is None:
        stored_hashes = {} if force else backend.keys_with_hashes()
    run = _Run(backend, options)
    in_flight = _Window(queued=2 * concurrency, held=MAX_HELD_PER_WORKER * concurrency)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="imgsearch-index") as pool:
        try:
            for item in items:
                in_flight.add(pool.submit(_prepare_one, item, vectorizer, pin, stored_hashes.get(item.key), force))
                in_flight.wait_for_room()
                for prepared in in_flight.take_finished():
                    run.take(prepared)
            while in_flight:
                in_flight.wait_for_oldest()
                for prepared in in_flight.take_finished():
                    run.take(prepared)
            run.flush()
        except BaseException:
            # Stop at once: nothing more is started, and the pending batch is dropped (its
            # items were not reported, so a checkpointing caller redoes them next time).
            for future in in_flight:
                future.cancel()
            raise
    return run.summary


class _Window:
    """The items handed to the pool and not yet taken, oldest first.

    Results are taken in the order the items came (``on_outcome`` promises it), but the pool
    is kept fed by what is still *unfinished*, not by the oldest item: one slow image (a
    retry after a 429, a large blob) would otherwise hold back every submission behind it,
    idle the workers, and leave a paced Vision resource's slots unused. At most ``queued``
    items are unfinished at once and at most ``held`` finished ones wait behind a slow
    oldest item, so memory stays bounded."""

    def __init__(self, *, queued: int, held: int) -> None:
        self.queued = queued
        self.held = held
        self._futures: deque[Future[Prepared]] = deque()

    def __bool__(self) -> bool:
        return bool(self._futures)

    def __iter__(self) -> Iterator[Future[Prepared]]:
        return iter(self._futures)

    def add(self, future: Future[Prepared]) -> None:
        self._futures.append(future)

    def _unfinished(self) -> list[Future[Prepared]]:
        return [f for f in self._futures if not f.done()]

    def wait_for_room(self) -> None:
        """Until one more item may be added."""
        while True:
            if self._futures and self._futures[0].done():
                return  # taking the oldest makes room
            unfinished = self._unfinished()
            if len(unfinished) < self.queued and len(self._futures) < self.queued + self.held:
                return
            futures.wait(unfinished, return_when=futures.FIRST_COMPLETED)

    def wait_for_oldest(self) -> None:
        if self._futures:
            futures.wait([self._futures[0]])

    def take_finished(self) -> Iterator[Prepared]:
        """The results that can be taken in order now (the oldest ones that are finished)."""
        while self._futures and self._futures[0].done():
            yield self._futures.popleft().result()


def remove_missing(
    present_keys: set[str],
    *,
    backend: IndexBackend,
    conditions: Sequence[Condition],
    stored_keys: Iterable[str] | None = None,
) -> int:
    """Delete the documents matching ``conditions`` whose keys are not in ``present_keys``.

    ``conditions`` select the documents of one source (e.g. one folder's ``container``
    label); ``stored_keys``, when given, is that selection listed earlier (saves a listing).
    Only call this after a complete listing of the source, or documents of images that
    still exist are removed. Returns how many documents were removed.
    """
    if stored_keys is None:
        stored_keys = backend.keys_with_hashes(conditions).keys()
    stale = sorted(set(stored_keys) - set(present_keys))
    removed = 0
    for start in range(0, len(stale), MAX_DELETE_BATCH):
        result = backend.delete(stale[start : start + MAX_DELETE_BATCH])
        removed += len(result.succeeded)
        if result.failed:
            key, reason = next(iter(result.failed.items()))
            raise ServiceError(
                f"the index refused to delete {len(result.failed)} document(s) of removed images, e.g. {key}: {reason}",
                code="DeleteFailed",
                status_code=None,
            )
    return removed
