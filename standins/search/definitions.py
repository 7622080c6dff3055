"""Index definitions for the Azure AI Search double: validated the way the service
validates them, and written back with the service's defaults filled in.

Rules enforced (from the service documentation and MISSION.md):

- index names: 2 to 128 characters, lower-case letters, digits, ``-`` and ``_``, starting with
  a letter or digit, no consecutive dashes or underscores;
- field names: 1 to 128 letters, digits and ``_``, starting with a letter, never starting
  with ``azureSearch``; unique;
- exactly one key field, of type ``Edm.String``;
- vector fields (``Collection(Edm.Single)``) need ``dimensions`` and a ``vectorSearchProfile``
  that names an existing profile whose algorithm exists; they must be searchable and cannot be
  filterable, sortable or facetable;
- HNSW parameters within the documented ranges (m 4-10, efConstruction and efSearch 100-1000);
- an update may add fields and change a field's ``retrievable``; it may not remove fields or
  change any other attribute of an existing field;
- vectorizers (``vectorSearch.vectorizers``) of kind ``customWebApi`` ("Custom Web API
  vectorizer", vector-search-vectorizer-custom-web-api): unique names, an ``https`` ``uri``
  ("Only the https URI scheme is allowed"; as a stand-in, ``http`` to a loopback address is
  allowed too, so that a local endpoint can serve it), ``httpMethod`` PUT or POST, no
  prohibited ``httpHeaders``, a ``timeout`` from 1 to 230 seconds (default 30); a profile's
  ``vectorizer`` must name one of them.

What the double does not implement (complex and geography types, analyzers, scoring
profiles, suggesters, semantic configurations, vectorizers of other kinds, vector compression,
metrics other than cosine) is refused with a 400 that says so, instead of being accepted and
ignored.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from standins.search.odata_parser import FieldSpec


class SearchServiceError(Exception):
    """An error answer of the service: status, ``{"error": {"code", "message", "details"}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def invalid_request(
    parameter: str, detail: str, *, code: str = "InvalidRequestParameter", detail_code: str = "InvalidField"
) -> SearchServiceError:
    """The service's 400 shape: ``The request is invalid. Details: <parameter> : <detail>``."""
    return SearchServiceError(
        400,
        code,
        f"The request is invalid. Details: {parameter} : {detail}",
        details=[{"code": detail_code, "message": f"{detail} Parameters: {parameter}"}],
    )


def not_supported(what: str) -> SearchServiceError:
    return SearchServiceError(
        400,
        "NotSupportedByStandIn",
        f"{what} is valid on Azure AI Search but not implemented by this stand-in; use a real search service for it",
    )


_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,127}$")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")

SCALAR_TYPES = ("Edm.String", "Edm.Int32", "Edm.Int64", "Edm.Double", "Edm.Boolean", "Edm.DateTimeOffset")
VECTOR_TYPE = "Collection(Edm.Single)"
MIN_DIMENSIONS, MAX_DIMENSIONS = 2, 4096
HNSW_RANGES = {"m": (4, 10), "efConstruction": (100, 1000), "efSearch": (100, 1000)}
HNSW_DEFAULTS = {"m": 4, "efConstruction": 400, "efSearch": 500, "metric": "cosine"}
_UNSUPPORTED_INDEX_PARTS = (
    "scoringProfiles",
    "suggesters",
    "analyzers",
    "tokenizers",
    "tokenFilters",
    "charFilters",
    "normalizers",
    "semantic",
    "corsOptions",
    "encryptionKey",
)
_KNOWN_INDEX_PROPERTIES = {
    "name",
    "description",
    "fields",
    "vectorSearch",
    "similarity",
    "defaultScoringProfile",
    "@odata.etag",
    "@odata.context",
    *_UNSUPPORTED_INDEX_PARTS,
}
_KNOWN_FIELD_PROPERTIES = {
    "name",
    "type",
    "key",
    "searchable",
    "filterable",
    "retrievable",
    "stored",
    "sortable",
    "facetable",
    "hidden",
    "analyzer",
    "searchAnalyzer",
    "indexAnalyzer",
    "normalizer",
    "synonymMaps",
    "dimensions",
    "vectorSearchProfile",
    "vectorEncoding",
    "fields",
}
# Attributes that cannot change on an existing field (retrievable can).
_IMMUTABLE_FIELD_ATTRIBUTES = (
    "type",
    "key",
    "searchable",
    "filterable",
    "sortable",
    "facetable",
    "stored",
    "dimensions",
    "vectorSearchProfile",
)


def check_index_name(name: str) -> None:
    if not isinstance(name, str) or not _INDEX_NAME.match(name) or "--" in name or "__" in name:
        raise invalid_request(
            "name",
            f"Invalid index name '{name}'. Index names must be 2 to 128 characters of lower-case letters, "
            f"digits, dashes or underscores, start with a letter or digit, and have no consecutive "
            f"dashes or underscores.",
            detail_code="InvalidName",
        )


def check_field_name(name: Any) -> None:
    if not isinstance(name, str) or not _FIELD_NAME.match(name) or name.startswith("azureSearch"):
        raise invalid_request(
            "definition",
            f"Invalid field name '{name}'. Field names must be 1 to 128 letters, digits or "
            f"underscores, start with a letter, and must not start with 'azureSearch'.",
        )


@dataclass(frozen=True)
class VectorField:
    name: str
    dimensions: int
    metric: str
    vectorizer: str | None = None  # the name of its profile's vectorizer, if any


@dataclass(frozen=True)
class WebApiVectorizer:
    """A ``customWebApi`` vectorizer as the service keeps it (``customWebApiParameters``)."""

    name: str
    uri: str
    http_method: str
    http_headers: dict[str, str]
    timeout_seconds: float
    auth_resource_id: str | None
    auth_identity: Any


@dataclass
class IndexDefinition:
    """A validated index: the JSON the service returns, plus what the store needs."""

    name: str
    document: dict[str, Any]  # REST JSON with defaults filled in, without @odata.* keys
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    key_field: str = ""
    vector_fields: dict[str, VectorField] = field(default_factory=dict)
    vectorizers: dict[str, WebApiVectorizer] = field(default_factory=dict)
    etag: str = ""


def parse_definition(body: Any, *, name: str | None = None) -> IndexDefinition:
    """Validate an index definition from a create or update request.

    ``name`` is the name from the URL (PUT); it must equal the body's name when both exist.
    Raises ``SearchServiceError`` (400) naming the first problem found.
    """
    if not isinstance(body, dict):
        raise invalid_request("definition", "The index definition must be a JSON object.")
    body_name = body.get("name")
    if name is not None and body_name is not None and body_name != name:
        raise invalid_request(
            "name",
            f"The index name '{body_name}' in the request body does not match the name '{name}' in the URL.",
            detail_code="InvalidName",
        )
    index_name = body_name if body_name is not None else name
    if index_name is None:
        raise invalid_request("name", "The index name is missing.", detail_code="InvalidName")
    check_index_name(index_name)
    unknown = sorted(set(body) - _KNOWN_INDEX_PROPERTIES)
    if unknown:
        raise invalid_request(
            "definition",
            f"The property '{unknown[0]}' does not exist on type 'Microsoft.Azure.Search.V2026_04_01.Index'.",
        )
    for part in _UNSUPPORTED_INDEX_PARTS:
        if body.get(part):
            raise not_supported(f"The index property '{part}'")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid_request("definition", "The index description must be a string.")

    algorithms, profiles, vectorizers = _parse_vector_search(body.get("vectorSearch"))
    raw_fields = body.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise invalid_request("definition", "The index must have at least one field.")
    fields: dict[str, FieldSpec] = {}
    vector_fields: dict[str, VectorField] = {}
    documents: list[dict[str, Any]] = []
    key_fields: list[str] = []
    for raw in raw_fields:
        normalized = _normalize_field(raw)
        fname = normalized["name"]
        if fname in fields:
            raise invalid_request("definition", f"The field name '{fname}' is used more than once.")
        if normalized["key"]:
            key_fields.append(fname)
        if normalized["type"] == VECTOR_TYPE:
            profile = normalized["vectorSearchProfile"]
            if profile not in profiles:
                raise invalid_request(
                    "definition",
                    f"The vector field '{fname}' refers to the vector search "
                    f"profile '{profile}', which is not defined in vectorSearch.",
                )
            algorithm, vectorizer = profiles[profile]
            vector_fields[fname] = VectorField(fname, normalized["dimensions"], algorithms[algorithm], vectorizer)
        fields[fname] = FieldSpec(
            fname,
            normalized["type"],
            filterable=normalized["filterable"],
            sortable=normalized["sortable"],
            retrievable=normalized["retrievable"],
        )
        documents.append(normalized)
    if len(key_fields) != 1:
        raise invalid_request(  # the live text (azure-sdk-for-net#48216)
            "index",
            f"Found {len(key_fields)} key fields in index '{index_name}'. Each index must have exactly one key field.",
            detail_code="MissingKeyField" if not key_fields else "InvalidField",
        )
    key = key_fields[0]
    if fields[key].type != "Edm.String":
        raise invalid_request(
            "definition", f"The key field '{key}' must be of type 'Edm.String', not '{fields[key].type}'."
        )
    document = {
        "name": index_name,
        "description": description,
        "defaultScoringProfile": None,
        "fields": documents,
        "scoringProfiles": [],
        "corsOptions": None,
        "suggesters": [],
        "analyzers": [],
        "tokenizers": [],
        "tokenFilters": [],
        "charFilters": [],
        "normalizers": [],
        "similarity": {"@odata.type": "#Microsoft.Azure.Search.BM25Similarity", "k1": None, "b": None},
        "semantic": None,
        "vectorSearch": _vector_search_document(body.get("vectorSearch")),
    }
    return IndexDefinition(index_name, document, fields, key, vector_fields, vectorizers)


def _normalize_field(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise invalid_request("definition", "Each field must be a JSON object.")
    check_field_name(raw.get("name"))
    name = raw["name"]
    unknown = sorted(set(raw) - _KNOWN_FIELD_PROPERTIES)
    if unknown:
        raise invalid_request(
            "definition",
            f"The property '{unknown[0]}' of field '{name}' does not exist on "
            f"type 'Microsoft.Azure.Search.V2026_04_01.Field'.",
        )
    ftype = raw.get("type")
    if ftype in (
        "Edm.ComplexType",
        "Collection(Edm.ComplexType)",
        "Edm.GeographyPoint",
        "Collection(Edm.GeographyPoint)",
    ) or raw.get("fields"):
        raise not_supported(f"The field type '{ftype}' (field '{name}')")
    scalar_collections = tuple(f"Collection({t})" for t in SCALAR_TYPES)
    if ftype not in SCALAR_TYPES + scalar_collections + (VECTOR_TYPE,):
        if isinstance(ftype, str) and ftype.startswith("Collection(Edm."):
            raise not_supported(f"The field type '{ftype}' (field '{name}')")
        raise invalid_request("definition", f"The field '{name}' has an invalid type '{ftype}'.")
    for option in ("analyzer", "searchAnalyzer", "indexAnalyzer", "normalizer", "vectorEncoding"):
        if raw.get(option):
            raise not_supported(f"The field option '{option}' (field '{name}')")
    if raw.get("synonymMaps"):
        raise not_supported(f"Synonym maps (field '{name}')")
    is_vector = ftype == VECTOR_TYPE
    is_string = ftype in ("Edm.String", "Collection(Edm.String)")
    is_collection = ftype.startswith("Collection(")
    hidden = raw.get("hidden")
    retrievable = raw.get("retrievable", (not hidden) if hidden is not None else True)
    defaults = {
        "key": False,
        "searchable": True if (is_string or is_vector) else False,
        "filterable": not is_vector,
        "retrievable": retrievable,
        "stored": True,
        "sortable": not is_vector and not is_collection,
        "facetable": not is_vector,
    }
    values = {k: raw.get(k) if raw.get(k) is not None else default for k, default in defaults.items()}
    values["retrievable"] = bool(retrievable)
    for attribute, value in values.items():
        if not isinstance(value, bool):
            raise invalid_request("definition", f"The attribute '{attribute}' of field '{name}' must be true or false.")
    if values["searchable"] and not (is_string or is_vector):
        raise invalid_request(
            "definition",
            f"The field '{name}' of type '{ftype}' cannot be searchable; only string and vector fields can be.",
        )
    if values["sortable"] and is_collection:
        raise invalid_request("definition", f"The collection field '{name}' cannot be sortable.")
    if values["key"] and is_collection:
        raise invalid_request("definition", f"The collection field '{name}' cannot be the key.")
    if not values["stored"] and values["retrievable"]:
        raise invalid_request(
            "definition",
            f"The field '{name}' is retrievable but not stored; a field that is not stored cannot be retrievable.",
        )
    dimensions = raw.get("dimensions")
    profile = raw.get("vectorSearchProfile")
    if is_vector:
        if dimensions is None or profile is None:
            raise invalid_request(
                "definition",
                f"The vector field '{name}' must have the properties 'dimensions' and 'vectorSearchProfile' set.",
            )
        if (
            not isinstance(dimensions, int)
            or isinstance(dimensions, bool)
            or not MIN_DIMENSIONS <= dimensions <= MAX_DIMENSIONS
        ):
            raise invalid_request(
                "definition",
                f"The vector field '{name}' has {dimensions!r} dimensions; it must "
                f"have between {MIN_DIMENSIONS} and {MAX_DIMENSIONS}.",
            )
        if not values["searchable"]:
            raise invalid_request("definition", f"The vector field '{name}' must be searchable.")
        for attribute in ("filterable", "sortable", "facetable", "key"):
            if values[attribute]:
                raise invalid_request("definition", f"The vector field '{name}' cannot be {attribute}.")
    elif dimensions is not None or profile is not None:
        raise invalid_request(
            "definition",
            f"The field '{name}' is not a vector field (type "
            f"'{VECTOR_TYPE}') and cannot have 'dimensions' or "
            f"'vectorSearchProfile'.",
        )
    return {
        "name": name,
        "type": ftype,
        **values,
        "indexAnalyzer": None,
        "searchAnalyzer": None,
        "analyzer": None,
        "normalizer": None,
        "dimensions": dimensions,
        "vectorSearchProfile": profile,
        "vectorEncoding": None,
        "synonymMaps": [],
    }


def _parse_vector_search(
    section: Any,
) -> tuple[dict[str, str], dict[str, tuple[str, str | None]], dict[str, WebApiVectorizer]]:
    """Algorithm name -> metric, profile name -> (algorithm name, vectorizer name or None), and
    vectorizer name -> its parameters."""
    if section is None:
        return {}, {}, {}
    if not isinstance(section, dict):
        raise invalid_request("definition", "vectorSearch must be a JSON object.")
    if section.get("compressions"):
        raise not_supported("vectorSearch.compressions")
    algorithms: dict[str, str] = {}
    for algorithm in section.get("algorithms") or []:
        name = algorithm.get("name") if isinstance(algorithm, dict) else None
        if not isinstance(name, str) or not name:
            raise invalid_request("definition", "Each vector search algorithm needs a name.")
        kind = algorithm.get("kind")
        if kind == "hnsw":
            parameters = algorithm.get("hnswParameters") or {}
            for key, (low, high) in HNSW_RANGES.items():
                value = parameters.get(key)
                if value is not None and (not isinstance(value, int) or not low <= value <= high):
                    raise invalid_request(
                        "definition",
                        f"The HNSW parameter '{key}' of algorithm '{name}' is "
                        f"{value!r}; it must be between {low} and {high}.",
                    )
        elif kind == "exhaustiveKnn":
            parameters = algorithm.get("exhaustiveKnnParameters") or {}
        else:
            raise invalid_request(
                "definition",
                f"The vector search algorithm '{name}' has an invalid kind '{kind}'; use 'hnsw' or 'exhaustiveKnn'.",
            )
        metric = parameters.get("metric") or "cosine"
        if metric not in ("cosine", "euclidean", "dotProduct", "hamming"):
            raise invalid_request("definition", f"The metric '{metric}' of algorithm '{name}' is invalid.")
        if metric != "cosine":
            raise not_supported(f"The vector similarity metric '{metric}'")
        if name in algorithms:
            raise invalid_request("definition", f"The vector search algorithm name '{name}' is used twice.")
        algorithms[name] = metric
    vectorizers = _parse_vectorizers(section.get("vectorizers"))
    profiles: dict[str, tuple[str, str | None]] = {}
    for profile in section.get("profiles") or []:
        name = profile.get("name") if isinstance(profile, dict) else None
        if not isinstance(name, str) or not name:
            raise invalid_request("definition", "Each vector search profile needs a name.")
        algorithm = profile.get("algorithm")
        if algorithm not in algorithms:
            raise invalid_request(
                "definition",
                f"The vector search profile '{name}' refers to the algorithm '{algorithm}', which is not defined.",
            )
        if profile.get("compression"):
            raise not_supported("The vector search profile option 'compression'")
        vectorizer = profile.get("vectorizer")
        if vectorizer is not None and vectorizer not in vectorizers:
            raise invalid_request(
                "definition",
                f"The vector search profile '{name}' refers to the vectorizer '{vectorizer}', which is not defined.",
            )
        profiles[name] = (algorithm, vectorizer)
    return algorithms, profiles, vectorizers


# "The following headers are prohibited from being in this collection" (Custom Web API vectorizer
# and skill, "httpHeaders"); compared without regard to case, as HTTP header names are.
PROHIBITED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Accept",
        "Accept-Charset",
        "Accept-Encoding",
        "Content-Length",
        "Content-Type",
        "Cookie",
        "Host",
        "TE",
        "Upgrade",
        "Via",
    )
)
WEB_API_TIMEOUT_RANGE = (1.0, 230.0)  # "a maximum of 230 seconds and a minimum of 1 second"
WEB_API_DEFAULT_TIMEOUT = 30.0  # "If not set, a default value of 30 seconds is chosen."
_DAY_TIME_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def parse_day_time_duration(value: Any, where: str) -> float:
    """Seconds of an XSD ``dayTimeDuration`` (``PT60S``, ``PT1M30S``), within 1 to 230 s."""
    match = _DAY_TIME_DURATION.match(value) if isinstance(value, str) else None
    if match is None or value in ("P", "PT") or value.endswith("T"):
        raise invalid_request(
            "definition",
            f"The timeout {value!r} of {where} is not an XSD dayTimeDuration such as 'PT30S'.",
        )
    seconds = (
        int(match["d"] or 0) * 86400 + int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + float(match["s"] or 0)
    )
    low, high = WEB_API_TIMEOUT_RANGE
    if not low <= seconds <= high:
        raise invalid_request(
            "definition",
            f"The timeout of {where} is {seconds:g} seconds; it can be set to a maximum of 230 seconds and a "
            f"minimum of 1 second.",
        )
    return seconds


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_web_api_uri(uri: Any, where: str) -> str:
    """``https`` only, as the service requires; the stand-in also lets ``http`` reach a loopback
    address (a local endpoint), and nothing else."""
    parts = urlsplit(uri) if isinstance(uri, str) else None
    if parts is None or not parts.hostname or parts.scheme not in ("https", "http"):
        raise invalid_request("definition", f"The uri of {where} must be an absolute https URI, not {uri!r}.")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise invalid_request(
            "definition",
            f"The uri of {where} is {uri!r}: only the https URI scheme is allowed (this stand-in also accepts "
            f"http to a loopback address).",
        )
    return uri


def check_http_headers(headers: Any, where: str) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise invalid_request("definition", f"The httpHeaders of {where} must be an object of strings.")
    prohibited = sorted(h for h in headers if h.lower() in PROHIBITED_HEADERS)
    if prohibited:
        raise invalid_request(
            "definition", f"The header '{prohibited[0]}' is prohibited in the httpHeaders of {where}."
        )
    return dict(headers)


def check_http_method(method: Any, where: str) -> str:
    if method is None:
        return "POST"
    if method not in ("PUT", "POST"):
        raise invalid_request(
            "definition", f"The httpMethod of {where} is {method!r}; the allowed methods are PUT and POST."
        )
    return method


_VECTORIZER_KINDS = ("azureOpenAI", "customWebApi", "aiServicesVision", "aml")
_WEB_API_PARAMETERS = {"uri", "httpMethod", "httpHeaders", "timeout", "authResourceId", "authIdentity"}


def _parse_vectorizers(section: Any) -> dict[str, WebApiVectorizer]:
    if section is None:
        return {}
    if not isinstance(section, list):
        raise invalid_request("definition", "vectorSearch.vectorizers must be an array.")
    vectorizers: dict[str, WebApiVectorizer] = {}
    for raw in section:
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not name:
            raise invalid_request("definition", "Each vectorizer needs a name.")
        if name in vectorizers:
            raise invalid_request("definition", f"The vectorizer name '{name}' is used twice.")
        kind = raw.get("kind")
        if kind not in _VECTORIZER_KINDS:
            raise invalid_request(
                "definition",
                f"The vectorizer '{name}' has an invalid kind {kind!r}; use one of {', '.join(_VECTORIZER_KINDS)}.",
            )
        if kind != "customWebApi":
            raise not_supported(f"The vectorizer kind '{kind}'")
        parameters = raw.get("customWebApiParameters")
        where = f"the vectorizer '{name}'"
        if not isinstance(parameters, dict):
            raise invalid_request("definition", f"The vectorizer '{name}' needs customWebApiParameters.")
        unknown = sorted(set(parameters) - _WEB_API_PARAMETERS)
        if unknown:
            raise invalid_request(
                "definition", f"The property '{unknown[0]}' does not exist on the parameters of {where}."
            )
        timeout = parameters.get("timeout")
        vectorizers[name] = WebApiVectorizer(
            name=name,
            uri=check_web_api_uri(parameters.get("uri"), where),
            http_method=check_http_method(parameters.get("httpMethod"), where),
            http_headers=check_http_headers(parameters.get("httpHeaders"), where),
            timeout_seconds=WEB_API_DEFAULT_TIMEOUT if timeout is None else parse_day_time_duration(timeout, where),
            auth_resource_id=parameters.get("authResourceId"),
            auth_identity=parameters.get("authIdentity"),
        )
    return vectorizers


def _vector_search_document(section: dict[str, Any] | None) -> dict[str, Any] | None:
    if section is None:
        return None
    algorithms = []
    for algorithm in section.get("algorithms") or []:
        algorithm = copy.deepcopy(algorithm)
        if algorithm["kind"] == "hnsw":
            algorithm["hnswParameters"] = {**HNSW_DEFAULTS, **(algorithm.get("hnswParameters") or {})}
            algorithm.setdefault("exhaustiveKnnParameters", None)
        else:
            algorithm["exhaustiveKnnParameters"] = {
                "metric": "cosine",
                **(algorithm.get("exhaustiveKnnParameters") or {}),
            }
            algorithm.setdefault("hnswParameters", None)
        algorithms.append(algorithm)
    profiles = [
        {"name": p["name"], "algorithm": p["algorithm"], "vectorizer": p.get("vectorizer"), "compression": None}
        for p in section.get("profiles") or []
    ]
    vectorizers = []
    for raw in section.get("vectorizers") or []:
        parameters = raw["customWebApiParameters"]
        vectorizers.append(
            {
                "name": raw["name"],
                "kind": raw["kind"],
                "customWebApiParameters": {
                    "uri": parameters["uri"],
                    "httpMethod": parameters.get("httpMethod") or "POST",
                    "httpHeaders": parameters.get("httpHeaders") or {},
                    "timeout": parameters.get("timeout") or "PT30S",
                    "authResourceId": parameters.get("authResourceId"),
                    "authIdentity": parameters.get("authIdentity"),
                },
            }
        )
    return {"algorithms": algorithms, "profiles": profiles, "vectorizers": vectorizers, "compressions": []}


def check_update(old: IndexDefinition, new: IndexDefinition) -> None:
    """An update may add fields and change ``retrievable``; anything else on an existing field
    (or removing it) is refused, as the service refuses it (the index would need a rebuild)."""
    new_fields = {f["name"]: f for f in new.document["fields"]}
    changed: list[str] = []
    for old_field in old.document["fields"]:
        name = old_field["name"]
        candidate = new_fields.get(name)
        if candidate is None or any(candidate[a] != old_field[a] for a in _IMMUTABLE_FIELD_ATTRIBUTES):
            changed.append(name)
    if changed:
        names = ", ".join(f"'{n}'" for n in changed)
        raise SearchServiceError(
            400,
            "CannotChangeExistingField",
            f"Existing field(s) {names} cannot be changed or deleted. To change an existing field's type or "
            f"attributes, create a new index and re-index the documents.",
        )
    if new.key_field != old.key_field:  # pragma: no cover - implied by the field check
        raise SearchServiceError(400, "CannotChangeExistingField", "The key field of an index cannot change.")
