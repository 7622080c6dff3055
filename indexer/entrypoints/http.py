"""The Function app's HTTP search endpoint: parse a request, run the query, answer JSON.

``functions/function_app.py`` hands it the request's parts; errors become Azure-shaped JSON
answers with the status ``errors.classify`` gives, so the CLI and this endpoint agree on
what is the caller's fault and what is worth retrying.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from indexer import query
from indexer.entrypoints.functions import get_services
from indexer.errors import BadRequest, InputLimitError, ServiceError, classify, describe
from indexer.filters import Condition, parse_conditions
from indexer.services import Services

log = logging.getLogger(__name__)

DEFAULT_K = 10
MAX_K = 1000


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
    image: bytes | None = None
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if method == "POST" and body:
        if mime == "application/json" or (not mime and body.lstrip()[:1] == b"{"):
            try:
                payload = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise BadRequest(f"the body is not valid JSON: {exc}") from None
            if not isinstance(payload, dict):
                raise BadRequest('the JSON body must be an object like {"text": "a cat"}')
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
    given = [
        name
        for name, value in (("text", text), ("image_url", image_url), ("image", image))
        if value not in (None, "", b"")
    ]
    if not given:
        raise BadRequest("give a query: text=..., image_url=..., or POST the image bytes")
    if len(given) > 1:
        raise BadRequest(f"give exactly one query, not {' and '.join(given)}")
    if text is not None and text != "" and not isinstance(text, str):
        raise BadRequest("text must be a string")
    if image_url not in (None, "") and not (
        isinstance(image_url, str) and image_url.lower().startswith(("http://", "https://"))
    ):
        raise BadRequest(f"image_url must be an http(s) URL, got {image_url!r}")
    return SearchRequest(
        text=text or None,
        image_url=image_url or None,
        image=image,
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
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


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
    except Exception as exc:
        kind = classify(exc)
        if kind.kind == "bug":
            raise
        headers: dict[str, str] = {}
        message = str(exc)
        if isinstance(exc, InputLimitError):
            message = f"{exc} (limit: {exc.limit})"
        elif isinstance(exc, ServiceError):
            message = exc.error_message
        if kind.retriable:
            message = f"try again later: {message}"
            retry_after = getattr(exc, "retry_after", None)
            if retry_after:
                headers["Retry-After"] = str(max(1, round(retry_after)))
        if kind.http_status >= 500:
            log.error("search cannot run: %s", describe(exc))
        return HttpAnswer(kind.http_status, error_body(kind.code, message), headers)
