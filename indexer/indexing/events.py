"""One blob event, handled so that concurrent handlers of the same blob converge.

Events arrive at least once, in any order, and handlers of one blob may overlap, so a stale
write could land over a newer one. Every handler therefore checks after it acts: after a write
it reads the blob's ETag again and acts again if the blob changed or is gone; after a removal
it checks that the blob stayed gone. ``MAX_ROUNDS`` bounds a blob that keeps changing.
(why this converges: docs/design.md#concurrent-blob-events-converge)
"""

from __future__ import annotations

import logging

from azure.core.exceptions import ResourceNotFoundError

from indexer.backends.base import IndexBackend
from indexer.errors import ServiceError
from indexer.indexing.pipeline import Outcome, index_item, remove_item
from indexer.keys import blob_identity, document_key
from indexer.sources.blob import BlobItem, BlobSource
from indexer.vectorizers import Vectorizer

log = logging.getLogger(__name__)

MAX_ROUNDS = 5


def current_etag(source: BlobSource, name: str) -> str | None:
    """The blob's ETag now, or None when it is gone (one ``Get Blob Properties``)."""
    try:
        return source.get_item(name).etag
    except ResourceNotFoundError:
        return None


def index_blob_now(
    source: BlobSource,
    name: str,
    vectorizer: Vectorizer,
    backend: IndexBackend,
    *,
    force: bool = False,
    max_rounds: int = MAX_ROUNDS,
) -> tuple[Outcome | None, BlobItem | None]:
    """Index the blob ``name`` as it is now, and make sure what was written is still right.

    Returns the outcome and the blob version it describes; ``(None, None)`` when the blob is
    gone and nothing was written. ``force`` vectorizes even bytes the index seems to hold.
    Raises on transient errors, as ``index_item`` does."""
    wrote = False
    key = document_key(blob_identity(source.blob_url(name)))
    for _ in range(max_rounds):
        try:
            item = source.get_item(name)
        except ResourceNotFoundError:
            if not wrote:
                return None, None  # nothing of ours to undo; the BlobDeleted handler removes it
            # The blob went away after we wrote it: our document may have landed after its
            # BlobDeleted handler removed the old one. Remove it, then check it stays gone.
            outcome = remove_item(key, source.blob_url(name), backend)
            if current_etag(source, name) is None:
                return outcome, None
            force = True
            continue
        outcome = index_item(item, vectorizer, backend, force=force)
        if outcome.status != "indexed":
            return outcome, item  # nothing written ("unchanged", or a permanent failure): nothing to check
        wrote = True
        now = current_etag(source, name)
        if now == item.etag:
            return outcome, item
        log.info(
            "blob %s/%s changed while it was being indexed (ETag %s -> %s); indexing it again",
            source.container_name,
            name,
            item.etag,
            now or "gone",
        )
        force = True
    raise ServiceError(
        f"blob {source.container_name}/{name} changed {max_rounds} times while it was being indexed; "
        f"it will be tried again",
        code="BlobKeptChanging",
        status_code=None,
    )


def remove_blob_now(
    source: BlobSource,
    name: str,
    vectorizer: Vectorizer,
    backend: IndexBackend,
    *,
    url: str = "",
    max_rounds: int = MAX_ROUNDS,
) -> tuple[Outcome | None, BlobItem | None]:
    """Remove the document of a deleted blob, unless the blob exists again (then index it),
    and make sure the blob did not come back while the document was being removed."""
    if current_etag(source, name) is not None:
        log.info(
            "blob %s/%s exists again; keeping its document up to date instead of removing it",
            source.container_name,
            name,
        )
        return index_blob_now(source, name, vectorizer, backend, max_rounds=max_rounds)
    key = document_key(blob_identity(source.blob_url(name)))
    outcome = remove_item(key, url or source.blob_url(name), backend)
    if current_etag(source, name) is None:
        return outcome, None
    # Created again between the check and the removal: the removal may have taken the new
    # document away, and a read may still show it. Index it, forced.
    log.info("blob %s/%s came back while its document was removed; indexing it", source.container_name, name)
    return index_blob_now(source, name, vectorizer, backend, force=True, max_rounds=max_rounds)
