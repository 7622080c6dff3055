"""``POST /api/vectorize``: Azure AI Search's custom Web API interface, for its custom skill
(``WebApiSkill``, indexing) and its Web API vectorizer (``WebApiVectorizer``, queries).

Each record is read, vectorized, checked against the pin and answered on its own
(``vectorize_record``): a record's own fault is an error on that record, what a retry can fix
a 503 for the whole call, a pin mismatch a failure of the whole call, and records still running
at ``TIME_BUDGET_SECONDS`` an error each. (behaviour: README, "The vectorize endpoint"; sources
and design: docs/design.md#the-vectorize-endpoint)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from indexer.base64_image import decode_base64_image
from indexer.documents import Embedding, IndexPin
from indexer.entrypoints.http import HttpAnswer, error_answer
from indexer.entrypoints.json_body import load_json, unicode_problem
from indexer.errors import (
    BadRequest,
    InputLimitError,
    InvalidInputError,
    ServiceError,
    classify,
)
from indexer.indexing.pipeline import prepare
from indexer.keys import blob_url_parts
from indexer.redact import redact_urls
from indexer.services import Services, get_services
from indexer.sources.base import ImageItem
from indexer.sources.blob import iso_utc, parse_tags

log = logging.getLogger(__name__)

MAX_RECORDS = 1000  # the documented default (and this endpoint's most) records per call
TIME_BUDGET_SECONDS = 25.0  # answer within the caller's default 30 s timeout, with room to send it
# The inputs a record may carry, one of them: WebApiVectorizer's three, and a skill's image forms.
INPUTS = ("text", "imageUrl", "imageBinary", "image", "file_data")
# What a skill may pass beside the image to get the document's fields (schemas/skillset.json).
BLOB_INPUTS = ("blobUrl", "tags", "lastModified", "contentType", "sizeBytes")


class RecordError(InvalidInputError):
    """A problem with one record's input that no call to a service was needed to find."""

    error_code = "InvalidRecord"


@dataclass
class _Result:
    data: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def answer(self, record_id: str) -> dict[str, Any]:
        return {
            "recordId": record_id,
            "data": self.data,
            "errors": [{"message": m} for m in self.errors] or None,
            "warnings": [{"message": m} for m in self.warnings] or None,
        }


# --------------------------------------------------------------------------- the request


def parse_request(body: bytes | None, content_type: str | None) -> list[tuple[str, Any]]:
    """``(recordId, data)`` of each record. A request that is not this contract at all is a
    ``BadRequest`` (400); a record's own problems are its errors, found later."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime and mime != "application/json":
        raise BadRequest(
            f"unsupported Content-Type {content_type!r}: send application/json", code="UnsupportedMediaType", status=415
        )
    payload = load_json(body)
    values = payload.get("values") if isinstance(payload, dict) else None
    if not isinstance(values, list):
        raise BadRequest('the body must be {"values": [{"recordId": "...", "data": {...}}, ...]}')
    if len(values) > MAX_RECORDS:
        raise BadRequest(f"{len(values)} records in one call; send at most {MAX_RECORDS} (the skill's batchSize)")
    records: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for position, value in enumerate(values):
        record_id = value.get("recordId") if isinstance(value, dict) else None
        if not isinstance(record_id, str) or not record_id:
            raise BadRequest(f"record {position} has no recordId (a non-empty string)")
        if record_id in seen:
            raise BadRequest(f"the recordId {record_id!r} is used twice; each record's id must be unique")
        seen.add(record_id)
        records.append((record_id, value.get("data")))
    return records


# --------------------------------------------------------------------------- one record


def _file_reference(value: Any, name: str) -> bytes | str:
    """The bytes of an image object (``{"data": <base64>, ...}``), or the URL to fetch it from
    (``{"$type": "file", "url", "sasToken"}``)."""
    if not isinstance(value, Mapping):
        raise RecordError(f"the input '{name}' must be an object with 'data' (Base64), as the service sends images")
    kind = value.get("$type")
    if kind not in (None, "file"):
        raise RecordError(f"the input '{name}' has $type {kind!r}; a file reference has $type 'file'")
    if value.get("data") is not None:
        return decode_base64_image(value.get("data"), what=f"the input '{name}' (data)")
    url = value.get("url")
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
        sas = value.get("sasToken")
        if isinstance(sas, str) and sas:
            url = f"{url}{'&' if '?' in url else '?'}{sas.lstrip('?')}"
        return url
    raise RecordError(f"the input '{name}' has neither 'data' (Base64) nor an http(s) 'url'")


def _the_input(data: Mapping[str, Any]) -> tuple[str, Any]:
    given = [name for name in INPUTS if data.get(name) not in (None, "")]
    if not given:
        raise RecordError(f"the record has no input: give one of {', '.join(INPUTS)}")
    if len(given) > 1:
        raise RecordError(f"the record has {' and '.join(given)}; give exactly one input")
    return given[0], data[given[0]]


def _iso(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return iso_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _blob_fields(data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The blob's URL and the fields the push path reads from the blob's properties
    (``indexer.sources.blob``), from what the indexer passed as skill inputs."""
    url = data.get("blobUrl")
    if not isinstance(url, str):
        raise RecordError("the input 'blobUrl' must be a string: the blob's URL (metadata_storage_path)")
    try:
        container, name = blob_url_parts(url)
    except ValueError:  # urlsplit: "Invalid IPv6 URL"
        container, name = "", ""
    if not name:
        raise RecordError(f"the input 'blobUrl' names no blob: {url!r}")
    fields: dict[str, Any] = {"container": container, "blob_path": name, "file_name": name.rsplit("/", 1)[-1]}
    declared = data.get("contentType")
    if isinstance(declared, str) and declared.lower().startswith("image/"):
        fields["content_type"] = declared
    last_modified = _iso(data.get("lastModified"))
    if last_modified:
        fields["last_modified"] = last_modified
    tags = parse_tags(data.get("tags") if isinstance(data.get("tags"), str) else None)
    if tags:
        fields["tags"] = tags
    return url, fields


def _vector_data(embedding: Embedding) -> dict[str, Any]:
    return {"vector": embedding.vector.astype(float).tolist(), "model_version": embedding.model_version}


def vectorize_record(data: Any, services: Services, pin: IndexPin) -> _Result:
    """Answer one record (see the module doc). Raises what is not the record's own fault."""
    if not isinstance(data, Mapping):
        raise RecordError("the record's data must be an object")
    result = _Result()
    unknown = sorted(set(data) - set(INPUTS) - set(BLOB_INPUTS))
    if unknown:
        result.warnings.append(f"ignored the input(s) {', '.join(unknown)}")
    name, value = _the_input(data)
    vectorizer = services.vectorizer
    if name == "text":
        if not isinstance(value, str):
            raise RecordError("the input 'text' must be a string")
        embedding = vectorizer.vectorize_text(value)
    elif name == "imageUrl":
        if not isinstance(value, str) or not value.lower().startswith(("https://", "http://")):
            raise RecordError("the input 'imageUrl' must be an http(s) URL")
        embedding = vectorizer.vectorize_image_url(value)
    else:
        image = _file_reference(value, name)
        if isinstance(image, str):
            embedding = vectorizer.vectorize_image_url(image)
        else:
            result = _image_document(image, data, services, pin, result)
            if name == "image" and data.get("blobUrl") and result.data is not None:
                _describe_the_original(result.data, value, data)
            return result
    pin.check(embedding, action=f"vectorize the record's {name}")
    result.data = _vector_data(embedding)
    return result


def _image_document(
    image: bytes, data: Mapping[str, Any], services: Services, pin: IndexPin, result: _Result
) -> _Result:
    """An image's vector and the document fields the push path writes for it."""
    url, fields = _blob_fields(data) if data.get("blobUrl") else ("", {})
    item = ImageItem(identity=url, source=url, read=lambda: image, fields=fields)
    prepared = prepare(item, services.vectorizer, pin, force=True)  # checks the pin
    if prepared.document is None:
        raise RecordError(prepared.outcome.reason)
    document = prepared.document
    document_fields = dict(document.fields)
    if url:
        # Every field of the index, null where the blob has none (no tags, say): the indexer merges
        # what it gets into the document, so a value the blob lost must be sent as null to go, as
        # the push path's upload replaces the whole document.
        document_fields = {name: document_fields.get(name) for name in services.backend.schema.metadata_fields}
    else:  # no blob: only what the image itself says
        document_fields = {k: v for k, v in document_fields.items() if k != "source"}
    result.data = {**_vector_data(document.embedding), **document_fields}
    return result


def _describe_the_original(fields: dict[str, Any], image: Mapping[str, Any], data: Mapping[str, Any]) -> None:
    """A normalized image (pull mode's skill input) is the service's JPEG re-encoding of the blob,
    at most 2000 x 2000: the document describes the blob as the push path does, with its original
    size (``originalWidth``/``originalHeight``), its byte count (``sizeBytes``, the blob's
    ``metadata_storage_size``) and its declared image type. ``content_hash`` stays the hash of the
    bytes vectorized, which are not the blob's."""
    for field_name, key in (("width", "originalWidth"), ("height", "originalHeight"), ("size_bytes", "sizeBytes")):
        original = image.get(key) if key != "sizeBytes" else data.get(key)
        if isinstance(original, int) and not isinstance(original, bool) and original > 0:
            fields[field_name] = original
    declared = data.get("contentType")
    if isinstance(declared, str) and declared.lower().startswith("image/"):
        fields["content_type"] = declared


# --------------------------------------------------------------------------- the batch


def _record_error(exc: BaseException) -> str:
    """The message a record's error carries; it lands in the indexer's execution history, so a
    URL in it loses its query string (a SAS token, ``sasToken`` appended to ``file_data.url``)."""
    if isinstance(exc, InputLimitError):
        message = f"{exc} (limit: {exc.limit})"
    elif isinstance(exc, ServiceError):
        message = f"({exc.code}) {exc.error_message}"
    else:
        message = str(exc)
    return redact_urls(message)


def _invalid_unicode(record_id: str, data: Any) -> str | None:
    """Why a record's id or data cannot be read as text (a lone surrogate), or None. Such a
    record is answered with this error and never vectorized; the rest of the batch goes on."""
    return unicode_problem(record_id, "the recordId") or unicode_problem(data, "the record's data")


def vectorize_records(
    records: list[tuple[str, Any]],
    services: Services,
    *,
    budget_seconds: float = TIME_BUDGET_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> HttpAnswer:
    """Answer every record; see the module doc for what fails a record and what the call."""
    if not records:
        return HttpAnswer(200, {"values": []})
    started = clock()
    pin = services.backend.get_pin()  # the index's pin (cached); a missing index is a 503
    workers = max(1, min(services.settings.vision_concurrency, len(records)))
    results: dict[str, _Result] = {}
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vectorize")
    try:
        futures: dict[Future[_Result], str] = {}
        for record_id, data in records:
            invalid = _invalid_unicode(record_id, data)
            if invalid:
                results[record_id] = _Result(errors=[invalid])
            else:
                futures[pool.submit(vectorize_record, data, services, pin)] = record_id
        pending = set(futures)
        while pending:
            remaining = budget_seconds - (clock() - started)
            if remaining <= 0:
                break
            done, pending = wait(pending, timeout=remaining, return_when=FIRST_EXCEPTION)
            for future in done:
                record_id = futures[future]
                exc = future.exception()
                kind = None if exc is None else classify(exc).kind
                if exc is None:
                    results[record_id] = future.result()
                elif kind == "input":
                    results[record_id] = _Result(errors=[_record_error(exc)])
                elif kind == "bug":
                    raise exc
                else:
                    for other in pending:
                        other.cancel()
                    return error_answer(exc, "vectorize", retry_after_default=5)
        for future in pending:
            future.cancel()
            results[futures[future]] = _Result(
                errors=[
                    f"not vectorized within this endpoint's time budget of {budget_seconds:g} s (the caller waits "
                    f"30 s by default): send fewer records per call (the skill's batchSize)"
                ]
            )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return HttpAnswer(200, {"values": [results[record_id].answer(record_id) for record_id, _ in records]})


def vectorize_http(
    *, method: str, body: bytes | None, content_type: str | None, services: Services | None = None
) -> HttpAnswer:
    """The HTTP endpoint: parse, answer every record, or one Azure-shaped error for the call."""
    try:
        if (method or "").upper() not in ("POST", "PUT"):
            raise BadRequest(f"method {method} is not supported; use POST", code="MethodNotAllowed", status=405)
        records = parse_request(body, content_type)
        return vectorize_records(records, services or get_services())
    except Exception as exc:
        if classify(exc).kind == "bug":
            raise
        return error_answer(exc, "vectorize", retry_after_default=5)
