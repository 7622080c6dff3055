"""The index definitions in ``schemas/``, one per pinned model version.

Each file is an Azure AI Search index definition (REST shape, without the index name, which
comes from ``SEARCH_INDEX_NAME``). Its ``description`` records the pin as
``imgsearch pin: model_version=<name>; dimensions=<n>``, so the pin travels with the index on
Azure and can be read back from an existing index. The numpy index reads the same file, so
both backends accept exactly the same fields.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from indexer.documents import IndexPin
from indexer.errors import ConfigurationError
from indexer.model_versions import get_model_version


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


@dataclass(frozen=True)
class IndexSchema:
    pin: IndexPin
    definition: dict[str, Any]

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.definition["fields"]}

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
        return IndexSchema(pin=pin, definition={**self.definition, "description": description, "fields": fields})

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
    return IndexSchema(pin=pin, definition=definition)


def parse_pin(description: str | None) -> IndexPin | None:
    match = _PIN.search(description or "")
    if not match:
        return None
    return IndexPin(model_version=match["model"].strip(), dimensions=int(match["dims"]))
