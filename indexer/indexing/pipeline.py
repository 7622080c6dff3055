"""Indexing one image: read, check, vectorize, check the pin, upsert. Idempotent.

The key derives from the image's location, and the stored ``content_hash`` skips unchanged
bytes before the (rate-limited, paid) Vision call, but only when the stored document describes
the same version of the image (equal ``last_modified``), since a read may lag behind writes.
An image that is itself bad is a permanent failure (``Outcome.status == "failed"``), returned
for the edge to record; transient errors and a ``ModelVersionMismatchError`` (nothing written)
raise. (design: docs/design.md#reads-that-lag-behind-writes and #failure-policy)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from indexer.backends.base import IndexBackend
from indexer.documents import Document, IndexPin
from indexer.errors import ServiceError, classify
from indexer.renditions import for_vision
from indexer.sources.base import ImageItem
from indexer.vectorizers import Vectorizer

# "deferred": throttled, queued to be indexed later (``indexing.deferrals``), not a failure.
Status = Literal["indexed", "unchanged", "failed", "deleted", "deferred"]


@dataclass(frozen=True)
class Outcome:
    key: str
    source: str
    status: Status
    reason: str = ""
    # For "failed": True when trying again later can help (throttled, service or network
    # error), so the item is not recorded as done; False when the image itself is bad.
    transient: bool = False

    def failure_dict(self) -> dict[str, Any]:
        """A failed outcome as run summaries print it."""
        return {"source": self.source, "reason": self.reason, "transient": self.transient}


def content_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Prepared:
    """An image read, checked and vectorized, ready to upsert (or known unchanged/failed)."""

    outcome: Outcome
    document: Document | None = None


def prepare(
    item: ImageItem, vectorizer: Vectorizer, pin: IndexPin, *, stored_hash: str | None = None, force: bool = False
) -> Prepared:
    """Read and vectorize ``item``; never writes. ``stored_hash`` is the indexed document's
    ``content_hash``, if any: equal bytes are skipped unless ``force``."""
    try:
        data = item.read()
        digest = content_hash(data)
        if stored_hash == digest and not force:
            return Prepared(Outcome(item.key, item.source, "unchanged"))
        # What Vision reads: the bytes themselves, or a rendition of an image it would refuse.
        # The document describes the original all the same (key, hash, type, size).
        info = for_vision(data)
        embedding = vectorizer.vectorize_image(info.data)
    except Exception as exc:
        if classify(exc).kind != "input":
            raise
        # The image itself is unusable (corrupt, over a limit, refused by Vision with a 4xx).
        return Prepared(Outcome(item.key, item.source, "failed", reason=_reason(exc)))
    pin.check(embedding, action=f"index {item.source}")
    fields = {
        "source": item.source,
        **item.fields,
        # The type sniffed from the bytes wins over the one a file name or blob claims.
        "content_type": info.content_type
        if info.content_type != "application/octet-stream"
        else item.fields.get("content_type", info.content_type),
        "width": info.width,
        "height": info.height,
        "size_bytes": len(data),
        "content_hash": digest,
        "model_version": embedding.model_version,
        "indexed_at": utc_now(),
    }
    return Prepared(Outcome(item.key, item.source, "indexed"), Document(item.key, embedding, fields))


def _reason(exc: Exception) -> str:
    if isinstance(exc, ServiceError):
        return f"{type(exc).__name__}: ({exc.code}) {exc.error_message}"
    return f"{type(exc).__name__}: {exc}"


def stored_hash_of_same_version(stored: Mapping[str, Any] | None, item: ImageItem) -> str | None:
    """The stored ``content_hash`` if ``stored`` was written from the same version of ``item``
    (equal ``last_modified``), else None: a document of another version cannot vouch for
    these bytes, however its hash compares (see the module doc)."""
    if not stored:
        return None
    wanted = item.fields.get("last_modified")
    if wanted is not None and _instant(stored.get("last_modified")) != _instant(wanted):
        return None
    return stored.get("content_hash")


def _instant(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as a datetime (services may write it back in another format)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def index_item(item: ImageItem, vectorizer: Vectorizer, backend: IndexBackend, *, force: bool = False) -> Outcome:
    """Index one image now (the blob trigger's path). See the module doc for failure kinds."""
    pin = backend.get_pin()
    stored = backend.get(item.key)
    prepared = prepare(item, vectorizer, pin, stored_hash=stored_hash_of_same_version(stored, item), force=force)
    if prepared.document is not None:
        result = backend.upsert([prepared.document])
        if item.key in result.retriable:
            # Busy or unreachable: raise so that the Functions host tries again later.
            raise ServiceError(
                f"the index could not take {item.source} yet: {result.failed[item.key]}",
                code="IndexingFailed",
                status_code=None,
            )
        if item.key in result.failed:
            # Refused outright: trying again cannot help; the edge records the reason.
            return Outcome(
                item.key, item.source, "failed", reason=f"the index refused the document: {result.failed[item.key]}"
            )
    return prepared.outcome


def remove_item(key: str, source: str, backend: IndexBackend) -> Outcome:
    """Remove one document (the BlobDeleted path). Removing what is not there is fine."""
    result = backend.delete([key])
    if not result.ok:
        raise ServiceError(
            f"the index refused to delete {source}: {result.failed[key]}", code="DeleteFailed", status_code=None
        )
    return Outcome(key, source, "deleted")
