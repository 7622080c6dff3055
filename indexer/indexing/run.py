"""One bulk run over a source, behind ``imgsearch index``, ``backfill`` and ``reconcile``.

``index_source`` lists a folder or a container, skips what cannot need work (what an
interrupted run finished; failures recorded for the same ETag, unless ``force``), indexes the
rest through ``bulk.index_items``, keeps the failure record in step, and waits until the index
shows its writes. ``checkpoint`` (``backfill``) makes the run resumable; ``remove_gone``
(``index``, ``reconcile``) removes documents of vanished images, only after a complete listing.
(design: docs/design.md#bulk-runs)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from indexer.backends.base import IndexBackend
from indexer.indexing.bulk import RunOptions, index_items, remove_missing
from indexer.indexing.checkpoint import Checkpoint
from indexer.indexing.failures import FailureLog, OutcomeTracker, known_failures
from indexer.indexing.pipeline import Outcome
from indexer.indexing.visibility import wait_until_visible
from indexer.sources.base import ImageItem, ImageSource
from indexer.vectorizers import Vectorizer


@dataclass
class RunSummary:
    """What a run did. ``checkpoint`` (the file) is None unless the run kept one, ``removed``
    None unless it removes gone images; ``to_dict`` shows only what the run does."""

    listed: int = 0
    resumed: int = 0  # skipped: finished by an earlier, interrupted run (checkpoint)
    known_failures: int = 0  # skipped: failure already recorded for this ETag
    indexed: int = 0
    unchanged: int = 0
    removed: int | None = None
    failed: list[Outcome] = field(default_factory=list)
    checkpoint: str | None = None
    removal_skipped: str = ""  # why documents of gone images were not removed, if they were not
    elapsed_seconds: float = 0.0

    @property
    def transient_failures(self) -> list[Outcome]:
        return [o for o in self.failed if o.transient]

    @property
    def completed(self) -> bool:
        """Nothing left for a later run (bad images are done for good; transient failures are not)."""
        return not self.transient_failures

    def to_dict(self) -> dict[str, Any]:
        resumable, removes = self.checkpoint is not None, self.removed is not None
        body: dict[str, Any] = {"listed": self.listed}
        if resumable:
            body["resumed"] = self.resumed
        body.update(known_failures=self.known_failures, indexed=self.indexed, unchanged=self.unchanged)
        if removes:
            body["removed"] = self.removed
        body["failed"] = [o.failure_dict() for o in self.failed]
        if resumable:
            body.update(checkpoint=self.checkpoint, completed=self.completed)
        if removes:
            body["removal_skipped"] = self.removal_skipped
        body["elapsed_seconds"] = round(self.elapsed_seconds, 3)
        return body


def index_source(
    source: ImageSource,
    *,
    vectorizer: Vectorizer,
    backend: IndexBackend,
    failures: FailureLog | None = None,
    checkpoint: Checkpoint | None = None,
    remove_gone: bool = False,
    options: RunOptions | None = None,
) -> RunSummary:
    """Index what is new or changed in ``source`` into ``backend`` (which must exist); see the
    module doc for ``checkpoint`` and ``remove_gone``."""
    options = options or RunOptions()
    started = time.monotonic()
    if checkpoint is not None:
        checkpoint.load(model_version=backend.get_pin().model_version, force=options.force)
    summary = RunSummary(
        removed=0 if remove_gone else None, checkpoint=None if checkpoint is None else str(checkpoint.path)
    )
    # Removal needs what the index holds even when ``force`` skips nothing by its hash.
    stored = backend.keys_with_hashes(source.conditions) if remove_gone or not options.force else {}
    known = known_failures(failures, options.force)
    tracker = OutcomeTracker(failures, None if checkpoint is None else checkpoint.mark, options.on_outcome)
    present: set[str] = set()
    listing: Iterable[ImageItem] = source.list_items()
    if options.list_first:
        listing = list(listing)
        if options.progress is not None:
            options.progress.total = len(listing)

    def to_index() -> Iterator[ImageItem]:
        for item in listing:
            summary.listed += 1
            if remove_gone:
                present.add(item.key)
            etag = getattr(item, "etag", "")
            if checkpoint is not None and checkpoint.is_done(item):
                summary.resumed += 1
            elif etag and known.get(item.key) == etag:
                summary.known_failures += 1
            else:
                yield tracker.track(item)
                continue
            if options.progress is not None:
                options.progress.update(1)

    try:
        result = index_items(
            to_index(),
            vectorizer=vectorizer,
            backend=backend,
            stored_hashes=stored,
            options=replace(options, on_outcome=tracker),
        )
    finally:
        if checkpoint is not None and checkpoint.pending_writes:
            checkpoint.save()  # also on failure or Ctrl-C: what finished stays finished
    summary.indexed, summary.unchanged, summary.failed = result.indexed, result.unchanged, list(result.failed)
    if checkpoint is not None and summary.completed:
        checkpoint.delete()
    expected: dict[str, str | None] = dict(result.written)
    if remove_gone:
        expected.update(_remove_gone(source, backend, stored, present, failures, summary))
    wait_until_visible(backend, expected, timeout=options.visibility_timeout)
    summary.elapsed_seconds = time.monotonic() - started
    return summary


def _remove_gone(
    source: ImageSource,
    backend: IndexBackend,
    stored: dict[str, str],
    present: set[str],
    failures: FailureLog | None,
    summary: RunSummary,
) -> dict[str, None]:
    """Remove the documents of the source's images missing from its listing, which
    ``index_items`` consumed, if that listing was complete; forget their failures. Returns the
    removals to wait for (key -> None)."""
    if source.listing_errors:
        summary.removal_skipped = "some folders could not be listed"
        return {}
    in_scope = [key for key in stored if source.in_scope(key)]
    summary.removed = remove_missing(present, backend=backend, conditions=source.conditions, stored_keys=in_scope)
    gone = set(in_scope) - present
    if failures is not None:
        for key in gone:
            failures.clear(key)
    return dict.fromkeys(gone)
