"""The data source, skillset and indexer of the Azure AI Search double: what pull mode sends
(``schemas/datasource.json``, ``skillset.json``, ``indexer.json``), validated as the service
validates it and written back in its shape; anything else gets the "not served" 400. Each
rule, with its source, is a row of ``standins/FIDELITY.md``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from standins.search.definitions import WebApiParameters, duration_seconds, named, refuse_unserved, web_api_parameters
from standins.search.errors import SearchServiceError, invalid_definition, invalid_request, not_served

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
WEB_API_SKILL = "#Microsoft.Skills.Custom.WebApiSkill"
HIGH_WATER_MARK = "#Microsoft.Azure.Search.HighWaterMarkChangeDetectionPolicy"
NATIVE_SOFT_DELETE = "#Microsoft.Azure.Search.NativeBlobSoftDeleteDeletionDetectionPolicy"
DEFAULT_BLOB_BATCH_SIZE = 10  # the blob indexer's default batch size ("Indexers - Create", batchSize)
# The blob configuration pull mode sends, and the values the double serves for each.
BLOB_CONFIGURATION: dict[str, tuple[Any, ...]] = {
    "dataToExtract": ("contentAndMetadata",),
    "parsingMode": ("default",),
    "failOnUnsupportedContentType": (False,),
    "failOnUnprocessableDocument": (False,),
    # "Extract text and information from images": the image path a skillset documents.
    "imageAction": ("none", "generateNormalizedImages"),
}
# "indexedFileNameExtensions": a comma-separated list of extensions, each with its dot
# ("Index data from Azure Blob Storage", "Indexing by file type").
_EXTENSIONS = re.compile(r"^\.[A-Za-z0-9]+(\s*,\s*\.[A-Za-z0-9]+)*$")
# The enrichment node of the images imageAction makes; pull mode's skill reads the first by its
# index ("Skill context and input annotation language", "Array item index").
NORMALIZED_IMAGES = "/document/normalized_images"
FIRST_NORMALIZED_IMAGE = NORMALIZED_IMAGES + "/0"


def _name(body: Any, url_name: str | None, kind: str) -> tuple[dict[str, Any], str]:
    body, name = named(body, url_name, kind)
    if not isinstance(name, str) or not _NAME.match(name):
        raise invalid_request(
            "name",
            f"Invalid {kind} name {name!r}: use 1 to 128 letters, digits, dashes or underscores, starting with a "
            f"letter or digit.",
            detail_code="InvalidName",
        )
    return body, name


def _whole(value: Any, where: str, *, low: int, high: int | None = None, default: int) -> int:
    if value is None:
        return default
    if type(value) is not int or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise invalid_definition(f"{where} must be a whole number {bounds}, not {value!r}.")
    return value


@dataclass
class DataSource:
    name: str
    document: dict[str, Any]  # as the service returns it (the connection string is not returned)
    connection_string: str = field(repr=False, default="")
    container: str = ""
    soft_delete: bool = False
    etag: str = ""


def parse_data_source(body: Any, *, name: str | None = None) -> DataSource:
    body, ds_name = _name(body, name, "data source")
    served = {"name", "description", "type", "credentials", "container", "dataChangeDetectionPolicy"}
    refuse_unserved(body, served | {"dataDeletionDetectionPolicy"}, {}, "data source")
    if body.get("type") != "azureblob":
        raise not_served(f"the data source type {body.get('type')!r}")
    credentials = body.get("credentials")
    connection = credentials.get("connectionString") if isinstance(credentials, dict) else None
    if not isinstance(connection, str) or not connection.strip():
        raise invalid_request("credentials", "The data source needs credentials.connectionString.")
    if connection.strip().lower().startswith("resourceid="):
        raise not_served("a data source that connects with a managed identity (ResourceId=...)")
    container = body.get("container")
    if not isinstance(container, dict) or not isinstance(container.get("name"), str) or not container["name"]:
        raise invalid_request("container", "The data source needs container.name, the blob container to index.")
    if container.get("query"):
        raise not_served("a virtual folder (container.query)")
    change = body.get("dataChangeDetectionPolicy")
    if change is not None and (
        not isinstance(change, dict)
        or change.get("@odata.type") != HIGH_WATER_MARK
        or change.get("highWaterMarkColumnName") != "metadata_storage_last_modified"
    ):
        raise invalid_request(
            "dataChangeDetectionPolicy",
            "A blob data source detects changes by LastModified: a HighWaterMarkChangeDetectionPolicy on "
            "'metadata_storage_last_modified', or none.",
        )
    deletion = body.get("dataDeletionDetectionPolicy")
    kind = deletion.get("@odata.type") if isinstance(deletion, dict) else deletion
    if kind not in (None, NATIVE_SOFT_DELETE):
        raise not_served(f"the deletion detection policy {kind!r}")
    document = {
        "name": ds_name,
        "description": body.get("description"),
        "type": "azureblob",
        "credentials": {"connectionString": None},  # never returned
        "container": {"name": container["name"], "query": None},
        "dataChangeDetectionPolicy": copy.deepcopy(change),
        "dataDeletionDetectionPolicy": copy.deepcopy(deletion),
        **dict.fromkeys(("subtype", "encryptionKey", "identity")),
    }
    return DataSource(ds_name, document, connection, container["name"], deletion is not None)


@dataclass(frozen=True)
class WebApiSkill:
    name: str
    target: WebApiParameters
    batch_size: int
    degree_of_parallelism: int
    inputs: tuple[tuple[str, str], ...]  # (input name, source path)
    outputs: tuple[tuple[str, str], ...]  # (output name, target node name)


@dataclass
class Skillset:
    name: str
    document: dict[str, Any]
    skill: WebApiSkill  # one: pull mode's /api/vectorize
    etag: str = ""


def parse_skillset(body: Any, *, name: str | None = None) -> Skillset:
    body, ss_name = _name(body, name, "skillset")
    refuse_unserved(body, {"name", "description", "skills"}, {}, "skillset")
    raw_skills = body.get("skills")
    if not isinstance(raw_skills, list) or not raw_skills:
        raise invalid_request("skills", "A skillset must have at least one skill.")
    if len(raw_skills) > 1:
        raise not_served("a skillset of more than one skill")
    skill, document = _web_api_skill(raw_skills[0])
    return Skillset(ss_name, {"name": ss_name, "description": body.get("description"), "skills": [document]}, skill)


def _web_api_skill(raw: Any) -> tuple[WebApiSkill, dict[str, Any]]:
    kind = raw.get("@odata.type") if isinstance(raw, dict) else None
    if kind != WEB_API_SKILL or not isinstance(raw, dict):
        raise not_served(f"the skill {kind!r}")
    name = raw.get("name") or "#1"
    where = f"the skill '{name}'"
    parameters = {"uri", "httpMethod", "httpHeaders", "timeout", "authResourceId"}
    refuse_unserved(
        raw,
        {"name", "description", "context", "inputs", "outputs", "batchSize", "degreeOfParallelism"} | parameters,
        {},
        "skill",
    )
    if (raw.get("context") or "/document") != "/document":
        raise not_served(f"the skill context '{raw['context']}' (only /document)")
    inputs, outputs = [], []
    for entry in raw.get("inputs") or []:
        source = entry.get("source") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not entry.get("name") or not isinstance(source, str):
            raise invalid_request("skills", f"Each input of {where} needs a name and a source.")
        if source != FIRST_NORMALIZED_IMAGE and not re.fullmatch(r"/document/\w+", source):
            raise not_served(
                f"the input source '{source}' of {where} (only /document/<name> and {FIRST_NORMALIZED_IMAGE})"
            )
        inputs.append((entry["name"], source))
    for entry in raw.get("outputs") or []:
        if not isinstance(entry, dict) or not entry.get("name"):
            raise invalid_request("skills", f"Each output of {where} needs a name.")
        outputs.append((entry["name"], entry.get("targetName") or entry["name"]))
    if not inputs or not outputs:
        raise invalid_request("skills", f"{where} needs inputs and outputs.")
    skill = WebApiSkill(
        name=name,
        target=web_api_parameters(raw, name, where),
        batch_size=_whole(raw.get("batchSize"), f"The batchSize of {where}", low=1, default=1000),
        degree_of_parallelism=_whole(
            raw.get("degreeOfParallelism"), f"The degreeOfParallelism of {where}", low=1, high=10, default=5
        ),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
    )
    document = {
        **{k: raw.get(k) for k in ("@odata.type", "name", "description", "batchSize", "degreeOfParallelism")},
        "name": name,
        "context": "/document",
        "uri": skill.target.uri,
        "httpHeaders": skill.target.http_headers,
        "httpMethod": skill.target.http_method,
        "timeout": raw.get("timeout") or "PT30S",
        "authResourceId": skill.target.auth_resource_id,
        "authIdentity": None,
        "inputs": [{"name": n, "source": s, "inputs": []} for n, s in inputs],
        "outputs": [{"name": n, "targetName": t} for n, t in outputs],
    }
    return skill, document


@dataclass(frozen=True)
class FieldMapping:
    source: str
    target: str
    base64_encode: bool = False  # the mapping function base64Encode (UrlTokenEncode form)


@dataclass
class Indexer:
    name: str
    document: dict[str, Any]
    data_source: str
    target_index: str
    skillset: str | None
    interval_seconds: float | None
    batch_size: int
    max_failed_items: int
    max_failed_items_per_batch: int
    field_mappings: list[FieldMapping]
    output_field_mappings: list[FieldMapping]
    etag: str = ""
    normalize_images: bool = False  # imageAction generateNormalizedImages
    extensions: tuple[str, ...] = ()  # indexedFileNameExtensions, lower case; empty: every blob


def parse_indexer(
    body: Any,
    *,
    name: str | None = None,
    data_sources: dict[str, DataSource],
    skillsets: dict[str, Skillset],
    index_fields: Any,
) -> Indexer:
    """``index_fields(index name)`` gives the target index's field names, or None if it is missing."""
    body, ix_name = _name(body, name, "indexer")
    served = {"name", "description", "dataSourceName", "skillsetName", "targetIndexName", "schedule", "parameters"}
    refuse_unserved(body, served | {"fieldMappings", "outputFieldMappings"}, {"disabled": False}, "indexer")
    data_source, skillset, target = body.get("dataSourceName"), body.get("skillsetName"), body.get("targetIndexName")
    if data_source not in data_sources:
        raise invalid_request("dataSourceName", f"The data source '{data_source}' does not exist.")
    if skillset is not None and skillset not in skillsets:
        raise invalid_request("skillsetName", f"The skillset '{skillset}' does not exist.")
    fields = index_fields(target) if isinstance(target, str) else None
    if fields is None:
        raise invalid_request("targetIndexName", f"The index '{target}' does not exist.")
    schedule = body.get("schedule")
    interval = None
    if schedule is not None:
        refuse_unserved(schedule, {"interval"}, {}, "schedule")
        # "The smallest interval allowed is 5 minutes, and the longest is 1440 minutes" (24 hours).
        interval = duration_seconds(schedule.get("interval"), "the schedule", 5 * 60, 24 * 3600)
    parameters = body.get("parameters") or {}
    refuse_unserved(
        parameters, {"batchSize", "maxFailedItems", "maxFailedItemsPerBatch", "configuration"}, {}, "indexer parameters"
    )
    configuration = parameters.get("configuration") or {}
    extensions = configuration.get("indexedFileNameExtensions")
    for key, value in configuration.items():
        if key == "indexedFileNameExtensions":
            if not isinstance(value, str) or not _EXTENSIONS.match(value):
                raise invalid_request(
                    key, f"indexedFileNameExtensions must list extensions like '.jpg,.png', not {value!r}."
                )
        elif value not in BLOB_CONFIGURATION.get(key, ()):
            raise not_served(f"the indexer configuration {key}={value!r}")
    mappings = [_field_mapping(m, fields, output=False) for m in body.get("fieldMappings") or []]
    outputs = [_field_mapping(m, fields, output=True) for m in body.get("outputFieldMappings") or []]
    document = {
        "name": ix_name,
        "description": body.get("description"),
        "dataSourceName": data_source,
        "skillsetName": skillset,
        "targetIndexName": target,
        "disabled": False,
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
        interval_seconds=interval,
        batch_size=_whole(parameters.get("batchSize"), "batchSize", low=1, default=DEFAULT_BLOB_BATCH_SIZE),
        max_failed_items=_whole(parameters.get("maxFailedItems"), "maxFailedItems", low=-1, default=0),
        max_failed_items_per_batch=_whole(
            parameters.get("maxFailedItemsPerBatch"), "maxFailedItemsPerBatch", low=-1, default=0
        ),
        normalize_images=configuration.get("imageAction") == "generateNormalizedImages",
        extensions=tuple(e.strip().lower() for e in extensions.split(",")) if extensions else (),
        field_mappings=mappings,
        output_field_mappings=outputs,
    )


def _field_mapping(raw: Any, index_fields: list[str], *, output: bool) -> FieldMapping:
    kind = "Output field mapping" if output else "Field mapping"
    source = raw.get("sourceFieldName") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or not isinstance(source, str) or not source:
        raise invalid_request("fieldMappings", f"Each {kind.lower()} needs a sourceFieldName.")
    refuse_unserved(raw, {"sourceFieldName", "targetFieldName", "mappingFunction"}, {}, kind.lower())
    if output and not re.fullmatch(r"/document/\w+", source):
        raise not_served(f"the output field mapping source '{source}' (only /document/<name>)")
    target = raw.get("targetFieldName") or source
    # "Field mapping specifies target field 'Address/city' that doesn't exist in the index"
    # (search-indexer-field-mappings); field names resolve without regard to case.
    match = next((name for name in index_fields if name.lower() == str(target).lower()), None)
    if match is None:
        raise SearchServiceError(400, "", f"{kind} specifies target field '{target}' that doesn't exist in the index")
    function = raw.get("mappingFunction")
    if function is not None and (
        output
        or not isinstance(function, dict)
        or function.get("name") != "base64Encode"
        or (function.get("parameters") or {}) not in ({}, {"useHttpServerUtilityUrlTokenEncode": True})
    ):
        raise not_served(f"the mapping function {function!r} (only base64Encode, UrlTokenEncode form)")
    return FieldMapping(source, match, function is not None)
