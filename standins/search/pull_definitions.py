"""Data sources, skillsets and indexers of the Azure AI Search double: validated the way the
service validates them, and written back in the service's shape.

The subset is what pull-mode indexing of a blob container needs, written from:

- "Create Data Source" / "Indexers - Create" / "Skillsets - Create" (REST reference) and "Index
  data from Azure Blob Storage" (search-how-to-index-azure-blob-storage): an ``azureblob`` data
  source with a connection string (an account key, or ``ResourceId=...;`` for a managed
  identity), a container and an optional virtual folder (``query``);
- "Change and delete detection using indexers for Azure Storage"
  (search-how-to-index-azure-blob-changed-deleted): change detection by ``LastModified``
  (built in; a ``HighWaterMarkChangeDetectionPolicy`` on ``metadata_storage_last_modified``
  is accepted), deletion detection by ``NativeBlobSoftDeleteDeletionDetectionPolicy``;
- "Custom Web API skill" (cognitive-search-custom-skill-web-api): the ``WebApiSkill``
  parameters and their limits (``timeout`` 1 to 230 s, default 30; ``batchSize`` default 1000;
  ``degreeOfParallelism`` 1 to 10, default 5); "Create a skillset": one to 30 skills;
- "Field mappings and transformations" (search-indexer-field-mappings): the mapping functions;
- "Schedule an indexer" (search-howto-schedule-indexers): intervals from 5 minutes to 24 hours;
- "Indexers - Create" parameters: ``batchSize``, ``maxFailedItems`` and
  ``maxFailedItemsPerBatch`` (-1 means no limit, default 0), the blob ``configuration``.

What the double does not implement (other data source types, other skills, enrichment
contexts below ``/document``, index projections, knowledge stores, caches, encryption keys,
parsing modes other than ``default``, image actions) is refused with 400
``NotSupportedByStandIn``, never accepted and ignored. Every rule is in ``FIDELITY.md``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from standins.search.definitions import (
    SearchServiceError,
    check_http_headers,
    check_http_method,
    check_web_api_uri,
    invalid_request,
    not_supported,
    parse_day_time_duration,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
MAX_SKILLS = 30  # "Must have at least one skill ... The maximum is 30." (cognitive-search-defining-skillset)
WEB_API_SKILL = "#Microsoft.Skills.Custom.WebApiSkill"
HIGH_WATER_MARK = "#Microsoft.Azure.Search.HighWaterMarkChangeDetectionPolicy"
NATIVE_SOFT_DELETE = "#Microsoft.Azure.Search.NativeBlobSoftDeleteDeletionDetectionPolicy"
SOFT_DELETE_COLUMN = "#Microsoft.Azure.Search.SoftDeleteColumnDeletionDetectionPolicy"
UNCHANGED = "<unchanged>"  # an update that keeps the stored connection string
DEFAULT_BLOB_BATCH_SIZE = 10  # the blob indexer's default batch size ("Indexers - Create", batchSize)
MIN_INTERVAL, MAX_INTERVAL = 5 * 60, 24 * 3600  # "Schedule an indexer": 5 minutes to 24 hours
MAPPING_FUNCTIONS = (
    "base64Encode",
    "base64Decode",
    "extractTokenAtPosition",
    "jsonArrayToStringCollection",
    "urlEncode",
    "urlDecode",
)
OTHER_MAPPING_FUNCTIONS = ("fixedLengthEncode", "toJson")
BLOB_CONFIGURATION = {
    "dataToExtract": ("storageMetadata", "allMetadata", "contentAndMetadata"),
    "parsingMode": ("default",),
    "imageAction": ("none",),
    "allowSkillsetToReadFileData": (True, False),
    "indexedFileNameExtensions": str,
    "excludedFileNameExtensions": str,
    "failOnUnsupportedContentType": (True, False),
    "failOnUnprocessableDocument": (True, False),
    "indexStorageMetadataOnlyForOversizedDocuments": (True, False),
}


def check_resource_name(name: Any, kind: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise invalid_request(
            "name",
            f"Invalid {kind} name {name!r}: use 1 to 128 letters, digits, dashes or underscores, starting with a "
            f"letter or digit.",
            detail_code="InvalidName",
        )
    return name


def _named(body: Any, url_name: str | None, kind: str) -> tuple[dict[str, Any], str]:
    if not isinstance(body, dict):
        raise invalid_request("definition", f"The {kind} definition must be a JSON object.")
    body_name = body.get("name")
    if url_name is not None and body_name is not None and body_name != url_name:
        raise invalid_request(
            "name",
            f"The {kind} name '{body_name}' in the request body does not match the name '{url_name}' in the URL.",
            detail_code="InvalidName",
        )
    return body, check_resource_name(body_name if body_name is not None else url_name, kind)


def _refuse_unknown(body: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(body) - known - {"@odata.etag", "@odata.context", "@odata.type"})
    if unknown:
        raise invalid_request("definition", f"The property '{unknown[0]}' does not exist on {where}.")


def _int(value: Any, where: str, *, low: int, high: int | None = None, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise invalid_request("definition", f"{where} must be a whole number {bounds}, not {value!r}.")
    return value


# --------------------------------------------------------------------------- data sources


@dataclass
class DataSource:
    name: str
    document: dict[str, Any]  # as the service returns it (the connection string is not returned)
    connection_string: str = field(repr=False, default="")
    container: str = ""
    prefix: str = ""
    soft_delete: bool = False
    etag: str = ""

    def public(self) -> dict[str, Any]:
        return {"@odata.etag": self.etag, **self.document}


def parse_data_source(body: Any, *, name: str | None = None, existing: DataSource | None = None) -> DataSource:
    body, ds_name = _named(body, name, "data source")
    _refuse_unknown(
        body,
        {
            "name",
            "description",
            "type",
            "subtype",
            "credentials",
            "container",
            "identity",
            "indexerPermissionOptions",
            "dataChangeDetectionPolicy",
            "dataDeletionDetectionPolicy",
            "encryptionKey",
        },
        "type 'Microsoft.Azure.Search.V2026_04_01.DataSource'",
    )
    kind = body.get("type")
    if kind != "azureblob":
        if kind in ("azuresql", "cosmosdb", "azuretable", "adlsgen2", "mysql", "onelake", "sharepoint"):
            raise not_supported(f"The data source type '{kind}'")
        raise invalid_request("definition", f"The data source type {kind!r} is not valid.")
    for part in ("encryptionKey", "subtype", "indexerPermissionOptions"):
        if body.get(part):
            raise not_supported(f"The data source property '{part}'")
    credentials = body.get("credentials") or {}
    connection = credentials.get("connectionString") if isinstance(credentials, dict) else None
    if connection == UNCHANGED or (connection is None and existing is not None):
        if existing is None:
            raise invalid_request("credentials", "'<unchanged>' can only be used when updating a data source.")
        connection = existing.connection_string
    if not isinstance(connection, str) or not connection.strip():
        raise invalid_request("credentials", "The data source needs credentials.connectionString.")
    container = body.get("container")
    if not isinstance(container, dict) or not isinstance(container.get("name"), str) or not container["name"]:
        raise invalid_request("container", "The data source needs container.name, the blob container to index.")
    query = container.get("query")
    if query is not None and not isinstance(query, str):
        raise invalid_request("container", "container.query (a virtual folder) must be a string.")
    change = body.get("dataChangeDetectionPolicy")
    if change is not None:
        if not isinstance(change, dict) or change.get("@odata.type") != HIGH_WATER_MARK:
            raise invalid_request(
                "dataChangeDetectionPolicy",
                "A blob data source takes a HighWaterMarkChangeDetectionPolicy (change detection by LastModified "
                "is built in).",
            )
        if change.get("highWaterMarkColumnName") != "metadata_storage_last_modified":
            raise invalid_request(
                "dataChangeDetectionPolicy",
                "The high water mark of a blob data source is 'metadata_storage_last_modified'.",
            )
    deletion = body.get("dataDeletionDetectionPolicy")
    soft_delete = False
    if deletion is not None:
        kind_of = deletion.get("@odata.type") if isinstance(deletion, dict) else None
        if kind_of == SOFT_DELETE_COLUMN:
            raise not_supported("SoftDeleteColumnDeletionDetectionPolicy (use native blob soft delete)")
        if kind_of != NATIVE_SOFT_DELETE:
            raise invalid_request("dataDeletionDetectionPolicy", f"Unknown deletion detection policy {kind_of!r}.")
        soft_delete = True
    document = {
        "name": ds_name,
        "description": body.get("description"),
        "type": "azureblob",
        "subtype": None,
        "credentials": {"connectionString": None},  # never returned
        "container": {"name": container["name"], "query": query},
        "dataChangeDetectionPolicy": copy.deepcopy(change),
        "dataDeletionDetectionPolicy": copy.deepcopy(deletion),
        "encryptionKey": None,
        "identity": copy.deepcopy(body.get("identity")),
    }
    return DataSource(ds_name, document, connection, container["name"], query or "", soft_delete)


# --------------------------------------------------------------------------- skillsets


@dataclass(frozen=True)
class WebApiSkill:
    name: str
    uri: str
    http_method: str
    http_headers: dict[str, str]
    timeout_seconds: float
    batch_size: int
    degree_of_parallelism: int
    auth_resource_id: str | None
    inputs: tuple[tuple[str, str], ...]  # (input name, source path)
    outputs: tuple[tuple[str, str], ...]  # (output name, target node name)


@dataclass
class Skillset:
    name: str
    document: dict[str, Any]
    skills: list[WebApiSkill]
    etag: str = ""

    def public(self) -> dict[str, Any]:
        return {"@odata.etag": self.etag, **self.document}


def parse_skillset(body: Any, *, name: str | None = None) -> Skillset:
    body, ss_name = _named(body, name, "skillset")
    _refuse_unknown(
        body,
        {
            "name",
            "description",
            "skills",
            "cognitiveServices",
            "knowledgeStore",
            "indexProjections",
            "encryptionKey",
        },
        "type 'Microsoft.Azure.Search.V2026_04_01.Skillset'",
    )
    for part in ("knowledgeStore", "indexProjections", "encryptionKey"):
        if body.get(part):
            raise not_supported(f"The skillset property '{part}'")
    services = body.get("cognitiveServices")
    if services and services.get("@odata.type") != "#Microsoft.Azure.Search.DefaultCognitiveServices":
        raise not_supported("A billable Foundry resource on the skillset (cognitiveServices)")
    raw_skills = body.get("skills")
    if not isinstance(raw_skills, list) or not 1 <= len(raw_skills) <= MAX_SKILLS:
        raise invalid_request("skills", f"A skillset must have from 1 to {MAX_SKILLS} skills.")
    skills: list[WebApiSkill] = []
    documents: list[dict[str, Any]] = []
    for position, raw in enumerate(raw_skills, 1):
        skill, document = _parse_web_api_skill(raw, position)
        if any(s.name == skill.name for s in skills):
            raise invalid_request("skills", f"The skill name '{skill.name}' is used more than once.")
        skills.append(skill)
        documents.append(document)
    document = {
        "name": ss_name,
        "description": body.get("description"),
        "skills": documents,
        "cognitiveServices": copy.deepcopy(services),
        "knowledgeStore": None,
        "indexProjections": None,
        "encryptionKey": None,
    }
    return Skillset(ss_name, document, skills)


def _parse_web_api_skill(raw: Any, position: int) -> tuple[WebApiSkill, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise invalid_request("skills", "Each skill must be a JSON object.")
    kind = raw.get("@odata.type")
    if kind != WEB_API_SKILL:
        if isinstance(kind, str) and kind.startswith("#Microsoft.Skills."):
            raise not_supported(f"The skill '{kind}'")
        raise invalid_request("skills", f"The skill type {kind!r} is not valid.")
    name = raw.get("name") or f"#{position}"
    where = f"the skill '{name}'"
    _refuse_unknown(
        raw,
        {
            "name",
            "description",
            "context",
            "inputs",
            "outputs",
            "uri",
            "httpHeaders",
            "httpMethod",
            "timeout",
            "batchSize",
            "degreeOfParallelism",
            "authResourceId",
            "authIdentity",
        },
        where,
    )
    context = raw.get("context") or "/document"
    if context != "/document":
        raise not_supported(f"The skill context '{context}' (only /document)")
    inputs = []
    for entry in raw.get("inputs") or []:
        source = entry.get("source") if isinstance(entry, dict) else None
        input_name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(input_name, str) or not input_name or not isinstance(source, str):
            raise invalid_request("skills", f"Each input of {where} needs a name and a source.")
        if not source.startswith("/document/") or "*" in source or source.count("/") != 2:
            raise not_supported(f"The input source '{source}' of {where} (only /document/<name>)")
        inputs.append((input_name, source))
    if not inputs:
        raise invalid_request("skills", f"{where} has no inputs.")
    outputs = []
    for entry in raw.get("outputs") or []:
        output_name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(output_name, str) or not output_name:
            raise invalid_request("skills", f"Each output of {where} needs a name.")
        outputs.append((output_name, entry.get("targetName") or output_name))
    if not outputs:
        raise invalid_request("skills", f"{where} has no outputs.")
    timeout = raw.get("timeout")
    skill = WebApiSkill(
        name=name,
        uri=check_web_api_uri(raw.get("uri"), where),
        http_method=check_http_method(raw.get("httpMethod"), where),
        http_headers=check_http_headers(raw.get("httpHeaders"), where),
        timeout_seconds=30.0 if timeout is None else parse_day_time_duration(timeout, where),
        batch_size=_int(raw.get("batchSize"), f"The batchSize of {where}", low=1, default=1000),
        degree_of_parallelism=_int(
            raw.get("degreeOfParallelism"), f"The degreeOfParallelism of {where}", low=1, high=10, default=5
        ),
        auth_resource_id=raw.get("authResourceId"),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
    )
    document = {
        "@odata.type": WEB_API_SKILL,
        "name": name,
        "description": raw.get("description"),
        "context": context,
        "uri": skill.uri,
        "httpHeaders": dict(skill.http_headers),
        "httpMethod": skill.http_method,
        "timeout": timeout or "PT30S",
        "batchSize": raw.get("batchSize"),
        "degreeOfParallelism": raw.get("degreeOfParallelism"),
        "authResourceId": skill.auth_resource_id,
        "authIdentity": copy.deepcopy(raw.get("authIdentity")),
        "inputs": [{"name": n, "source": s, "inputs": []} for n, s in inputs],
        "outputs": [{"name": n, "targetName": t} for n, t in outputs],
    }
    return skill, document


# --------------------------------------------------------------------------- indexers


@dataclass(frozen=True)
class FieldMapping:
    source: str
    target: str
    function: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class Indexer:
    name: str
    document: dict[str, Any]
    data_source: str
    target_index: str
    skillset: str | None
    disabled: bool
    interval_seconds: float | None
    batch_size: int
    max_failed_items: int
    max_failed_items_per_batch: int
    configuration: dict[str, Any]
    field_mappings: list[FieldMapping]
    output_field_mappings: list[FieldMapping]
    etag: str = ""

    def public(self) -> dict[str, Any]:
        return {"@odata.etag": self.etag, **self.document}


def parse_indexer(
    body: Any,
    *,
    name: str | None = None,
    data_sources: dict[str, DataSource],
    skillsets: dict[str, Skillset],
    index_fields: Any,
) -> Indexer:
    """``index_fields(index name)`` gives the target index's field names, or None if it is missing."""
    body, ix_name = _named(body, name, "indexer")
    _refuse_unknown(
        body,
        {
            "name",
            "description",
            "dataSourceName",
            "skillsetName",
            "targetIndexName",
            "schedule",
            "parameters",
            "fieldMappings",
            "outputFieldMappings",
            "disabled",
            "encryptionKey",
            "cache",
        },
        "type 'Microsoft.Azure.Search.V2026_04_01.Indexer'",
    )
    for part in ("encryptionKey", "cache"):
        if body.get(part):
            raise not_supported(f"The indexer property '{part}'")
    data_source = body.get("dataSourceName")
    if data_source not in data_sources:
        raise invalid_request("dataSourceName", f"The data source '{data_source}' does not exist.")
    target = body.get("targetIndexName")
    fields = index_fields(target) if isinstance(target, str) else None
    if fields is None:
        raise invalid_request("targetIndexName", f"The index '{target}' does not exist.")
    skillset = body.get("skillsetName")
    if skillset is not None and skillset not in skillsets:
        raise invalid_request("skillsetName", f"The skillset '{skillset}' does not exist.")
    disabled = body.get("disabled") or False
    if not isinstance(disabled, bool):
        raise invalid_request("disabled", "disabled must be true or false.")
    interval = None
    schedule = body.get("schedule")
    if schedule is not None:
        if not isinstance(schedule, dict) or not isinstance(schedule.get("interval"), str):
            raise invalid_request("schedule", "A schedule needs an interval such as 'PT1H'.")
        interval = _interval_seconds(schedule["interval"])
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise invalid_request("parameters", "parameters must be an object.")
    _refuse_unknown(
        parameters, {"batchSize", "maxFailedItems", "maxFailedItemsPerBatch", "configuration"}, "the parameters"
    )
    configuration = parameters.get("configuration") or {}
    for key, value in configuration.items():
        allowed = BLOB_CONFIGURATION.get(key)
        if allowed is None:
            raise not_supported(f"The indexer configuration '{key}'")
        if allowed is str:
            if not isinstance(value, str):
                raise invalid_request("parameters", f"The configuration '{key}' must be a string.")
        elif value not in allowed:  # type: ignore[operator]
            if key in ("parsingMode", "imageAction"):
                raise not_supported(f"The indexer configuration {key}={value!r}")
            raise invalid_request("parameters", f"The configuration '{key}' cannot be {value!r}.")
    field_mappings = [_field_mapping(m, fields, output=False) for m in body.get("fieldMappings") or []]
    output_mappings = [_field_mapping(m, fields, output=True) for m in body.get("outputFieldMappings") or []]
    document = {
        "name": ix_name,
        "description": body.get("description"),
        "dataSourceName": data_source,
        "skillsetName": skillset,
        "targetIndexName": target,
        "disabled": disabled,
        "schedule": copy.deepcopy(schedule),
        "parameters": {
            "batchSize": parameters.get("batchSize"),
            "maxFailedItems": parameters.get("maxFailedItems", 0),
            "maxFailedItemsPerBatch": parameters.get("maxFailedItemsPerBatch", 0),
            "configuration": dict(configuration),
        },
        "fieldMappings": copy.deepcopy(body.get("fieldMappings") or []),
        "outputFieldMappings": copy.deepcopy(body.get("outputFieldMappings") or []),
        "encryptionKey": None,
        "cache": None,
    }
    return Indexer(
        name=ix_name,
        document=document,
        data_source=data_source,
        target_index=target,
        skillset=skillset,
        disabled=disabled,
        interval_seconds=interval,
        batch_size=_int(parameters.get("batchSize"), "batchSize", low=1, default=DEFAULT_BLOB_BATCH_SIZE),
        max_failed_items=_int(parameters.get("maxFailedItems"), "maxFailedItems", low=-1, default=0),
        max_failed_items_per_batch=_int(
            parameters.get("maxFailedItemsPerBatch"), "maxFailedItemsPerBatch", low=-1, default=0
        ),
        configuration=dict(configuration),
        field_mappings=field_mappings,
        output_field_mappings=output_mappings,
    )


_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$")


def _interval_seconds(interval: str) -> float:
    match = _DURATION.match(interval)
    if match is None or interval in ("P", "PT") or interval.endswith("T"):
        raise invalid_request("schedule", f"The interval {interval!r} is not a duration such as 'PT1H'.")
    seconds = int(match["d"] or 0) * 86400 + int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60
    seconds += int(match["s"] or 0)
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise invalid_request("schedule", f"The interval {interval!r} must be from 5 minutes (PT5M) to 24 hours (P1D).")
    return float(seconds)


def _field_mapping(raw: Any, index_fields: Any, *, output: bool) -> FieldMapping:
    if not isinstance(raw, dict) or not isinstance(raw.get("sourceFieldName"), str) or not raw["sourceFieldName"]:
        raise invalid_request("fieldMappings", "Each field mapping needs a sourceFieldName.")
    source = raw["sourceFieldName"]
    target = raw.get("targetFieldName") or source
    if output:
        if not source.startswith("/document/"):
            raise invalid_request(
                "outputFieldMappings", f"The output field mapping source '{source}' must be a path like /document/x."
            )
        if "*" in source or source.count("/") != 2:
            raise not_supported(f"The output field mapping source '{source}' (only /document/<name>)")
    # "Field mapping specifies target field 'Address/city' that doesn't exist in the index"
    # (search-indexer-field-mappings); field names resolve without regard to case.
    match = next((name for name in index_fields if name.lower() == str(target).lower()), None)
    if match is None:
        kind = "Output field mapping" if output else "Field mapping"
        raise SearchServiceError(400, "", f"{kind} specifies target field '{target}' that doesn't exist in the index")
    function = raw.get("mappingFunction")
    name = None
    parameters: dict[str, Any] = {}
    if function is not None:
        if output:
            raise invalid_request("outputFieldMappings", "Output field mappings take no mapping function.")
        name = function.get("name") if isinstance(function, dict) else None
        if name in OTHER_MAPPING_FUNCTIONS:
            raise not_supported(f"The mapping function '{name}'")
        if name not in MAPPING_FUNCTIONS:
            raise invalid_request("fieldMappings", f"The mapping function {name!r} does not exist.")
        parameters = dict(function.get("parameters") or {})
    return FieldMapping(source, match, name, parameters)
