"""How the Azure AI Search double runs an indexer over a blob container in Azurite, as the
service documents a blob indexer with a skillset.

A run takes the blobs changed since its high-water mark (and those that failed last time),
``batchSize`` at a time, builds each one's source document (with ``imageAction:
generateNormalizedImages``, one JPEG of at most 2000 x 2000 per image blob), applies the field
mappings, calls the skill, writes with ``mergeOrUpload`` and records per-item errors in the live
shapes; a listed blob that is gone counts as soft-deleted when delete retention is on (Azurite
has no soft delete). Rules and sources: ``standins/FIDELITY.md``, P3-P15.
"""

from __future__ import annotations

import base64
import copy
import io
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standins.search.pull_definitions import (
    NORMALIZED_IMAGES,
    DataSource,
    Indexer,
    Skillset,
    WebApiSkill,
)
from standins.search.web_api import CallRecord, WebApiCallError, call_web_api

MAX_DOCUMENT_EXTRACTION_BYTES = 16 * 1024 * 1024  # the basic tier's "Maximum blob size" (search-limits)
HISTORY = 50  # execution results kept, newest first
_ERROR_LINK = "https://go.microsoft.com/fwlink/?linkid=2049388"
_WARNING_LINK = "https://go.microsoft.com/fwlink/?linkid=2099692"
# normalizedImageMaxWidth / normalizedImageMaxHeight default to 2000 pixels ("Extract text and
# information from images", "Configure indexers for image processing").
NORMALIZED_IMAGE_MAX_PIXELS = 2000


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def url_token_encode(text: str) -> str:
    """``HttpServerUtility.UrlTokenEncode`` (``base64Encode``'s default form): URL-safe Base64,
    the padding replaced by its count as one digit."""
    encoded = base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")
    stripped = encoded.rstrip("=")
    return f"{stripped}{len(encoded) - len(stripped)}" if encoded else ""


@dataclass
class IndexerState:
    """What the service tracks for an indexer between runs."""

    high_water_mark: str | None = None  # the newest LastModified processed (ISO 8601)
    # The blob versions (name, ETag) processed whose LastModified is the mark: LastModified has
    # whole seconds, so a blob changed again within that second is told by its ETag.
    at_mark: set[tuple[str, str]] = field(default_factory=set)
    seen: dict[str, str] = field(default_factory=dict)  # blob name -> document key, from earlier listings
    failed: set[str] = field(default_factory=set)  # blobs whose last try failed: tried again next run
    running: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # execution results, newest first
    next_run: float | None = None  # time.time() of the next scheduled run

    def to_json(self) -> dict[str, Any]:
        return {
            "high_water_mark": self.high_water_mark,
            "at_mark": sorted(self.at_mark),
            "seen": self.seen,
            "failed": sorted(self.failed),
            "history": self.history[:HISTORY],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexerState:
        history = list(data.get("history") or [])
        for result in history:  # a run cut short by a restart did not finish
            if result.get("status") == "inProgress":
                result.update(status="transientFailure", errorMessage="The run was interrupted.", endTime=utc_now())
        return cls(
            high_water_mark=data.get("high_water_mark"),
            at_mark={(n, e) for n, e in data.get("at_mark") or []},
            seen=dict(data.get("seen") or {}),
            failed=set(data.get("failed") or []),
            history=history,
        )

    def record(self, status: str, error_message: str | None = None) -> None:
        """An execution result that did not run (a reset, a run that could not start)."""
        now = utc_now()
        self.history.insert(0, new_result(status, now, self.high_water_mark, error_message) | {"endTime": now})


def new_result(status: str, started: str, mark: str | None, error_message: str | None = None) -> dict[str, Any]:
    return {
        "status": status,
        "statusDetail": None,
        "errorMessage": error_message,
        "startTime": started,
        "endTime": None,
        "errors": [],
        "warnings": [],
        "itemsProcessed": 0,
        "itemsFailed": 0,
        "initialTrackingState": mark,
        "finalTrackingState": mark,
    }


def status_document(name: str, state: IndexerState) -> dict[str, Any]:
    """``GET /indexers('name')/search.status`` ("Indexers - Get Status"): ``status`` is
    ``running`` (operational; a run may be in progress) or ``error``, and ``lastResult`` and
    ``executionHistory`` hold the runs, newest first."""
    last = state.history[0] if state.history else None
    return {
        "name": name,
        "status": "error" if last is not None and last.get("status") == "persistentFailure" else "running",
        "lastResult": last,
        "executionHistory": state.history[:HISTORY],
        "limits": {
            "maxRunTime": "PT2H",
            "maxDocumentExtractionSize": MAX_DOCUMENT_EXTRACTION_BYTES,
            "maxDocumentContentCharactersToExtract": 32768,
        },
    }


@dataclass
class RunContext:
    """What a run needs from the service, handed in so this module holds no service state."""

    indexer: Indexer
    data_source: DataSource
    skillset: Skillset | None
    state: IndexerState
    lock: threading.RLock
    # write(action, [(key, fields)]) -> the indexing answer of each: key, status, statusCode, errorMessage
    write: Callable[[str, list[tuple[str, dict[str, Any]]]], list[dict[str, Any]]]
    index_fields: list[str]
    key_field: str
    log_call: Callable[[CallRecord], None]
    max_document_bytes: int = MAX_DOCUMENT_EXTRACTION_BYTES
    save: Callable[[], None] = lambda: None


class _RunStopped(Exception):
    pass


def run(ctx: RunContext) -> None:
    """One run (the caller marked it running); its result goes into ``ctx.state.history``, built
    privately and published under the lock when the run ends, so a status read never sees it
    half-written."""
    started = utc_now()
    result = new_result("inProgress", started, ctx.state.high_water_mark)
    result["finalTrackingState"] = None
    with ctx.lock:
        ctx.state.history.insert(0, copy.deepcopy(result))
        del ctx.state.history[HISTORY:]
    try:
        _run(ctx, result)
        result["status"] = "success"
    except Exception as exc:  # noqa: BLE001 - any failure of a run is reported in its status, as the service does
        result["status"] = "transientFailure"
        result["errorMessage"] = str(exc) if isinstance(exc, _RunStopped) else f"{type(exc).__name__}: {exc}"
    finally:
        with ctx.lock:
            result.update(endTime=utc_now(), finalTrackingState=ctx.state.high_water_mark)
            if ctx.state.history and ctx.state.history[0].get("startTime") == started:
                ctx.state.history[0] = result
            ctx.state.running = False
        ctx.save()


def _iso(moment: datetime) -> str:
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _run(ctx: RunContext, result: dict[str, Any]) -> None:
    from azure.storage.blob import BlobServiceClient

    indexer, state = ctx.indexer, ctx.state
    service = BlobServiceClient.from_connection_string(ctx.data_source.connection_string)
    container = service.get_container_client(ctx.data_source.container)
    listing = list(container.list_blobs(include=["metadata"]))
    live = {props.name for props in listing}
    urls = {name: container.get_blob_client(name).url.split("?", 1)[0] for name in live | set(state.seen)}
    mark = state.high_water_mark

    def changed(props: Any) -> bool:
        modified = _iso(props.last_modified)
        return (
            props.name in state.failed
            or mark is None
            or modified > mark
            or (modified == mark and (props.name, props.etag) not in state.at_mark)
        )

    indexed = [p for p in listing if not indexer.extensions or p.name.lower().endswith(indexer.extensions)]
    pending = sorted((p for p in indexed if changed(p)), key=lambda p: (p.last_modified, p.name))
    failed_total = 0
    for start in range(0, len(pending), indexer.batch_size):
        batch = pending[start : start + indexer.batch_size]
        failed = _process_batch(ctx, container, batch, urls, result)
        failed_total += len(failed)
        with ctx.lock:
            state.failed = (state.failed - {p.name for p in batch}) | failed
            newest = max(_iso(p.last_modified) for p in batch)
            if newest != state.high_water_mark:
                state.at_mark = set()
            state.high_water_mark = newest
            state.at_mark |= {(p.name, p.etag) for p in batch if _iso(p.last_modified) == newest}
        limit, per_batch = indexer.max_failed_items, indexer.max_failed_items_per_batch
        if (per_batch != -1 and len(failed) > per_batch) or (limit != -1 and failed_total > limit):
            raise _RunStopped(
                f"The indexer stopped: {failed_total} items failed, more than maxFailedItems ({limit}) or "
                f"maxFailedItemsPerBatch ({per_batch}) allow."
            )
    with ctx.lock:
        state.failed &= live  # a failed blob that is gone is not tried again
        for name in live:  # every blob listed now can be detected as deleted later
            if name not in state.seen:
                state.seen[name] = _mapped(ctx, {"metadata_storage_path": urls[name]})[ctx.key_field]
    gone = {name: key for name, key in state.seen.items() if name not in live} if ctx.data_source.soft_delete else {}
    retention = service.get_service_properties().get("delete_retention_policy") if gone else None
    if retention is not None and retention.enabled:
        for answer, name in zip(ctx.write("delete", [(key, {}) for key in gone.values()]), gone, strict=True):
            result["itemsProcessed"] += 1
            if answer["status"]:
                with ctx.lock:
                    state.seen.pop(name, None)
            else:
                result["itemsFailed"] += 1
                result["errors"].append(
                    _error(urls[name], "Index.Delete", answer["errorMessage"], answer["statusCode"])
                )


def _mapped(ctx: RunContext, source: dict[str, Any]) -> dict[str, Any]:
    """The explicit field mappings of a source document; the blob indexer maps
    ``metadata_storage_path`` Base64-encoded to the key when nothing else does."""
    document = {
        m.target: url_token_encode(str(source[m.source])) if m.base64_encode else source[m.source]
        for m in ctx.indexer.field_mappings
        if source.get(m.source) is not None
    }
    if ctx.key_field not in document:
        document[ctx.key_field] = url_token_encode(source["metadata_storage_path"])
    return document


@dataclass
class _Item:
    name: str
    url: str  # the blob's URL: what the service reports as an item's key in errors
    document: dict[str, Any]  # what goes into the index, before output field mappings
    enriched: dict[str, Any]  # the enrichment tree: /document/<name> -> value
    failed: bool = False


def _process_batch(
    ctx: RunContext, container: Any, batch: list[Any], urls: dict[str, str], result: dict[str, Any]
) -> set[str]:
    """Process one batch; the names of the blobs that failed."""
    items, failed = [], set()
    for props in batch:
        url, size = urls[props.name], int(props.size or 0)
        result["itemsProcessed"] += 1
        if size > ctx.max_document_bytes:
            failed.add(props.name)
            message = (
                f"Document is '{size}' bytes, which exceeds the maximum size '{ctx.max_document_bytes}' bytes for "
                f"document extraction for your current service tier."
            )
            result["errors"].append(_error(url, "Extraction.DocumentCracking", message, 400))
            continue
        source = _source_document(props, url)
        if ctx.indexer.normalize_images:
            source["normalized_images"] = normalized_images(container.download_blob(props.name).readall())
        document = _mapped(ctx, source)
        explicit = {m.source.lower() for m in ctx.indexer.field_mappings}
        names = {name.lower(): name for name in ctx.index_fields}
        for name, value in source.items():  # same-name fields, without regard to case
            target = names.get(name.lower())
            if target and target not in document and name.lower() not in explicit:
                document[target] = value
        enriched = {f"/document/{k}": v for k, v in source.items()}
        for n, image in enumerate(source.get("normalized_images") or []):
            enriched[f"{NORMALIZED_IMAGES}/{n}"] = image
        items.append(_Item(props.name, url, document, enriched))
    if ctx.skillset is not None:
        _run_skill(ctx, ctx.skillset.skill, [i for i in items if not i.failed], result)
    writes: list[tuple[str, dict[str, Any]]] = []
    by_key: dict[str, _Item] = {}
    for item in items:
        for mapping in ctx.indexer.output_field_mappings:
            if mapping.source in item.enriched:
                item.document[mapping.target] = item.enriched[mapping.source]
        key = item.document.pop(ctx.key_field, None)
        if item.failed or not key or not isinstance(key, str):
            if not item.failed:
                result["errors"].append(_error(item.url, "Index.Key", "Document key cannot be missing or empty.", 400))
            failed.add(item.name)
            continue
        writes.append((key, item.document))
        by_key[key] = item
    for answer in ctx.write("mergeOrUpload", writes) if writes else []:
        if not answer["status"]:
            item = by_key[answer["key"]]
            failed.add(item.name)
            result["errors"].append(
                _error(item.url, "Index.MergeOrUpload", answer["errorMessage"], answer["statusCode"])
            )
    result["itemsFailed"] += len(failed)
    return failed


def normalized_images(data: bytes) -> list[dict[str, Any]]:
    """What ``imageAction: generateNormalizedImages`` makes of a blob: for an image, one JPEG,
    upright and no larger than the default 2000 x 2000, with its size and the original's; for a
    blob that is no image, or one over the pixel budget every decode here keeps to, none."""
    from PIL import ImageOps

    from indexer.errors import InputLimitError, InvalidImageError
    from indexer.pixel_budget import open_within_budget

    try:
        with open_within_budget(data) as opened:
            original = opened.size
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (InvalidImageError, InputLimitError, OSError, ValueError):
        return []
    image.thumbnail((NORMALIZED_IMAGE_MAX_PIXELS, NORMALIZED_IMAGE_MAX_PIXELS))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return [
        {
            "data": base64.b64encode(out.getvalue()).decode("ascii"),
            "width": image.width,
            "height": image.height,
            "originalWidth": original[0],
            "originalHeight": original[1],
            "rotationFromOriginal": 0,
            "contentOffset": 0,
            "pageNumber": 1,
        }
    ]


def _source_document(props: Any, url: str) -> dict[str, Any]:
    settings = props.content_settings
    md5 = getattr(settings, "content_md5", None) if settings else None
    document: dict[str, Any] = {
        "metadata_storage_path": url,
        "metadata_storage_name": props.name.rsplit("/", 1)[-1],
        "metadata_storage_size": int(props.size or 0),
        "metadata_storage_last_modified": _iso(props.last_modified),
        "metadata_storage_content_type": settings.content_type if settings else None,
        "metadata_storage_content_md5": base64.b64encode(bytes(md5)).decode("ascii") if md5 else None,
    }
    for key, value in (props.metadata or {}).items():
        document.setdefault(key, value)
    return document


def _error(key: str | None, name: str, message: str, status: int, details: str | None = None) -> dict[str, Any]:
    return {
        "key": key,
        "name": name,
        "errorMessage": message,
        "statusCode": status,
        "details": details,
        "documentationLink": _ERROR_LINK,
    }


def _run_skill(ctx: RunContext, skill: WebApiSkill, items: list[_Item], result: dict[str, Any]) -> None:
    name = f"Enrichment.WebApiSkill.{skill.name.lstrip('#')}"

    def fail(item: _Item, message: str, details: str) -> None:
        item.failed = True
        result["errors"].append(_error(item.url, name, message, 400, details))

    # One call per document in the /document context; an input whose node is missing (no
    # normalized image: a blob that is no image) is left out of the record (an assumption).
    def call(chunk: list[_Item]) -> None:
        records = [
            (str(i), {n: item.enriched[s] for n, s in skill.inputs if item.enriched.get(s) is not None})
            for i, item in enumerate(chunk)
        ]
        try:
            answers = call_web_api(skill.target, records, log=ctx.log_call)
        except WebApiCallError as error:
            details = {
                "unreachable": "The Web API did not answer within the skill's timeout, or could not be reached.",
                "status": f"Web Api response status: '{error.status}'",
            }.get(error.reason, f"The Web API's answer is invalid: {error.message}")
            for item in chunk:
                fail(item, "Could not execute skill.", details)
            return
        for i, item in enumerate(chunk):
            answer = answers[str(i)]
            result["warnings"] += [
                {"key": item.url, "name": name, "message": m, "details": None, "documentationLink": _WARNING_LINK}
                for m in answer.warnings
            ]
            if answer.invalid or answer.errors:
                message = "Could not execute skill." + (
                    "" if answer.invalid else " WebApi skill response contains errors."
                )
                fail(item, message, answer.invalid or "; ".join(answer.errors))
                continue
            data = answer.data or {}
            for output, target in skill.outputs:
                if output in data:
                    item.enriched[f"/document/{target}"] = data[output]

    chunks = [items[i : i + skill.batch_size] for i in range(0, len(items), skill.batch_size)]
    with ThreadPoolExecutor(max_workers=skill.degree_of_parallelism) as pool:
        list(pool.map(call, chunks))
