"""The blob-event handlers behind the Azure Functions, callable without the Functions host.

``functions/function_app.py`` unpacks a trigger's payload and calls one function here, and the
``watch`` runner calls the same ones, so what is tested offline is what runs in Azure. What
fails how is the README's "The Function app". Each handler acts on the blob's current state and
checks it again after acting (design: docs/design.md#concurrent-blob-events-converge); without
``services`` it uses the worker's (``get_services``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from indexer.indexing.deferrals import Deferral, deferral_delay, is_throttling
from indexer.indexing.events import index_blob_now, remove_blob_now
from indexer.indexing.failures import FailureLog
from indexer.indexing.pipeline import Outcome
from indexer.keys import blob_identity, blob_url_parts, document_key
from indexer.services import Services, get_services

log = logging.getLogger(__name__)

BLOB_DELETED = "Microsoft.Storage.BlobDeleted"
_SUBJECT_PREFIX = "/blobServices/default/containers/"


def split_blob_path(path: str) -> tuple[str, str]:
    """``"images/a/b.jpg"`` (the blob trigger's ``container/name``) -> ``("images", "a/b.jpg")``."""
    container, _, name = (path or "").lstrip("/").partition("/")
    if not container or not name:
        raise ValueError(f"expected a blob path like <container>/<blob name>, got {path!r}")
    return container, name


@dataclass(frozen=True)
class BlobEvent:
    """The parts of an Event Grid Blob Storage event that the handlers use."""

    event_type: str
    container: str
    blob_name: str
    url: str


def parse_blob_event(event_type: str, subject: str, data: Mapping[str, Any] | None) -> BlobEvent:
    """Read container and blob name from the subject
    ``/blobServices/default/containers/<container>/blobs/<name>`` (unencoded in Blob Storage
    events), falling back to the URL in ``data.url``."""
    data = data or {}
    url = str(data.get("url") or "")
    if subject.startswith(_SUBJECT_PREFIX) and "/blobs/" in subject:
        container, _, name = subject[len(_SUBJECT_PREFIX) :].partition("/blobs/")
    elif url:
        container, name = blob_url_parts(url)
    else:
        container = name = ""
    if not container or not name:
        raise ValueError(f"the {event_type} event names no blob: subject={subject!r}, url={url!r}")
    return BlobEvent(event_type, container, name, url)


def _record(outcome: Outcome, failures: FailureLog | None, *, etag: str = "") -> None:
    if failures is None:  # pragma: no cover - the blob handlers always run with storage
        raise RuntimeError("the blob handlers need the failure record of a storage account")
    if outcome.status == "failed":
        failures.record(outcome, etag=etag)
        log.warning("not indexed, recorded as a permanent failure: %s: %s", outcome.source, outcome.reason)
    elif outcome.status in ("indexed", "deleted"):
        failures.clear(outcome.key)


def index_blob(blob_path: str, services: Services | None = None, *, deferrals: int = 0) -> Outcome | None:
    """The blob trigger: index ``container/name`` as it is now.

    Reads through ``BlobSource`` (properties first, size guard, then the bytes, once), so that
    the Function, the watch runner and backfill build identical documents; checks after the
    write that the blob did not change meanwhile, and redoes it if it did
    (``indexing.events``). Returns None when the blob no longer exists (its ``BlobDeleted``
    event removes the document). Still throttled after the client's retries, the blob is
    deferred to the ``imgsearch-deferred`` queue (``indexing.deferrals``) and the outcome is
    "deferred"; other transient errors raise, so the host retries.
    """
    container, name = split_blob_path(blob_path)
    services = services or get_services()
    source = services.source(container)
    try:
        outcome, item = index_blob_now(source, name, services.vectorizer, services.backend)
    except Exception as exc:
        if services.deferrals is None or not is_throttling(exc):
            raise
        deferral = Deferral(container, name, deferrals + 1)
        delay = deferral_delay(getattr(exc, "retry_after", None), deferral.deferrals)
        services.deferrals.defer(deferral, delay)  # if this fails, it raises: the host retries the blob
        log.info("throttled: %s deferred for %.0f s (deferral %d)", blob_path, delay, deferral.deferrals)
        key = document_key(blob_identity(source.blob_url(name)))
        return Outcome(key, source.blob_url(name), "deferred", reason=f"throttled; retried in {delay:.0f} s")
    if outcome is None:
        log.info("blob %s/%s is gone; nothing to index", container, name)
        return None
    _record(outcome, services.failures, etag=item.etag if item is not None else "")
    log.info("%s: %s%s", outcome.status, outcome.source, f" ({outcome.reason})" if outcome.reason else "")
    return outcome


def index_deferred(message: str, services: Services | None = None) -> Outcome | None:
    """The queue trigger of ``imgsearch-deferred``: index a blob that was deferred because Vision
    was throttling, as it is now (and defer it again if Vision still is). A message that is not
    ours is logged and dropped: retrying it could never help."""
    try:
        deferral = Deferral.from_message(message)
    except ValueError as exc:
        log.error("dropping a message of the deferred-indexing queue: %s", exc)
        return None
    return index_blob(deferral.blob_path, services, deferrals=deferral.deferrals)


def handle_blob_event(
    event_type: str, subject: str, data: Mapping[str, Any] | None, services: Services | None = None
) -> Outcome | None:
    """The Event Grid trigger: remove the document of a deleted blob; ignore other events.

    If the blob exists again (deleted, then uploaded again before this event arrived), the
    document is kept and brought up to date instead of removed; if it comes back while the
    document is being removed, it is indexed again (``indexing.events``).
    """
    if event_type != BLOB_DELETED:
        log.info("ignoring Event Grid event of type %r (only %s removes documents)", event_type, BLOB_DELETED)
        return None
    event = parse_blob_event(event_type, subject, data)
    services = services or get_services()
    if event.container != services.settings.images_container:
        # E.g. the failure records' own container in the same account, when the Event Grid
        # subscription is not filtered to the images container.
        log.info(
            "ignoring %s for %s/%s: not the images container %r",
            event_type,
            event.container,
            event.blob_name,
            services.settings.images_container,
        )
        return None
    source = services.source(event.container)
    outcome, item = remove_blob_now(source, event.blob_name, services.vectorizer, services.backend, url=event.url)
    if outcome is not None:
        _record(outcome, services.failures, etag=item.etag if item is not None else "")
        log.info("%s: %s/%s", outcome.status, event.container, event.blob_name)
    return outcome
