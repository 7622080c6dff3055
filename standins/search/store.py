"""Documents of one index in the Azure AI Search double: indexing actions, lookups and queries,
with the service's validation and per-document results. Cosine scores are
``1 / (1 + (1 - cosine))``; reads see writes ``visibility_delay`` seconds late, as the service's
do (FIDELITY.md, Q14 and X13).
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np

from standins.search.definitions import IndexDefinition, VectorField
from standins.search.errors import SearchServiceError, invalid_request, not_served
from standins.search.odata_parser import (
    INT32_RANGE,
    INT64_RANGE,
    FieldSpec,
    compile_filter,
    format_datetime_offset,
    parse_datetime_offset,
    parse_orderby,
    parse_select,
)

ACTIONS = ("upload", "merge", "mergeOrUpload", "delete")
SERVED_ACTIONS = ("upload", "delete")  # what imgsearch sends; its indexers also mergeOrUpload
MAX_KEY_LENGTH = 1024
MAX_TERM_BYTES = 32766  # filterable, sortable and facetable strings are single terms
MAX_SKIP = 100_000
MAX_TOP = 1000
DEFAULT_TOP = 50  # a search without top answers 50 results and pages on (not served) beyond them
_KEY_CHARS = re.compile(r"^[A-Za-z0-9_\-=]+$")
_SEARCH_PARAMETERS = {"search", "filter", "select", "orderby", "top", "skip", "vectorQueries"}


def cosine_to_score(cosine: float) -> float:
    """The service's ``@search.score`` for the cosine metric: ``1 / (1 + (1 - cosine))``."""
    return 1.0 / (2.0 - cosine)


def _result(key: str, status_code: int, problem: str | None = None) -> dict[str, Any]:
    """One document's answer in an indexing response (``status`` false when it failed)."""
    return {"key": key, "status": problem is None, "errorMessage": problem, "statusCode": status_code}


class _ActionProblem(Exception):
    """What is wrong with one action; it fails the whole batch (``validate_batch``)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class IndexStore:
    """One index's documents. Not thread-safe by itself: the service serialises access."""

    def __init__(
        self, definition: IndexDefinition, *, visibility_delay: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.definition = definition
        self.documents: dict[str, dict[str, Any]] = {}  # as written: what indexing requests see
        self.visible: dict[str, dict[str, Any]] = {}  # what reads see
        self.visibility_delay = visibility_delay
        self._clock = clock
        self._pending: deque[tuple[float, str, dict[str, Any] | None]] = deque()  # (due, key, document or None)
        self._matrices: dict[str, tuple[list[str], np.ndarray]] = {}

    def replace_definition(self, definition: IndexDefinition) -> None:
        """Adopt an updated definition (``check_update`` allowed only added fields, which
        documents without a value read as null)."""
        self.definition = definition
        self._matrices.clear()

    # ------------------------------------------------------------------ visibility

    def _written(self, key: str, document: dict[str, Any] | None) -> None:
        self._pending.append((self._clock() + self.visibility_delay, key, document))
        self.publish()

    def publish(self, everything: bool = False) -> None:
        """Let reads see every write whose delay has passed (all of them with ``everything``)."""
        now = self._clock()
        while self._pending and (everything or self._pending[0][0] <= now):
            _, key, document = self._pending.popleft()
            if document is None:
                self.visible.pop(key, None)
            else:
                self.visible[key] = document
            self._matrices.clear()

    # ------------------------------------------------------------------ indexing

    def validate_batch(
        self, body: Any, *, max_actions: int, api_version: str = "2026-04-01"
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """Check a whole ``search.index`` body; (action, key, typed fields) per action.

        Anything wrong fails the whole request with 400 and nothing is applied, in the shapes of
        live answers: a property the index does not have fails while the body is read, with an
        empty code (Azure-Samples/azure-search-openai-demo#2823); any other bad action is
        ``OperationNotAllowed``, "The request is invalid. Details: actions : 0: <problem>", the
        problem's own code in ``details`` (azure-sdk-for-net#24607, MicrosoftDocs/azure-docs#117056).
        """
        actions = body.get("value") if isinstance(body, dict) else None
        if not isinstance(actions, list) or not 1 <= len(actions) <= max_actions:
            raise invalid_request(
                "actions",
                f"The items collection must have from 1 to {max_actions} valid items to be indexed.",
                detail_code="InvalidActions",
            )
        for action in actions:
            unknown = [n for n in (action if isinstance(action, dict) else {}) if self._unknown(n)]
            if unknown:
                raise SearchServiceError(
                    400,
                    "",
                    f"The request is invalid. Details: The property '{unknown[0]}' does not exist on type "
                    f"'search.documentFields' or is not present in the API version '{api_version}'.",
                )
        parsed, problems = [], []
        for position, action in enumerate(actions):
            try:
                kind = action.get("@search.action", "upload") if isinstance(action, dict) else None
                if kind in ACTIONS and kind not in SERVED_ACTIONS:
                    raise not_served(f"the indexing action '{kind}'")
                parsed.append(self._validate_action(action))
            except _ActionProblem as problem:
                problems.append((f"{position}: {problem.message}", problem.code))
        if problems:
            raise SearchServiceError(
                400,
                "OperationNotAllowed",
                f"The request is invalid. Details: actions : {' '.join(message for message, _ in problems)}",
                details=[{"code": code, "message": f"{message} Parameters: actions"} for message, code in problems],
            )
        return parsed

    def _unknown(self, name: str) -> bool:
        return not name.startswith("@search.") and name not in self.definition.fields

    def _validate_action(self, action: Any) -> tuple[str, str, dict[str, Any]]:
        if not isinstance(action, dict):
            raise _ActionProblem("Each index action must be a JSON object.", "InvalidActions")
        kind = action.get("@search.action", "upload")
        if kind not in ACTIONS:
            raise _ActionProblem(
                f"'{kind}' is not a valid @search.action; use one of {', '.join(ACTIONS)}.", "InvalidActions"
            )
        key = action.get(self.definition.key_field)
        if key is None or key == "":
            raise _ActionProblem("Document key cannot be missing or empty.", "MissingKeyField")
        _check_key(key)
        typed: dict[str, Any] = {}
        for name, value in action.items():
            if name.startswith("@search."):
                if name != "@search.action":
                    raise _ActionProblem(f"The annotation '{name}' is not valid in an index action.", "InvalidActions")
            elif kind != "delete":  # the service ignores every field of a delete but the key
                typed[name] = self._convert(self.definition.fields[name], value)
        return kind, key, typed

    def _convert(self, spec: FieldSpec, value: Any) -> Any:
        if value is None:
            return None
        vector = self.definition.vector_fields.get(spec.name)
        if vector is not None:
            return _vector_value(vector, value)
        if not spec.is_collection:
            return _scalar(spec.name, spec.type, value)
        if not isinstance(value, list) or any(item is None for item in value):
            raise _ActionProblem(
                f"The field '{spec.name}' is a collection; its value must be an array without nulls.", "InvalidDocument"
            )
        return [_scalar(spec.name, spec.element_type, item) for item in value]

    def apply(
        self, parsed: list[tuple[str, str, dict[str, Any]]], fault: Callable[[str], int | None] = lambda key: None
    ) -> list[dict[str, Any]]:
        """Apply checked actions in order; their answers. ``fault(key)`` may return an injected
        status for a document, which then fails without being applied (what a 503 means for one)."""
        results = []
        for kind, key, fields in parsed:
            injected, problem = fault(key), self._term_problem(fields)
            if injected is not None:
                results.append(_result(key, injected, f"The service is busy ({injected}, injected); try again later."))
            elif problem:
                results.append(_result(key, 400, problem))
            else:
                existing = self.documents.get(key)
                if kind == "delete":
                    self.documents.pop(key, None)
                else:  # mergeOrUpload merges into a new dict: a document is never changed in place
                    base = existing if kind == "mergeOrUpload" and existing is not None else {}
                    self.documents[key] = {**base, **fields}
                if kind != "delete" or existing is not None:
                    self._written(key, self.documents.get(key))
                results.append(_result(key, 201 if existing is None and kind != "delete" else 200))
        return results

    def write_each(self, kind: str, items: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Check and apply ``(key, fields)`` one by one, so a bad document fails alone (what an
        indexer's writes get: per-item errors, never a failed batch)."""
        results = []
        for key, fields in items:
            unknown = [n for n in fields if self._unknown(n)]
            try:
                if unknown:
                    raise _ActionProblem(f"The property '{unknown[0]}' does not exist.", "InvalidDocument")
                action = {**fields, "@search.action": kind, self.definition.key_field: key}
                results += self.apply([self._validate_action(action)])
            except _ActionProblem as problem:
                results.append(_result(key, 400, problem.message))
        return results

    def _term_problem(self, fields: Mapping[str, Any]) -> str | None:
        for field in self.definition.document["fields"]:
            term = field["filterable"] or field["sortable"] or field["facetable"]
            if "String" not in field["type"] or not term or not fields.get(field["name"]):
                continue
            value = fields[field["name"]]
            for item in value if isinstance(value, list) else [value]:
                size = len(item.encode("utf-8"))
                if size > MAX_TERM_BYTES:
                    return (
                        f"Field '{field['name']}' contains a term that is too large to process. The max length for "
                        f"UTF-8 encoded terms is {MAX_TERM_BYTES} bytes; this value has {size} bytes."
                    )
        return None

    # ------------------------------------------------------------------ reading

    def lookup(self, key: str, select: str | None) -> dict[str, Any] | None:
        names = parse_select(select, self.definition.fields)
        self.publish()
        document = self.visible.get(key)
        return None if document is None else self.render(document, names)

    def render(self, document: Mapping[str, Any], names: list[str] | None) -> dict[str, Any]:
        """A document as the service writes it: selected (or all retrievable) fields."""
        if names is None:
            names = [n for n, spec in self.definition.fields.items() if spec.retrievable]
        return {name: _to_json(document.get(name)) for name in names}

    def count(self) -> int:
        self.publish()
        return len(self.visible)

    def search(self, body: Any) -> list[dict[str, Any]]:
        """The rows of a ``search.post.search`` request: an optional vector query of kind
        ``vector`` (a ``text`` one arrives vectorized), ``filter`` (applied before the vector
        search, the service's default ``preFilter``), ``select``, ``orderby``, ``top``, ``skip``."""
        if not isinstance(body, dict):
            raise invalid_request(
                "parameters", "The search request must be a JSON object.", detail_code="InvalidParameter"
            )
        for name, value in body.items():
            if name not in _SEARCH_PARAMETERS and value not in (None, [], ""):
                raise not_served(f"the search parameter '{name}'")
        if body.get("search") not in (None, "", "*"):
            raise not_served("full-text search (search text other than '*')")
        fields = self.definition.fields
        matches = compile_filter(body["filter"], fields) if body.get("filter") is not None else None
        select = parse_select(body.get("select"), fields)
        orderby = parse_orderby(body.get("orderby"), fields)
        top, skip = _count(body.get("top"), "top"), _count(body.get("skip"), "skip") or 0
        if top is not None and top > MAX_TOP:
            raise not_served(f"server-side paging (a top over {MAX_TOP:,})")
        if skip > MAX_SKIP:
            # The live answer quoted in azure-sdk-for-python#32307.
            message = f"Value must be between 0 and {MAX_SKIP}."
            raise SearchServiceError(
                400,
                "ParameterValueOutOfRange",
                f"{message}\nParameter name: $skip",
                details=[{"code": "ParameterValueOutOfRange", "message": message}],
            )
        query = vector_query(body.get("vectorQueries"), self.definition)
        self.publish()
        if query is None:
            hits = [(1.0, d) for d in self.visible.values() if matches is None or matches(d)]
        else:
            field, vector, k = query
            hits = self._nearest(field, vector, k or top or DEFAULT_TOP, matches)
        if top is None and len(hits) - skip > DEFAULT_TOP:
            raise not_served(f"server-side paging (more than {DEFAULT_TOP} results without a top)")
        top = DEFAULT_TOP if top is None else top
        for name, descending in reversed(orderby):  # stable sorts, last clause first; nulls sort first
            hits.sort(key=partial(_sort_key, name), reverse=descending)
        return [{"@search.score": score, **self.render(d, select)} for score, d in hits[skip : skip + top]]

    def _nearest(
        self, field: str, vector: np.ndarray, k: int, matches: Callable[[Mapping[str, Any]], bool] | None
    ) -> list[tuple[float, dict[str, Any]]]:
        """Exhaustive k nearest neighbours by cosine among the documents that ``matches``
        (applied first, the service's default ``preFilter``): what an exhaustive query on the
        service returns (the double has no HNSW)."""
        if field not in self._matrices:
            keys, rows = [], []
            for key, document in self.visible.items():
                unit = None if document.get(field) is None else _unit(document[field])
                if unit is not None:
                    keys.append(key)
                    rows.append(unit)
            dimensions = self.definition.vector_fields[field].dimensions
            self._matrices[field] = (keys, np.vstack(rows) if rows else np.zeros((0, dimensions), dtype=np.float32))
        keys, matrix = self._matrices[field]
        cosines = matrix @ vector
        if matches is not None:
            mask = np.fromiter((matches(self.visible[key]) for key in keys), dtype=bool, count=len(keys))
            cosines = np.where(mask, cosines, -np.inf)
        order = np.argsort(-cosines, kind="stable")[:k]
        return [(cosine_to_score(float(cosines[i])), self.visible[keys[i]]) for i in order if np.isfinite(cosines[i])]


def _query_error(message: str) -> SearchServiceError:
    return invalid_request("vectorQueries", message, detail_code="InvalidVectorQuery")


def vector_query(queries: Any, definition: IndexDefinition) -> tuple[str, np.ndarray, int | None] | None:
    """The one vector query of a search (field, unit vector, k), checked as the service checks it."""
    if not queries:
        return None
    if not isinstance(queries, list) or len(queries) != 1:
        raise not_served("a search with more than one vector query")
    query = queries[0]
    spec = vector_query_field(query, definition)
    if query.get("kind") != "vector":
        # A text query on a field with a vectorizer is vectorized before it gets here.
        raise _query_error("The vector query was not vectorized.")
    vector = _number_array(query.get("vector"))
    if vector is None:
        raise _query_error("The vector of a vector query must be an array of numbers.")
    if len(vector) != spec.dimensions:
        raise _query_error(
            f"The vector field '{spec.name}' has {spec.dimensions} dimensions, but the query vector has {len(vector)}. "
            f"Query vector length must match the dimensionality of the field."
        )
    unit = _unit(vector)
    if unit is None:
        raise _query_error("The query vector is all zeros; cosine similarity is undefined for it.")
    return spec.name, unit, query.get("k")


def vector_query_field(query: Any, definition: IndexDefinition) -> VectorField:
    """The vector field a vector query of kind ``vector`` or ``text`` searches. A ``text`` query
    needs a field whose profile has a vectorizer: else 400 with the live text "Field 'x' does
    not have a vectorizer defined in it's vector profile." (Azure-Samples/azure-search-openai-demo#2679)."""
    if not isinstance(query, dict) or query.get("kind") not in ("vector", "text"):
        raise not_served(f"the vector query kind {query.get('kind') if isinstance(query, dict) else query!r}")
    value = "vector" if query["kind"] == "vector" else "text"
    for name in query:
        if name not in ("kind", "fields", "k", "exhaustive", value) and query[name] is not None:
            raise not_served(f"the vector query parameter '{name}'")
    k = query.get("k")
    if k is not None and (type(k) is not int or k < 1):
        raise _query_error(f"k must be a positive integer, not {k!r}.")
    names = [n.strip() for n in str(query.get("fields") or "").split(",") if n.strip()]
    if len(names) != 1:
        raise _query_error("A vector query must name one vector field in 'fields'.")
    spec = definition.vector_fields.get(names[0])
    if spec is None:
        raise _query_error(f"'{names[0]}' in the vector field list is not a vector field.")
    if value == "text" and spec.vectorizer is None:
        raise SearchServiceError(
            400, "InvalidVectorQuery", f"Field '{spec.name}' does not have a vectorizer defined in it's vector profile."
        )
    if value == "text" and (not isinstance(query.get("text"), str) or not query["text"].strip()):
        raise _query_error("A text vector query needs a non-empty 'text'.")
    return spec


# ------------------------------------------------------------------ values


def _check_key(key: Any) -> None:
    """The service's document key rules; a bad key fails the whole batch."""
    problem = None
    if not isinstance(key, str):
        problem = "The key field must be a string."
    elif key.startswith("_"):
        problem = "Keys cannot start with a leading underscore."
    elif len(key) > MAX_KEY_LENGTH:
        problem = f"Keys cannot be longer than {MAX_KEY_LENGTH} characters."
    elif not _KEY_CHARS.match(key):
        problem = (
            "Keys can only contain letters, digits, underscore (_), dash (-), or equal sign (=). If the keys in "
            "your source data contain other characters, we recommend encoding them with a URL-safe version of "
            "Base64 encoding."
        )
    if problem:
        raise _ActionProblem(f"Invalid document key: '{str(key)[:MAX_KEY_LENGTH]}'. {problem}", "InvalidDocumentKey")


def _number_array(value: Any) -> np.ndarray | None:
    """``value`` as a float64 array if it is a JSON array of finite numbers (booleans, strings,
    nested arrays and nulls are not numbers to the service), else None."""
    if not isinstance(value, list) or not all(type(x) in (int, float) for x in value):
        return None
    array = np.array(value, dtype=np.float64)
    return array if np.all(np.isfinite(array)) else None


def _unit(vector: np.ndarray) -> np.ndarray | None:
    """Scaled to length 1 (float32), so a dot product is the cosine; None without a direction."""
    length = float(np.linalg.norm(vector))
    return None if length == 0.0 or not np.isfinite(length) else (np.asarray(vector, dtype=np.float32) / length)


def _vector_value(field: VectorField, value: Any) -> np.ndarray:
    array = _number_array(value)
    if array is None:
        raise _ActionProblem(f"The vector field '{field.name}' must be an array of numbers.", "InvalidDocument")
    if len(array) != field.dimensions:
        raise _ActionProblem(
            f"There's a mismatch in vector dimensions. The vector field '{field.name}', with dimension of "
            f"'{field.dimensions}', expects a length of '{field.dimensions}'. However, the provided vector has a "
            f"length of '{len(array)}'. Please ensure that the vector length matches the expected length of the "
            f"vector field.",
            "InvalidDocument",
        )
    return array.astype(np.float32)


def _scalar(name: str, edm: str, value: Any) -> Any:
    problem = _ActionProblem(
        f"Cannot convert the value {value!r} of field '{name}' to the expected type '{edm}'.", "InvalidDocument"
    )
    if edm == "Edm.String" and isinstance(value, str):
        return value
    if edm in ("Edm.Int32", "Edm.Int64") and type(value) is int:
        low, high = INT32_RANGE if edm == "Edm.Int32" else INT64_RANGE
        if low <= value <= high:
            return value
    if edm == "Edm.DateTimeOffset" and isinstance(value, str):
        try:
            return parse_datetime_offset(value)
        except ValueError:
            pass
    raise problem


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime_offset(value)
    if isinstance(value, np.ndarray):
        return [float(v) for v in value]
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def _sort_key(name: str, hit: tuple[float, dict[str, Any]]) -> tuple[int, Any]:
    value = hit[1].get(name)
    return (0, 0) if value is None else (1, value)


def _count(value: Any, name: str) -> int | None:
    if value is not None and (type(value) is not int or value < 0):
        raise invalid_request(
            name, f"{name} must be a non-negative integer, not {value!r}.", detail_code="InvalidParameter"
        )
    return value
