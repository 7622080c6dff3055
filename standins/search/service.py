"""An HTTP double of the Azure AI Search REST subset this project uses, so the real
``azure-search-documents`` client is what tests and local runs drive.

Served paths (``api-version`` required on every request; both the OData key form
``/indexes('name')`` and the plain form ``/indexes/name`` are accepted):

=======  ===========================================  =========================================
GET      /indexes                                     list indexes (``$select=name`` too)
POST     /indexes                                     create an index (400 if it exists, as Azure answers)
PUT      /indexes('name')                             create (201) or update (200/204) an index
GET      /indexes('name')                             the index definition, with ``@odata.etag``
DELETE   /indexes('name')                             204, or 404 if missing
GET      /indexes('name')/search.stats                document count and sizes
POST     /indexes('name')/docs/search.index           upload / merge / mergeOrUpload / delete
POST     /indexes('name')/docs/search.post.search     search (also POST .../docs/search)
GET      /indexes('name')/docs                        search with query parameters
GET      /indexes('name')/docs('key')                 lookup (also .../docs/key), ``$select``
GET      /indexes('name')/docs/$count                 document count as plain text
=======  ===========================================  =========================================

It is as strict as the service for what it serves (see ``search_definitions`` and
``search_store``), answers errors as ``{"error": {"code", "message"}}`` with the service's
status codes, and checks ``api-key`` (admin keys: everything; query keys: search, lookup and
count) or ``Authorization: Bearer`` when configured. ``@odata.context`` is written unless the
client asks for ``odata.metadata=none`` (the SDK does, for document operations).

Writes become visible to reads (search, lookup, count, statistics) after a configurable
delay, as on the service, which makes documents searchable "a few seconds after" a 200
(``visibility_delay_seconds``, default 0; per index with ``set_visibility_delay``).

Faults can be injected per index for tests and benchmarks (``FaultConfig``): per-document
failures (503, 429, ...) in indexing batches and whole-request failures, at a rate, from a
seeded random generator, optionally capped per document so retries always converge.

Every rule enforced here is listed, with its source, in ``standins/FIDELITY.md``.
"""

from __future__ import annotations

import collections
import contextlib
import http
import itertools
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from standins.search.definitions import (
    IndexDefinition,
    SearchServiceError,
    check_index_name,
    check_update,
    invalid_request,
    parse_definition,
)
from standins.search.indexer_runs import IndexerState, RunContext, status_document
from standins.search.indexer_runs import run as run_indexer
from standins.search.pull_definitions import (
    DataSource,
    Indexer,
    Skillset,
    parse_data_source,
    parse_indexer,
    parse_skillset,
)
from standins.search.store import VECTORIZABLE_KINDS, IndexStore, vectorizable_field
from standins.search.web_api import CallRecord, WebApiCallError, WebApiTarget, call_web_api

# The data-plane versions the service documents ("REST API versions (Azure AI Search)",
# https://learn.microsoft.com/rest/api/searchservice/search-service-api-versions), stable and
# preview, plus 2026-04-01, the version azure-search-documents 12 speaks. Preview versions are
# accepted like stable ones; what they add beyond this double's subset is refused per feature.
STABLE_API_VERSIONS = ("2019-05-06", "2020-06-30", "2023-11-01", "2024-07-01", "2025-09-01", "2026-04-01")
PREVIEW_API_VERSIONS = (
    "2019-05-06-preview",
    "2020-06-30-preview",
    "2021-04-30-preview",
    "2023-07-01-preview",
    "2023-10-01-preview",
    "2024-03-01-preview",
    "2024-05-01-preview",
    "2024-09-01-preview",
    "2024-11-01-preview",
    "2025-03-01-preview",
    "2025-05-01-preview",
    "2025-08-01-preview",
    "2025-11-01-preview",
)
SUPPORTED_API_VERSIONS = STABLE_API_VERSIONS + PREVIEW_API_VERSIONS
FIRST_VECTOR_API_VERSION = "2023-11-01"  # the first stable version with vector search
FIRST_VECTOR_PREVIEW_API_VERSION = "2023-07-01-preview"  # vector search's first (public) preview
# Vectorizers (and the vectorizable queries they serve) are GA in 2024-07-01 and were previewed
# from 2023-10-01-Preview ("Custom Web API vectorizer"; versions: "integrated vectorization").
FIRST_VECTORIZER_API_VERSION = "2024-07-01"
FIRST_VECTORIZER_PREVIEW_API_VERSION = "2023-10-01-preview"
MAX_BATCH_ACTIONS = 1000
MAX_REQUEST_BYTES = 16 * 1024 * 1024
READ_OPERATIONS = frozenset({"search", "lookup", "count"})
DOCUMENT_OPERATIONS = frozenset({"index", "search", "lookup", "count"})


@dataclass(frozen=True)
class FaultConfig:
    """Injected failures for one index (or every index, as the config default).

    ``document_fault_rate``: probability that one document of an indexing batch fails with a
    status drawn from ``document_fault_statuses`` (it is then not applied).
    ``max_faults_per_document``: a key fails at most this many times, so a client that retries
    always gets through. ``request_fault_rate``: probability that a whole request of one of
    ``operations`` fails with ``request_fault_status``; ``max_request_faults`` caps them.
    ``retry_after_seconds`` adds a ``Retry-After`` header to injected whole-request failures.
    """

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
        for name in ("document_fault_rate", "request_fault_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")


@dataclass(frozen=True)
class SearchDoubleConfig:
    """How the double behaves. Empty key and token lists mean no authentication."""

    admin_keys: tuple[str, ...] = ()
    query_keys: tuple[str, ...] = ()
    bearer_tokens: tuple[str, ...] = ()
    api_versions: tuple[str, ...] = SUPPORTED_API_VERSIONS
    max_batch_actions: int = MAX_BATCH_ACTIONS
    max_request_bytes: int = MAX_REQUEST_BYTES
    data_dir: Path | None = None  # keep indexes here across restarts (each write rewrites its index file)
    # Seconds between a write's answer and the moment reads see it (the service: "a few seconds").
    visibility_delay_seconds: float = 0.0
    clock: Callable[[], float] = time.monotonic  # what the visibility delay is measured with
    faults: FaultConfig = field(default_factory=FaultConfig)
    service_name: str = "search-double"
    request_log_size: int = 100_000  # the most recent requests kept for ``requests_for``
    # Data source connection strings the double cannot use itself (``ResourceId=...;`` of a
    # managed identity), mapped to one it can (Azurite's); keys compare without regard to case.
    storage_connections: Mapping[str, str] = field(default_factory=dict)
    run_schedules: bool = True  # run indexers on their schedules (a background thread)
    max_document_extraction_bytes: int = 16 * 1024 * 1024  # the basic tier's blob size limit

    def __post_init__(self) -> None:
        if not 0.0 <= self.visibility_delay_seconds < 3600:
            raise ValueError(f"visibility_delay_seconds must be from 0 to 3600, got {self.visibility_delay_seconds}")

    @property
    def requires_auth(self) -> bool:
        return bool(self.admin_keys or self.query_keys or self.bearer_tokens)


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
        if f.document_fault_rate <= 0:
            return None
        seen = self.per_document.get(key, 0)
        if f.max_faults_per_document is not None and seen >= f.max_faults_per_document:
            return None
        if self.random.random() < f.document_fault_rate:
            self.per_document[key] = seen + 1
            return self.random.choice(f.document_fault_statuses)
        return None


class SearchDoubleService:
    """The state behind the HTTP layer: indexes, request log and fault settings."""

    def __init__(self, config: SearchDoubleConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.indexes: dict[str, IndexStore] = {}
        self.requests: collections.deque[RequestRecord] = collections.deque(maxlen=config.request_log_size)
        self._faults: dict[str, FaultConfig] = {}
        self._fault_states: dict[str, _FaultState] = {}
        self._visibility_delays: dict[str, float] = {}
        self._etags = itertools.count(1)
        self.web_api_calls: collections.deque[CallRecord] = collections.deque(maxlen=10_000)
        self.data_sources: dict[str, DataSource] = {}
        self.skillsets: dict[str, Skillset] = {}
        self.indexers: dict[str, Indexer] = {}
        self.indexer_states: dict[str, IndexerState] = {}
        self._runs: dict[str, threading.Thread] = {}
        self._scheduler: threading.Thread | None = None
        self._stopping = threading.Event()
        if config.data_dir is not None:
            self._load(Path(config.data_dir))
            self._load_pull(Path(config.data_dir) / "pull")

    # -------------------------------------------------------------- test controls

    def set_faults(self, index: str, faults: FaultConfig | None) -> None:
        """Inject faults into one index (None: back to the config default)."""
        with self.lock:
            if faults is None:
                self._faults.pop(index, None)
            else:
                self._faults[index] = faults
            self._fault_states.pop(index, None)

    def set_visibility_delay(self, index: str, seconds: float | None) -> None:
        """Make writes to one index visible to reads ``seconds`` after their answer (None: back
        to the config default). Applies to the index now or whenever it is created."""
        if seconds is not None and not 0.0 <= seconds < 3600:
            raise ValueError(f"the visibility delay must be from 0 to 3600 seconds, got {seconds}")
        with self.lock:
            if seconds is None:
                self._visibility_delays.pop(index, None)
            else:
                self._visibility_delays[index] = seconds
            store = self.indexes.get(index)
            if store is not None:
                store.visibility_delay = self.visibility_delay(index)

    def visibility_delay(self, index: str) -> float:
        return self._visibility_delays.get(index, self.config.visibility_delay_seconds)

    def new_store(self, definition: IndexDefinition) -> IndexStore:
        return IndexStore(definition, visibility_delay=self.visibility_delay(definition.name), clock=self.config.clock)

    def requests_for(self, index: str, operation: str | None = None) -> list[RequestRecord]:
        with self.lock:
            return [r for r in self.requests if r.index == index and (operation is None or r.operation == operation)]

    def fault_state(self, index: str) -> _FaultState:
        state = self._fault_states.get(index)
        if state is None:
            state = _FaultState(self._faults.get(index, self.config.faults), index)
            self._fault_states[index] = state
        return state

    def next_etag(self) -> str:
        return f'"0x{next(self._etags) + int(time.time() * 1000):016X}"'

    # -------------------------------------------------------------- indexers

    def start_run(self, name: str) -> bool:
        """Start a run of indexer ``name`` in a thread; False if one is in progress."""
        with self.lock:
            indexer = self.indexers[name]
            state = self.indexer_states.setdefault(name, IndexerState())
            if state.running:
                return False
            try:
                context = self._run_context(indexer, state)
            except (KeyError, ValueError, SearchServiceError) as exc:
                # A run that cannot start (its data source unusable here, its index gone) is a
                # failed run in the status, as the service reports its runs.
                from standins.search.indexer_runs import utc_now

                message = exc.message if isinstance(exc, SearchServiceError) else str(exc)
                now = utc_now()
                state.history.insert(
                    0,
                    {
                        "status": "transientFailure",
                        "statusDetail": None,
                        "errorMessage": message,
                        "startTime": now,
                        "endTime": now,
                        "errors": [],
                        "warnings": [],
                        "itemsProcessed": 0,
                        "itemsFailed": 0,
                        "initialTrackingState": state.high_water_mark,
                        "finalTrackingState": state.high_water_mark,
                    },
                )
                return True
            state.running = True
        thread = threading.Thread(target=run_indexer, args=(context,), name=f"indexer-{name}", daemon=True)
        self._runs[name] = thread
        thread.start()
        return True

    def wait_for_runs(self, timeout: float = 60.0) -> None:
        """Test control: wait until every started run has ended."""
        deadline = time.monotonic() + timeout
        for thread in list(self._runs.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        """Stop the scheduler (runs in progress finish on their own)."""
        self._stopping.set()

    def _run_context(self, indexer: Indexer, state: IndexerState) -> RunContext:
        data_source = self.data_sources[indexer.data_source]
        skillset = self.skillsets.get(indexer.skillset) if indexer.skillset else None
        index_name = indexer.target_index

        def write(action: str, items: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, bool, int, str | None]]:
            with self.lock:
                store = _store(self, index_name)
                key_field = store.definition.key_field
                results = store.apply_each([{"@search.action": action, key_field: k, **f} for k, f in items])
                self.save(index_name)
            return [(r.key, r.status, r.status_code, r.error_message) for r in results]

        def index_fields() -> list[str]:
            with self.lock:
                return list(_store(self, index_name).definition.fields)

        with self.lock:
            key_field = _store(self, index_name).definition.key_field
        return RunContext(
            indexer=indexer,
            data_source=data_source,
            skillset=skillset,
            state=state,
            lock=self.lock,
            write=write,
            index_fields=index_fields,
            key_field=key_field,
            connection_string=self.storage_connection(data_source.connection_string),
            log_call=self.web_api_calls.append,
            max_document_bytes=self.config.max_document_extraction_bytes,
            save=self.save_pull,
        )

    def storage_connection(self, connection_string: str) -> str:
        """A connection string the double can use for a data source's: itself, or the one
        ``storage_connections`` maps a ``ResourceId=...;`` form to."""
        wanted = connection_string.strip().lower()
        for given, usable in self.config.storage_connections.items():
            if given.strip().lower() == wanted:
                return usable
        if wanted.startswith("resourceid="):
            raise ValueError(
                "the data source connects with a managed identity (ResourceId=...), which the stand-in cannot use; "
                "map it to a connection string with SearchDoubleConfig.storage_connections"
            )
        return connection_string

    def schedule(self, name: str) -> None:
        indexer = self.indexers[name]
        state = self.indexer_states.setdefault(name, IndexerState())
        state.next_run = None if indexer.interval_seconds is None else time.time() + indexer.interval_seconds
        if state.next_run is not None and self.config.run_schedules and self._scheduler is None:
            self._scheduler = threading.Thread(target=self._run_schedules, name="indexer-scheduler", daemon=True)
            self._scheduler.start()

    def _run_schedules(self) -> None:
        while not self._stopping.wait(1.0):
            due = []
            with self.lock:
                now = time.time()
                for name, indexer in self.indexers.items():
                    state = self.indexer_states.get(name)
                    if state is None or indexer.disabled or state.next_run is None or state.next_run > now:
                        continue
                    state.next_run = now + (indexer.interval_seconds or 0)
                    due.append(name)
            for name in due:
                with contextlib.suppress(KeyError, ValueError, SearchServiceError):
                    self.start_run(name)

    def _load_pull(self, directory: Path) -> None:
        path = directory / "state.json"
        if not path.exists():
            return
        saved = json.loads(path.read_text(encoding="utf-8"))
        for body in saved.get("data_sources", []):
            connection = body.pop("__connection__", "")
            body["credentials"] = {"connectionString": connection}
            self.data_sources[body["name"]] = parse_data_source(body)
        for body in saved.get("skillsets", []):
            self.skillsets[body["name"]] = parse_skillset(body)
        for body in saved.get("indexers", []):
            indexer = parse_indexer(
                body, data_sources=self.data_sources, skillsets=self.skillsets, index_fields=self._index_fields
            )
            self.indexers[indexer.name] = indexer
        for name, state in (saved.get("states") or {}).items():
            self.indexer_states[name] = IndexerState.from_json(state)
        for resource in (*self.data_sources.values(), *self.skillsets.values(), *self.indexers.values()):
            resource.etag = self.next_etag()
        for name in self.indexers:
            self.schedule(name)

    def _index_fields(self, name: str) -> list[str] | None:
        store = self.indexes.get(name)
        return None if store is None else list(store.definition.fields)

    def save_pull(self) -> None:
        """Write the data sources, skillsets, indexers and their tracking state (atomically)."""
        if self.config.data_dir is None:
            return
        from indexer.atomic import atomic_write_bytes

        with self.lock:
            payload = {
                "data_sources": [
                    {**d.document, "__connection__": d.connection_string} for d in self.data_sources.values()
                ],
                "skillsets": [k.document for k in self.skillsets.values()],
                "indexers": [i.document for i in self.indexers.values()],
                "states": {n: s.to_json() for n, s in self.indexer_states.items()},
            }
            directory = Path(self.config.data_dir) / "pull"
            directory.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(directory / "state.json", json.dumps(payload).encode("utf-8"))

    # -------------------------------------------------------------- persistence

    def _load(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for path in sorted(directory.glob("*.json")):
            saved = json.loads(path.read_text(encoding="utf-8"))
            definition = parse_definition(saved["definition"])
            definition.etag = self.next_etag()
            store = self.new_store(definition)
            documents = saved.get("documents") or []
            if documents:
                actions = [{"@search.action": "upload", **d} for d in documents]
                store.apply(store.validate_batch({"value": actions}, max_actions=len(actions)))
                store.publish_all()  # what was stored before a restart is searchable at once
            self.indexes[definition.name] = store

    def save(self, name: str) -> None:
        """Write one index to the data dir atomically (or remove its file if it is gone)."""
        if self.config.data_dir is None:
            return
        from indexer.atomic import atomic_write_bytes

        path = Path(self.config.data_dir) / f"{name}.json"
        store = self.indexes.get(name)
        if store is None:
            path.unlink(missing_ok=True)
            return
        everything = list(store.definition.fields)
        payload = {
            "definition": store.definition.document,
            "documents": [store.render(d, everything) for d in store.documents.values()],
        }
        atomic_write_bytes(path, json.dumps(payload).encode("utf-8"))


# ------------------------------------------------------------------ HTTP layer

_INDEXES = re.compile(r"^/indexes/?$")
_INDEX = re.compile(r"^/indexes(?:\('(?P<quoted>(?:[^']|'')*)'\)|/(?P<plain>[^/()]+))(?P<rest>/.*)?$")
_DOC_QUOTED = re.compile(r"^/docs\('(?P<key>(?:[^']|'')*)'\)$")
_DOC_PLAIN = re.compile(r"^/docs/(?P<key>[^/$.][^/]*)$")


@dataclass
class _Call:
    request: Request
    operation: str
    index: str | None = None
    key: str | None = None
    api_version: str | None = None
    body_bytes: int = 0
    actions: int = 0


_PULL_COLLECTION = re.compile(r"^/(?P<kind>datasources|skillsets|indexers)/?$")
_PULL_ITEM = re.compile(
    r"^/(?P<kind>datasources|skillsets|indexers)(?:\('(?P<quoted>(?:[^']|'')*)'\)|/(?P<plain>[^/()]+))(?P<rest>/.*)?$"
)
_KINDS = {"datasources": "data_source", "skillsets": "skillset", "indexers": "indexer"}


def _resolve(method: str, path: str) -> tuple[str, str | None, str | None]:
    """(operation, index name, document key) for a path, or SearchServiceError 404/405. For a
    data source, skillset or indexer path the second item is its name."""
    collection = _PULL_COLLECTION.match(path)
    if collection:
        kind = _KINDS[collection["kind"]]
        operation = {"GET": f"list_{kind}s", "POST": f"create_{kind}"}.get(method)
        return operation or _not_allowed(method, path), None, None
    item = _PULL_ITEM.match(path)
    if item:
        kind = _KINDS[item["kind"]]
        name = item["quoted"].replace("''", "'") if item["quoted"] is not None else item["plain"]
        rest = item["rest"] or ""
        if rest in ("", "/"):
            operation = {"GET": f"get_{kind}", "PUT": f"put_{kind}", "DELETE": f"delete_{kind}"}.get(method)
            return operation or _not_allowed(method, path), None, name
        if kind == "indexer" and rest in ("/search.run", "/search.reset", "/search.status"):
            wanted = "GET" if rest == "/search.status" else "POST"
            if method != wanted:
                _not_allowed(method, path)
            return (
                {"/search.run": "run_indexer", "/search.reset": "reset_indexer"}.get(rest, "indexer_status"),
                None,
                name,
            )
        raise SearchServiceError(404, "ResourceNotFound", f"The resource '{path}' does not exist on this service.")
    if _INDEXES.match(path):
        return {"GET": "list_indexes", "POST": "create_index"}.get(method) or _not_allowed(method, path), None, None
    match = _INDEX.match(path)
    if not match:
        raise SearchServiceError(404, "ResourceNotFound", f"The resource '{path}' does not exist on this service.")
    name = match["quoted"].replace("''", "'") if match["quoted"] is not None else match["plain"]
    rest = match["rest"] or ""
    if rest in ("", "/"):
        operation = {"GET": "get_index", "PUT": "create_or_update_index", "DELETE": "delete_index"}.get(method)
        return operation or _not_allowed(method, path), name, None
    routes = {
        ("/search.stats", "GET"): "index_stats",
        ("/docs/search.index", "POST"): "index",
        ("/docs/search.post.search", "POST"): "search",
        ("/docs/search", "POST"): "search",
        ("/docs", "GET"): "search_get",
        ("/docs/$count", "GET"): "count",
    }
    if (rest, method) in routes:
        return routes[(rest, method)], name, None
    if any(rest == r for r, _ in routes):
        return _not_allowed(method, path), name, None
    doc = _DOC_QUOTED.match(rest) or _DOC_PLAIN.match(rest)
    if doc:
        if method != "GET":
            _not_allowed(method, path)
        return "lookup", name, doc["key"].replace("''", "'")
    raise SearchServiceError(404, "ResourceNotFound", f"The resource '{path}' does not exist on this service.")


def _not_allowed(method: str, path: str) -> NoReturn:
    raise SearchServiceError(405, "MethodNotAllowed", f"The HTTP method '{method}' is not supported for '{path}'.")


def create_app(config: SearchDoubleConfig | None = None) -> Starlette:
    """The ASGI app; ``app.state.service`` is the ``SearchDoubleService`` behind it."""
    config = config or SearchDoubleConfig()
    service = SearchDoubleService(config)

    async def endpoint(request: Request) -> Response:
        call = _Call(request, operation="unknown")
        started = time.perf_counter()
        try:
            call.operation, call.index, call.key = _resolve(request.method, request.url.path)
            call.api_version = _check_api_version(request, config)
            _check_auth(request, config, call.operation)
            body = await request.body()
            call.body_bytes = len(body)
            if call.operation == "search":
                # Vectorizable queries call their vectorizer first, outside the lock (it is a
                # remote call that may take seconds).
                body = await _vectorize_queries(service, call, body)
            with service.lock:
                if call.index is not None:
                    injected = service.fault_state(call.index).request_fault(call.operation)
                    if injected is not None:
                        faults = service.fault_state(call.index).faults
                        headers = (
                            {}
                            if faults.retry_after_seconds is None
                            else {"Retry-After": f"{faults.retry_after_seconds:g}"}
                        )
                        code = "ServiceUnavailable" if injected == 503 else "TooManyRequests"
                        raise SearchServiceError(
                            injected,
                            code,
                            "The service is temporarily unable to process the "
                            "request (injected fault); try again later.",
                            headers=headers,
                        )
                response = _HANDLERS[call.operation](service, call, body)
        except SearchServiceError as error:
            response = JSONResponse(error.body(), status_code=error.status, headers=error.headers)
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        response.headers["request-id"] = str(uuid.uuid4())
        response.headers["elapsed-time"] = str(elapsed_ms)
        response.headers["OData-Version"] = "4.0"
        with service.lock:
            service.requests.append(
                RequestRecord(
                    request.method,
                    request.url.path,
                    call.operation,
                    call.index,
                    response.status_code,
                    call.actions,
                    call.body_bytes,
                    call.api_version,
                )
            )
        return response

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])
    app.state.service = service
    return app


async def _vectorize_queries(service: SearchDoubleService, call: _Call, body: bytes) -> bytes:
    """Replace each ``text``, ``imageUrl`` or ``imageBinary`` vector query by the ``vector`` query
    its field's vectorizer answers (anything malformed is left for the search to refuse)."""
    from starlette.concurrency import run_in_threadpool

    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    queries = payload.get("vectorQueries") if isinstance(payload, dict) else None
    if not isinstance(queries, list) or not any(
        isinstance(q, dict) and q.get("kind") in VECTORIZABLE_KINDS for q in queries
    ):
        return body
    with service.lock:
        store = service.indexes.get(call.index or "")
        definition = store.definition if store is not None else None
    if definition is None:
        return body  # the search answers that the index is missing
    _check_vector_api_version(call, True)
    _check_vectorizer_api_version(call, True)
    for position, query in enumerate(queries):
        if not isinstance(query, dict) or query.get("kind") not in VECTORIZABLE_KINDS:
            continue
        field_spec = vectorizable_field(query, definition)
        vectorizer = definition.vectorizers[field_spec.vectorizer or ""]
        kind = str(query["kind"])
        value_property = VECTORIZABLE_KINDS[kind]
        target = WebApiTarget(
            vectorizer.uri,
            vectorizer.http_method,
            vectorizer.http_headers,
            vectorizer.timeout_seconds,
            vectorizer.auth_resource_id,
        )
        vector = await run_in_threadpool(
            _vectorize, service, target, kind, query[value_property], field_spec.dimensions
        )
        rewritten = {k: v for k, v in query.items() if k != value_property}
        rewritten.update(kind="vector", vector=vector)
        queries[position] = rewritten
    return json.dumps(payload).encode("utf-8")


# The data key a Web API vectorizer sends each query kind's input under ("Custom Web API
# vectorizer", "JSON payload structure"); an imageBinary query is sent as {"data": <base64>}.
_VECTORIZER_DATA_KEYS = {"text": "text", "imageUrl": "imageUrl", "imageBinary": "imageBinary"}


def _vectorize(
    service: SearchDoubleService, target: WebApiTarget, kind: str, value: str, dimensions: int
) -> list[float]:
    """Call a Web API vectorizer for one query, as the service does: one record in ``values``,
    the vector expected under ``data.vector``; errors and warnings of the record are ignored.
    Failures are answered with the live texts (empty codes) quoted in
    Azure/azure-search-vector-samples#133, #325 and #300."""
    data: dict[str, Any] = {_VECTORIZER_DATA_KEYS[kind]: {"data": value} if kind == "imageBinary" else value}
    try:
        answers = call_web_api(target, [("0", data)], log=service.web_api_calls.append, retries=0)
    except WebApiCallError as error:
        if error.reason == "unreachable":
            raise SearchServiceError(
                400, "", "Could not complete vectorization action. Could not reach the vectorization endpoint."
            ) from None
        if error.reason == "status" and error.status is not None:
            phrase = http.HTTPStatus(error.status).phrase if error.status in http.HTTPStatus._value2member_map_ else ""
            raise SearchServiceError(
                400,
                "",
                f"Could not complete vectorization action. The vectorization endpoint returned status code "
                f"'{error.status}' ({phrase}).",
            ) from None
        raise _invalid_vectorizer_response() from None
    answer = answers["0"]
    vector = (answer.data or {}).get("vector")
    if (
        not isinstance(vector, list)
        or len(vector) != dimensions
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector)
    ):
        raise _invalid_vectorizer_response()
    return [float(x) for x in vector]


def _invalid_vectorizer_response() -> SearchServiceError:
    return SearchServiceError(
        400, "", "Could not vectorize the query because the vectorization endpoint response is invalid."
    )


def _check_api_version(request: Request, config: SearchDoubleConfig) -> str:
    version = request.query_params.get("api-version")
    if not version:
        raise SearchServiceError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if version not in config.api_versions:
        raise SearchServiceError(
            400,
            "InvalidApiVersionParameter",
            f"Invalid or unsupported api-version '{version}'. Supported versions: {', '.join(config.api_versions)}.",
        )
    return version


def _check_auth(request: Request, config: SearchDoubleConfig, operation: str) -> None:
    if not config.requires_auth:
        return
    key = request.headers.get("api-key")
    authorization = request.headers.get("authorization", "")
    if key is not None:
        if key in config.admin_keys:
            return
        if key in config.query_keys:
            if operation in READ_OPERATIONS or operation == "search_get":
                return
            raise SearchServiceError(
                403, "Forbidden", "A query key can only search and read documents; this operation needs an admin key."
            )
        raise SearchServiceError(403, "Forbidden", "The api-key is not valid for this search service.")
    if authorization.lower().startswith("bearer "):
        if config.bearer_tokens and authorization[7:].strip() in config.bearer_tokens:
            return
        raise SearchServiceError(
            401,
            "Unauthorized",
            "The bearer token is not valid for this search service.",
            headers={"WWW-Authenticate": 'Bearer authorization_uri="", error="invalid_token"'},
        )
    raise SearchServiceError(
        401, "Unauthorized", "Credentials are missing: send an 'api-key' header or an 'Authorization: Bearer' token."
    )


def _metadata_none(request: Request) -> bool:
    return "odata.metadata=none" in request.headers.get("accept", "").replace(" ", "").lower()


def _json(
    request: Request,
    payload: dict[str, Any],
    *,
    status: int = 200,
    context: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if context is not None and not _metadata_none(request):
        payload = {"@odata.context": f"{str(request.base_url).rstrip('/')}/{context}", **payload}
    elif _metadata_none(request):  # no control information; counts and next links stay
        payload = {k: v for k, v in payload.items() if k not in ("@odata.context", "@odata.etag")}
    return JSONResponse(payload, status_code=status, headers=headers)


def _parse_json(body: bytes, parameter: str) -> Any:
    if not body:
        raise invalid_request(parameter, "The request body is empty.", detail_code="InvalidRequestBody")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_request(
            parameter, f"The request body is not valid JSON ({exc}).", detail_code="InvalidRequestBody"
        ) from None


def _store(service: SearchDoubleService, name: str) -> IndexStore:
    store = service.indexes.get(name)
    if store is None:
        # An empty code, as the live answer quoted in Azure-Samples/azure-search-openai-demo#79.
        raise SearchServiceError(
            404, "", f"The index '{name}' for service '{service.config.service_name}' was not found."
        )
    return store


def _index_payload(definition: IndexDefinition) -> dict[str, Any]:
    return {"@odata.etag": definition.etag, **definition.document}


def _supports_vectors(api_version: str) -> bool:
    if api_version.endswith("-preview"):
        return api_version >= FIRST_VECTOR_PREVIEW_API_VERSION
    return api_version >= FIRST_VECTOR_API_VERSION


def _check_vectorizer_api_version(call: _Call, uses_vectorizers: bool) -> None:
    version = call.api_version
    if not uses_vectorizers or version is None:
        return
    first = FIRST_VECTORIZER_PREVIEW_API_VERSION if version.endswith("-preview") else FIRST_VECTORIZER_API_VERSION
    if version < first:
        raise invalid_request(
            "api-version",
            f"Vectorizers and vectorizable queries need api-version {FIRST_VECTORIZER_API_VERSION} or later; "
            f"this request uses {version}.",
            detail_code="InvalidApiVersionParameter",
        )


def _check_vector_api_version(call: _Call, uses_vectors: bool) -> None:
    if uses_vectors and call.api_version is not None and not _supports_vectors(call.api_version):
        raise invalid_request(
            "api-version",
            f"Vector search needs api-version {FIRST_VECTOR_API_VERSION} or "
            f"later; this request uses {call.api_version}.",
            detail_code="InvalidApiVersionParameter",
        )


# ------------------------------------------------------------------ handlers


def _list_indexes(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    select = call.request.query_params.get("$select")
    values = [_index_payload(s.definition) for s in service.indexes.values()]
    if select and select.strip() != "*":
        names = [n.strip() for n in select.split(",")]
        values = [{k: v for k, v in value.items() if k in names} for value in values]
    return _json(call.request, {"value": values}, context="$metadata#indexes")


def _create_index(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    definition = parse_definition(_parse_json(body, "definition"))
    call.index = definition.name
    _check_vector_api_version(call, bool(definition.vector_fields))
    _check_vectorizer_api_version(call, bool(definition.vectorizers))
    if definition.name in service.indexes:
        # 400, not 409: the live answer quoted in azure-sdk-for-net#38026.
        message = f"Cannot create index '{definition.name}' because it already exists."
        raise SearchServiceError(
            400,
            "ResourceNameAlreadyInUse",
            message,
            details=[{"code": "CannotCreateExistingIndex", "message": message}],
        )
    definition.etag = service.next_etag()
    service.indexes[definition.name] = service.new_store(definition)
    service.save(definition.name)
    return _json(
        call.request,
        _index_payload(definition),
        status=201,
        context="$metadata#indexes/$entity",
        headers={"ETag": definition.etag},
    )


def _create_or_update_index(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    assert call.index is not None
    check_index_name(call.index)
    existing = service.indexes.get(call.index)
    _check_preconditions(call.request, existing.definition.etag if existing else None)
    definition = parse_definition(_parse_json(body, "definition"), name=call.index)
    _check_vector_api_version(call, bool(definition.vector_fields))
    _check_vectorizer_api_version(call, bool(definition.vectorizers))
    definition.etag = service.next_etag()
    if existing is None:
        service.indexes[call.index] = service.new_store(definition)
        status = 201
    else:
        check_update(existing.definition, definition)
        existing.replace_definition(definition)
        status = 200
    service.save(call.index)
    headers = {"ETag": definition.etag}
    if status == 200 and "return=representation" not in call.request.headers.get("prefer", ""):
        return Response(status_code=204, headers=headers)
    if status == 200:
        headers["Preference-Applied"] = "return=representation"
    return _json(
        call.request, _index_payload(definition), status=status, context="$metadata#indexes/$entity", headers=headers
    )


def _check_preconditions(request: Request, etag: str | None) -> None:
    if_match = request.headers.get("if-match")
    if_none_match = request.headers.get("if-none-match")
    if if_match is not None and (etag is None or (if_match.strip() != "*" and if_match.strip() != etag)):
        raise SearchServiceError(412, "PreconditionFailed", "The index's ETag does not match the If-Match header.")
    if if_none_match is not None and etag is not None and if_none_match.strip() in ("*", etag):
        raise SearchServiceError(412, "PreconditionFailed", "The index exists and matches the If-None-Match header.")


def _get_index(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    definition = _store(service, call.index or "").definition
    return _json(
        call.request, _index_payload(definition), context="$metadata#indexes/$entity", headers={"ETag": definition.etag}
    )


def _delete_index(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    store = _store(service, call.index or "")
    _check_preconditions(call.request, store.definition.etag)
    del service.indexes[call.index or ""]
    service.save(call.index or "")
    return Response(status_code=204)


def _index_stats(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    store = _store(service, call.index or "")
    store.publish()
    vector_bytes = sum(
        4 * v.dimensions
        for d in store.visible.values()
        for name, v in store.definition.vector_fields.items()
        if d.get(name) is not None
    )
    return _json(
        call.request,
        {"documentCount": store.count(), "storageSize": store.storage_size(), "vectorIndexSize": vector_bytes},
        context="$metadata#Microsoft.Azure.Search.V2026_04_01.IndexStatistics",
    )


def _index_documents(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    store = _store(service, call.index or "")
    limit = service.config.max_request_bytes
    if len(body) > limit:
        raise SearchServiceError(
            413,
            "RequestEntityTooLarge",
            f"The request is too large: {len(body):,} bytes; the limit is {limit:,} bytes "
            f"(16 MB). Send fewer or smaller documents per batch.",
        )
    payload = _parse_json(body, "actions")
    if isinstance(payload, dict) and isinstance(payload.get("value"), list):
        call.actions = len(payload["value"])
    parsed = store.validate_batch(
        payload, max_actions=service.config.max_batch_actions, api_version=call.api_version or ""
    )
    faults = service.fault_state(call.index or "")
    results = store.apply(parsed, faults.document_fault)
    service.save(call.index or "")
    status = 200 if all(r.status for r in results) else 207
    return _json(call.request, {"value": [r.to_json() for r in results]}, status=status)


def _search(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    store = _store(service, call.index or "")
    request = _parse_json(body, "parameters")
    if isinstance(request, dict):
        _check_vector_api_version(call, bool(request.get("vectorQueries")))
    return _search_response(service, call, store, request)


def _search_get(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    store = _store(service, call.index or "")
    params = call.request.query_params
    names = {
        "search": "search",
        "$filter": "filter",
        "$select": "select",
        "$orderby": "orderby",
        "$top": "top",
        "$skip": "skip",
        "$count": "count",
    }
    request: dict[str, Any] = {}
    for name, value in params.items():
        if name == "api-version":
            continue
        if name not in names:
            raise invalid_request(
                name,
                f"The query parameter '{name}' is not supported by this stand-in's GET "
                f"search; use POST .../docs/search.post.search.",
                detail_code="InvalidParameter",
            )
        if name in ("$top", "$skip"):
            if not value.isdigit():
                raise invalid_request(name, f"{name} must be a non-negative integer.", detail_code="InvalidParameter")
            request[names[name]] = int(value)
        elif name == "$count":
            request["count"] = value.lower() == "true"
        else:
            request[names[name]] = value
    return _search_response(service, call, store, request)


def _search_response(service: SearchDoubleService, call: _Call, store: IndexStore, request: Any) -> Response:
    outcome = store.search(request)
    payload: dict[str, Any] = {}
    if outcome.count is not None:
        payload["@odata.count"] = outcome.count
    payload["value"] = outcome.rows
    if outcome.next_parameters is not None:
        base = str(call.request.base_url).rstrip("/")
        payload["@odata.nextLink"] = (
            f"{base}/indexes('{call.index}')/docs/search.post.search?api-version={call.api_version}"
        )
        payload["@search.nextPageParameters"] = outcome.next_parameters
    return _json(call.request, payload, context=f"indexes('{call.index}')/$metadata#docs(*)")


def _lookup(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    store = _store(service, call.index or "")
    document = store.lookup(call.key or "", call.request.query_params.get("$select"))
    if document is None:
        # No body: no public live answer shows one, so no client may rely on a code or text here
        # (an assumption; see FIDELITY.md). The status alone says the document is not there.
        return Response(status_code=404)
    return _json(call.request, document, context=f"indexes('{call.index}')/$metadata#docs(*)/$entity")


def _count(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    store = _store(service, call.index or "")
    return PlainTextResponse(str(store.count()))


# ------------------------------------------------------------------ data sources, skillsets, indexers

_RESOURCE_LABELS = {"data_source": "data source", "skillset": "skillset", "indexer": "indexer"}


def _resources(service: SearchDoubleService, kind: str) -> dict[str, Any]:
    return {"data_source": service.data_sources, "skillset": service.skillsets, "indexer": service.indexers}[kind]


def _missing(service: SearchDoubleService, kind: str, name: str) -> SearchServiceError:
    # The wording follows the index's live answer (D16); the text is an assumption.
    return SearchServiceError(
        404, "", f"The {_RESOURCE_LABELS[kind]} '{name}' for service '{service.config.service_name}' was not found."
    )


def _parse_resource(service: SearchDoubleService, kind: str, body: Any, name: str | None) -> Any:
    if kind == "data_source":
        existing = service.data_sources.get(name or "") if name else None
        return parse_data_source(body, name=name, existing=existing)
    if kind == "skillset":
        return parse_skillset(body, name=name)
    return parse_indexer(
        body,
        name=name,
        data_sources=service.data_sources,
        skillsets=service.skillsets,
        index_fields=service._index_fields,
    )


def _resource_answer(call: _Call, resource: Any, kind: str, status: int) -> Response:
    collection = {"data_source": "datasources", "skillset": "skillsets", "indexer": "indexers"}[kind]
    return _json(
        call.request,
        resource.public(),
        status=status,
        context=f"$metadata#{collection}/$entity",
        headers={"ETag": resource.etag},
    )


def _put_resource(kind: str) -> Callable[[SearchDoubleService, _Call, bytes], Response]:
    def handler(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
        name = call.key or ""
        resources = _resources(service, kind)
        existing = resources.get(name)
        _check_preconditions(call.request, existing.etag if existing else None)
        resource = _parse_resource(service, kind, _parse_json(body, "definition"), name)
        resource.etag = service.next_etag()
        resources[name] = resource
        if kind == "indexer":
            state = service.indexer_states.setdefault(name, IndexerState())
            service.schedule(name)
            if existing is None and not resource.disabled and not state.running:
                service.start_run(name)  # "indexers run immediately when you create them"
        service.save_pull()
        if existing is not None and "return=representation" not in call.request.headers.get("prefer", ""):
            return Response(status_code=204, headers={"ETag": resource.etag})
        return _resource_answer(call, resource, kind, 201 if existing is None else 200)

    return handler


def _create_resource(kind: str) -> Callable[[SearchDoubleService, _Call, bytes], Response]:
    def handler(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
        payload = _parse_json(body, "definition")
        resource = _parse_resource(service, kind, payload, None)
        resources = _resources(service, kind)
        if resource.name in resources:
            # As an existing index is answered (D14); an assumption for these resources.
            message = f"Cannot create {_RESOURCE_LABELS[kind]} '{resource.name}' because it already exists."
            raise SearchServiceError(400, "ResourceNameAlreadyInUse", message)
        resource.etag = service.next_etag()
        resources[resource.name] = resource
        if kind == "indexer":
            service.indexer_states.setdefault(resource.name, IndexerState())
            service.schedule(resource.name)
            if not resource.disabled:
                service.start_run(resource.name)
        service.save_pull()
        return _resource_answer(call, resource, kind, 201)

    return handler


def _get_resource(kind: str) -> Callable[[SearchDoubleService, _Call, bytes], Response]:
    def handler(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
        resource = _resources(service, kind).get(call.key or "")
        if resource is None:
            raise _missing(service, kind, call.key or "")
        return _resource_answer(call, resource, kind, 200)

    return handler


def _list_resources(kind: str) -> Callable[[SearchDoubleService, _Call, bytes], Response]:
    def handler(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
        collection = {"data_source": "datasources", "skillset": "skillsets", "indexer": "indexers"}[kind]
        values = [r.public() for r in _resources(service, kind).values()]
        select = call.request.query_params.get("$select")
        if select and select.strip() != "*":
            names = [n.strip() for n in select.split(",")]
            values = [{k: v for k, v in value.items() if k in names} for value in values]
        return _json(call.request, {"value": values}, context=f"$metadata#{collection}")

    return handler


def _delete_resource(kind: str) -> Callable[[SearchDoubleService, _Call, bytes], Response]:
    def handler(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
        resources = _resources(service, kind)
        resource = resources.get(call.key or "")
        if resource is None:
            raise _missing(service, kind, call.key or "")
        _check_preconditions(call.request, resource.etag)
        del resources[call.key or ""]
        if kind == "indexer":
            service.indexer_states.pop(call.key or "", None)
        service.save_pull()
        return Response(status_code=204)

    return handler


def _run_indexer(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    name = call.key or ""
    if name not in service.indexers:
        raise _missing(service, "indexer", name)
    if not service.start_run(name):
        # The live answer quoted in Azure-Samples/azure-search-openai-demo#1253 (409, empty code).
        raise SearchServiceError(
            409, "", "Another indexer invocation is currently in progress; concurrent invocations are not allowed."
        )
    return Response(status_code=202)


def _reset_indexer(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    name = call.key or ""
    if name not in service.indexers:
        raise _missing(service, "indexer", name)
    state = service.indexer_states.setdefault(name, IndexerState())
    state.high_water_mark = None
    state.at_mark = set()
    state.failed = set()
    from standins.search.indexer_runs import utc_now

    now = utc_now()
    state.history.insert(
        0,
        {
            "status": "reset",
            "statusDetail": None,
            "errorMessage": None,
            "startTime": now,
            "endTime": now,
            "errors": [],
            "warnings": [],
            "itemsProcessed": 0,
            "itemsFailed": 0,
            "initialTrackingState": None,
            "finalTrackingState": None,
        },
    )
    service.save_pull()
    return Response(status_code=204)


def _indexer_status(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    name = call.key or ""
    indexer = service.indexers.get(name)
    if indexer is None:
        raise _missing(service, "indexer", name)
    state = service.indexer_states.setdefault(name, IndexerState())
    return _json(
        call.request,
        status_document(name, state, indexer.disabled),
        context="$metadata#Microsoft.Azure.Search.V2026_04_01.IndexerExecutionInfo",
    )


_HANDLERS = {
    **{f"put_{k}": _put_resource(k) for k in _RESOURCE_LABELS},
    **{f"create_{k}": _create_resource(k) for k in _RESOURCE_LABELS},
    **{f"get_{k}": _get_resource(k) for k in _RESOURCE_LABELS},
    **{f"list_{k}s": _list_resources(k) for k in _RESOURCE_LABELS},
    **{f"delete_{k}": _delete_resource(k) for k in _RESOURCE_LABELS},
    "run_indexer": _run_indexer,
    "reset_indexer": _reset_indexer,
    "indexer_status": _indexer_status,
    "list_indexes": _list_indexes,
    "create_index": _create_index,
    "create_or_update_index": _create_or_update_index,
    "get_index": _get_index,
    "delete_index": _delete_index,
    "index_stats": _index_stats,
    "index": _index_documents,
    "search": _search,
    "search_get": _search_get,
    "lookup": _lookup,
    "count": _count,
}


# ------------------------------------------------------------------ running it


@contextlib.contextmanager
def serve_in_thread(
    config: SearchDoubleConfig | None = None, host: str = "127.0.0.1", port: int = 0, *, app: Starlette | None = None
) -> Iterator[str]:
    """Run the double with uvicorn in a background thread; yield its base URL.

    ``port=0`` picks a free port. Pass ``app`` (from ``create_app``) to keep a handle on
    ``app.state.service`` for fault injection and request counts.
    """
    import uvicorn

    if app is None:
        app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="search-double", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the search double did not start on {host}:{port}")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_server(config: SearchDoubleConfig, host: str = "127.0.0.1", port: int = 8090) -> None:
    """Serve the double in the foreground until interrupted (for a CLI command)."""
    import uvicorn

    uvicorn.run(create_app(config), host=host, port=port, log_level="info")


__all__ = [
    "FaultConfig",
    "RequestRecord",
    "SearchDoubleConfig",
    "SearchDoubleService",
    "create_app",
    "run_server",
    "serve_in_thread",
]
