"""Pull mode: an Azure AI Search indexer reads the images container on a schedule and writes
the same index the Function pushes to, with ``/api/vectorize`` as its custom skill.

``AzureSearchPull`` drives the three resources of ``schemas/`` with the SDK's
``SearchIndexerClient``: create or update them, run the indexer ("Indexers - Run": 202; 409
while a run is in progress, "Another indexer invocation is currently in progress", quoted in
Azure-Samples/azure-search-openai-demo#1253), reset it, and read its status ("Indexers - Get
Status": ``status``, ``lastResult``, ``executionHistory``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from azure.core.credentials import AzureKeyCredential, TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.search.documents.indexes import SearchIndexerClient
from azure.search.documents.indexes.models import (
    SearchIndexer,
    SearchIndexerDataSourceConnection,
    SearchIndexerSkillset,
)

from indexer.backends.azure_search.errors import call_service, service_error
from indexer.errors import ConfigurationError, SearchServiceError
from indexer.keys import identity_from_key
from indexer.schema import PullDefinitions

FINISHED = ("success", "transientFailure", "persistentFailure", "reset")


@dataclass(frozen=True)
class ItemProblem:
    """One error or warning of a run: the item (a blob's URL where it can be told), what went
    wrong, and the service's details."""

    item: str
    message: str
    details: str = ""
    name: str = ""


@dataclass(frozen=True)
class IndexerRun:
    """An indexer's state and its last run, as ``imgsearch indexer status`` shows them."""

    indexer: str
    status: str  # the indexer's: running, error, disabled, unknown
    run_status: str | None  # the last run's: inProgress, success, transientFailure, persistentFailure, reset
    started: str | None = None
    ended: str | None = None
    processed: int = 0
    failed: int = 0
    error_message: str | None = None
    errors: list[ItemProblem] = field(default_factory=list)
    warnings: list[ItemProblem] = field(default_factory=list)
    # The run that was in progress when this one was asked for (``run`` waited for it): its
    # items are not tried again by this one, so its errors still matter.
    previous: IndexerRun | None = None

    @property
    def finished(self) -> bool:
        return self.run_status in FINISHED or self.run_status is None

    @property
    def ok(self) -> bool:
        """The last run ended well and failed no item."""
        return self.run_status in ("success", "reset", None) and self.failed == 0 and self.status != "error"

    def to_dict(self) -> dict[str, Any]:
        summary = {
            "indexer": self.indexer,
            "status": self.status,
            "last_run": {
                "status": self.run_status,
                "started": self.started,
                "ended": self.ended,
                "items_processed": self.processed,
                "items_failed": self.failed,
                "error_message": self.error_message,
                "errors": [vars(e) for e in self.errors],
                "warnings": [vars(w) for w in self.warnings],
            },
        }
        if self.previous is not None:
            summary["previous_run"] = self.previous.to_dict()["last_run"]
        return summary


def _item_name(key: Any) -> str:
    """An item's key as a person reads it: the blob URL the service reports, or, for a document
    key, the identity it encodes."""
    text = str(key or "")
    if text.lower().startswith(("http://", "https://")):
        return text
    try:
        return identity_from_key(text) or text
    except ValueError:
        return text


class AzureSearchPull:
    """The pull-mode resources on one search service (``SearchIndexerClient``)."""

    def __init__(self, endpoint: str, credential: AzureKeyCredential | TokenCredential, **client_kwargs: Any) -> None:
        if not endpoint or not endpoint.lower().startswith(("https://", "http://")):
            raise ValueError(f"the search endpoint must be an http(s) URL, got {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self._client = SearchIndexerClient(self.endpoint, credential, **client_kwargs)

    def close(self) -> None:
        self._client.close()

    def ensure(self, definitions: PullDefinitions) -> None:
        """Create the data source, skillset and indexer, or bring them up to date (a new indexer
        runs at once; an existing one keeps its change tracking)."""
        call_service(
            lambda: self._client.create_or_update_data_source_connection(
                SearchIndexerDataSourceConnection(definitions.data_source)
            ),
            f"create or update the data source {definitions.data_source['name']!r}",
            self.endpoint,
            not_found=self._not_created,
        )
        call_service(
            lambda: self._client.create_or_update_skillset(SearchIndexerSkillset(definitions.skillset)),
            f"create or update the skillset {definitions.skillset['name']!r}",
            self.endpoint,
            not_found=self._not_created,
        )
        call_service(
            lambda: self._client.create_or_update_indexer(SearchIndexer(definitions.indexer)),
            f"create or update the indexer {definitions.indexer['name']!r}",
            self.endpoint,
            not_found=self._not_created,
        )

    def status(self, name: str) -> IndexerRun:
        raw = call_service(
            lambda: self._client.get_indexer_status(name),
            f"read the status of indexer {name!r}",
            self.endpoint,
            not_found=self._not_created,
        )
        data = raw.as_dict() if hasattr(raw, "as_dict") else dict(raw)
        last = data.get("lastResult") or {}
        return IndexerRun(
            indexer=name,
            status=str(data.get("status") or "unknown"),
            run_status=last.get("status"),
            started=_text(last.get("startTime")),
            ended=_text(last.get("endTime")),
            processed=int(last.get("itemsProcessed") or 0),
            failed=int(last.get("itemsFailed") or 0),
            error_message=last.get("errorMessage"),
            errors=[
                ItemProblem(
                    _item_name(e.get("key")), e.get("errorMessage") or "", e.get("details") or "", e.get("name") or ""
                )
                for e in last.get("errors") or []
            ],
            warnings=[
                ItemProblem(
                    _item_name(w.get("key")), w.get("message") or "", w.get("details") or "", w.get("name") or ""
                )
                for w in last.get("warnings") or []
            ],
        )

    def reset(self, name: str) -> None:
        """Forget the change tracking: the next run reads (and vectorizes) every blob again."""
        what = f"reset indexer {name!r}"
        call_service(lambda: self._client.reset_indexer(name), what, self.endpoint, not_found=self._not_created)

    def run(
        self,
        name: str,
        *,
        wait: bool = True,
        timeout: float = 600.0,
        poll: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> IndexerRun:
        """Run the indexer now. A run already in progress may have listed the container before
        the latest change, so ``wait`` lets it end, starts a new one, and waits for that one;
        without ``wait`` a run in progress is an error."""
        deadline = clock() + timeout
        before = self.status(name)
        previous = None
        while True:
            try:
                self._client.run_indexer(name)
                break
            except HttpResponseError as exc:
                if exc.status_code != 409 or not wait:
                    raise service_error(exc, f"run indexer {name!r}") from None
            before = previous = self._wait_until_finished(name, deadline, poll, sleep, clock)
        if not wait:
            return self.status(name)
        while True:
            current = self.status(name)
            if current.started != before.started and current.finished:
                return replace(current, previous=previous)
            if clock() > deadline:
                raise SearchServiceError(
                    f"indexer {name!r} did not finish its run within {timeout:g} s; see `imgsearch indexer status`",
                    code="IndexerRunTimeout",
                    status_code=None,
                )
            sleep(poll)

    def wait(
        self,
        name: str,
        *,
        timeout: float = 600.0,
        poll: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> IndexerRun:
        """Wait for the run in progress (a new indexer's first run, a scheduled one) to end."""
        return self._wait_until_finished(name, clock() + timeout, poll, sleep, clock)

    def _wait_until_finished(
        self, name: str, deadline: float, poll: float, sleep: Callable[[float], None], clock: Callable[[], float]
    ) -> IndexerRun:
        while True:
            current = self.status(name)
            if current.finished:
                return current
            if clock() > deadline:
                raise SearchServiceError(
                    f"indexer {name!r} is still running; try again later",
                    code="IndexerBusy",
                    status_code=409,
                )
            sleep(poll)

    def _not_created(self, what: str) -> ConfigurationError:
        """What a 404 means in pull mode: the resource was not created yet."""
        return ConfigurationError(
            f"cannot {what}: it does not exist at {self.endpoint}; create the pull-mode resources with "
            f"`imgsearch ensure-indexer`"
        )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
