"""Index definitions for the Azure AI Search double: what ``schemas/*.json`` hold and their
updates send, validated as the service validates them and written back with its defaults.
Anything else a definition can hold gets the "not served" 400 unless it is empty. Each rule,
with its source, is a row of ``standins/FIDELITY.md``.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from standins.search.errors import SearchServiceError, invalid_definition, invalid_request, not_served
from standins.search.odata_parser import FieldSpec

_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,127}$")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
VECTOR_TYPE = "Collection(Edm.Single)"
FIELD_TYPES = ("Edm.String", "Edm.Int32", "Edm.Int64", "Edm.DateTimeOffset", "Collection(Edm.String)", VECTOR_TYPE)
MIN_DIMENSIONS, MAX_DIMENSIONS = 2, 4096
HNSW_RANGES = {"m": (4, 10), "efConstruction": (100, 1000), "efSearch": (100, 1000)}
HNSW_DEFAULTS = {"m": 4, "efConstruction": 400, "efSearch": 500, "metric": "cosine"}
BM25 = {"@odata.type": "#Microsoft.Azure.Search.BM25Similarity", "k1": None, "b": None}
# What the double writes back for the index properties it does not serve: an update that sends
# them back unchanged (or empty) is fine.
_INDEX_WRITTEN_BACK: dict[str, Any] = {
    **dict.fromkeys(("defaultScoringProfile", "corsOptions", "semantic")),
    **{k: [] for k in ("scoringProfiles", "suggesters", "analyzers", "tokenizers", "tokenFilters", "charFilters")},
    "normalizers": [],
    "similarity": BM25,
}
_FIELD_WRITTEN_BACK: dict[str, Any] = {
    **dict.fromkeys(("indexAnalyzer", "searchAnalyzer", "analyzer", "normalizer", "vectorEncoding")),
    "synonymMaps": [],
}
_ATTRIBUTES = ("key", "searchable", "filterable", "retrievable", "stored", "sortable", "facetable")
# What cannot change on an existing field (retrievable can).
_IMMUTABLE = ("type", "dimensions", "vectorSearchProfile", *(a for a in _ATTRIBUTES if a != "retrievable"))
# "The following headers are prohibited from being in this collection" (Custom Web API vectorizer
# and skill, "httpHeaders"); compared without regard to case, as HTTP header names are.
PROHIBITED_HEADERS = frozenset(
    h.lower() for h in ("Accept", "Accept-Charset", "Accept-Encoding", "Content-Length", "Content-Type", "Cookie")
) | {"host", "te", "upgrade", "via"}
# vectorSearch.compressions as ensure-index sends them (indexer/vector_compression.py): each
# kind's properties, and rescoring from the preserved originals; anything else is not served.
SCALAR, BINARY = "scalarQuantization", "binaryQuantization"
SERVED_COMPRESSIONS = {
    SCALAR: {"name", "kind", "scalarQuantizationParameters", "rescoringOptions"},
    BINARY: {"name", "kind", "rescoringOptions"},
}
SERVED_RESCORING = {"enableRescoring": True, "rescoreStorageMethod": "preserveOriginals"}
_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def refuse_unserved(body: dict[str, Any], served: set[str], written_back: dict[str, Any], where: str) -> None:
    """Refuse, as not served, a property outside ``served`` that holds more than the double
    itself writes back for it (``None``, an empty value or ``written_back[name]``)."""
    for name, value in body.items():
        if name in served or name.startswith("@odata.") or value in (None, [], {}, written_back.get(name)):
            continue
        raise not_served(f"the {where} property '{name}'")


def check_index_name(name: Any) -> None:
    if not isinstance(name, str) or not _INDEX_NAME.match(name) or "--" in name or "__" in name:
        raise invalid_request(
            "name",
            f"Invalid index name '{name}'. Index names must be 2 to 128 characters of lower-case letters, "
            f"digits, dashes or underscores, start with a letter or digit, and have no consecutive "
            f"dashes or underscores.",
            detail_code="InvalidName",
        )


def named(body: Any, url_name: str | None, kind: str) -> tuple[dict[str, Any], str | None]:
    """The definition and its name; a name in the body must equal the URL's."""
    if not isinstance(body, dict):
        raise invalid_definition(f"The {kind} definition must be a JSON object.")
    body_name = body.get("name")
    if url_name is not None and body_name is not None and body_name != url_name:
        raise invalid_request(
            "name",
            f"The {kind} name '{body_name}' in the request body does not match the name '{url_name}' in the URL.",
            detail_code="InvalidName",
        )
    return body, body_name if body_name is not None else url_name


# --------------------------------------------------------------------------- custom Web API parameters


def duration_seconds(value: Any, where: str, low: float, high: float) -> float:
    """Seconds of an XSD ``dayTimeDuration`` (``PT30S``, ``PT5M``) from ``low`` to ``high``."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or not isinstance(value, str) or value in ("P", "PT") or value.endswith("T"):
        raise invalid_definition(f"The duration {value!r} of {where} is not an XSD dayTimeDuration.")
    seconds = sum(float(match[unit] or 0) * size for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)))
    if not low <= seconds <= high:
        raise invalid_definition(
            f"The duration of {where} is {seconds:g} seconds; it must be from {low:g} to {high:g}."
        )
    return seconds


@dataclass(frozen=True)
class WebApiParameters:
    """Where and how the service calls a custom Web API (a vectorizer's or a skill's)."""

    name: str  # the vectorizer's or the skill's
    uri: str
    http_method: str
    http_headers: dict[str, str]
    timeout_seconds: float
    auth_resource_id: str | None


def web_api_parameters(raw: dict[str, Any], name: str, where: str) -> WebApiParameters:
    """The parameters a custom Web API vectorizer and skill share, checked as documented:
    ``uri`` https only ("Only the https URI scheme is allowed"; the double also lets ``http``
    reach a loopback address, a local endpoint), ``httpMethod`` PUT or POST (default POST), no
    prohibited ``httpHeaders``, ``timeout`` from 1 to 230 s ("a maximum of 230 seconds and a
    minimum of 1 second"; "If not set, a default value of 30 seconds is chosen")."""
    uri = raw.get("uri")
    parts = urlsplit(uri) if isinstance(uri, str) else None
    if not isinstance(uri, str) or parts is None or not parts.hostname or parts.scheme not in ("https", "http"):
        raise invalid_definition(f"The uri of {where} must be an absolute https URI, not {uri!r}.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise invalid_definition(
            f"The uri of {where} is {uri!r}: only the https URI scheme is allowed (this stand-in also accepts "
            f"http to a loopback address).",
        )
    method = raw.get("httpMethod") or "POST"
    if method not in ("PUT", "POST"):
        raise invalid_definition(f"The httpMethod of {where} is {method!r}; the allowed methods are PUT and POST.")
    headers = raw.get("httpHeaders") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise invalid_definition(f"The httpHeaders of {where} must be an object of strings.")
    prohibited = sorted(h for h in headers if h.lower() in PROHIBITED_HEADERS)
    if prohibited:
        raise invalid_definition(f"The header '{prohibited[0]}' is prohibited in the httpHeaders of {where}.")
    timeout = raw.get("timeout")
    seconds = 30.0 if timeout is None else duration_seconds(timeout, where, 1, 230)
    return WebApiParameters(name, uri, method, dict(headers), seconds, raw.get("authResourceId"))


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- indexes


@dataclass(frozen=True)
class VectorField:
    name: str
    dimensions: int
    vectorizer: str | None  # the name of its profile's vectorizer, if any


@dataclass
class IndexDefinition:
    """A validated index: the JSON the service returns, plus what the store needs."""

    name: str
    document: dict[str, Any]  # REST JSON with defaults filled in, without @odata.* keys
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    key_field: str = ""
    vector_fields: dict[str, VectorField] = field(default_factory=dict)
    vectorizers: dict[str, WebApiParameters] = field(default_factory=dict)
    etag: str = ""


def parse_definition(body: Any, *, name: str | None = None) -> IndexDefinition:
    """Validate an index definition from a create or update request (``name``: the URL's);
    ``SearchServiceError`` 400 naming the first problem found."""
    body, index_name = named(body, name, "index")
    if index_name is None:
        raise invalid_request("name", "The index name is missing.", detail_code="InvalidName")
    check_index_name(index_name)
    refuse_unserved(body, {"name", "description", "fields", "vectorSearch"}, _INDEX_WRITTEN_BACK, "index")
    vector_search, profiles, vectorizers = _vector_search(body.get("vectorSearch"))
    raw_fields = body.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise invalid_definition("The index must have at least one field.")
    documents = [_field(raw) for raw in raw_fields]
    fields: dict[str, FieldSpec] = {}
    vector_fields: dict[str, VectorField] = {}
    for f in documents:
        if f["name"] in fields:
            raise invalid_definition(f"The field name '{f['name']}' is used more than once.")
        fields[f["name"]] = FieldSpec(f["name"], f["type"], f["filterable"], f["sortable"], f["retrievable"])
        if f["type"] == VECTOR_TYPE:
            if f["vectorSearchProfile"] not in profiles:
                raise invalid_definition(
                    f"The vector field '{f['name']}' refers to the vector search profile "
                    f"'{f['vectorSearchProfile']}', which is not defined in vectorSearch.",
                )
            vectorizer = profiles[f["vectorSearchProfile"]]
            vector_fields[f["name"]] = VectorField(f["name"], f["dimensions"], vectorizer)
    keys = [f["name"] for f in documents if f["key"]]
    if len(keys) != 1:
        raise invalid_request(  # the live text (azure-sdk-for-net#48216)
            "index",
            f"Found {len(keys)} key fields in index '{index_name}'. Each index must have exactly one key field.",
            detail_code="MissingKeyField" if not keys else "InvalidField",
        )
    if fields[keys[0]].type != "Edm.String":
        raise invalid_definition(f"The key field '{keys[0]}' must be of type 'Edm.String'.")
    document = {"name": index_name, "description": body.get("description"), "fields": documents}
    document.update(copy.deepcopy(_INDEX_WRITTEN_BACK), vectorSearch=vector_search)
    return IndexDefinition(index_name, document, fields, keys[0], vector_fields, vectorizers)


def _field(raw: Any) -> dict[str, Any]:
    """One field with the service's defaults, checked."""
    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not _FIELD_NAME.match(name) or name.startswith("azureSearch"):
        raise invalid_definition(
            f"Invalid field name '{name}'. Field names must be 1 to 128 letters, digits or underscores, start "
            f"with a letter, and must not start with 'azureSearch'.",
        )
    served = {"name", "type", *_ATTRIBUTES, "dimensions", "vectorSearchProfile"}
    refuse_unserved(raw, served, _FIELD_WRITTEN_BACK, f"field '{name}'")
    kind = raw.get("type")
    if kind not in FIELD_TYPES:
        raise not_served(f"the field type '{kind}' (field '{name}')")
    vector, collection, text = kind == VECTOR_TYPE, kind.startswith("Collection("), "Edm.String" in kind
    defaults = {
        "key": False,
        "searchable": text or vector,
        "filterable": not vector,
        "retrievable": True,
        "stored": True,
        "sortable": not (vector or collection),
        "facetable": not vector,
    }
    values = {a: default if raw.get(a) is None else raw[a] for a, default in defaults.items()}
    dimensions, profile = raw.get("dimensions"), raw.get("vectorSearchProfile")
    unusable = type(dimensions) is not int or not MIN_DIMENSIONS <= dimensions <= MAX_DIMENSIONS
    problems = {
        "its attributes must be true or false": not all(isinstance(v, bool) for v in values.values()),
        "only string and vector fields can be searchable": values["searchable"] and not (text or vector),
        "a collection cannot be sortable or the key": collection and (values["sortable"] or values["key"]),
        "a field that is not stored cannot be retrievable": values["retrievable"] and not values["stored"],
        "a vector field must be searchable and cannot be filterable, sortable, facetable or the key": vector
        and (not values["searchable"] or any(values[a] for a in ("filterable", "sortable", "facetable", "key"))),
        "a vector field must have the properties 'dimensions' and 'vectorSearchProfile' set": vector
        and (dimensions is None or profile is None),
        f"a vector field has {MIN_DIMENSIONS} to {MAX_DIMENSIONS} dimensions, not {dimensions!r}": vector and unusable,
        "only vector fields have 'dimensions' and 'vectorSearchProfile'": not vector
        and (dimensions is not None or profile is not None),
    }
    problem = next((problem for problem, found in problems.items() if found), None)
    if problem:
        raise invalid_definition(f"The field '{name}' is invalid: {problem}.")
    return {
        "name": name,
        "type": kind,
        **values,
        **_FIELD_WRITTEN_BACK,
        "dimensions": dimensions,
        "vectorSearchProfile": profile,
    }


def _vector_search(section: Any) -> tuple[dict[str, Any] | None, dict[str, str | None], dict[str, WebApiParameters]]:
    """The ``vectorSearch`` written back, profile name -> its vectorizer's name, and the vectorizers."""
    if section is None:
        return None, {}, {}
    if not isinstance(section, dict):
        raise invalid_definition("vectorSearch must be a JSON object.")
    refuse_unserved(section, {"algorithms", "profiles", "vectorizers", "compressions"}, {}, "vectorSearch")
    algorithms = []
    for raw in section.get("algorithms") or []:
        if not isinstance(raw, dict) or not raw.get("name"):
            raise invalid_definition("Each vector search algorithm needs a name.")
        if raw.get("kind") != "hnsw":
            raise not_served(f"the vector search algorithm kind {raw.get('kind')!r}")
        refuse_unserved(raw, {"name", "kind", "hnswParameters"}, {}, "algorithm")
        parameters = {**HNSW_DEFAULTS, **(raw.get("hnswParameters") or {})}
        for key, (low, high) in HNSW_RANGES.items():
            if type(parameters[key]) is not int or not low <= parameters[key] <= high:
                raise invalid_definition(
                    f"The HNSW parameter '{key}' of algorithm '{raw['name']}' is {parameters[key]!r}; it must be "
                    f"between {low} and {high}.",
                )
        if parameters["metric"] != "cosine":
            raise not_served(f"the vector similarity metric {parameters['metric']!r}")
        algorithms.append(
            {"name": raw["name"], "kind": "hnsw", "hnswParameters": parameters, "exhaustiveKnnParameters": None}
        )
    vectorizers, written = {}, []
    for raw in section.get("vectorizers") or []:
        if not isinstance(raw, dict) or not raw.get("name") or raw["name"] in vectorizers:
            raise invalid_definition("Each vectorizer needs a name of its own.")
        if raw.get("kind") != "customWebApi":
            raise not_served(f"the vectorizer kind {raw.get('kind')!r}")
        refuse_unserved(raw, {"name", "kind", "customWebApiParameters"}, {}, "vectorizer")
        parameters = raw.get("customWebApiParameters") or {}
        where = f"the vectorizer '{raw['name']}'"
        refuse_unserved(parameters, {"uri", "httpMethod", "httpHeaders", "timeout", "authResourceId"}, {}, where)
        vectorizers[raw["name"]] = checked = web_api_parameters(parameters, raw["name"], where)
        written.append(
            {
                "name": raw["name"],
                "kind": "customWebApi",
                "customWebApiParameters": {
                    "uri": checked.uri,
                    "httpMethod": checked.http_method,
                    "httpHeaders": checked.http_headers,
                    "timeout": parameters.get("timeout") or "PT30S",
                    "authResourceId": checked.auth_resource_id,
                    "authIdentity": None,
                },
            }
        )
    names = {a["name"] for a in algorithms}
    compressions: dict[str, dict[str, Any]] = {}
    for raw in section.get("compressions") or []:
        _compression(raw, compressions)
    profiles: dict[str, str | None] = {}
    written_profiles = []
    for raw in section.get("profiles") or []:
        if not isinstance(raw, dict) or not raw.get("name"):
            raise invalid_definition("Each vector search profile needs a name.")
        refuse_unserved(raw, {"name", "algorithm", "vectorizer", "compression"}, {}, "vector search profile")
        for part, defined in (("algorithm", names), ("vectorizer", vectorizers), ("compression", compressions)):
            if (part == "algorithm" or raw.get(part) is not None) and raw.get(part) not in defined:
                raise invalid_definition(
                    f"The vector search profile '{raw['name']}' refers to the {part} '{raw.get(part)}', which is not "
                    f"defined.",
                )
        profiles[raw["name"]] = raw.get("vectorizer")
        written_profiles.append({k: raw.get(k) for k in ("name", "algorithm", "vectorizer", "compression")})
    vector_search = {"algorithms": algorithms, "profiles": written_profiles, "vectorizers": written}
    return {**vector_search, "compressions": list(compressions.values())}, profiles, vectorizers


def _compression(raw: Any, defined: dict[str, Any]) -> None:
    """Check one ``vectorSearch.compressions`` entry as REST "VectorSearchCompression" and add it to
    ``defined`` as the service writes it back. Nothing is quantized: queries stay exact (FIDELITY.md)."""
    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not name or name in defined:
        raise invalid_definition("Each vector compression needs a name of its own.")
    kind = raw.get("kind")
    if kind not in SERVED_COMPRESSIONS:
        kinds = f"'{SCALAR}' or '{BINARY}'"
        raise invalid_definition(f"The kind of the compression '{name}' is {kind!r}; it must be {kinds}.")
    where = f"compression '{name}'"
    refuse_unserved(raw, SERVED_COMPRESSIONS[kind], {}, where)
    options = raw.get("rescoringOptions") or {}
    refuse_unserved(options, {"defaultOversampling", *SERVED_RESCORING}, {}, where)
    oversampling = options.get("defaultOversampling")
    if oversampling is None or any(options.get(k) != v for k, v in SERVED_RESCORING.items()):
        raise not_served(f"a compression other than rescored from the preserved originals (the {where})")
    data_type = (raw.get("scalarQuantizationParameters") or {}).get("quantizedDataType")
    problems = {
        f"quantizedDataType is {data_type!r}; the only one is 'int8'": kind == SCALAR and data_type != "int8",
        f"rescoringOptions.defaultOversampling is {oversampling!r}; it must be a number, at least 1": (
            isinstance(oversampling, bool) or not isinstance(oversampling, int | float) or not oversampling >= 1
        ),
    }
    problem = next((problem for problem, found in problems.items() if found), None)
    if problem:
        raise invalid_definition(f"The {where} is invalid: {problem}.")
    defined[name] = {**raw, "rescoringOptions": {**SERVED_RESCORING, **options}, "truncationDimension": None}


def check_update(old: IndexDefinition, new: IndexDefinition) -> None:
    """An update may add fields and change ``retrievable``; anything else on an existing field
    (or removing it) is refused, as the service refuses it (the index would need a rebuild)."""
    new_fields = {f["name"]: f for f in new.document["fields"]}
    changed = [
        f["name"]
        for f in old.document["fields"]
        if f["name"] not in new_fields or any(new_fields[f["name"]][a] != f[a] for a in _IMMUTABLE)
    ]
    if changed:
        message = f"Existing field '{changed[0]}' cannot be changed."
        detail = {"code": "CannotChangeExistingField", "message": message}
        raise SearchServiceError(400, "OperationNotAllowed", message, details=[detail])

    # An update from imgsearch sends the compressions back as it read them (ensure-index refuses
    # another compression before anything is sent).
    def compressed(definition: IndexDefinition) -> tuple[Any, dict[str, Any]]:
        section = definition.document.get("vectorSearch") or {}
        return section.get("compressions"), {p["name"]: p["compression"] for p in section.get("profiles") or []}

    (before, profiles_before), (after, profiles_after) = compressed(old), compressed(new)
    if before != after or any(profiles_after.get(n, c) != c for n, c in profiles_before.items()):
        raise not_served("an update that changes vectorSearch.compressions or a profile's compression")
