"""Backfill and reconcile: bring an index in line with a whole blob container.

The blob trigger only sees blobs created after it was deployed, and an event can be lost for
good (poisoned after its retries, or deleted while the Function was down). These two
commands close the gap; both are built on ``bulk.index_items`` (bounded concurrency, Vision
calls paced by the ``RateLimiter``, batched upserts, the content-hash skip).

``backfill`` indexes every blob of a container (or of a prefix in it) and can be killed and
restarted at any moment: a checkpoint file under ``IMGSEARCH_DATA_DIR/checkpoints`` records
each finished blob with its ETag, and a restart skips those without even downloading them.
The checkpoint is rewritten atomically (temporary file, fsync, rename) every
``checkpoint_every`` finished blobs (or every 5% of those done, whichever is more) and when
the run ends or fails, so a hard kill loses at most the blobs finished since the last write; those are redone, and the content-hash skip
makes their redo a no-op (one download, no Vision call). Only the items in flight at the kill
are vectorized twice. A finished run deletes its checkpoint: the next backfill starts afresh
(and, thanks to the hashes, costs no Vision calls for what is already indexed).

``reconcile`` compares the container with the index: documents whose blob is gone are
removed; blobs missing from the index are indexed; blobs whose bytes changed are indexed
again. Telling changed from unchanged bytes needs the bytes (the index stores their SHA-256),
so reconcile downloads every blob in scope, but it calls Vision only for new or changed ones.
Removal happens only after a complete listing, so a listing that fails half-way removes
nothing.

Both skip blobs whose failure is already recorded for the same ETag (retrying cannot help
until the blob changes), unless ``force``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from indexer.backends.atomic import atomic_write_bytes
from indexer.backends.base import IndexBackend
from indexer.bulk import IndexSummary, index_items, remove_missing
from indexer.failures import FailureLog
from indexer.filters import Condition
from indexer.keys import identity_from_key
from indexer.pipeline import Outcome
from indexer.sources.blob import BlobItem, BlobSource
from indexer.vectorizers import Vectorizer

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1


# --------------------------------------------------------------------------- checkpoint

def checkpoint_path(data_dir: str | Path, source: BlobSource, index_name: str) -> Path:
    """One checkpoint per (account, container, prefix, index): a readable name plus a digest
    of the full scope, so two scopes never share a file."""
    account = source.container_client.url.rsplit("/", 1)[0]
    scope = json.dumps([account, source.container_name, source.prefix, index_name])
    digest = hashlib.sha256(scope.encode("utf-8")).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{source.container_name}-{source.prefix}").strip("-")[:60]
    return Path(data_dir) / "checkpoints" / f"backfill-{readable}-{digest}.json"


class Checkpoint:
    """Blob name -> ETag of every blob a backfill run finished (indexed, unchanged, or failed
    for good). Valid only for the model version and ``force`` mode it was written with."""

    def __init__(self, path: str | Path, *, model_version: str, force: bool = False) -> None:
        self.path = Path(path)
        self.model_version = model_version
        self.force = force
        self.done: dict[str, str] = {}
        self.pending_writes = 0

    @classmethod
    def load(cls, path: str | Path, *, model_version: str, force: bool = False) -> "Checkpoint":
        """The saved checkpoint if it matches; else an empty one (a stale or unreadable file is
        ignored and overwritten, never trusted)."""
        checkpoint = cls(path, model_version=model_version, force=force)
        try:
            data = json.loads(checkpoint.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return checkpoint
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable checkpoint %s: %s", checkpoint.path, exc)
            return checkpoint
        if (isinstance(data, dict) and data.get("version") == CHECKPOINT_VERSION
                and data.get("model_version") == model_version and bool(data.get("force")) == force
                and isinstance(data.get("done"), dict)):
            checkpoint.done = {str(k): str(v) for k, v in data["done"].items()}
        else:
            log.info("checkpoint %s belongs to another model version or mode; starting afresh", checkpoint.path)
        return checkpoint

    def is_done(self, name: str, etag: str) -> bool:
        return self.done.get(name) == etag

    def mark(self, name: str, etag: str) -> None:
        self.done[name] = etag
        self.pending_writes += 1

    def save(self) -> None:
        body = {"version": CHECKPOINT_VERSION, "model_version": self.model_version, "force": self.force,
                "done": self.done}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, json.dumps(body, ensure_ascii=False).encode("utf-8"))
        self.pending_writes = 0

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- summaries

def _failed_dicts(failed: list[Outcome]) -> list[dict[str, Any]]:
    return [{"source": o.source, "reason": o.reason, "transient": bool(getattr(o, "transient", False))}
            for o in failed]


@dataclass
class BackfillSummary:
    container: str
    prefix: str
    listed: int = 0  # blobs in scope
    resumed: int = 0  # skipped: finished by an earlier, interrupted run (checkpoint)
    known_failures: int = 0  # skipped: failure already recorded for this ETag
    indexed: int = 0
    unchanged: int = 0
    failed: list[Outcome] = field(default_factory=list)
    checkpoint: str = ""
    completed: bool = False
    elapsed_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"container": self.container, "prefix": self.prefix, "listed": self.listed, "resumed": self.resumed,
                "known_failures": self.known_failures, "indexed": self.indexed, "unchanged": self.unchanged,
                "failed": _failed_dicts(self.failed), "checkpoint": self.checkpoint, "completed": self.completed,
                "elapsed_seconds": round(self.elapsed_seconds, 3)}


@dataclass
class ReconcileSummary:
    container: str
    prefix: str
    listed: int = 0
    known_failures: int = 0
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[Outcome] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"container": self.container, "prefix": self.prefix, "listed": self.listed,
                "known_failures": self.known_failures, "indexed": self.indexed, "unchanged": self.unchanged,
                "removed": self.removed, "failed": _failed_dicts(self.failed),
                "elapsed_seconds": round(self.elapsed_seconds, 3)}


# --------------------------------------------------------------------------- shared plumbing

class _Tracker:
    """Follows items from the listing to their outcome (``index_items`` reports each item
    exactly once, in order, and an indexed one only after its batch was written)."""

    def __init__(self, failures: FailureLog | None, on_finished: Callable[[BlobItem, Outcome], None] | None,
                 on_outcome: Callable[[Outcome], None] | None) -> None:
        self.failures = failures
        self.on_finished = on_finished
        self.on_outcome = on_outcome
        self.pending: dict[str, list[BlobItem]] = {}

    def track(self, item: BlobItem) -> BlobItem:
        self.pending.setdefault(item.key, []).append(item)
        return item

    def __call__(self, outcome: Outcome) -> None:
        queue = self.pending.get(outcome.key) or []
        item = queue.pop(0) if queue else None
        if not queue:
            self.pending.pop(outcome.key, None)
        transient = outcome.status == "failed" and bool(getattr(outcome, "transient", False))
        if self.failures is not None and not transient:
            if outcome.status == "failed":
                self.failures.record(outcome, etag=item.etag if item else "")
            elif outcome.status == "indexed":
                self.failures.clear(outcome.key)
        if item is not None and not transient and self.on_finished is not None:
            self.on_finished(item, outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)


def _known_failures(failures: FailureLog | None, force: bool) -> dict[str, str]:
    if failures is None or force:
        return {}
    return {record.key: record.etag for record in failures.records() if record.etag}


def _in_scope(key: str, source: BlobSource) -> bool:
    """Whether a stored document (already filtered to the container) lies under the prefix."""
    if not source.prefix:
        return True
    identity = identity_from_key(key)
    # A digest-form key (identity too long to encode) cannot be placed; leave it alone.
    return identity is not None and identity.startswith(f"{source.container_name}/{source.prefix}")


def _container_conditions(source: BlobSource) -> list[Condition]:
    return [Condition("container", "eq", source.container_name)]


# --------------------------------------------------------------------------- backfill

def backfill(source: BlobSource, *, vectorizer: Vectorizer, backend: IndexBackend, checkpoint_file: str | Path,
             failures: FailureLog | None = None, concurrency: int = 8, rate_limiter: Any = None,
             batch_size: int = 100, force: bool = False, restart: bool = False, checkpoint_every: int = 50,
             progress: Any = None, on_outcome: Callable[[Outcome], None] | None = None) -> BackfillSummary:
    """Index every blob in ``source``; resumable (see the module doc).

    The index must exist (``pipeline.ensure_index``). ``restart`` ignores an existing
    checkpoint. ``progress`` is anything with ``update(n)`` (a tqdm bar); ``on_outcome``
    sees each processed item's outcome after it is final (and checkpointed in memory).
    """
    started = time.monotonic()
    pin = backend.get_pin()
    checkpoint = Checkpoint(checkpoint_file, model_version=pin.model_version, force=force) if restart else \
        Checkpoint.load(checkpoint_file, model_version=pin.model_version, force=force)
    summary = BackfillSummary(source.container_name, source.prefix, checkpoint=str(checkpoint.path))
    known = _known_failures(failures, force)

    def finished(item: BlobItem, outcome: Outcome) -> None:
        checkpoint.mark(item.blob_name, item.etag)
        # Each save rewrites the whole file, so the interval grows with it (5% of what is
        # done): the total written stays linear in the container's size.
        if checkpoint.pending_writes >= max(checkpoint_every, len(checkpoint.done) // 20):
            checkpoint.save()

    tracker = _Tracker(failures, finished, on_outcome)

    def items() -> Iterator[BlobItem]:
        for item in source.list_items():
            summary.listed += 1
            if checkpoint.is_done(item.blob_name, item.etag):
                summary.resumed += 1
            elif item.etag and known.get(item.key) == item.etag:
                summary.known_failures += 1
            else:
                yield tracker.track(item)
                continue
            if progress is not None:
                progress.update(1)

    stored = {} if force else backend.keys_with_hashes(_container_conditions(source))
    try:
        result = index_items(items(), vectorizer=vectorizer, backend=backend, concurrency=concurrency,
                             rate_limiter=rate_limiter, batch_size=batch_size, stored_hashes=stored, force=force,
                             on_outcome=tracker, progress=progress)
    finally:
        if checkpoint.pending_writes:
            checkpoint.save()  # also on failure or Ctrl-C: what finished stays finished
        summary.elapsed_seconds = time.monotonic() - started
    _copy_counts(result, summary)
    if not any(getattr(o, "transient", False) for o in result.failed):
        checkpoint.delete()
        summary.completed = True
    return summary


def _copy_counts(result: IndexSummary, summary: BackfillSummary | ReconcileSummary) -> None:
    summary.indexed = result.indexed
    summary.unchanged = result.unchanged
    summary.failed = list(result.failed)


# --------------------------------------------------------------------------- reconcile

def reconcile(source: BlobSource, *, vectorizer: Vectorizer, backend: IndexBackend,
              failures: FailureLog | None = None, concurrency: int = 8, rate_limiter: Any = None,
              batch_size: int = 100, force: bool = False, progress: Any = None,
              on_outcome: Callable[[Outcome], None] | None = None) -> ReconcileSummary:
    """Make the index match ``source``: remove documents of gone blobs, index missing or
    changed blobs (see the module doc). The index must exist."""
    started = time.monotonic()
    summary = ReconcileSummary(source.container_name, source.prefix)
    stored = backend.keys_with_hashes(_container_conditions(source))
    known = _known_failures(failures, force)
    present: set[str] = set()
    tracker = _Tracker(failures, None, on_outcome)

    def items() -> Iterator[BlobItem]:
        for item in source.list_items():
            summary.listed += 1
            present.add(item.key)
            if item.etag and known.get(item.key) == item.etag:
                summary.known_failures += 1
                if progress is not None:
                    progress.update(1)
                continue
            yield tracker.track(item)

    try:
        result = index_items(items(), vectorizer=vectorizer, backend=backend, concurrency=concurrency,
                             rate_limiter=rate_limiter, batch_size=batch_size, stored_hashes=stored, force=force,
                             on_outcome=tracker, progress=progress)
    finally:
        summary.elapsed_seconds = time.monotonic() - started
    _copy_counts(result, summary)
    # The listing completed (index_items consumed it), so what is not in it is gone.
    in_scope = [key for key in stored if _in_scope(key, source)]
    summary.removed = remove_missing(present, backend=backend, conditions=_container_conditions(source),
                                     stored_keys=in_scope)
    if failures is not None:
        for key in set(in_scope) - present:
            failures.clear(key)
    summary.elapsed_seconds = time.monotonic() - started
    return summary
