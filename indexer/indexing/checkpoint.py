"""The checkpoint that makes a run over a container resumable (``imgsearch backfill``).

It records each finished blob with its ETag, so a restarted run skips those without even
downloading them. The file is rewritten atomically (temporary file, fsync, rename) every
``every`` finished blobs, or every 5% of those done, whichever is more: a hard kill loses at
most the blobs finished since the last write, and the content-hash skip makes their redo cheap
(one download, no Vision call). A finished run deletes it; the next run starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

from indexer.atomic import atomic_write_bytes
from indexer.sources.base import ImageItem
from indexer.sources.blob import BlobSource

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1


def checkpoint_path(data_dir: str | Path, source: BlobSource, index_name: str) -> Path:
    """One checkpoint per (account, container, prefix, index): a readable name plus a digest
    of the full scope, so two scopes never share a file."""
    account = source.container_client.url.rsplit("/", 1)[0]
    scope = json.dumps([account, source.container_name, source.prefix, index_name])
    digest = hashlib.sha256(scope.encode("utf-8")).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{source.container_name}-{source.prefix}").strip("-")[:60]
    return Path(data_dir) / "checkpoints" / f"backfill-{readable}-{digest}.json"


def _blob_version(item: ImageItem) -> tuple[str, str]:
    """(blob name, ETag) of a blob item; ("", "") for an item with no ETag (a file), which a
    checkpoint can never vouch for."""
    return getattr(item, "blob_name", ""), getattr(item, "etag", "")


class Checkpoint:
    """Blob name -> ETag of every blob a run finished (indexed, unchanged, or failed for good).

    The caller names the file; the run ``load``s it with the index's model version and its
    ``force`` mode, and trusts only a file written with both (else it starts afresh and
    overwrites it). ``restart`` ignores what the file holds.
    """

    def __init__(self, path: str | Path, *, restart: bool = False, every: int = 50) -> None:
        self.path = Path(path)
        self.restart = restart
        self.every = every
        self.model_version = ""
        self.force = False
        self.done: dict[str, str] = {}
        self.pending_writes = 0

    def load(self, *, model_version: str, force: bool = False) -> Checkpoint:
        """Bind to a run and load what an earlier run of the same kind finished. A stale or
        unreadable file is ignored, never trusted."""
        self.model_version, self.force = model_version, force
        self.done, self.pending_writes = {}, 0
        if self.restart:
            return self
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return self
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable checkpoint %s: %s", self.path, exc)
            return self
        if (
            isinstance(data, dict)
            and data.get("version") == CHECKPOINT_VERSION
            and data.get("model_version") == model_version
            and bool(data.get("force")) == force
            and isinstance(data.get("done"), dict)
        ):
            self.done = {str(k): str(v) for k, v in data["done"].items()}
        else:
            log.info("checkpoint %s belongs to another model version or mode; starting afresh", self.path)
        return self

    def is_done(self, item: ImageItem) -> bool:
        name, etag = _blob_version(item)
        return bool(etag) and self.done.get(name) == etag

    def mark(self, item: ImageItem) -> None:
        """Record ``item`` as finished; write the file when enough finished since the last write."""
        name, etag = _blob_version(item)
        if not etag:
            return
        self.done[name] = etag
        self.pending_writes += 1
        # Each save rewrites the whole file, so the interval grows with it (5% of what is
        # done): the total written stays linear in the container's size.
        if self.pending_writes >= max(self.every, len(self.done) // 20):
            self.save()

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
