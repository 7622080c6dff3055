"""The Azure AI Search rules a document, a filter or a query option must follow.

The local index enforces them too (the service's naming rules and EDM types), so code that
works against it does not fail for the first time on Azure. Each problem is reported as the
service reports it: a bad field or value refuses the whole write (``InvalidDocumentError``),
a bad key fails that document only (``key_problem``, in ``WriteResult.failed``), a bad filter
is a ``FilterError``, a bad ``select``, ``k`` or ``threshold`` an ``InvalidQueryError``.
(design: docs/design.md#the-azure-ai-search-backend)
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from indexer.errors import FilterError, InvalidDocumentError, InvalidQueryError
from indexer.filters import Condition
from indexer.keys import MAX_KEY_LENGTH
from indexer.schema import KEY_FIELD, VECTOR_FIELD, IndexSchema

MAX_K = 1000

_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,127}\Z")
_KEY = re.compile(r"^[A-Za-z0-9_\-=]+\Z")

SCALAR_TYPES = ("Edm.String", "Edm.Int32", "Edm.Int64", "Edm.Double", "Edm.Boolean", "Edm.DateTimeOffset")
_INT_RANGES = {"Edm.Int32": (-(2**31), 2**31 - 1), "Edm.Int64": (-(2**63), 2**63 - 1)}


# --- names and keys ---------------------------------------------------------------------


def check_index_name(name: str) -> str:
    """Azure's index name rules: 2-128 lower-case letters, digits, ``-`` and ``_``, first a
    letter or digit, no consecutive dashes or underscores. (Also keeps the name safe to use
    as a directory name.)"""
    if not isinstance(name, str) or not _INDEX_NAME.match(name) or "--" in name or "__" in name:
        raise ValueError(
            f"invalid index name {name!r}: use 2 to 128 lower-case letters, digits, '-' and '_', "
            f"starting with a letter or digit, without consecutive dashes or underscores"
        )
    return name


def key_problem(key: Any) -> str | None:
    """Why ``key`` is not a valid document key, or None if it is."""
    if not isinstance(key, str) or not key:
        return f"invalid document key {key!r}: the key must be a non-empty string"
    if len(key) > MAX_KEY_LENGTH:
        return f"invalid document key: {len(key)} characters, the limit is {MAX_KEY_LENGTH}"
    if not _KEY.match(key):
        return (
            f"invalid document key {key!r}: keys can only contain letters, digits, underscore (_), "
            f"dash (-) or equal sign (=); encode other identities with indexer.keys.document_key"
        )
    if key.startswith("_"):
        return f"invalid document key {key!r}: a key cannot start with an underscore"
    return None


# --- schema ----------------------------------------------------------------------------


def element_type(edm_type: str) -> tuple[str, bool]:
    """``("Edm.String", True)`` for ``Collection(Edm.String)``, ``("Edm.String", False)`` for
    ``Edm.String``."""
    if edm_type.startswith("Collection(") and edm_type.endswith(")"):
        return edm_type[len("Collection(") : -1], True
    return edm_type, False


def check_schema_supported(schema: IndexSchema) -> None:
    """The local index understands the scalar EDM types and collections of them; refuse a
    schema with anything else up front rather than on the first document."""
    fields = schema.fields
    key = fields.get(KEY_FIELD)
    if key is None or not key.get("key") or key.get("type") != "Edm.String":
        raise ValueError(f"the index schema needs the key field {KEY_FIELD!r} of type Edm.String")
    vector = fields.get(VECTOR_FIELD)
    if vector is None or vector.get("dimensions") != schema.pin.dimensions:
        raise ValueError(
            f"the index schema needs the vector field {VECTOR_FIELD!r} with {schema.pin.dimensions} dimensions"
        )
    for name, edm_type in schema.metadata_fields.items():
        if element_type(edm_type)[0] not in SCALAR_TYPES:
            raise ValueError(f"field {name!r} has type {edm_type}, which the local index does not support")


def validate_fields(
    schema: IndexSchema, key: str, fields: dict[str, Any], *, types: dict[str, str] | None = None
) -> dict[str, Any]:
    """Check one document's metadata fields against the schema and return them as stored:
    JSON values, ``None`` (null) dropped, datetimes as ISO 8601 strings. Pass ``types``
    (``schema.metadata_fields``) when checking many documents, to compute it once."""
    if not isinstance(fields, dict):
        raise InvalidDocumentError(f"document {key!r}: fields must be a dict, not {type(fields).__name__}")
    if types is None:
        types = schema.metadata_fields
    stored: dict[str, Any] = {}
    for name, value in fields.items():
        if name == KEY_FIELD:
            if value != key:
                raise InvalidDocumentError(
                    f"document {key!r}: field {KEY_FIELD!r} is the document key and says {value!r}; "
                    f"set the key through Document.key only"
                )
            continue
        if name == VECTOR_FIELD:
            raise InvalidDocumentError(
                f"document {key!r}: the vector field {VECTOR_FIELD!r} goes in Document.embedding, not in fields"
            )
        if name not in types:
            raise InvalidDocumentError(
                f"document {key!r}: unknown field {name!r}; the index schema has: {', '.join(sorted(types))}"
            )
        if value is None:
            continue
        stored[name] = _check_value(key, name, types[name], value)
    return stored


def _check_value(key: str, name: str, edm_type: str, value: Any) -> Any:
    scalar, is_collection = element_type(edm_type)
    if is_collection:
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple, np.ndarray)):
            raise InvalidDocumentError(
                f"document {key!r}: field {name!r} is {edm_type} and needs a list, not {type(value).__name__}"
            )
        items = []
        for item in value:
            if item is None:
                raise InvalidDocumentError(f"document {key!r}: field {name!r} ({edm_type}) cannot hold null")
            items.append(_check_scalar(key, name, scalar, item))
        return items
    return _check_scalar(key, name, scalar, value)


def _check_scalar(key: str, name: str, edm_type: str, value: Any) -> Any:
    def wrong(expected: str) -> InvalidDocumentError:
        return InvalidDocumentError(
            f"document {key!r}: field {name!r} is {edm_type} and needs {expected}, "
            f"got {type(value).__name__} {value!r:.80}"
        )

    if edm_type == "Edm.String":
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if edm_type in _INT_RANGES:
        # (type() first: the numbers ABC check is slow, and this runs for every document)
        if type(value) is not int and (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)):
            raise wrong("an integer")
        low, high = _INT_RANGES[edm_type]
        if not low <= int(value) <= high:
            raise wrong(f"an integer from {low} to {high}")
        return int(value)
    if edm_type == "Edm.Double":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise wrong("a number")
        if not math.isfinite(float(value)):
            raise wrong("a finite number")
        return float(value)
    if edm_type == "Edm.Boolean":
        if not isinstance(value, (bool, np.bool_)):
            raise wrong("true or false")
        return bool(value)
    if edm_type == "Edm.DateTimeOffset":
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise wrong("a date and time with a time zone (a naive datetime is ambiguous)")
            return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if not isinstance(value, str):
            raise wrong("an ISO 8601 date and time with a time zone, e.g. 2024-05-01T12:00:00Z")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is None or "T" not in value or parsed.tzinfo is None:
            raise wrong("an ISO 8601 date and time with a time zone, e.g. 2024-05-01T12:00:00Z")
        return value
    raise wrong("a supported type")  # pragma: no cover - check_schema_supported refuses these schemas


def parse_datetime_offset(value: Any) -> datetime:
    """A filter or stored date value as an aware UTC datetime. Filters may be lenient where
    documents are not: a bare date means midnight UTC, a time without a zone means UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date, e.g. 2024-05-01 or 2024-05-01T12:00:00Z") from None
    else:
        raise ValueError(f"{value!r} is not a date")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- queries ---------------------------------------------------------------------------


def check_filter_fields(schema: IndexSchema, conditions: Iterable[Condition]) -> list[Condition]:
    """Each condition must name a filterable field of the schema (as the service demands)."""
    checked = []
    fields = schema.fields
    for condition in conditions:
        if not isinstance(condition, Condition):
            raise FilterError(f"a filter must be a Condition, not {type(condition).__name__}: {condition!r}")
        definition = fields.get(condition.field)
        if definition is None:
            known = ", ".join(schema.filter_fields)
            raise FilterError(f"cannot filter on unknown field {condition.field!r}; filterable fields: {known}")
        if not definition.get("filterable"):
            raise FilterError(f"field {condition.field!r} is not filterable")
        checked.append(condition)
    return checked


def check_select(schema: IndexSchema, select: Sequence[str] | str | None) -> tuple[str, ...]:
    """The fields a hit carries: all retrievable metadata fields by default, else exactly the
    named ones (a comma-separated string is accepted, as in the REST ``$select``)."""
    fields = schema.fields
    if select is None:
        return tuple(n for n in schema.metadata_fields if fields[n].get("retrievable", True))
    names = [s.strip() for s in select.split(",")] if isinstance(select, str) else list(select)
    for name in names:
        if not isinstance(name, str) or name not in fields:
            raise InvalidQueryError(f"cannot select unknown field {name!r}; fields: {', '.join(sorted(fields))}")
        if not fields[name].get("retrievable", True):
            raise InvalidQueryError(f"cannot select field {name!r}: it is not retrievable")
    return tuple(dict.fromkeys(names))


def check_k(k: Any) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or not 1 <= int(k) <= MAX_K:
        raise InvalidQueryError(f"k must be a whole number from 1 to {MAX_K}, got {k!r}")
    return int(k)


def check_threshold(threshold: Any) -> float | None:
    if threshold is None:
        return None
    if (
        isinstance(threshold, (bool, np.bool_))
        or not isinstance(threshold, numbers.Real)
        or not -1.0 <= float(threshold) <= 1.0
    ):
        raise InvalidQueryError(f"threshold must be a cosine similarity from -1 to 1, got {threshold!r}")
    return float(threshold)


# --- filter values -----------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_micros(value: Any) -> int:
    delta = parse_datetime_offset(value) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def coerce_filter_value(condition: Condition, edm_type: str) -> Any:
    """The condition's value in the column's representation, checked against the field type
    (``FilterError`` names the field and what it needs)."""
    scalar_type, is_collection = element_type(edm_type)
    op, value, name = condition.op, condition.value, condition.field

    def wrong(expected: str) -> FilterError:
        return FilterError(f"filter on {name!r} ({edm_type}) needs {expected}, got {value!r}")

    if value is None:
        if is_collection or op not in ("eq", "ne"):
            raise FilterError(f"filter on {name!r}: null can only be compared with = or != on a single-valued field")
        return None
    if scalar_type == "Edm.String":
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if scalar_type == "Edm.Boolean":
        if op not in ("eq", "ne"):
            raise FilterError(f"filter on {name!r} ({edm_type}): only = and != apply to true/false values")
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise wrong("true or false")
    if scalar_type == "Edm.DateTimeOffset":
        try:
            return datetime_micros(value)
        except ValueError as exc:
            raise wrong(f"a date ({exc})") from None
    # numbers
    if isinstance(value, (bool, np.bool_)):
        raise wrong("a number")
    if isinstance(value, str):
        text = value.strip()
        try:
            number: float | int = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise wrong("a number") from None
    elif isinstance(value, (int, float, np.integer, np.floating)):
        number = value.item() if isinstance(value, np.generic) else value
    else:
        raise wrong("a number")
    if isinstance(number, float) and not math.isfinite(number):
        raise wrong("a finite number")
    if isinstance(number, int) and scalar_type != "Edm.Double" and not -(2**63) <= number < 2**63:
        number = float(number)  # beyond int64: compare as a float, which still orders correctly
    return number
