"""``imgsearch watch``: the Functions host and Event Grid, offline.

It polls a container (Azurite, or a real account) and turns what changed since the last poll
into the calls the Function app makes: a new or changed blob (by ETag) -> ``handlers.index_blob``,
as ``index_image``; a vanished one -> ``handle_blob_event`` with Event Grid's ``BlobDeleted``
subject and data, as ``remove_image``. A call that raised is retried on the next poll until
``host_rules`` give it up as poisoned; a blob created and deleted between two polls is never
seen, which is harmless. On start it indexes what is already there (``index_existing``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from indexer.entrypoints import blob_events as handlers
from indexer.index_setup import ensure_index
from indexer.indexing.pipeline import Outcome
from indexer.services import Services, blob_source, build_services
from indexer.settings import Settings
from standins.host_rules import HostRules

log = logging.getLogger(__name__)

ChangeKind = Literal["created", "changed", "deleted"]


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    blob_name: str
    etag: str  # the new ETag; for "deleted", the last one seen
    outcome: Outcome | None = None  # None: nothing to do (e.g. already gone) or the call failed
    error: str = ""  # the exception of a failed call, as text


@dataclass
class WatchSummary:
    polls: int = 0
    changes: list[Change] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind and not c.error)

    def to_dict(self) -> dict[str, Any]:
        return {
            "polls": self.polls,
            "created": self.count("created"),
            "changed": self.count("changed"),
            "deleted": self.count("deleted"),
            "errors": sum(1 for c in self.changes if c.error),
            "failed": [
                {"blob": c.blob_name, "reason": c.outcome.reason}
                for c in self.changes
                if c.outcome is not None and c.outcome.status == "failed"
            ],
        }


class BlobWatcher:
    """Poll the images container (``IMAGES_CONTAINER`` of the services' settings, the one the
    Function's trigger path names), optionally only under ``prefix``, and dispatch its changes."""

    def __init__(
        self,
        services: Services,
        *,
        prefix: str = "",
        index_existing: bool = True,
        rules: HostRules | None = None,
        on_change: Callable[[Change], None] | None = None,
    ) -> None:
        self.services = services
        self.container = services.settings.images_container
        self.prefix = prefix
        self.index_existing = index_existing
        self.rules = rules or HostRules.from_host_json()
        self.on_change = on_change
        self._client = services.source(self.container).container_client
        self._known: dict[str, str] | None = None  # blob name -> ETag as last handled
        self._attempts: dict[tuple[str, str], int] = {}  # (name, etag) -> failed calls so far

    def _list(self) -> dict[str, str]:
        return {props.name: props.etag for props in self._client.list_blobs(name_starts_with=self.prefix or None)}

    def poll_once(self) -> list[Change]:
        """One poll: list, diff against the last state, dispatch each change, return them."""
        current = self._list()
        if self._known is None:
            self._known = {} if self.index_existing else dict(current)
        changes: list[Change | None] = []
        for name, etag in current.items():
            previous = self._known.get(name)
            if previous != etag:
                changes.append(self._dispatch("created" if previous is None else "changed", name, etag))
        for name in [n for n in self._known if n not in current]:
            changes.append(self._dispatch("deleted", name, self._known[name]))
        return [change for change in changes if change is not None]

    def _dispatch(self, kind: ChangeKind, name: str, etag: str) -> Change | None:
        attempt_key = (name, etag if kind != "deleted" else "")
        if self.rules.gives_up("blob", self._attempts.get(attempt_key, 0)):
            return None  # given up ("poisoned") until the blob changes again
        try:
            if kind == "deleted":
                outcome = handlers.handle_blob_event(
                    handlers.BLOB_DELETED, *self._deleted_event(name), services=self.services
                )
            else:
                outcome = handlers.index_blob(f"{self.container}/{name}", self.services)
        except Exception as exc:  # noqa: BLE001 - the host logs and retries any exception alike
            attempts = self._attempts[attempt_key] = self._attempts.get(attempt_key, 0) + 1
            giving_up = self.rules.gives_up("blob", attempts)
            log.warning(
                "%s %s failed (attempt %d of %d%s): %s: %s",
                kind,
                name,
                attempts,
                self.rules.poison_blob_threshold,
                "; giving up until it changes" if giving_up else "; retrying on the next poll",
                type(exc).__name__,
                exc,
            )
            change = Change(kind, name, etag, error=f"{type(exc).__name__}: {exc}")
        else:
            self._attempts.pop(attempt_key, None)
            assert self._known is not None
            if kind == "deleted":
                self._known.pop(name, None)
            else:
                self._known[name] = etag
            change = Change(kind, name, etag, outcome=outcome)
        if self.on_change is not None:
            self.on_change(change)
        return change

    def _deleted_event(self, name: str) -> tuple[str, dict[str, str]]:
        """The subject and data Event Grid sends for a deleted block blob."""
        subject = f"/blobServices/default/containers/{self.container}/blobs/{name}"
        data = {"api": "DeleteBlob", "blobType": "BlockBlob", "url": self._client.get_blob_client(name).url}
        return subject, data

    def run(
        self,
        *,
        interval: float = 2.0,
        once: bool = False,
        max_seconds: float | None = None,
        stop: threading.Event | None = None,
    ) -> WatchSummary:
        """Poll every ``interval`` seconds until ``stop`` is set, ``max_seconds`` pass, or
        after one poll with ``once``. Ctrl-C ends the loop between polls' dispatches."""
        summary = WatchSummary()
        stop = stop or threading.Event()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while True:
            started = time.monotonic()
            summary.changes.extend(self.poll_once())
            summary.polls += 1
            if once or stop.is_set():
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            wait = max(0.0, interval - (time.monotonic() - started))
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            if stop.wait(wait):
                break
        return summary


def ready_services(settings: Settings) -> Services:
    """The handlers' services, as the Function's worker builds them, with what the deployment
    provides checked or made: the images container must exist, the index is created if missing."""
    services = build_services(settings)
    blob_source(settings, service=services.blob_service)  # raises if the container is missing
    ensure_index(settings, services.backend, vectorizer=services.vectorizer)
    return services
