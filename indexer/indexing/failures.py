"""The record of permanent indexing failures: which image, why, and when.

A permanent failure is recorded instead of raised (retrying cannot help, and a raising blob
trigger ends in the poison queue with no reason); indexing the image later clears it. Two
``FailureLog`` implementations: ``BlobFailureLog`` (the Function app, ``watch``), one JSON blob
per key in ``imgsearch-failures``, safe across scaled-out instances; ``JsonlFailureLog`` (the
CLI), an append-only JSON Lines file under ``IMGSEARCH_DATA_DIR``.
(design: docs/design.md#failure-policy)
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

from indexer.indexing.pipeline import Outcome, utc_now
from indexer.sources.base import ImageItem

T = TypeVar("T", bound=ImageItem)

log = logging.getLogger(__name__)

FAILURES_CONTAINER = "imgsearch-failures"


@dataclass(frozen=True)
class FailureRecord:
    key: str
    source: str
    reason: str
    recorded_at: str
    etag: str = ""  # the blob version that failed, when known

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FailureRecord:
        return cls(
            key=str(data["key"]),
            source=str(data.get("source", "")),
            reason=str(data.get("reason", "")),
            recorded_at=str(data.get("recorded_at", "")),
            etag=str(data.get("etag", "")),
        )


@runtime_checkable
class FailureLog(Protocol):
    def record(self, outcome: Outcome, *, etag: str = "") -> FailureRecord:
        """Remember that ``outcome`` (status ``failed``) failed for good, replacing any older record."""

    def clear(self, key: str) -> None:
        """Forget a key's failure (it was indexed or removed since). Clearing nothing is fine."""

    def get(self, key: str) -> FailureRecord | None: ...

    def records(self) -> list[FailureRecord]:
        """Every current failure, oldest first."""


def _new_record(outcome: Outcome, etag: str) -> FailureRecord:
    if outcome.status != "failed":
        raise ValueError(f"only failed outcomes are recorded, not {outcome.status!r} ({outcome.source})")
    return FailureRecord(
        key=outcome.key, source=outcome.source, reason=outcome.reason, recorded_at=utc_now(), etag=etag
    )


class BlobFailureLog:
    """One JSON blob per failed key, named ``<document key>.json`` (keys are URL-safe)."""

    def __init__(self, container_client: ContainerClient) -> None:
        self._container = container_client

    @property
    def container_name(self) -> str:
        return self._container.container_name

    @staticmethod
    def _blob_name(key: str) -> str:
        return f"{key}.json"

    def record(self, outcome: Outcome, *, etag: str = "") -> FailureRecord:
        record = _new_record(outcome, etag)
        body = json.dumps(record.to_dict(), ensure_ascii=False, indent=1).encode("utf-8")
        try:
            self._upload(record.key, body)
        except ResourceNotFoundError:
            # On Azure the container is provisioned by Bicep and the Function's role is scoped
            # to it, so creating it is only tried when it is really missing (Azurite, tests).
            try:
                self._container.create_container()
            except ResourceExistsError:
                pass
            self._upload(record.key, body)
        return record

    def _upload(self, key: str, body: bytes) -> None:
        self._container.upload_blob(
            self._blob_name(key),
            body,
            overwrite=True,
            content_settings=ContentSettings(content_type="application/json"),
        )

    def clear(self, key: str) -> None:
        try:
            self._container.delete_blob(self._blob_name(key))
        except ResourceNotFoundError:
            pass  # no failure recorded, or no container yet: nothing to clear

    def get(self, key: str) -> FailureRecord | None:
        try:
            data = self._container.download_blob(self._blob_name(key)).readall()
        except ResourceNotFoundError:
            return None
        return FailureRecord.from_dict(json.loads(data))

    def records(self) -> list[FailureRecord]:
        found: list[FailureRecord] = []
        try:
            for props in self._container.list_blobs():
                if props.name.endswith(".json"):
                    record = self.get(props.name[: -len(".json")])
                    if record is not None:
                        found.append(record)
        except ResourceNotFoundError:
            return []
        return sorted(found, key=lambda r: r.recorded_at)


class JsonlFailureLog:
    """Append-only JSON Lines; the latest line per key wins, so a ``cleared`` line retires a failure
    and a torn last line is skipped (design: docs/design.md#failure-policy)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        # The file folded once, then kept in step with our own appends: ``clear`` runs after
        # every indexed image and must not re-read the whole file each time.
        self._cache: dict[str, FailureRecord] | None = None

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())

    def record(self, outcome: Outcome, *, etag: str = "") -> FailureRecord:
        record = _new_record(outcome, etag)
        with self._lock:
            current = self._current()
            self._append({"event": "failed", **record.to_dict()})
            current.pop(record.key, None)
            current[record.key] = record
        return record

    def clear(self, key: str) -> None:
        with self._lock:
            current = self._current()
            if key in current:
                self._append({"event": "cleared", "key": key, "recorded_at": utc_now()})
                del current[key]

    def _entries(self) -> Iterator[dict[str, Any]]:
        try:
            handle = open(self.path, encoding="utf-8")
        except FileNotFoundError:
            return
        with handle:
            for number, line in enumerate(handle, 1):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("%s:%d: skipping an unreadable line (torn by a crash?)", self.path, number)
                    continue
                if isinstance(entry, dict) and "key" in entry:
                    yield entry

    def _current(self) -> dict[str, FailureRecord]:
        with self._lock:
            if self._cache is None:
                self._cache = self._fold()
            return self._cache

    def _fold(self) -> dict[str, FailureRecord]:
        current: dict[str, FailureRecord] = {}
        for entry in self._entries():
            if entry.get("event") == "cleared":
                current.pop(entry["key"], None)
            else:
                current.pop(entry["key"], None)  # re-insert so the order follows the latest failure
                current[entry["key"]] = FailureRecord.from_dict(entry)
        return current

    def get(self, key: str) -> FailureRecord | None:
        return self._current().get(key)

    def records(self) -> list[FailureRecord]:
        return list(self._current().values())


# --------------------------------------------------------------------------- runs over a source


def known_failures(failures: FailureLog | None, force: bool) -> dict[str, str]:
    """Key -> ETag of every recorded failure with a known blob version: a run skips those
    blobs until they change (retrying cannot help), unless ``force``."""
    if failures is None or force:
        return {}
    return {record.key: record.etag for record in failures.records() if record.etag}


class OutcomeTracker:
    """Follows items from a listing to their outcome and keeps the failure record in step.

    ``bulk.index_items`` reports each item exactly once, in order, and an indexed one only
    after its batch was written; the tracker matches each outcome to its item (for the
    blob's ETag), records a permanent failure or clears an old one once the image is indexed,
    and tells ``on_finished`` about items that are done for good (not transient failures).
    """

    def __init__(
        self,
        failures: FailureLog | None,
        on_finished: Callable[[ImageItem], None] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.failures = failures
        self.on_finished = on_finished
        self.on_outcome = on_outcome
        self.pending: dict[str, list[ImageItem]] = {}

    def track(self, item: T) -> T:
        self.pending.setdefault(item.key, []).append(item)
        return item

    def __call__(self, outcome: Outcome) -> None:
        queue = self.pending.get(outcome.key) or []
        item = queue.pop(0) if queue else None
        if not queue:
            self.pending.pop(outcome.key, None)
        transient = outcome.status == "failed" and outcome.transient
        if self.failures is not None and not transient:
            if outcome.status == "failed":
                self.failures.record(outcome, etag=getattr(item, "etag", ""))
            elif outcome.status == "indexed":
                self.failures.clear(outcome.key)
        if item is not None and not transient and self.on_finished is not None:
            self.on_finished(item)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
