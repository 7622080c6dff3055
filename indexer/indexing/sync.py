"""Make an index match a source: one algorithm for a local folder and for a blob container.

``imgsearch index FOLDER`` and ``imgsearch reconcile`` both call ``sync``:

1. list what the index holds for the source (``source.conditions``), with content hashes;
2. index every listed image through ``bulk.index_items``: new and changed bytes are
   vectorized, unchanged ones skipped by hash (the bytes are still read, to hash them);
3. only after a complete listing, remove the documents of images that are gone. A listing
   that failed half-way (an unreadable sub-folder, a storage error) removes nothing, so an
   image that still exists never loses its document.

Images whose permanent failure is already recorded for the same ETag are skipped (retrying
cannot help until the blob changes), unless ``force``; folder images carry no ETag and are
always tried.

4. before it returns, wait (bounded) until the index shows what this run wrote and removed
   (``visibility``): Azure AI Search shows writes a few seconds after it answers them, and a
   search, or the next run's listing (its content-hash skip and its removals), must see them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from indexer.backends.base import IndexBackend
from indexer.indexing.bulk import RunOptions, index_items, remove_missing
from indexer.indexing.failures import FailureLog, OutcomeTracker, known_failures
from indexer.indexing.pipeline import Outcome
from indexer.indexing.visibility import DEFAULT_TIMEOUT_SECONDS, wait_until_visible
from indexer.sources.base import ImageItem, ImageSource
from indexer.vectorizers import Vectorizer


@dataclass
class SyncSummary:
    listed: int = 0
    known_failures: int = 0  # skipped: failure already recorded for this ETag
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[Outcome] = field(default_factory=list)
    removal_skipped: str = ""  # why documents of gone images were not removed, if they were not
    elapsed_seconds: float = 0.0

    @property
    def transient_failures(self) -> list[Outcome]:
        return [o for o in self.failed if o.transient]

    def to_dict(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "known_failures": self.known_failures,
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": [o.failure_dict() for o in self.failed],
            "removal_skipped": self.removal_skipped,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
        }


def sync(
    source: ImageSource,
    *,
    vectorizer: Vectorizer,
    backend: IndexBackend,
    failures: FailureLog | None = None,
    concurrency: int = 8,
    batch_size: int = 100,
    force: bool = False,
    list_first: bool = False,
    progress: Any = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    visibility_timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> SyncSummary:
    """Index what is new or changed in ``source`` and remove what is gone (see the module doc).

    The index must exist. ``list_first`` lists the whole source before indexing, so that
    ``progress`` (anything with ``update(n)`` and ``total``, a tqdm bar) knows its total; use
    it for a folder, where listing is cheap.
    """
    started = time.monotonic()
    summary = SyncSummary()
    stored = backend.keys_with_hashes(source.conditions)
    known = known_failures(failures, force)
    present: set[str] = set()
    tracker = OutcomeTracker(failures, None, on_outcome)
    listing: Iterator[ImageItem] | list[ImageItem] = source.list_items()
    if list_first:
        listing = list(listing)
        if progress is not None:
            progress.total = len(listing)

    def items() -> Iterator[ImageItem]:
        for item in listing:
            summary.listed += 1
            present.add(item.key)
            etag = getattr(item, "etag", "")
            if etag and known.get(item.key) == etag:
                summary.known_failures += 1
                if progress is not None:
                    progress.update(1)
                continue
            yield tracker.track(item)

    try:
        result = index_items(
            items(),
            vectorizer=vectorizer,
            backend=backend,
            stored_hashes=stored,
            options=RunOptions(
                concurrency=concurrency, batch_size=batch_size, force=force, on_outcome=tracker, progress=progress
            ),
        )
    finally:
        summary.elapsed_seconds = time.monotonic() - started
    summary.indexed, summary.unchanged, summary.failed = result.indexed, result.unchanged, list(result.failed)
    expected: dict[str, str | None] = dict(result.written)
    if source.listing_errors:
        summary.removal_skipped = "some folders could not be listed"
    else:
        # The listing completed (index_items consumed it), so what is not in it is gone.
        in_scope = [key for key in stored if source.in_scope(key)]
        summary.removed = remove_missing(present, backend=backend, conditions=source.conditions, stored_keys=in_scope)
        gone = set(in_scope) - present
        expected.update(dict.fromkeys(gone))
        if failures is not None:
            for key in gone:
                failures.clear(key)
    wait_until_visible(backend, expected, timeout=visibility_timeout)
    summary.elapsed_seconds = time.monotonic() - started
    return summary
