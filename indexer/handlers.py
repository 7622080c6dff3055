"""The logic behind each Azure Function, callable without the Functions host.

``functions/function_app.py`` only unpacks the trigger's payload and calls one function here;
the local ``watch`` runner (``indexer.watch``) calls the very same functions, so what is
tested offline is what runs in Azure.

Failure policy (see ``indexer.pipeline``): a *permanent* failure (corrupt image, over a limit,
a 4xx from Vision) is recorded in the ``FailureLog`` with its reason and the handler returns
normally, so the platform does not retry what cannot succeed. A *transient* failure (429
after the client's retries, 5xx, storage or network errors) raises, so the platform retries:
the blob trigger re-runs up to ``poisonBlobThreshold`` times (``host.json``), Event Grid
redelivers a failed ``BlobDeleted`` event on its subscription's retry policy.

The settings, vectorizer, backend and clients are built once per worker process on first use
(``get_services``) and shared by every invocation in it: building them costs far more than
one image, and the clients keep their connection pools.

Events arrive at least once and in any order, so each handler acts on the blob's *current*
state rather than on the event alone: indexing a blob that is gone does nothing, and a
``BlobDeleted`` for a blob that exists again re-indexes it instead of removing it.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from indexer.backends.base import IndexBackend
from indexer.backends.schema_rules import InvalidQueryError
from indexer.errors import (ConfigurationError, IndexNotFoundError, InputLimitError, InvalidImageError,
                            ModelVersionMismatchError, ServiceError, VisionRequestError)
from indexer.failures import FAILURES_CONTAINER, BlobFailureLog, FailureLog
from indexer.filters import Condition, FilterError, parse_conditions
from indexer.keys import blob_identity, document_key
from indexer.pipeline import Outcome, index_item, remove_item
from indexer.settings import Settings
from indexer.sources.blob import BlobSource
from indexer.vectorizers import Vectorizer

log = logging.getLogger(__name__)

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
BLOB_DELETED = "Microsoft.Storage.BlobDeleted"
_SUBJECT_PREFIX = "/blobServices/default/containers/"


# --------------------------------------------------------------------------- services

@dataclass
class Services:
    """What every handler needs, built from ``Settings`` once per worker."""

    settings: Settings
    vectorizer: Vectorizer
    backend: IndexBackend
    blob_service: BlobServiceClient
    failures: FailureLog
    _sources: dict[str, BlobSource] = field(default_factory=dict, repr=False)

    def source(self, container: str) -> BlobSource:
        """The ``BlobSource`` of ``container`` with the configured size limit (cached)."""
        if container not in self._sources:
            self._sources[container] = BlobSource(self.blob_service.get_container_client(container),
                                                  max_bytes=self.settings.max_image_bytes)
        return self._sources[container]


def build_services(settings: Settings, *, vectorizer: Vectorizer | None = None,
                   backend: IndexBackend | None = None, blob_service: BlobServiceClient | None = None,
                   failures: FailureLog | None = None) -> Services:
    """Build what is not given from ``settings`` (``indexer.app`` and ``indexer.storage``)."""
    from indexer import app, storage

    blob_service = blob_service or storage.blob_service_client(settings)
    if vectorizer is None:
        try:
            vectorizer = app.build_vectorizer(settings)
        except ImportError as exc:
            raise ConfigurationError(
                f"VISION_ENDPOINT is not set and the offline model cannot be loaded here ({exc}); the "
                f"Function app ships without it: set VISION_ENDPOINT to the Azure AI Vision endpoint "
                f"(or to a local vectorizer server)") from None
    return Services(
        settings=settings,
        vectorizer=vectorizer,
        backend=backend or app.build_backend(settings),
        blob_service=blob_service,
        failures=failures or BlobFailureLog(blob_service.get_container_client(FAILURES_CONTAINER)),
    )


_services: Services | None = None
_services_lock = threading.Lock()


def get_services() -> Services:
    """The worker's shared ``Services``, built from the environment on first use."""
    global _services
    if _services is None:
        with _services_lock:
            if _services is None:
                from indexer.settings import load_settings

                _services = build_services(load_settings())
    return _services


def set_services(services: Services | None) -> None:
    """Install (or with None, forget) the shared ``Services``: for tests and the watch runner."""
    global _services
    with _services_lock:
        _services = services


# --------------------------------------------------------------------------- blob events

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
        container, _, name = subject[len(_SUBJECT_PREFIX):].partition("/blobs/")
    elif url:
        container, name = _container_and_name_from_url(url)
    else:
        container = name = ""
    if not container or not name:
        raise ValueError(f"the {event_type} event names no blob: subject={subject!r}, url={url!r}")
    return BlobEvent(event_type, container, name, url)


def _container_and_name_from_url(url: str) -> tuple[str, str]:
    """``https://<account>.blob.core.windows.net/<container>/<name>``, or the path-style
    ``http://127.0.0.1:10000/<account>/<container>/<name>`` of Azurite (an IP or localhost)."""
    parts = urlsplit(url)
    path = unquote(parts.path).lstrip("/")
    host = parts.hostname or ""
    if host == "localhost" or host.replace(".", "").isdigit() or ":" in host:
        path = path.partition("/")[2]  # drop the account segment
    container, _, name = path.partition("/")
    return container, name


def _record(outcome: Outcome, failures: FailureLog, *, etag: str = "") -> None:
    if outcome.status == "failed":
        failures.record(outcome, etag=etag)
        log.warning("not indexed, recorded as a permanent failure: %s: %s", outcome.source, outcome.reason)
    elif outcome.status in ("indexed", "deleted"):
        failures.clear(outcome.key)


def index_blob(blob_path: str, services: Services | None = None) -> Outcome | None:
    """The blob trigger: index ``container/name`` as it is now.

    Reads through ``BlobSource`` (properties first, size guard, then the bytes) rather than
    the bytes the binding delivered, so that the Function, the watch runner and backfill
    build identical documents. Returns None when the blob no longer exists (its
    ``BlobDeleted`` event removes the document). Raises on transient errors.
    """
    container, name = split_blob_path(blob_path)
    services = services or get_services()
    source = services.source(container)
    try:
        item = source.get_item(name)
        outcome = index_item(item, services.vectorizer, services.backend)
    except ResourceNotFoundError:
        log.info("blob %s/%s is gone; nothing to index", container, name)
        return None
    _record(outcome, services.failures, etag=item.etag)
    log.info("%s: %s%s", outcome.status, outcome.source, f" ({outcome.reason})" if outcome.reason else "")
    return outcome


def handle_blob_event(event_type: str, subject: str, data: Mapping[str, Any] | None,
                      services: Services | None = None) -> Outcome | None:
    """The Event Grid trigger: remove the document of a deleted blob; ignore other events.

    If the blob exists again (deleted, then uploaded again before this event arrived), the
    document is kept and brought up to date instead of removed.
    """
    if event_type != BLOB_DELETED:
        log.info("ignoring Event Grid event of type %r (only %s removes documents)", event_type, BLOB_DELETED)
        return None
    event = parse_blob_event(event_type, subject, data)
    services = services or get_services()
    if event.container != services.settings.images_container:
        # E.g. the failure records' own container in the same account, when the Event Grid
        # subscription is not filtered to the images container.
        log.info("ignoring %s for %s/%s: not the images container %r", event_type, event.container,
                 event.blob_name, services.settings.images_container)
        return None
    source = services.source(event.container)
    try:
        source.get_item(event.blob_name)
    except ResourceNotFoundError:
        key = document_key(blob_identity(event.container, event.blob_name))
        outcome = remove_item(key, event.url or source.blob_url(event.blob_name), services.backend)
        _record(outcome, services.failures)
        log.info("removed the document of %s/%s", event.container, event.blob_name)
        return outcome
    log.info("blob %s/%s exists again; keeping its document up to date instead of removing it",
             event.container, event.blob_name)
    return index_blob(f"{event.container}/{event.blob_name}", services)


# --------------------------------------------------------------------------- search

DEFAULT_K = 10
MAX_K = 1000


class BadRequest(ValueError):
    """Input the search endpoint cannot use; answered with 400 and this message."""

    def __init__(self, message: str, *, code: str = "BadRequest") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class SearchRequest:
    text: str | None = None
    image_url: str | None = None
    image: bytes | None = None
    k: int = DEFAULT_K
    threshold: float | None = None
    filters: list[Condition] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "text" if self.text is not None else "image_url" if self.image_url is not None else "image"


def _as_int(name: str, value: Any) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a whole number, got {value!r}") from None
    if not 1 <= number <= MAX_K:
        raise BadRequest(f"{name} must be between 1 and {MAX_K}, got {number}")
    return number


def _as_threshold(value: Any) -> float:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        raise BadRequest(f"threshold must be a number between -1 and 1, got {value!r}") from None
    if not -1.0 <= number <= 1.0:
        raise BadRequest(f"threshold must be a cosine similarity between -1 and 1, got {number}")
    return number


def _as_filters(value: Any) -> list[Condition]:
    if value is None or value == "":
        return []
    expressions = [value] if isinstance(value, str) else value
    if not isinstance(expressions, list) or not all(isinstance(e, str) for e in expressions):
        raise BadRequest("filter must be a string like field=value, or a list of them")
    try:
        return parse_conditions(expressions)
    except FilterError as exc:
        raise BadRequest(str(exc), code="InvalidFilter") from None


def parse_search_request(*, method: str, params: Mapping[str, str], body: bytes | None,
                         content_type: str | None) -> SearchRequest:
    """Read one query from an HTTP request.

    - ``GET ?text=...`` (or ``q``), or ``?image_url=...``; options ``k``, ``threshold``,
      ``filter`` (one ``field=value`` condition);
    - ``POST`` JSON ``{"text"|"image_url": ..., "k", "threshold", "filter": "f=v" | ["f=v", ...]}``;
    - ``POST`` the image bytes themselves (``Content-Type: image/*`` or
      ``application/octet-stream``), with the options in the query string.
    """
    method = (method or "GET").upper()
    options: dict[str, Any] = {k.lower(): v for k, v in (params or {}).items()}
    image: bytes | None = None
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if method == "POST" and body:
        if mime == "application/json" or (not mime and body.lstrip()[:1] == b"{"):
            try:
                payload = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise BadRequest(f"the body is not valid JSON: {exc}") from None
            if not isinstance(payload, dict):
                raise BadRequest("the JSON body must be an object like {\"text\": \"a cat\"}")
            options.update({str(k).lower(): v for k, v in payload.items()})
        elif mime.startswith("image/") or mime in ("application/octet-stream", ""):
            image = bytes(body)
        else:
            raise BadRequest(f"unsupported Content-Type {content_type!r}: send JSON, or the image bytes as "
                             f"image/* or application/octet-stream", code="UnsupportedMediaType")
    elif method not in ("GET", "POST"):
        raise BadRequest(f"method {method} is not supported; use GET or POST", code="MethodNotAllowed")

    text = options.get("text", options.get("q"))
    image_url = options.get("image_url", options.get("url"))
    given = [name for name, value in (("text", text), ("image_url", image_url), ("image", image))
             if value not in (None, "", b"")]
    if not given:
        raise BadRequest("give a query: text=..., image_url=..., or POST the image bytes")
    if len(given) > 1:
        raise BadRequest(f"give exactly one query, not {' and '.join(given)}")
    if text is not None and text != "" and not isinstance(text, str):
        raise BadRequest("text must be a string")
    if image_url not in (None, "") and not (isinstance(image_url, str)
                                            and image_url.lower().startswith(("http://", "https://"))):
        raise BadRequest(f"image_url must be an http(s) URL, got {image_url!r}")
    return SearchRequest(
        text=text or None,
        image_url=image_url or None,
        image=image,
        k=_as_int("k", options["k"]) if options.get("k") not in (None, "") else DEFAULT_K,
        threshold=_as_threshold(options["threshold"]) if options.get("threshold") not in (None, "") else None,
        filters=_as_filters(options.get("filter", options.get("filters"))),
    )


def run_search(request: SearchRequest, services: Services | None = None) -> dict[str, Any]:
    """Vectorize the query and search; the answer as JSON-ready data (scores are cosine)."""
    from indexer import query
    from indexer.backends.schema_rules import check_filter_fields
    from indexer.schema import load_schema

    services = services or get_services()
    if request.filters:  # refuse unknown or unfilterable fields with a message naming them
        check_filter_fields(load_schema(services.backend.get_pin().model_version), request.filters)
    common = dict(vectorizer=services.vectorizer, backend=services.backend, k=request.k,
                  threshold=request.threshold, filters=request.filters)
    if request.text is not None:
        hits = query.search_text(request.text, **common)
    elif request.image_url is not None:
        hits = query.search_image(request.image_url, **common)
    else:
        hits = query.search_image(request.image, **common)
    return {
        "query": {"kind": request.kind, "k": request.k, "threshold": request.threshold,
                  "filter": [f"{c.field} {c.op} {c.value}" for c in request.filters]},
        "count": len(hits),
        "results": [hit.to_dict() for hit in hits],
    }


def error_body(code: str, message: str) -> dict[str, Any]:
    """The Azure error shape, as the Vision and Search services answer."""
    return {"error": {"code": code, "message": message}}


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def search_http(*, method: str, params: Mapping[str, str], body: bytes | None, content_type: str | None,
                services: Services | None = None) -> HttpAnswer:
    """The HTTP search endpoint. Every answer is JSON; errors use the Azure error shape:

    - 400 bad input, naming the problem (also a query that Vision refuses with a 4xx);
      405/415 for a wrong method or body type;
    - 503 when trying again later can help: the index does not exist yet, or Vision or
      Search is throttling or failing (with ``Retry-After`` when the service gave one);
    - 500 for a configuration error (e.g. the index is pinned to another model version),
      logged with its message. Anything unexpected raises (the host answers 500 and logs it).
    """
    try:
        request = parse_search_request(method=method, params=params, body=body, content_type=content_type)
        return HttpAnswer(200, run_search(request, services))
    except BadRequest as exc:
        status = 405 if exc.code == "MethodNotAllowed" else 415 if exc.code == "UnsupportedMediaType" else 400
        return HttpAnswer(status, error_body(exc.code, str(exc)))
    except FilterError as exc:
        return HttpAnswer(400, error_body("InvalidFilter", str(exc)))
    except InvalidQueryError as exc:
        return HttpAnswer(400, error_body("InvalidQuery", str(exc)))
    except InputLimitError as exc:
        return HttpAnswer(400, error_body("InputLimitExceeded", f"{exc} (limit: {exc.limit})"))
    except InvalidImageError as exc:
        return HttpAnswer(400, error_body("InvalidImage", str(exc)))
    except VisionRequestError as exc:
        return HttpAnswer(400, error_body(exc.code or "InvalidRequest", exc.error_message))
    except IndexNotFoundError as exc:
        return HttpAnswer(503, error_body("IndexNotFound", str(exc)))
    except (ModelVersionMismatchError, ConfigurationError) as exc:
        log.error("search cannot run: %s", exc)
        return HttpAnswer(500, error_body(type(exc).__name__.replace("Error", ""), str(exc)))
    except ServiceError as exc:
        if not exc.retriable:
            raise
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after else {}
        return HttpAnswer(503, error_body("ServiceUnavailable", f"try again later: {exc.error_message}"), headers)
