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
import itertools
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
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
from standins.search.store import IndexStore

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
        if config.data_dir is not None:
            self._load(Path(config.data_dir))

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


def _resolve(method: str, path: str) -> tuple[str, str | None, str | None]:
    """(operation, index name, document key) for a path, or SearchServiceError 404/405."""
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


_HANDLERS = {
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
