"""The index definitions in ``schemas/``, one per pinned model version, and pull mode's.

Each file is an Azure AI Search index definition (REST shape, without the name, which comes
from ``SEARCH_INDEX_NAME``) whose ``description`` records the pin (``imgsearch pin:
model_version=<name>; dimensions=<n>``), so the pin travels with the index; the numpy index
reads the same file. ``load_schema`` leaves its Web API vectorizer out (its ``uri`` is the
placeholder ``${SEARCH_VECTORIZER_URI}``); ``IndexSchema.with_vectorizer`` puts it in when the
settings name the vectorize endpoint (README, "Apps send text to the search service").
"""

from __future__ import annotations

import copy
import json
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from indexer.documents import IndexPin
from indexer.errors import ConfigurationError
from indexer.model_versions import get_model_version
from indexer.vector_compression import compression_definition, compression_of


def _schemas_dir() -> Path:
    """``schemas/`` beside the package (a checkout, an editable install, or the Function
    package the azd hook assembles), else the copy a wheel installs under
    ``<prefix>/share/imgsearch/schemas`` (pyproject's data-files)."""
    beside = Path(__file__).resolve().parent.parent / "schemas"
    installed = Path(sys.prefix) / "share" / "imgsearch" / "schemas"
    return beside if beside.is_dir() or not installed.is_dir() else installed


SCHEMAS_DIR = _schemas_dir()
KEY_FIELD = "id"
VECTOR_FIELD = "image_vector"
_PIN = re.compile(r"imgsearch pin: model_version=(?P<model>[^;]+); dimensions=(?P<dims>\d+)")
VECTORIZER_URI_PLACEHOLDER = "${SEARCH_VECTORIZER_URI}"
FUNCTION_KEY_HEADER = "x-functions-key"


@dataclass(frozen=True)
class VectorizerEndpoint:
    """Where the search service sends the Web API calls of the index's vectorizer (and of the
    pull mode's skill): ``uri``; a function key for the ``x-functions-key`` header; and for
    Microsoft Entra, the application ID URI its managed identity gets a token for."""

    uri: str
    key: str = field(default="", repr=False)
    auth_resource_id: str = ""

    def web_api_parameters(self) -> dict[str, Any]:
        """The parameters the REST API takes for this endpoint (``customWebApiParameters`` of a
        vectorizer, the same names on a ``WebApiSkill``), without ``timeout``."""
        parameters: dict[str, Any] = {"uri": self.uri, "httpMethod": "POST"}
        if self.key:
            parameters["httpHeaders"] = {FUNCTION_KEY_HEADER: self.key}
        if self.auth_resource_id:
            parameters["authResourceId"] = self.auth_resource_id
        return parameters


# Filterable for the indexer's own bookkeeping (a document by key, by source, by content);
# still accepted in a filter, but no one searching images filters on them.
_BOOKKEEPING_FIELDS = frozenset({KEY_FIELD, "source", "content_hash"})


@dataclass(frozen=True)
class IndexSchema:
    pin: IndexPin
    definition: dict[str, Any]
    # The schema file's Web API vectorizers (with the URI placeholder), kept out of ``definition``
    # until ``with_vectorizer`` puts them in.
    vectorizer_template: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    vectorizer_bindings: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # (profile, vectorizer)

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.definition["fields"]}

    @property
    def filter_fields(self) -> list[str]:
        """The fields a person filters on, in schema order: the filterable ones less the
        indexer's bookkeeping (the key, ``source``, ``content_hash``). The one list that the
        page (``/api/info``), the unknown-field error and the README name."""
        return [name for name, f in self.fields.items() if f.get("filterable") and name not in _BOOKKEEPING_FIELDS]

    @property
    def metadata_fields(self) -> dict[str, str]:
        """Field name -> EDM type, for every field but the key and the vector."""
        return {n: f["type"] for n, f in self.fields.items() if n not in (KEY_FIELD, VECTOR_FIELD)}

    def with_dimensions(self, dimensions: int) -> IndexSchema:
        """The same definition for vectors of another length under the same model name (the
        Vision stand-in can pad its vectors to Azure's 1024 dimensions); the pin says so."""
        if dimensions == self.pin.dimensions:
            return self
        if not 2 <= dimensions <= 4096:
            raise ConfigurationError(f"a vector field holds 2 to 4096 dimensions, not {dimensions}")
        pin = IndexPin(self.pin.model_version, dimensions)
        fields = [
            {**field, "dimensions": dimensions} if field["name"] == VECTOR_FIELD else field
            for field in self.definition["fields"]
        ]
        description = f"imgsearch pin: model_version={pin.model_version}; dimensions={dimensions}"
        return IndexSchema(
            pin=pin,
            definition={**self.definition, "description": description, "fields": fields},
            vectorizer_template=self.vectorizer_template,
            vectorizer_bindings=self.vectorizer_bindings,
        )

    @property
    def compression(self) -> str:
        """How the vector field is compressed: ``none``, ``scalar`` or ``binary``."""
        return compression_of(self.definition, VECTOR_FIELD)

    def with_compression(self, compression: str) -> IndexSchema:
        """This schema with the vector field's profile compressed as ``compression`` asks
        (``vector_compression.compression_definition``). A compressed field is not ``stored``:
        nothing retrieves the vectors, and the originals kept for rescoring are enough. An
        uncompressed one stays as the schema file has it, so existing indexes still match."""
        if compression == self.compression:
            return self
        entry = compression_definition(compression)
        if entry is None or self.compression != "none":
            raise ValueError(f"with_compression takes an uncompressed schema, not one with {self.compression}")
        definition = copy.deepcopy(self.definition)
        vector_search = definition.setdefault("vectorSearch", {})
        vector_search["compressions"] = [entry]
        vector = next(f for f in definition["fields"] if f["name"] == VECTOR_FIELD)
        vector["stored"] = False
        for profile in vector_search.get("profiles") or []:
            if profile.get("name") == vector.get("vectorSearchProfile"):
                profile["compression"] = entry["name"]
        return IndexSchema(
            pin=self.pin,
            definition=definition,
            vectorizer_template=self.vectorizer_template,
            vectorizer_bindings=self.vectorizer_bindings,
        )

    @property
    def vectorizer_name(self) -> str | None:
        """The vectorizer the vector field's profile names in this definition, if any."""
        profile_name = self.fields.get(VECTOR_FIELD, {}).get("vectorSearchProfile")
        profiles = (self.definition.get("vectorSearch") or {}).get("profiles") or []
        return next((p.get("vectorizer") for p in profiles if p.get("name") == profile_name), None)

    def with_vectorizer(self, endpoint: VectorizerEndpoint | None) -> IndexSchema:
        """This schema with the file's Web API vectorizer pointed at ``endpoint`` and bound to
        the vector field's profile (None: without one). The pin does not change."""
        if endpoint is None or not self.vectorizer_template:
            return self
        definition = copy.deepcopy(self.definition)
        vector_search = definition.setdefault("vectorSearch", {})
        vectorizers = []
        for template in self.vectorizer_template:
            vectorizer = copy.deepcopy(template)
            parameters = vectorizer.get("customWebApiParameters") or {}
            if parameters.get("uri") != VECTORIZER_URI_PLACEHOLDER:
                raise ConfigurationError(
                    f"the schema's vectorizer {vectorizer.get('name')!r} must have the uri {VECTORIZER_URI_PLACEHOLDER}"
                )
            vectorizer["customWebApiParameters"] = {**parameters, **endpoint.web_api_parameters()}
            vectorizers.append(vectorizer)
        vector_search["vectorizers"] = vectorizers
        bindings = dict(self.vectorizer_bindings)
        for profile in vector_search.get("profiles") or []:
            if profile.get("name") in bindings:
                profile["vectorizer"] = bindings[profile["name"]]
        return IndexSchema(
            pin=self.pin,
            definition=definition,
            vectorizer_template=self.vectorizer_template,
            vectorizer_bindings=self.vectorizer_bindings,
        )

    def named(self, index_name: str) -> dict[str, Any]:
        """The definition as the REST API takes it, with the index name set."""
        return {"name": index_name, **self.definition}


def schema_path(model_version: str) -> Path:
    return SCHEMAS_DIR / f"{model_version}.json"


@cache
def load_schema(model_version: str) -> IndexSchema:
    """The index schema pinned to ``model_version``; checks it against the model registry."""
    model = get_model_version(model_version)
    path = schema_path(model_version)
    if not path.exists():
        raise ConfigurationError(f"no index schema for model version {model_version!r}: expected {path}")
    definition = json.loads(path.read_text(encoding="utf-8"))
    pin = parse_pin(definition.get("description"))
    vector = next((f for f in definition["fields"] if f["name"] == VECTOR_FIELD), None)
    if (
        pin is None
        or pin.model_version != model.name
        or pin.dimensions != model.dimensions
        or vector is None
        or vector.get("dimensions") != model.dimensions
    ):
        raise ConfigurationError(f"{path} does not pin model version {model.name!r} with {model.dimensions} dimensions")
    definition, template, bindings = _split_vectorizers(definition)
    return IndexSchema(pin=pin, definition=definition, vectorizer_template=template, vectorizer_bindings=bindings)


def _split_vectorizers(
    definition: dict[str, Any],
) -> tuple[dict[str, Any], tuple[dict[str, Any], ...], tuple[tuple[str, str], ...]]:
    """The definition without its vectorizers (nor the profiles' references to them), the
    vectorizers, and which profile named which."""
    vector_search = definition.get("vectorSearch")
    if not vector_search or not vector_search.get("vectorizers"):
        return definition, (), ()
    definition = copy.deepcopy(definition)
    vector_search = definition["vectorSearch"]
    template = tuple(vector_search.pop("vectorizers"))
    bindings = []
    for profile in vector_search.get("profiles") or []:
        vectorizer = profile.pop("vectorizer", None)
        if vectorizer:
            bindings.append((profile["name"], vectorizer))
    return definition, template, tuple(bindings)


def parse_pin(description: str | None) -> IndexPin | None:
    match = _PIN.search(description or "")
    if not match:
        return None
    return IndexPin(model_version=match["model"].strip(), dimensions=int(match["dims"]))


# --------------------------------------------------------------------------- pull mode

PULL_DEFINITIONS = ("datasource", "skillset", "indexer")
_PLACEHOLDER = re.compile(r"\$\{(?P<name>[A-Z_]+)\}")


@dataclass(frozen=True)
class PullDefinitions:
    """The data source, skillset and indexer of pull mode, as the REST API takes them."""

    data_source: dict[str, Any]
    skillset: dict[str, Any]
    indexer: dict[str, Any]


def load_pull_definitions(values: dict[str, str], *, vectorize: VectorizerEndpoint) -> PullDefinitions:
    """``schemas/datasource.json``, ``skillset.json`` and ``indexer.json`` with every
    ``${NAME}`` placeholder replaced by ``values[NAME]``, and the Web API skill pointed at
    ``vectorize`` (its URI, function key header and Entra resource)."""
    loaded = []
    for name in PULL_DEFINITIONS:
        path = SCHEMAS_DIR / f"{name}.json"
        if not path.exists():
            raise ConfigurationError(f"the pull mode definition {path} is missing")
        loaded.append(_fill(json.loads(path.read_text(encoding="utf-8")), values))
    data_source, skillset, indexer = loaded
    for skill in skillset.get("skills") or []:
        if skill.get("@odata.type") == "#Microsoft.Skills.Custom.WebApiSkill":
            skill.pop("httpHeaders", None)
            skill.update(vectorize.web_api_parameters())
    return PullDefinitions(data_source, skillset, indexer)


def pull_indexer_name(index_name: str) -> str:
    """The name ``schemas/indexer.json`` gives the indexer of the index ``index_name``."""
    path = SCHEMAS_DIR / "indexer.json"
    template = json.loads(path.read_text(encoding="utf-8")).get("name", "")
    return str(_fill(template, {"SEARCH_INDEX_NAME": index_name}))


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match["name"] not in values:
                raise ConfigurationError(
                    f"no value for the placeholder ${{{match['name']}}} of the pull mode definitions"
                )
            return values[match["name"]]

        return _PLACEHOLDER.sub(replace, value)
    return value
