"""An HTTP double of Azure AI Search for the requests imgsearch sends, so the real
``azure-search-documents`` client is what tests and local runs drive: the routes of ``_ROUTES``
with ``api-version=2026-04-01``, as strictly as the service; anything else gets one 400,
``NotSupportedByStandIn``. Every rule, with its source: ``standins/FIDELITY.md``.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from standins.search.definitions import IndexDefinition, check_update, parse_definition
from standins.search.errors import SearchServiceError, invalid_request, not_served
from standins.search.indexer_runs import IndexerState, status_document
from standins.search.pull_definitions import parse_data_source, parse_indexer, parse_skillset
from standins.search.state import FaultConfig, RequestRecord, SearchDoubleConfig, SearchDoubleService
from standins.search.store import vector_query_field
from standins.search.web_api import vectorize_text

API_VERSION = "2026-04-01"
MAX_REQUEST_BYTES = 16 * 1024 * 1024
_PATH = re.compile(
    r"^/(?P<kind>indexes|datasources|skillsets|indexers)(?:\('(?P<name>(?:[^']|'')*)'\))?(?P<rest>/.*)?$"
)
_DOCUMENT = re.compile(r"^/docs\('(?P<key>(?:[^']|'')*)'\)$")
# (method, collection, named, rest of the path) -> operation
_ROUTES = {
    ("POST", "indexes", False, ""): "create_index",  # 400 if it exists, as live
    # PUT: create (201) or update (200, or 204 without Prefer: return=representation)
    ("PUT", "indexes", True, ""): "create_or_update_index",
    ("GET", "indexes", True, ""): "get_index",
    ("DELETE", "indexes", True, ""): "delete_index",
    ("POST", "indexes", True, "/docs/search.index"): "index",
    ("POST", "indexes", True, "/docs/search.post.search"): "search",
    ("GET", "indexes", True, "/docs/$count"): "count",
    ("GET", "indexes", True, "/docs()"): "lookup",
    ("PUT", "datasources", True, ""): "put_datasources",
    ("PUT", "skillsets", True, ""): "put_skillsets",
    ("PUT", "indexers", True, ""): "put_indexers",
    ("POST", "indexers", True, "/search.run"): "run_indexer",
    ("POST", "indexers", True, "/search.reset"): "reset_indexer",
    ("GET", "indexers", True, "/search.status"): "indexer_status",
}


@dataclass
class _Call:
    request: Request
    operation: str = "unknown"
    index: str | None = None  # the index a request addresses (for the request log and faults)
    name: str = ""  # the index, data source, skillset or indexer in the path
    key: str = ""
    api_version: str | None = None
    body_bytes: int = 0
    actions: int = 0


def _route(call: _Call) -> None:
    request = call.request
    match = _PATH.match(request.url.path)
    rest = (match["rest"] or "") if match else ""
    document = _DOCUMENT.match(rest)
    shape = (
        (request.method, match["kind"], match["name"] is not None, "/docs()" if document else rest) if match else None
    )
    if shape not in _ROUTES or match is None:
        raise not_served(f"{request.method} {request.url.path}")
    call.operation = _ROUTES[shape]
    call.name = (match["name"] or "").replace("''", "'")
    call.index = call.name if match["kind"] == "indexes" and call.name else None
    call.key = document["key"].replace("''", "'") if document else ""


def _check_request(call: _Call, config: SearchDoubleConfig) -> None:
    """``api-version``, no preconditions, and the caller's key or token."""
    headers = call.request.headers
    call.api_version = call.request.query_params.get("api-version")
    if not call.api_version:
        raise SearchServiceError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if call.api_version != API_VERSION:
        raise not_served(f"api-version '{call.api_version}' (imgsearch's SDK speaks {API_VERSION})")
    if "if-match" in headers or "if-none-match" in headers:
        raise not_served("conditional requests (If-Match, If-None-Match)")
    if not (config.admin_keys or config.bearer_tokens):
        return
    key, authorization = headers.get("api-key"), headers.get("authorization", "")
    if key is not None:
        if key not in config.admin_keys:
            raise SearchServiceError(403, "Forbidden", "The api-key is not valid for this search service.")
    elif authorization.lower().startswith("bearer "):
        if authorization[7:].strip() not in config.bearer_tokens:
            raise SearchServiceError(
                401,
                "Unauthorized",
                "The bearer token is not valid for this search service.",
                headers={"WWW-Authenticate": 'Bearer authorization_uri="", error="invalid_token"'},
            )
    else:
        raise SearchServiceError(
            401,
            "Unauthorized",
            "Credentials are missing: send an 'api-key' header or an 'Authorization: Bearer' token.",
        )


def _json(call: _Call, payload: dict[str, Any], *, status: int = 200, context: str = "", etag: str = "") -> Response:
    """A JSON answer, with ``@odata.context`` unless the client asked for ``odata.metadata=none``
    (as the SDK does for document operations), which drops the ``@odata.*`` control information."""
    if "odata.metadata=none" in call.request.headers.get("accept", "").replace(" ", "").lower():
        payload = {k: v for k, v in payload.items() if not k.startswith("@odata.")}
    elif context:
        payload = {"@odata.context": f"{str(call.request.base_url).rstrip('/')}/{context}", **payload}
    return JSONResponse(payload, status_code=status, headers={"ETag": etag} if etag else None)


def _parse_json(body: bytes, parameter: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        problem = "is empty" if not body else f"is not valid JSON ({exc})"
        raise invalid_request(parameter, f"The request body {problem}.", detail_code="InvalidRequestBody") from None


# ------------------------------------------------------------------ indexes and documents

Handler = Callable[[SearchDoubleService, _Call, bytes], Response]


def _index_answer(call: _Call, definition: IndexDefinition, status: int) -> Response:
    payload = {"@odata.etag": definition.etag, **definition.document}
    return _json(call, payload, status=status, context="$metadata#indexes/$entity", etag=definition.etag)


def _create_index(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    definition = parse_definition(_parse_json(body, "definition"))
    call.index = definition.name
    if definition.name in service.indexes:
        # 400, not 409: the live answer quoted in azure-sdk-for-net#38026.
        message = f"Cannot create index '{definition.name}' because it already exists."
        details = [{"code": "CannotCreateExistingIndex", "message": message}]
        raise SearchServiceError(400, "ResourceNameAlreadyInUse", message, details=details)
    definition.etag = service.next_etag()
    service.indexes[definition.name] = service.new_store(definition)
    service.save(definition.name)
    return _index_answer(call, definition, 201)


def _create_or_update_index(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    definition = parse_definition(_parse_json(body, "definition"), name=call.name)
    definition.etag = service.next_etag()
    existing = service.indexes.get(call.name)
    if existing is None:
        service.indexes[call.name] = service.new_store(definition)
    else:
        check_update(existing.definition, definition)
        existing.replace_definition(definition)
    service.save(call.name)
    if existing is not None and "return=representation" not in call.request.headers.get("prefer", ""):
        return Response(status_code=204, headers={"ETag": definition.etag})
    return _index_answer(call, definition, 200 if existing else 201)


def _get_index(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    return _index_answer(call, service.store(call.name).definition, 200)


def _delete_index(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    service.store(call.name)
    del service.indexes[call.name]
    service.save(call.name)
    return Response(status_code=204)


def _index_documents(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    store = service.store(call.name)
    if len(body) > MAX_REQUEST_BYTES:
        raise SearchServiceError(
            413,
            "RequestEntityTooLarge",
            f"The request is too large: {len(body):,} bytes; the limit is {MAX_REQUEST_BYTES:,} bytes (16 MB). "
            f"Send fewer or smaller documents per batch.",
        )
    payload = _parse_json(body, "actions")
    if isinstance(payload, dict) and isinstance(payload.get("value"), list):
        call.actions = len(payload["value"])
    parsed = store.validate_batch(payload, max_actions=service.config.max_batch_actions, api_version=API_VERSION)
    results = store.apply(parsed, service.fault_state(call.name).document_fault)
    service.save(call.name)
    return _json(call, {"value": results}, status=200 if all(r["status"] for r in results) else 207)


def _search(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    rows = service.store(call.name).search(_parse_json(body, "parameters"))
    return _json(call, {"value": rows}, context=f"indexes('{call.name}')/$metadata#docs(*)")


def _lookup(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    document = service.store(call.name).lookup(call.key, call.request.query_params.get("$select"))
    if document is None:
        # No body: no public live answer shows one, so no client may rely on a code or text here
        # (an assumption; see FIDELITY.md). The status alone says the document is not there.
        return Response(status_code=404)
    return _json(call, document, context=f"indexes('{call.name}')/$metadata#docs(*)/$entity")


def _count(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    return PlainTextResponse(str(service.store(call.name).count()))


async def _vectorize_queries(service: SearchDoubleService, call: _Call, body: bytes) -> bytes:
    """Replace a ``text`` vector query by the ``vector`` query its field's Web API vectorizer
    answers, outside the lock (a remote call); anything malformed is left for the search to refuse."""
    try:
        payload = json.loads(body)
        query = payload["vectorQueries"][0]
    except (ValueError, UnicodeDecodeError, LookupError, TypeError):
        return body
    if not isinstance(query, dict) or query.get("kind") != "text":
        return body
    with service.lock:
        definition = service.store(call.name).definition
    spec = vector_query_field(query, definition)
    target = definition.vectorizers[spec.vectorizer or ""]  # (vector_query_field refuses a field without one)
    log = service.web_api_calls.append
    vector = await run_in_threadpool(vectorize_text, target, query["text"], spec.dimensions, log)
    del query["text"]
    query.update(kind="vector", vector=vector)
    return json.dumps(payload).encode("utf-8")


# ------------------------------------------------------------------ data sources, skillsets, indexers


def _put_resource(kind: str) -> Handler:
    def handler(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
        definition = _parse_json(body, "definition")
        registries: dict[str, dict[str, Any]] = {
            "datasources": service.data_sources,
            "skillsets": service.skillsets,
            "indexers": service.indexers,
        }
        registry = registries[kind]
        if kind == "datasources":
            resource: Any = parse_data_source(definition, name=call.name)
        elif kind == "skillsets":
            resource = parse_skillset(definition, name=call.name)
        else:
            resource = parse_indexer(
                definition,
                name=call.name,
                data_sources=service.data_sources,
                skillsets=service.skillsets,
                index_fields=service.index_fields,
            )
        existing = registry.get(call.name)
        resource.etag = service.next_etag()
        registry[call.name] = resource
        if kind == "indexers":
            service.schedule(call.name)
            if existing is None:
                service.start_run(call.name)  # "indexers run immediately when you create them"
        service.save_pull()
        if existing is not None and "return=representation" not in call.request.headers.get("prefer", ""):
            return Response(status_code=204, headers={"ETag": resource.etag})
        payload = {"@odata.etag": resource.etag, **resource.document}
        context = f"$metadata#{kind}/$entity"
        return _json(call, payload, status=201 if existing is None else 200, context=context, etag=resource.etag)

    return handler


def _indexer_state(service: SearchDoubleService, call: _Call) -> IndexerState:
    if call.name not in service.indexers:  # worded as a missing index is (D16): an assumption
        message = f"The indexer '{call.name}' for service '{service.config.service_name}' was not found."
        raise SearchServiceError(404, "", message)
    return service.indexer_states.setdefault(call.name, IndexerState())


def _run_indexer(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    _indexer_state(service, call)
    if not service.start_run(call.name):
        # The live answer quoted in Azure-Samples/azure-search-openai-demo#1253 (409, empty code).
        message = "Another indexer invocation is currently in progress; concurrent invocations are not allowed."
        raise SearchServiceError(409, "", message)
    return Response(status_code=202)


def _reset_indexer(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    state = _indexer_state(service, call)
    state.high_water_mark, state.at_mark, state.failed = None, set(), set()
    state.record("reset")
    service.save_pull()
    return Response(status_code=204)


def _indexer_status(service: SearchDoubleService, call: _Call, body: bytes) -> Response:
    document = status_document(call.name, _indexer_state(service, call))
    return _json(call, document, context="$metadata#Microsoft.Azure.Search.V2026_04_01.IndexerExecutionInfo")


_HANDLERS: dict[str, Handler] = {
    "create_index": _create_index,
    "create_or_update_index": _create_or_update_index,
    "get_index": _get_index,
    "delete_index": _delete_index,
    "index": _index_documents,
    "search": _search,
    "lookup": _lookup,
    "count": _count,
    "put_datasources": _put_resource("datasources"),
    "put_skillsets": _put_resource("skillsets"),
    "put_indexers": _put_resource("indexers"),
    "run_indexer": _run_indexer,
    "reset_indexer": _reset_indexer,
    "indexer_status": _indexer_status,
}


# ------------------------------------------------------------------ the app


def create_app(config: SearchDoubleConfig | None = None) -> Starlette:
    """The ASGI app; ``app.state.service`` is the ``SearchDoubleService`` behind it."""
    config = config or SearchDoubleConfig()
    service = SearchDoubleService(config)

    async def endpoint(request: Request) -> Response:
        call = _Call(request)
        started = time.perf_counter()
        try:
            _route(call)
            _check_request(call, config)
            body = await request.body()
            call.body_bytes = len(body)
            if call.operation == "search":
                body = await _vectorize_queries(service, call, body)
            with service.lock:
                injected = service.fault_state(call.index).request_fault(call.operation) if call.index else None
                if injected is not None and call.index is not None:
                    retry_after = service.fault_state(call.index).faults.retry_after_seconds
                    raise SearchServiceError(
                        injected,
                        "ServiceUnavailable" if injected == 503 else "TooManyRequests",
                        "The service is temporarily unable to process the request (injected fault); try again later.",
                        headers={} if retry_after is None else {"Retry-After": f"{retry_after:g}"},
                    )
                response = _HANDLERS[call.operation](service, call, body)
        except SearchServiceError as error:
            response = JSONResponse(error.body(), status_code=error.status, headers=error.headers)
        response.headers["request-id"] = str(uuid.uuid4())
        response.headers["elapsed-time"] = str(int((time.perf_counter() - started) * 1000))
        response.headers["OData-Version"] = "4.0"
        record = RequestRecord(
            request.method,
            request.url.path,
            call.operation,
            call.index,
            response.status_code,
            call.actions,
            call.body_bytes,
            call.api_version,
        )
        with service.lock:
            service.requests.append(record)
        return response

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])
    app.state.service = service
    return app


@contextlib.contextmanager
def serve_in_thread(
    config: SearchDoubleConfig | None = None, host: str = "127.0.0.1", port: int = 0, *, app: Any = None
) -> Iterator[str]:
    """Run the double (or ``app``, e.g. ``create_app``'s wrapped in middleware) with uvicorn in a
    background thread; yield its base URL. ``port=0`` picks a free port."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app or create_app(config), host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
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
