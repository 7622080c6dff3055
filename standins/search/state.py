"""The state behind the Azure AI Search double's HTTP layer: configuration, indexes, pull-mode
resources and their runs, the request log, injected faults (test controls, not Azure rules),
and persistence in a data directory (each write rewrites its file atomically).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.atomic import atomic_write_bytes
from standins.search.definitions import IndexDefinition, parse_definition
from standins.search.errors import SearchServiceError
from standins.search.indexer_runs import IndexerState, RunContext
from standins.search.indexer_runs import run as run_indexer
from standins.search.pull_definitions import (
    DataSource,
    Indexer,
    Skillset,
    parse_data_source,
    parse_indexer,
    parse_skillset,
)
from standins.search.store import IndexStore
from standins.search.web_api import CallRecord

DOCUMENT_OPERATIONS = frozenset({"index", "search", "lookup", "count"})


@dataclass(frozen=True)
class FaultConfig:
    """Injected failures for one index (or every index, as the config default): a share of the
    documents of a batch (``document_*``, each key at most ``max_faults_per_document`` times) or of
    whole requests of ``operations`` (``request_*``), from a seeded generator."""

    document_fault_rate: float = 0.0
    document_fault_statuses: tuple[int, ...] = (503,)
    max_faults_per_document: int | None = None
    request_fault_rate: float = 0.0
    request_fault_status: int = 503
    max_request_faults: int | None = None
    operations: frozenset[str] = DOCUMENT_OPERATIONS
    retry_after_seconds: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.document_fault_rate <= 1.0 or not 0.0 <= self.request_fault_rate <= 1.0:
            raise ValueError("document_fault_rate and request_fault_rate must be between 0 and 1")


@dataclass(frozen=True)
class SearchDoubleConfig:
    """How the double behaves. No keys and no tokens: every caller is accepted."""

    admin_keys: tuple[str, ...] = ()
    bearer_tokens: tuple[str, ...] = ()
    max_batch_actions: int = 1000
    data_dir: Path | None = None  # keep indexes and pull-mode resources here across restarts
    # Seconds between a write's answer and the moment reads see it (the service: "a few seconds").
    visibility_delay_seconds: float = 0.0
    clock: Callable[[], float] = time.monotonic  # what the visibility delay is measured with
    faults: FaultConfig = field(default_factory=FaultConfig)
    service_name: str = "search-double"
    max_document_extraction_bytes: int = 16 * 1024 * 1024  # the basic tier's blob size limit

    def __post_init__(self) -> None:
        _check_delay(self.visibility_delay_seconds)


def _check_delay(seconds: float) -> None:
    if not 0.0 <= seconds < 3600:
        raise ValueError(f"the visibility delay must be from 0 to 3600 seconds, got {seconds}")


@dataclass(frozen=True)
class RequestRecord:
    """One request the double answered, for tests and benchmarks to count."""

    method: str
    path: str
    operation: str
    index: str | None
    status: int
    actions: int = 0
    body_bytes: int = 0
    api_version: str | None = None


class _FaultState:
    def __init__(self, faults: FaultConfig, index: str) -> None:
        self.faults = faults
        self.random = random.Random(f"{faults.seed}:{index}")
        self.per_document: dict[str, int] = {}
        self.requests = 0

    def request_fault(self, operation: str) -> int | None:
        f = self.faults
        if operation not in f.operations or f.request_fault_rate <= 0:
            return None
        if f.max_request_faults is not None and self.requests >= f.max_request_faults:
            return None
        if self.random.random() < f.request_fault_rate:
            self.requests += 1
            return f.request_fault_status
        return None

    def document_fault(self, key: str) -> int | None:
        f = self.faults
        seen = self.per_document.get(key, 0)
        if f.document_fault_rate <= 0 or (f.max_faults_per_document is not None and seen >= f.max_faults_per_document):
            return None
        if self.random.random() < f.document_fault_rate:
            self.per_document[key] = seen + 1
            return self.random.choice(f.document_fault_statuses)
        return None


class SearchDoubleService:
    """Indexes, pull-mode resources, request log and fault settings, behind one lock."""

    def __init__(self, config: SearchDoubleConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.indexes: dict[str, IndexStore] = {}
        self.requests: collections.deque[RequestRecord] = collections.deque(maxlen=100_000)
        self.web_api_calls: collections.deque[CallRecord] = collections.deque(maxlen=10_000)
        self.data_sources: dict[str, DataSource] = {}
        self.skillsets: dict[str, Skillset] = {}
        self.indexers: dict[str, Indexer] = {}
        self.indexer_states: dict[str, IndexerState] = {}
        self._faults: dict[str, FaultConfig] = {}
        self._fault_states: dict[str, _FaultState] = {}
        self._visibility_delays: dict[str, float] = {}
        self._etags = itertools.count(1)
        self._runs: dict[str, threading.Thread] = {}
        self._scheduler: threading.Thread | None = None
        if config.data_dir is not None:
            self._load(Path(config.data_dir))

    # -------------------------------------------------------------- test controls

    def set_faults(self, index: str, faults: FaultConfig | None) -> None:
        """Inject faults into one index (None: back to the config default)."""
        with self.lock:
            self._faults[index] = faults or self.config.faults
            self._fault_states.pop(index, None)

    def fault_state(self, index: str) -> _FaultState:
        if index not in self._fault_states:
            self._fault_states[index] = _FaultState(self._faults.get(index, self.config.faults), index)
        return self._fault_states[index]

    def set_visibility_delay(self, index: str, seconds: float | None) -> None:
        """Make writes to one index visible to reads ``seconds`` after their answer (None: back
        to the config default), now or whenever the index is created."""
        if seconds is not None:
            _check_delay(seconds)
        with self.lock:
            self._visibility_delays[index] = self.config.visibility_delay_seconds if seconds is None else seconds
            if index in self.indexes:
                self.indexes[index].visibility_delay = self._delay(index)

    def _delay(self, index: str) -> float:
        return self._visibility_delays.get(index, self.config.visibility_delay_seconds)

    def new_store(self, definition: IndexDefinition) -> IndexStore:
        return IndexStore(definition, visibility_delay=self._delay(definition.name), clock=self.config.clock)

    def requests_for(self, index: str, operation: str | None = None) -> list[RequestRecord]:
        with self.lock:
            return [r for r in self.requests if r.index == index and (operation is None or r.operation == operation)]

    def next_etag(self) -> str:
        return f'"0x{next(self._etags) + int(time.time() * 1000):016X}"'

    def wait_for_runs(self, timeout: float = 60.0) -> None:
        """Wait until every indexer run started so far has ended."""
        deadline = time.monotonic() + timeout
        for thread in list(self._runs.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    def store(self, name: str) -> IndexStore:
        """The index ``name``; a missing one is 404 with an empty code, as the live answer quoted
        in Azure-Samples/azure-search-openai-demo#79."""
        if name not in self.indexes:
            raise SearchServiceError(
                404, "", f"The index '{name}' for service '{self.config.service_name}' was not found."
            )
        return self.indexes[name]

    # -------------------------------------------------------------- indexers

    def start_run(self, name: str) -> bool:
        """Start a run of indexer ``name`` in a thread; False if one is in progress. A run that
        cannot start (its index is gone) is a failed run in the status, as the service reports."""
        with self.lock:
            indexer = self.indexers[name]
            state = self.indexer_states.setdefault(name, IndexerState())
            if state.running:
                return False
            try:
                store = self.store(indexer.target_index)
            except SearchServiceError as exc:
                state.record("transientFailure", exc.message)
                return True
            state.running = True
            index = indexer.target_index

            def write(action: str, items: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
                with self.lock:
                    results = self.store(index).write_each(action, items)
                    self.save(index)
                return results

            context = RunContext(
                indexer=indexer,
                data_source=self.data_sources[indexer.data_source],
                skillset=self.skillsets.get(indexer.skillset or ""),
                state=state,
                lock=self.lock,
                write=write,
                index_fields=list(store.definition.fields),
                key_field=store.definition.key_field,
                log_call=self.web_api_calls.append,
                max_document_bytes=self.config.max_document_extraction_bytes,
                save=self.save_pull,
            )
        self._runs[name] = threading.Thread(target=run_indexer, args=(context,), name=f"indexer-{name}", daemon=True)
        self._runs[name].start()
        return True

    def schedule(self, name: str) -> None:
        """Run indexer ``name`` every ``schedule.interval`` from now."""
        interval = self.indexers[name].interval_seconds
        state = self.indexer_states.setdefault(name, IndexerState())
        state.next_run = None if interval is None else time.time() + interval
        if state.next_run is not None and self._scheduler is None:
            self._scheduler = threading.Thread(target=self._run_schedules, name="indexer-scheduler", daemon=True)
            self._scheduler.start()

    def _run_schedules(self) -> None:
        while True:  # a daemon thread: it ends with the process
            time.sleep(1.0)
            with self.lock:
                now = time.time()
                states = [(name, self.indexer_states.get(name)) for name in self.indexers]
                due = [name for name, s in states if s is not None and s.next_run is not None and s.next_run <= now]
                for name in due:
                    self.schedule(name)
            for name in due:
                with contextlib.suppress(KeyError):  # deleted meanwhile
                    self.start_run(name)

    # -------------------------------------------------------------- persistence

    def save(self, name: str) -> None:
        """Write one index to the data dir (or remove its file if it is gone)."""
        if self.config.data_dir is None:
            return
        path = Path(self.config.data_dir) / f"{name}.json"
        store = self.indexes.get(name)
        if store is None:
            path.unlink(missing_ok=True)
            return
        everything = list(store.definition.fields)
        documents = [store.render(d, everything) for d in store.documents.values()]
        atomic_write_bytes(path, json.dumps({"definition": store.definition.document, "documents": documents}).encode())

    def save_pull(self) -> None:
        """Write the data sources, skillsets, indexers and their tracking state."""
        if self.config.data_dir is None:
            return
        with self.lock:
            payload = {
                "data_sources": [
                    {**d.document, "__connection__": d.connection_string} for d in self.data_sources.values()
                ],
                "skillsets": [s.document for s in self.skillsets.values()],
                "indexers": [i.document for i in self.indexers.values()],
                "states": {n: s.to_json() for n, s in self.indexer_states.items()},
            }
            directory = Path(self.config.data_dir) / "pull"
            directory.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(directory / "state.json", json.dumps(payload).encode("utf-8"))

    def _load(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for path in sorted(directory.glob("*.json")):
            saved = json.loads(path.read_text(encoding="utf-8"))
            definition = parse_definition(saved["definition"])
            definition.etag = self.next_etag()
            store = self.indexes[definition.name] = self.new_store(definition)
            actions = [{"@search.action": "upload", **d} for d in saved.get("documents") or []]
            if actions:
                store.apply(store.validate_batch({"value": actions}, max_actions=len(actions)))
                store.publish(everything=True)  # what was stored before a restart is searchable at once
        path = directory / "pull" / "state.json"
        saved = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        for body in saved.get("data_sources", []):
            body["credentials"] = {"connectionString": body.pop("__connection__", "")}
            self.data_sources[body["name"]] = parse_data_source(body)
        for body in saved.get("skillsets", []):
            self.skillsets[body["name"]] = parse_skillset(body)
        for body in saved.get("indexers", []):
            indexer = parse_indexer(
                body, data_sources=self.data_sources, skillsets=self.skillsets, index_fields=self.index_fields
            )
            self.indexers[indexer.name] = indexer
        for name, state in (saved.get("states") or {}).items():
            self.indexer_states[name] = IndexerState.from_json(state)
        resources: list[DataSource | Skillset | Indexer] = [*self.data_sources.values(), *self.skillsets.values()]
        for resource in [*resources, *self.indexers.values()]:
            resource.etag = self.next_etag()
        for name in self.indexers:
            self.schedule(name)

    def index_fields(self, name: str) -> list[str] | None:
        store = self.indexes.get(name)
        return None if store is None else list(store.definition.fields)
