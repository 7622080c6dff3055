"""The Function app's HTTP endpoints: parse a request, do the work, answer.

``search_http`` (``/api/search``: a query by text, image URL, image bytes or an indexed
document), ``info_http`` (``/api/info``: the index's pin, size and filterable fields),
``thumbnail_http`` (``/api/thumbnail``: a small JPEG read through the app's own access to the
images, never a key in the browser) and ``page_http`` (the search page). The Function app and
``imgsearch serve`` hand them the request's parts; errors become Azure-shaped JSON answers with
the status ``errors.classify`` gives, as the CLI's exit codes do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer import query
from indexer.base64_image import decode_base64_image
from indexer.entrypoints.document_images import (
    DEFAULT_THUMBNAIL_SIDE,
    THUMBNAIL_SIDES,
    find_document_image,
    read_document_image,
    thumbnail,
)
from indexer.entrypoints.json_body import load_json, unicode_problem
from indexer.errors import BadRequest, InputLimitError, ServiceError, classify, describe
from indexer.filters import Condition, parse_conditions
from indexer.redact import redact_urls
from indexer.services import Services, get_services

log = logging.getLogger(__name__)

DEFAULT_K = 10
MAX_K = 1000


@dataclass
class SearchRequest:
    text: str | None = None
    image_url: str | None = None
    image: bytes | None = None
    like: str | None = None  # the key of an indexed document: "more like this"
    k: int = DEFAULT_K
    threshold: float | None = None
    filters: list[Condition] = field(default_factory=list)

    @property
    def kind(self) -> str:
        if self.text is not None:
            return "text"
        if self.image_url is not None:
            return "image_url"
        return "like" if self.like is not None else "image"


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
    return parse_conditions(expressions)


def parse_search_request(
    *, method: str, params: Mapping[str, str], body: bytes | None, content_type: str | None
) -> SearchRequest:
    """Read one query from an HTTP request.

    - ``GET ?text=...`` (or ``q``), or ``?image_url=...``; options ``k``, ``threshold``,
      ``filter`` (one ``field=value`` condition);
    - ``POST`` JSON ``{"text"|"image_url": ..., "k", "threshold", "filter": "f=v" | ["f=v", ...]}``;
    - ``POST`` the image bytes themselves (``Content-Type: image/*`` or
      ``application/octet-stream``), with the options in the query string.
    """
    method = (method or "GET").upper()
    options: dict[str, Any] = {k.lower(): v for k, v in (params or {}).items()}
    invalid = unicode_problem(options, "the query string")
    if invalid:
        raise BadRequest(invalid)
    image: bytes | None = None
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if method == "POST" and body:
        if mime == "application/json" or (not mime and body.lstrip()[:1] == b"{"):
            payload = load_json(body)
            if not isinstance(payload, dict):
                raise BadRequest('the JSON body must be an object like {"text": "a cat"}')
            invalid = unicode_problem(payload)
            if invalid:
                raise BadRequest(invalid)
            options.update({str(k).lower(): v for k, v in payload.items()})
        elif mime.startswith("image/") or mime in ("application/octet-stream", ""):
            image = bytes(body)
        else:
            raise BadRequest(
                f"unsupported Content-Type {content_type!r}: send JSON, or the image bytes as "
                f"image/* or application/octet-stream",
                code="UnsupportedMediaType",
                status=415,
            )
    elif method not in ("GET", "POST"):
        raise BadRequest(f"method {method} is not supported; use GET or POST", code="MethodNotAllowed", status=405)

    text = options.get("text", options.get("q"))
    image_url = options.get("image_url", options.get("url"))
    like = options.get("like")
    if image is None and options.get("image") not in (None, ""):
        image = decode_base64_image(options["image"], what="image")  # as a browser sends a dropped file
    given = [
        name
        for name, value in (("text", text), ("image_url", image_url), ("image", image), ("like", like))
        if value not in (None, "", b"")
    ]
    if not given:
        raise BadRequest("give a query: text=..., image_url=..., like=<document key>, or POST the image bytes")
    if len(given) > 1:
        raise BadRequest(f"give exactly one query, not {' and '.join(given)}")
    if text is not None and text != "" and not isinstance(text, str):
        raise BadRequest("text must be a string")
    if image_url not in (None, "") and not (
        isinstance(image_url, str) and image_url.lower().startswith(("http://", "https://"))
    ):
        raise BadRequest(f"image_url must be an http(s) URL, got {image_url!r}")
    if like not in (None, "") and not isinstance(like, str):
        raise BadRequest("like must be the key of an indexed document")
    return SearchRequest(
        text=text or None,
        image_url=image_url or None,
        image=image,
        like=like or None,
        k=_as_int("k", options["k"]) if options.get("k") not in (None, "") else DEFAULT_K,
        threshold=_as_threshold(options["threshold"]) if options.get("threshold") not in (None, "") else None,
        filters=_as_filters(options.get("filter", options.get("filters"))),
    )


def run_search(request: SearchRequest, services: Services) -> dict[str, Any]:
    """Vectorize the query and search; the answer as JSON-ready data (scores are cosine)."""
    common: dict[str, Any] = dict(
        vectorizer=services.vectorizer,
        backend=services.backend,
        k=request.k,
        threshold=request.threshold,
        filters=request.filters,
    )
    if request.text is not None:
        hits = query.search_text(request.text, **common)
    elif request.image_url is not None:
        hits = query.search_image(request.image_url, **common)
    elif request.like is not None:
        # The result's own image, read where it was indexed from; itself is left out.
        liked = read_document_image(request.like, services)
        common["k"] = min(request.k + 1, MAX_K)
        hits = [hit for hit in query.search_image(liked.data, **common) if hit.key != request.like][: request.k]
    else:
        hits = query.search_image(request.image or b"", **common)
    return {
        "query": {
            "kind": request.kind,
            "k": request.k,
            "threshold": request.threshold,
            "filter": [f"{c.field} {c.op} {c.value}" for c in request.filters],
        },
        "count": len(hits),
        "results": [hit.to_dict() for hit in hits],
    }


def error_body(code: str, message: str) -> dict[str, Any]:
    """The Azure error shape, as the Vision and Search services answer."""
    return {"error": {"code": code, "message": message}}


@dataclass(frozen=True)
class HttpAnswer:
    """An answer: JSON ``body``, or ``content`` bytes of ``media_type`` (a thumbnail, the page)."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    media_type: str = "application/json"

    def payload(self) -> bytes:
        if self.content is not None:
            return self.content
        try:
            return json.dumps(self.body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate echoed back (a recordId): \u escapes are still JSON
            return json.dumps(self.body).encode("ascii")


def search_http(
    *,
    method: str,
    params: Mapping[str, str],
    body: bytes | None,
    content_type: str | None,
    services: Services | None = None,
) -> HttpAnswer:
    """The HTTP search endpoint. Every answer is JSON; errors use the Azure error shape, with
    the status ``errors.classify`` gives:

    - 400 bad input, naming the problem (also a query that Vision refuses with a 4xx);
      405/415 for a wrong method or body type;
    - 503 when trying again later can help: the index does not exist yet, or Vision or
      Search is throttling or failing (with ``Retry-After`` when the service gave one);
    - 500 for a configuration error (e.g. the index is pinned to another model version) or a
      refusal, logged with its message. A bug raises (the host answers 500 and logs it).
    """
    try:
        request = parse_search_request(method=method, params=params, body=body, content_type=content_type)
        return HttpAnswer(200, run_search(request, services or get_services()))
    except Exception as exc:  # noqa: BLE001 - error_answer re-raises what is no expected error
        return error_answer(exc, "search")


def error_answer(exc: BaseException, what: str, *, retry_after_default: float | None = None) -> HttpAnswer:
    """The Azure-shaped JSON answer for an error, with the status ``errors.classify`` gives;
    a bug raises (the host answers 500 and logs it). ``retry_after_default`` is sent as
    ``Retry-After`` when trying again can help and the service named no wait of its own."""
    kind = classify(exc)
    if kind.kind == "bug":
        raise exc
    headers: dict[str, str] = {}
    message = str(exc)
    if isinstance(exc, InputLimitError):
        message = f"{exc} (limit: {exc.limit})"
    elif isinstance(exc, ServiceError):
        message = exc.error_message
    message = redact_urls(message)  # a caller's image URL may carry a SAS token
    if kind.retriable:
        message = f"try again later: {message}"
        retry_after = getattr(exc, "retry_after", None) or retry_after_default
        if retry_after:
            headers["Retry-After"] = str(max(1, round(retry_after)))
    if kind.http_status >= 500:
        log.error("%s cannot run: %s", what, redact_urls(describe(exc)))
    return HttpAnswer(kind.http_status, error_body(kind.code, message), headers)


def info_http(services: Services | None = None) -> HttpAnswer:
    """What the search page shows and offers: the pin, the document count, and the fields it
    can filter on with their types (``{"documents": 0}`` is the empty index's state)."""
    try:
        services = services or get_services()
        pin = services.backend.get_pin()
        schema = services.backend.schema
        filterable = [{"name": name, "type": schema.fields[name]["type"]} for name in schema.filter_fields]
        body = {
            "model_version": pin.model_version,
            "dimensions": pin.dimensions,
            "documents": services.backend.count(),
            "filterable": filterable,
        }
        return HttpAnswer(200, body, {"Cache-Control": "no-store"})
    except Exception as exc:  # noqa: BLE001 - error_answer re-raises what is no expected error
        return error_answer(exc, "info")


def thumbnail_http(
    params: Mapping[str, str], *, if_none_match: str | None = None, services: Services | None = None
) -> HttpAnswer:
    """A JPEG of the indexed image ``key``, at most ``size`` pixels a side (64 to 1024). The
    ETag is the image's content hash, so a browser keeps it until the image changes."""
    try:
        key = params.get("key") or ""
        if not key:
            raise BadRequest("give the document key: ?key=...")
        low, high = THUMBNAIL_SIDES
        try:
            size = int(str(params.get("size") or DEFAULT_THUMBNAIL_SIDE).strip())
        except ValueError:
            raise BadRequest(f"size must be a whole number of pixels, got {params.get('size')!r}") from None
        if not low <= size <= high:
            raise BadRequest(f"size must be between {low} and {high} pixels, got {size}")
        found = find_document_image(key, services or get_services())
        etag = f'"{found.content_hash.removeprefix("sha256:")[:32]}-{size}"'
        # private: the answer sits behind the app's key or sign-in, so no shared cache keeps it
        headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
        # The ETag comes from the index: a browser that holds this version costs no read of the image.
        if if_none_match and etag in if_none_match:
            return HttpAnswer(304, None, headers, content=b"", media_type="image/jpeg")
        return HttpAnswer(200, None, headers, content=thumbnail(found.load(), size), media_type="image/jpeg")
    except Exception as exc:  # noqa: BLE001 - error_answer re-raises what is no expected error
        return error_answer(exc, "thumbnail")


def page_http() -> HttpAnswer:
    """The search page (``indexer/entrypoints/search_page.html``)."""
    page = Path(__file__).with_name("search_page.html").read_bytes()
    headers = {
        "Cache-Control": "no-cache",
        # Everything the page needs is in this file and on this origin.
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
    }
    return HttpAnswer(200, None, headers, content=page, media_type="text/html; charset=utf-8")
