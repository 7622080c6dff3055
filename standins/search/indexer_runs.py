"""How the Azure AI Search double runs an indexer over a blob container in Azurite.

One run, as the service documents it for a blob indexer with a skillset:

1. list the container (under the data source's virtual folder) and take the blobs whose
   ``LastModified`` is after the high-water mark left by the last run ("change detection occurs
   automatically because indexers keep track of the last update using the built-in timestamps",
   search-how-to-index-azure-blob-changed-deleted), oldest first, ``batchSize`` at a time;
2. build each blob's source document: ``metadata_storage_path`` ("the full URI of the blob"),
   ``metadata_storage_name`` (the file name), ``metadata_storage_size``,
   ``metadata_storage_last_modified``, ``metadata_storage_content_type``,
   ``metadata_storage_content_md5``, the user metadata under their own names, and with
   ``allowSkillsetToReadFileData`` the bytes as ``/document/file_data`` (``{"$type": "file",
   "data": <base64>}``, "Document Extraction skill"); a blob over the tier's extraction limit fails
   with the service's text;
3. field mappings (explicit ones, with their mapping functions; then same-name fields), the
   ``WebApiSkill`` calls (``standins.search.web_api``), output field mappings (they win over a
   field mapping to the same target: an assumption);
4. write each document with ``mergeOrUpload`` (an assumption: no public source says which
   action indexers use), and record per-item errors and warnings in the execution result, in
   the shapes of live ones (``Enrichment.WebApiSkill.<name>``, "Could not execute skill. WebApi
   skill response contains errors.", the blob's URL as the item's ``key``;
   azure-search-power-skills#19);
5. with ``NativeBlobSoftDeleteDeletionDetectionPolicy``: Azurite has no blob soft delete
   ("Soft delete & Undelete Blob" is among its unsupported features), so the double stands in for
   it: when the account's delete retention policy is enabled (Azurite keeps that service
   property), a blob that an earlier run listed and that is gone now counts as soft-deleted
   within retention, and its document is deleted; with the policy off nothing is detected, as on
   Azure, where the deleted blob is simply gone;
6. ``maxFailedItems`` / ``maxFailedItemsPerBatch`` (-1: no limit, default 0) stop the run with
   ``transientFailure`` when exceeded; the high-water mark covers the batches processed, and an
   item that failed is tried again by the next run until it succeeds or is gone ("If an indexer
   ... repeatedly fails on the same document each time", search-howto-schedule-indexers; the
   service's slower schedule for such an indexer is not modelled).
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standins.search.pull_definitions import DataSource, FieldMapping, Indexer, Skillset, WebApiSkill
from standins.search.web_api import WebApiCallError, WebApiTarget, call_web_api

MAX_DOCUMENT_EXTRACTION_BYTES = 16 * 1024 * 1024  # the basic tier's "Maximum blob size" (search-limits)
MAX_RUN_TIME = "PT2H"
HISTORY = 50  # execution results kept, newest first


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- mapping functions


def url_token_encode(data: bytes) -> str:
    """``HttpServerUtility.UrlTokenEncode`` (base64Encode's default): URL-safe Base64, the
    padding replaced by its count as one digit."""
    if not data:
        return ""
    encoded = base64.urlsafe_b64encode(data).decode("ascii")
    stripped = encoded.rstrip("=")
    return f"{stripped}{len(encoded) - len(stripped)}"


def url_token_decode(token: str) -> bytes:
    if not token:
        return b""
    return base64.urlsafe_b64decode(token[:-1] + "=" * int(token[-1]))


class MappingError(Exception):
    pass


def apply_mapping_function(mapping: FieldMapping, value: Any) -> Any:
    """The documented mapping functions ("Field mappings and transformations")."""
    if mapping.function is None or value is None:
        return value
    text = str(value)
    name, parameters = mapping.function, mapping.parameters
    if name == "base64Encode":
        if parameters.get("useHttpServerUtilityUrlTokenEncode", True):
            return url_token_encode(text.encode("utf-8"))
        return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")
    if name == "base64Decode":
        try:
            if parameters.get("useHttpServerUtilityUrlTokenDecode", True):
                return url_token_decode(text).decode("utf-8")
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise MappingError(f"The value of '{mapping.source}' is not Base64") from None
    if name == "extractTokenAtPosition":
        tokens = text.split(str(parameters.get("delimiter", " ")))
        position = int(parameters.get("position", 0))
        if not 0 <= position < len(tokens):
            raise MappingError(f"There is no token at position {position} of '{mapping.source}'")
        return tokens[position]
    if name == "jsonArrayToStringCollection":
        try:
            parsed = json.loads(text)
        except ValueError:
            raise MappingError(f"The value of '{mapping.source}' is not a JSON array of strings") from None
        if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
            raise MappingError(f"The value of '{mapping.source}' is not a JSON array of strings")
        return parsed
    if name == "urlEncode":
        return urllib.parse.quote(text, safe="")
    if name == "urlDecode":
        return urllib.parse.unquote(text)
    raise MappingError(f"The mapping function '{name}' is not implemented")  # pragma: no cover


# --------------------------------------------------------------------------- state


@dataclass
class IndexerState:
    """What the service tracks for an indexer between runs."""

    high_water_mark: str | None = None  # the newest LastModified processed (ISO 8601)
    # The blob versions (name, ETag) processed whose LastModified is the mark: LastModified has
    # whole seconds, so a blob changed again within that second is recognised by its ETag.
    at_mark: set[tuple[str, str]] = field(default_factory=set)
    seen: dict[str, str] = field(default_factory=dict)  # blob name -> document key, from earlier listings
    failed: set[str] = field(default_factory=set)  # blobs whose last try failed: tried again by the next run
    running: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # execution results, newest first
    next_run: float | None = None  # time.time() of the next scheduled run
    reset_pending: bool = False

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
        state = cls(
            high_water_mark=data.get("high_water_mark"),
            at_mark={(n, e) for n, e in data.get("at_mark") or []},
            seen=dict(data.get("seen") or {}),
            failed=set(data.get("failed") or []),
        )
        history = list(data.get("history") or [])
        for result in history:  # a run cut short by a restart did not finish
            if result.get("status") == "inProgress":
                result.update(status="transientFailure", errorMessage="The run was interrupted.", endTime=utc_now())
        state.history = history
        return state


def status_document(name: str, state: IndexerState, disabled: bool) -> dict[str, Any]:
    """``GET /indexers('name')/search.status`` ("Indexers - Get Status"): ``status`` is
    ``running`` (the indexer is operational; a run may be in progress) or ``error``, and
    ``lastResult`` / ``executionHistory`` hold the runs, newest first."""
    last = state.history[0] if state.history else None
    status = "running"
    if disabled:
        status = "disabled"
    elif last is not None and last.get("status") == "persistentFailure":
        status = "error"
    return {
        "name": name,
        "status": status,
        "lastResult": last,
        "executionHistory": state.history[:HISTORY],
        "limits": {
            "maxRunTime": MAX_RUN_TIME,
            "maxDocumentExtractionSize": MAX_DOCUMENT_EXTRACTION_BYTES,
            "maxDocumentContentCharactersToExtract": 32768,
        },
    }


# --------------------------------------------------------------------------- one run


@dataclass
class RunContext:
    """What a run needs from the service, handed in so this module holds no service state."""

    indexer: Indexer
    data_source: DataSource
    skillset: Skillset | None
    state: IndexerState
    lock: threading.RLock
    # write(action, [(key, fields)]) -> [(key, succeeded, status code, error message)]
    write: Callable[[str, list[tuple[str, dict[str, Any]]]], list[tuple[str, bool, int, str | None]]]
    index_fields: Callable[[], list[str]]
    key_field: str
    connection_string: str
    log_call: Callable[[Any], None]
    max_document_bytes: int = MAX_DOCUMENT_EXTRACTION_BYTES
    save: Callable[[], None] = lambda: None


class _RunStopped(Exception):
    pass


def run(ctx: RunContext) -> None:
    """One run; records its result in ``ctx.state.history`` (the caller marked it running).
    The result is built privately and published under the lock when the run ends, so a status
    read never sees it half-written."""
    started = utc_now()
    result: dict[str, Any] = {
        "status": "inProgress",
        "statusDetail": None,
        "errorMessage": None,
        "startTime": started,
        "endTime": None,
        "errors": [],
        "warnings": [],
        "itemsProcessed": 0,
        "itemsFailed": 0,
        "initialTrackingState": ctx.state.high_water_mark,
        "finalTrackingState": None,
    }
    with ctx.lock:
        ctx.state.history.insert(0, copy.deepcopy(result))
        del ctx.state.history[HISTORY:]
    try:
        _run(ctx, result)
        result["status"] = "success"
    except _RunStopped as stop:
        result["status"] = "transientFailure"
        result["errorMessage"] = str(stop)
    except Exception as exc:  # noqa: BLE001 - any failure of a run is reported in its status, as the service does
        result["status"] = "transientFailure"
        result["errorMessage"] = f"{type(exc).__name__}: {exc}"
    finally:
        with ctx.lock:
            result["endTime"] = utc_now()
            result["finalTrackingState"] = ctx.state.high_water_mark
            if ctx.state.history and ctx.state.history[0].get("startTime") == started:
                ctx.state.history[0] = result
            ctx.state.running = False
        ctx.save()


def _container(ctx: RunContext) -> Any:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(ctx.connection_string)
    return service, service.get_container_client(ctx.data_source.container)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _extension_allowed(name: str, configuration: dict[str, Any]) -> bool:
    def extensions(key: str) -> set[str]:
        return {e.strip().lower() for e in str(configuration.get(key) or "").split(",") if e.strip()}

    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    included, excluded = extensions("indexedFileNameExtensions"), extensions("excludedFileNameExtensions")
    return (not included or suffix in included) and suffix not in excluded


def _run(ctx: RunContext, result: dict[str, Any]) -> None:
    indexer, state = ctx.indexer, ctx.state
    service, container = _container(ctx)
    listing = list(container.list_blobs(name_starts_with=ctx.data_source.prefix or None, include=["metadata"]))
    live = {props.name: props for props in listing}
    mark = state.high_water_mark

    def is_new(props: Any) -> bool:
        modified = _iso(props.last_modified)
        if props.name in state.failed:  # "fails on the same document each time": it is tried again
            return True
        return mark is None or modified > mark or (modified == mark and (props.name, props.etag) not in state.at_mark)

    changed = sorted((p for p in listing if is_new(p)), key=lambda p: (p.last_modified, p.name))
    configuration = indexer.configuration
    failed_total = 0
    for start in range(0, len(changed), indexer.batch_size):
        batch = changed[start : start + indexer.batch_size]
        failed_names = _process_batch(ctx, container, batch, configuration, result)
        failed = len(failed_names)
        failed_total += failed
        with ctx.lock:
            state.failed -= {p.name for p in batch}
            state.failed |= failed_names
            newest = max(_iso(p.last_modified) for p in batch)
            if newest != state.high_water_mark:
                state.at_mark = set()
            state.high_water_mark = newest
            state.at_mark |= {(p.name, p.etag) for p in batch if _iso(p.last_modified) == newest}
            for props in batch:
                key = _key_of(ctx, props.name, container)
                if key:
                    state.seen[props.name] = key
        limit, per_batch = indexer.max_failed_items, indexer.max_failed_items_per_batch
        if (per_batch != -1 and failed > per_batch) or (limit != -1 and failed_total > limit):
            raise _RunStopped(
                f"The indexer stopped: {failed_total} items failed, more than maxFailedItems ({limit}) or "
                f"maxFailedItemsPerBatch ({per_batch}) allow."
            )
    state.failed &= set(live)  # a failed blob that is gone is not tried again
    for name in live:  # every blob listed now can be detected as deleted later
        if name not in state.seen:
            key = _key_of(ctx, name, container)
            if key:
                state.seen[name] = key
    if ctx.data_source.soft_delete:
        retention = service.get_service_properties().get("delete_retention_policy")
        if retention is not None and retention.enabled:
            gone = {name: key for name, key in state.seen.items() if name not in live}
            if gone:
                outcomes = ctx.write("delete", [(key, {}) for key in gone.values()])
                for (_, ok, status, message), name in zip(outcomes, gone, strict=True):
                    result["itemsProcessed"] += 1
                    if ok:
                        with ctx.lock:
                            state.seen.pop(name, None)
                    else:
                        result["itemsFailed"] += 1
                        path = container.get_blob_client(name).url.split("?", 1)[0]
                        result["errors"].append(_error(path, "Index.Delete", message or "", status))


def _key_of(ctx: RunContext, name: str, container: Any) -> str | None:
    """The document key the field mappings give a blob from its path alone (for deletions)."""
    path = container.get_blob_client(name).url.split("?", 1)[0]
    source = {"metadata_storage_path": path, "metadata_storage_name": name.rsplit("/", 1)[-1]}
    try:
        mapped, _ = _field_mapped(ctx.indexer, source, ctx.key_field)
    except MappingError:
        return None
    key = mapped.get(ctx.key_field)
    return key if isinstance(key, str) and key else None


def _field_mapped(indexer: Indexer, source: dict[str, Any], key_field: str) -> tuple[dict[str, Any], set[str]]:
    """Explicit field mappings (with their functions), and the source fields they name; the blob
    indexer maps ``metadata_storage_path`` (Base64-encoded) to the key when nothing else does
    ("Field mappings", the blob storage indexer's default key mapping)."""
    document: dict[str, Any] = {}
    explicit_sources = set()
    for mapping in indexer.field_mappings:
        explicit_sources.add(mapping.source.lower())
        if mapping.source in source:
            document[mapping.target] = apply_mapping_function(mapping, source[mapping.source])
    if key_field not in document and "metadata_storage_path" in source:
        default = FieldMapping("metadata_storage_path", key_field, "base64Encode")
        document[key_field] = apply_mapping_function(default, source["metadata_storage_path"])
    return document, explicit_sources


def _source_document(props: Any, data: bytes | None) -> dict[str, Any]:
    settings = props.content_settings
    md5 = getattr(settings, "content_md5", None) if settings else None
    document: dict[str, Any] = {
        "metadata_storage_path": None,  # filled by the caller (needs the client's URL)
        "metadata_storage_name": props.name.rsplit("/", 1)[-1],
        "metadata_storage_size": int(props.size or 0),
        "metadata_storage_last_modified": _iso(props.last_modified),
        "metadata_storage_content_type": settings.content_type if settings else None,
        "metadata_storage_content_md5": base64.b64encode(bytes(md5)).decode("ascii") if md5 else None,
    }
    for key, value in (props.metadata or {}).items():
        document.setdefault(key, value)
    if data is not None:
        document["file_data"] = {"$type": "file", "data": base64.b64encode(data).decode("ascii")}
    return document


def _error(key: str | None, name: str, message: str, status: int, details: str | None = None) -> dict[str, Any]:
    return {
        "key": key,
        "name": name,
        "errorMessage": message,
        "statusCode": status,
        "details": details,
        "documentationLink": "https://go.microsoft.com/fwlink/?linkid=2049388",
    }


def _warning(key: str | None, name: str, message: str, details: str | None = None) -> dict[str, Any]:
    return {
        "key": key,
        "name": name,
        "message": message,
        "details": details,
        "documentationLink": "https://go.microsoft.com/fwlink/?linkid=2099692",
    }


@dataclass
class _Item:
    props: Any
    source: dict[str, Any]
    key: str | None
    mapped: dict[str, Any]
    explicit: set[str] = field(default_factory=set)
    enriched: dict[str, Any] = field(default_factory=dict)
    failed: bool = False

    @property
    def path(self) -> str:
        """What the service reports as an item's key in errors: the blob's URL."""
        return str(self.source.get("metadata_storage_path") or "")


def _process_batch(
    ctx: RunContext, container: Any, batch: list[Any], configuration: dict[str, Any], result: dict
) -> set[str]:
    """Process one batch; return the names of the blobs that failed."""
    items: list[_Item] = []
    failed: set[str] = set()
    read_file = bool(configuration.get("allowSkillsetToReadFileData"))
    for props in batch:
        path = container.get_blob_client(props.name).url.split("?", 1)[0]
        key_hint = path
        if not _extension_allowed(props.name, configuration):
            continue  # excluded by the indexer's file name extensions: not processed at all
        size = int(props.size or 0)
        if size > ctx.max_document_bytes:
            result["itemsProcessed"] += 1
            failed.add(props.name)
            result["errors"].append(
                _error(
                    key_hint,
                    "Extraction.DocumentCracking",
                    f"Document is '{size}' bytes, which exceeds the maximum size '{ctx.max_document_bytes}' bytes for "
                    f"document extraction for your current service tier.",
                    400,
                )
            )
            continue
        data = container.download_blob(props.name).readall() if read_file else None
        source = _source_document(props, data)
        source["metadata_storage_path"] = path
        try:
            mapped, explicit = _field_mapped(ctx.indexer, source, ctx.key_field)
        except MappingError as exc:
            result["itemsProcessed"] += 1
            failed.add(props.name)
            result["errors"].append(_error(key_hint, "FieldMapping", str(exc), 400))
            continue
        key = mapped.get(ctx.key_field)
        enriched = {f"/document/{k}": v for k, v in source.items()}
        items.append(_Item(props, source, key if isinstance(key, str) else None, mapped, explicit, enriched))
    if ctx.skillset is not None:
        for skill in ctx.skillset.skills:
            _run_skill(ctx, skill, [i for i in items if not i.failed], result)
    writes: list[tuple[str, dict[str, Any]]] = []
    paths: dict[str, str] = {}
    names: dict[str, str] = {}
    for item in items:
        result["itemsProcessed"] += 1
        if item.failed:
            failed.add(item.props.name)
            continue
        if not item.key:
            failed.add(item.props.name)
            result["errors"].append(
                _error(
                    item.source["metadata_storage_path"], "Index.Key", "Document key cannot be missing or empty.", 400
                )
            )
            continue
        document = _index_document(ctx, item)
        writes.append((item.key, document))
        paths[item.key] = item.source["metadata_storage_path"]
        names[item.key] = item.props.name
    if writes:
        for key, ok, status, message in ctx.write("mergeOrUpload", writes):
            if not ok:
                failed.add(names.get(key, key))
                result["errors"].append(_error(paths.get(key, key), "Index.MergeOrUpload", message or "", status))
    result["itemsFailed"] += len(failed)
    return failed


def _index_document(ctx: RunContext, item: _Item) -> dict[str, Any]:
    names = {name.lower(): name for name in ctx.index_fields()}
    document = dict(item.mapped)
    for name, value in item.source.items():  # same-name fields, without regard to case
        target = names.get(name.lower())
        if target and target not in document and name.lower() not in item.explicit:
            document[target] = value
    for mapping in ctx.indexer.output_field_mappings:
        if mapping.source in item.enriched:
            document[mapping.target] = item.enriched[mapping.source]
    document.pop(ctx.key_field, None)
    return document


def _run_skill(ctx: RunContext, skill: WebApiSkill, items: list[_Item], result: dict[str, Any]) -> None:
    if not items:
        return
    target = WebApiTarget(
        skill.uri, skill.http_method, skill.http_headers, skill.timeout_seconds, skill.auth_resource_id
    )
    name = f"Enrichment.WebApiSkill.{skill.name.lstrip('#')}"
    chunks = [items[i : i + skill.batch_size] for i in range(0, len(items), skill.batch_size)]

    def call(chunk: list[_Item]) -> None:
        records = []
        for position, item in enumerate(chunk):
            data = {n: item.enriched[s] for n, s in skill.inputs if item.enriched.get(s) is not None}
            records.append((str(position), data))
        try:
            answers = call_web_api(target, records, log=ctx.log_call)
        except WebApiCallError as error:
            if error.reason == "unreachable":
                details = "The Web API did not answer within the skill's timeout, or could not be reached."
            elif error.reason == "status":
                details = f"Web Api response status: '{error.status}'"
            else:
                details = f"The Web API's answer is invalid: {error.message}"
            for item in chunk:
                item.failed = True
                result["errors"].append(_error(item.path, name, "Could not execute skill.", 400, details))
            return
        for position, item in enumerate(chunk):
            answer = answers[str(position)]
            if answer.invalid:
                item.failed = True
                result["errors"].append(_error(item.path, name, "Could not execute skill.", 400, answer.invalid))
                continue
            for message in answer.warnings:
                result["warnings"].append(_warning(item.path, name, message))
            if answer.errors:
                item.failed = True
                result["errors"].append(
                    _error(
                        item.path,
                        name,
                        "Could not execute skill. WebApi skill response contains errors.",
                        400,
                        "; ".join(answer.errors),
                    )
                )
                continue
            for output, target_name in skill.outputs:
                if output in (answer.data or {}):
                    item.enriched[f"/document/{target_name}"] = (answer.data or {})[output]
                else:
                    result["warnings"].append(
                        _warning(item.path, name, f"The skill's output '{output}' is missing from the answer.")
                    )

    with ThreadPoolExecutor(max_workers=skill.degree_of_parallelism) as pool:
        list(pool.map(call, chunks))
