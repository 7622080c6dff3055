"""Backfill: index every blob of a container, resumably.

The blob trigger only sees blobs created after it was deployed. ``backfill`` closes that gap
(``indexing.sync``, behind ``imgsearch reconcile``, also removes what is gone); it is built
on ``bulk.index_items`` (bounded concurrency, batched upserts, the content-hash skip; the
Vision client paces itself).

``backfill`` indexes every blob of a container (or of a prefix in it) and can be killed and
restarted at any moment: a checkpoint file under ``IMGSEARCH_DATA_DIR/checkpoints`` records
each finished blob with its ETag, and a restart skips those without even downloading them.
The checkpoint is rewritten atomically (temporary file, fsync, rename) every
``checkpoint_every`` finished blobs (or every 5% of those done, whichever is more) and when
the run ends or fails, so a hard kill loses at most the blobs finished since the last write;
those are redone, and the content-hash skip makes their redo a no-op (one download, no
Vision call). Only the items in flight at the kill are vectorized twice. A finished run
deletes its checkpoint: the next backfill starts afresh (and, thanks to the hashes, costs no
Vision calls for what is already indexed). Before it returns, a run waits (bounded) until the
index shows what it wrote (``visibility``), so a search or a reconcile right after it sees
those documents.

It skips blobs whose failure is already recorded for the same ETag (retrying cannot help
until the blob changes), unless ``force``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.atomic import atomic_write_bytes
from indexer.backends.base import IndexBackend
from indexer.indexing.bulk import RunOptions, index_items
from indexer.indexing.failures import FailureLog, OutcomeTracker, known_failures
from indexer.indexing.pipeline import Outcome
from indexer.indexing.visibility import DEFAULT_TIMEOUT_SECONDS, wait_until_visible
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
    def load(cls, path: str | Path, *, model_version: str, force: bool = False) -> Checkpoint:
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
        if (
            isinstance(data, dict)
            and data.get("version") == CHECKPOINT_VERSION
            and data.get("model_version") == model_version
            and bool(data.get("force")) == force
            and isinstance(data.get("done"), dict)
        ):
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
        body = {
            "version": CHECKPOINT_VERSION,
            "model_version": self.model_version,
            "force": self.force,
            "done": self.done,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, json.dumps(body, ensure_ascii=False).encode("utf-8"))
        self.pending_writes = 0

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- backfill


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
        return {
            "container": self.container,
            "prefix": self.prefix,
            "listed": self.listed,
            "resumed": self.resumed,
            "known_failures": self.known_failures,
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "failed": [o.failure_dict() for o in self.failed],
            "checkpoint": self.checkpoint,
            "completed": self.completed,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
        }


def backfill(
    source: BlobSource,
    *,
    vectorizer: Vectorizer,
    backend: IndexBackend,
    checkpoint_file: str | Path,
    failures: FailureLog | None = None,
    concurrency: int = 8,
    batch_size: int = 100,
    force: bool = False,
    restart: bool = False,
    checkpoint_every: int = 50,
    progress: Any = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    visibility_timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> BackfillSummary:
    """Index every blob in ``source``; resumable (see the module doc).

    The index must exist (``pipeline.ensure_index``). ``restart`` ignores an existing
    checkpoint. ``progress`` is anything with ``update(n)`` (a tqdm bar); ``on_outcome``
    sees each processed item's outcome after it is final (and checkpointed in memory).
    ``visibility_timeout``: how long to wait at the end for the index to show the run's writes.
    """
    started = time.monotonic()
    pin = backend.get_pin()
    checkpoint = (
        Checkpoint(checkpoint_file, model_version=pin.model_version, force=force)
        if restart
        else Checkpoint.load(checkpoint_file, model_version=pin.model_version, force=force)
    )
    summary = BackfillSummary(source.container_name, source.prefix, checkpoint=str(checkpoint.path))
    known = known_failures(failures, force)

    def finished(item: BlobItem, outcome: Outcome) -> None:
        checkpoint.mark(item.blob_name, item.etag)
        # Each save rewrites the whole file, so the interval grows with it (5% of what is
        # done): the total written stays linear in the container's size.
        if checkpoint.pending_writes >= max(checkpoint_every, len(checkpoint.done) // 20):
            checkpoint.save()

    tracker = OutcomeTracker(failures, finished, on_outcome)

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

    stored = {} if force else backend.keys_with_hashes(source.conditions)
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
        if checkpoint.pending_writes:
            checkpoint.save()  # also on failure or Ctrl-C: what finished stays finished
        summary.elapsed_seconds = time.monotonic() - started
    summary.indexed, summary.unchanged, summary.failed = result.indexed, result.unchanged, list(result.failed)
    if not result.transient_failures:
        checkpoint.delete()
        summary.completed = True
    wait_until_visible(backend, result.written, timeout=visibility_timeout)
    summary.elapsed_seconds = time.monotonic() - started
    return summary
