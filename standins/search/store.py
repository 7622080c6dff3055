"""Documents of one index in the Azure AI Search double: indexing actions, lookups and
queries, with the service's validation and per-document results.

Storage is a dict of typed documents per index (see ``odata_parser`` for the value types) plus,
per vector field, a lazily rebuilt matrix of L2-normalised float32 vectors, so a vector query is
one matrix product over unit-length rows (``_unit``), which is the cosine the service documents.
The double keeps its own store instead of wrapping ``NumpyIndex`` because it must hold arbitrary
index definitions (any fields, no pin) and evaluate full OData filters (``or``, ``not``,
lambdas), which the ``Condition`` list of the backend protocol cannot express.

Writes and reads see two states, as on the service: an indexing request is validated and
applied against the documents as written (``documents``: a merge finds a document uploaded a
moment ago), while lookups, searches and counts read ``visible``, which catches up with each
write ``visibility_delay`` seconds after it was answered ("Indexing runs in the background
and makes new documents available (that is, queryable and searchable) a few seconds after the
indexing operation completed", https://learn.microsoft.com/azure/search/search-howto-reindex).
Documents are replaced, never mutated in place, so a pending write cannot leak into reads.

Scores follow the service's documented relation for the cosine metric
(https://learn.microsoft.com/azure/search/vector-search-ranking):
``@search.score = 1 / (1 + cosine_distance)`` with ``cosine_distance = 1 - cosine``.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from standins.search.definitions import (
    IndexDefinition,
    SearchServiceError,
    VectorField,
    invalid_request,
    not_supported,
)
from standins.search.odata_parser import (
    INT32_RANGE,
    INT64_RANGE,
    FieldSpec,
    ODataError,
    OrderClause,
    compile_filter,
    format_datetime_offset,
    parse_datetime_offset,
    parse_orderby,
    parse_select,
    sort_key_value,
)

ACTIONS = ("upload", "merge", "mergeOrUpload", "delete")
MAX_KEY_LENGTH = 1024
MAX_TERM_BYTES = 32766  # filterable/sortable/facetable strings are single terms
MAX_SKIP = 100_000
DEFAULT_TOP = 50
MAX_PAGE = 1000
_KEY_CHARS = re.compile(r"^[A-Za-z0-9_\-=]+$")


def _unit(vector: np.ndarray) -> np.ndarray:
    """Scale to length 1 (float32), so a dot product is the cosine; a zero or non-finite vector
    has no direction and raises ``ValueError``."""
    v = np.asarray(vector, dtype=np.float32)
    length = float(np.linalg.norm(v))
    if length == 0.0 or not np.isfinite(length):
        raise ValueError("no direction")
    return v / length


def cosine_to_score(cosine: np.ndarray | float) -> np.ndarray | float:
    """The service's ``@search.score`` for the cosine metric: ``1 / (1 + (1 - cosine))``."""
    return 1.0 / (2.0 - cosine)


def odata_error(error: ODataError) -> SearchServiceError:
    """An OData error as the live answer has it: an empty code and "Invalid expression: ...
    Parameter name: $select" (MicrosoftLearning/AI-102-AIEngineer#113)."""
    return SearchServiceError(
        400,
        "",
        error.service_message(),
        details=[{"code": "InvalidExpression", "message": error.message}],
    )


@dataclass
class ActionResult:
    key: str
    status: bool
    status_code: int
    error_message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "errorMessage": self.error_message,
            "statusCode": self.status_code,
        }


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
        """Adopt an updated definition (checked by ``check_update``: fields only added)."""
        self.definition = definition
        for documents in (self.documents, self.visible):
            for key, document in list(documents.items()):
                documents[key] = {**dict.fromkeys(definition.fields), **document}
        blank = dict.fromkeys(definition.fields)
        self._pending = deque((due, key, None if d is None else {**blank, **d}) for due, key, d in self._pending)
        self._matrices.clear()

    # ------------------------------------------------------------------ visibility

    def _written(self, key: str, document: dict[str, Any] | None) -> None:
        """Record a write; reads see it once its delay has passed."""
        self._pending.append((self._clock() + self.visibility_delay, key, document))
        if self.visibility_delay <= 0:
            self.publish()

    def publish(self) -> None:
        """Let reads see every write whose delay has passed (in the order they were made)."""
        now = self._clock()
        changed = False
        while self._pending and self._pending[0][0] <= now:
            _, key, document = self._pending.popleft()
            if document is None:
                self.visible.pop(key, None)
            else:
                self.visible[key] = document
            changed = True
        if changed:
            self._matrices.clear()

    def publish_all(self) -> None:
        """Make every write visible now (documents loaded at start-up)."""
        while self._pending:
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
        """Check a whole ``search.index`` body; return (action, key, typed fields) per action.

        Anything wrong fails the whole request with 400 and nothing is applied, as the service
        does for malformed actions, unknown fields, values of the wrong type, bad keys and
        vectors of the wrong length. The answers take the shapes of live ones:

        - a property the index does not have fails while the body is read, with an empty code
          ("() The request is invalid. Details: The property 'skey' does not exist on type
          'search.documentFields' or is not present in the API version '2025-08-01-preview'",
          Azure-Samples/azure-search-openai-demo#2823);
        - any other bad action: ``OperationNotAllowed``, "The request is invalid. Details:
          actions : 0: <problem>", with the problem's own code in ``details``, e.g.
          ``MissingKeyField`` (azure-sdk-for-net#24607, MicrosoftDocs/azure-docs#117056) or a
          vector of the wrong length (a 2025 live answer quoted in public logs).
        """
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise invalid_request(
                "actions",
                "The request body must be a JSON object with a 'value' array of index actions.",
                detail_code="InvalidActions",
            )
        actions = body["value"]
        if not 1 <= len(actions) <= max_actions:
            raise invalid_request(
                "actions",
                f"The items collection must have from 1 to {max_actions} valid items to be indexed.",
                detail_code="InvalidActions",
            )
        for action in actions:
            names = action if isinstance(action, dict) else {}
            unknown = [n for n in names if not n.startswith("@search.") and n not in self.definition.fields]
            if unknown:
                raise SearchServiceError(
                    400,
                    "",
                    f"The request is invalid. Details: The property '{unknown[0]}' does not exist on type "
                    f"'search.documentFields' or is not present in the API version '{api_version}'.",
                )
        problems: list[tuple[str, str]] = []
        parsed: list[tuple[str, str, dict[str, Any]]] = []
        for position, action in enumerate(actions):
            try:
                parsed.append(self._validate_action(action))
            except _ActionProblem as problem:
                problems.append((f"{position}: {problem.message}", problem.code))
        if problems:
            details = [{"code": c, "message": f"{m} Parameters: actions"} for m, c in problems]
            text = " ".join(message for message, _ in problems)
            raise SearchServiceError(
                400, "OperationNotAllowed", f"The request is invalid. Details: actions : {text}", details=details
            )
        return parsed

    def _validate_action(self, action: Any) -> tuple[str, str, dict[str, Any]]:
        if not isinstance(action, dict):
            raise _ActionProblem("Each index action must be a JSON object.", "InvalidActions")
        kind = action.get("@search.action", "upload")
        if kind not in ACTIONS:
            raise _ActionProblem(
                f"'{kind}' is not a valid @search.action; use one of {', '.join(ACTIONS)}.", "InvalidActions"
            )
        key_field = self.definition.key_field
        key = action.get(key_field)
        if key is None or key == "":
            raise _ActionProblem("Document key cannot be missing or empty.", "MissingKeyField")
        check_key(key)
        typed: dict[str, Any] = {}
        for name, value in action.items():
            if name.startswith("@search."):
                if name != "@search.action":
                    raise _ActionProblem(f"The annotation '{name}' is not valid in an index action.", "InvalidActions")
                continue
            spec = self.definition.fields[name]  # (unknown names were refused with the whole body)
            if kind == "delete":
                continue  # the service ignores every field of a delete but the key
            typed[name] = self._convert(spec, value)
        return kind, key, typed

    def _convert(self, spec: FieldSpec, value: Any) -> Any:
        if value is None:
            return None
        vector = self.definition.vector_fields.get(spec.name)
        if vector is not None:
            array = _number_array(value)
            if array is None:
                raise _ActionProblem(f"The vector field '{spec.name}' must be an array of numbers.", "InvalidDocument")
            if len(value) != vector.dimensions:
                raise _ActionProblem(
                    f"There's a mismatch in vector dimensions. The vector field '{spec.name}', with dimension of "
                    f"'{vector.dimensions}', expects a length of '{vector.dimensions}'. However, the provided "
                    f"vector has a length of '{len(value)}'. Please ensure that the vector length matches the "
                    f"expected length of the vector field.",
                    "InvalidDocument",
                )
            return array.astype(np.float32)
        if spec.is_collection:
            if not isinstance(value, list):
                raise _ActionProblem(
                    f"The field '{spec.name}' is a collection; its value must be an array.", "InvalidDocument"
                )
            if any(item is None for item in value):
                raise _ActionProblem(
                    f"The collection field '{spec.name}' cannot contain null elements.", "InvalidDocument"
                )
            return [_convert_scalar(spec.name, spec.element_type, item) for item in value]
        return _convert_scalar(spec.name, spec.type, value)

    def apply_each(self, actions: list[dict[str, Any]]) -> list[ActionResult]:
        """Validate and apply actions one by one, so a bad document fails alone (what an indexer
        gets: a per-item error, never a failed batch)."""
        results: list[ActionResult] = []
        for action in actions:
            key = str(action.get(self.definition.key_field) or "")
            unknown = [n for n in action if not n.startswith("@search.") and n not in self.definition.fields]
            if unknown:
                results.append(ActionResult(key, False, 400, f"The property '{unknown[0]}' does not exist."))
                continue
            try:
                parsed = self._validate_action(action)
            except _ActionProblem as problem:
                results.append(ActionResult(key, False, 400, problem.message))
                continue
            results.extend(self.apply([parsed]))
        return results

    def apply(
        self, parsed: list[tuple[str, str, dict[str, Any]]], fault: Callable[[str], int | None] = lambda key: None
    ) -> list[ActionResult]:
        """Apply validated actions in order; ``fault(key)`` may return an injected status for a
        document, which then fails without being applied (what a 503 means for one document)."""
        results: list[ActionResult] = []
        for kind, key, fields in parsed:
            injected = fault(key)
            if injected is not None:
                results.append(ActionResult(key, False, injected, _FAULT_MESSAGES.get(injected, "Injected failure.")))
                continue
            term_problem = self._term_problem(fields) if kind != "delete" else None
            if term_problem:
                results.append(ActionResult(key, False, 400, term_problem))
                continue
            results.append(self._apply_one(kind, key, fields))
        return results

    def _term_problem(self, fields: Mapping[str, Any]) -> str | None:
        for name, value in fields.items():
            spec = self.definition.fields[name]
            document_field = self._field_document(name)
            indexed_as_term = document_field["filterable"] or document_field["sortable"] or document_field["facetable"]
            if spec.element_type != "Edm.String" or not indexed_as_term or value is None:
                continue
            for item in value if isinstance(value, list) else [value]:
                size = len(item.encode("utf-8"))
                if size > MAX_TERM_BYTES:
                    return (
                        f"Field '{name}' contains a term that is too large to process. The max length for UTF-8 "
                        f"encoded terms is {MAX_TERM_BYTES} bytes; this value has {size} bytes."
                    )
        return None

    def _field_document(self, name: str) -> dict[str, Any]:
        return next(f for f in self.definition.document["fields"] if f["name"] == name)

    def _apply_one(self, kind: str, key: str, fields: dict[str, Any]) -> ActionResult:
        existing = self.documents.get(key)
        if kind == "delete":
            if existing is not None:
                del self.documents[key]
                self._written(key, None)
            return ActionResult(key, True, 200)
        if kind == "merge" and existing is None:
            return ActionResult(key, False, 404, "Document not found.")
        if kind == "upload" or existing is None:
            document = {**dict.fromkeys(self.definition.fields), **fields}
            status = 201 if existing is None else 200
        else:  # merge or mergeOrUpload of an existing document: a new dict, never an in-place change
            document = {**existing, **fields}
            status = 200
        self.documents[key] = document
        self._written(key, document)
        return ActionResult(key, True, status)

    # ------------------------------------------------------------------ reading

    def lookup(self, key: str, select: str | None) -> dict[str, Any] | None:
        try:
            names = parse_select(select, self.definition.fields)
        except ODataError as error:
            raise odata_error(error) from None
        self.publish()
        document = self.visible.get(key)
        if document is None:
            return None
        return self.render(document, names)

    def render(self, document: Mapping[str, Any], names: list[str] | None) -> dict[str, Any]:
        """A document as the service writes it: selected (or all retrievable) fields."""
        if names is None:
            names = [n for n, spec in self.definition.fields.items() if spec.retrievable]
        return {name: _to_json(document.get(name)) for name in names}

    def search(self, request: Mapping[str, Any]) -> SearchOutcome:
        """Run a search request (body of ``search.post.search``); see ``SearchRequest``."""
        query = SearchRequest.parse(request, self.definition)
        self.publish()
        if query.vector is None:
            hits = [(1.0, k, d) for k, d in self.visible.items() if query.filter is None or query.filter(d)]
        else:
            allowed = None
            if query.filter is not None and query.prefilter:
                allowed = {k for k, d in self.visible.items() if query.filter(d)}
            hits = self._nearest(query, allowed)
            if query.filter is not None and not query.prefilter:
                hits = [hit for hit in hits if query.filter(hit[2])]
        if query.orderby:
            hits = _order(hits, query.orderby)
        total = len(hits)
        page_size = min(query.top if query.top is not None else DEFAULT_TOP, MAX_PAGE)
        page = hits[query.skip : query.skip + page_size]
        remaining = total - query.skip - len(page)
        wanted_more = (query.top is None or query.top > len(page)) and remaining > 0
        next_parameters = None
        if wanted_more and page:
            next_parameters = dict(request)
            next_parameters["skip"] = query.skip + len(page)
            if query.top is not None:
                next_parameters["top"] = query.top - len(page)
        rows = [{"@search.score": float(score), **self.render(document, query.select)} for score, _, document in page]
        return SearchOutcome(rows=rows, count=total if query.count else None, next_parameters=next_parameters)

    def _nearest(self, query: SearchRequest, allowed: set[str] | None) -> list[tuple[float, str, dict[str, Any]]]:
        """Exhaustive k nearest neighbours by cosine (the double has no HNSW; results equal
        what an exhaustive query on the service returns)."""
        keys, matrix = self._matrix(query.vector_field)
        if not keys:
            return []
        cosines = matrix @ query.vector
        if allowed is not None:
            mask = np.fromiter((k in allowed for k in keys), dtype=bool, count=len(keys))
            cosines = np.where(mask, cosines, -np.inf)
        order = np.argsort(-cosines, kind="stable")[: query.k]
        return [
            (float(cosine_to_score(float(cosines[i]))), keys[i], self.visible[keys[i]])
            for i in order
            if np.isfinite(cosines[i])
        ]

    def _matrix(self, field_name: str) -> tuple[list[str], np.ndarray]:
        """Keys and normalised vectors of every visible document that has one (zero vectors,
        whose cosine is undefined, are left out); rebuilt after writes become visible."""
        cached = self._matrices.get(field_name)
        if cached is None:
            keys: list[str] = []
            rows: list[np.ndarray] = []
            for key, document in self.visible.items():
                vector = document.get(field_name)
                if vector is None:
                    continue
                try:
                    rows.append(_unit(vector))
                except ValueError:
                    continue
                keys.append(key)
            dimensions = self.definition.vector_fields[field_name].dimensions
            matrix = np.vstack(rows) if rows else np.zeros((0, dimensions), dtype=np.float32)
            cached = (keys, matrix)
            self._matrices[field_name] = cached
        return cached

    def count(self) -> int:
        self.publish()
        return len(self.visible)

    def storage_size(self) -> int:
        self.publish()
        return sum(len(repr(d)) for d in self.visible.values())


@dataclass
class SearchOutcome:
    rows: list[dict[str, Any]]
    count: int | None
    next_parameters: dict[str, Any] | None


_SEARCH_PROPERTIES = {
    "search",
    "filter",
    "select",
    "orderby",
    "top",
    "skip",
    "count",
    "vectorQueries",
    "vectorFilterMode",
    "searchMode",
    "queryType",
    "searchFields",
    "facets",
    "highlight",
    "highlightPreTag",
    "highlightPostTag",
    "minimumCoverage",
    "scoringProfile",
    "scoringParameters",
    "scoringStatistics",
    "sessionId",
    "semanticConfiguration",
    "semanticErrorHandling",
    "semanticMaxWaitInMilliseconds",
    "semanticQuery",
    "answers",
    "captions",
    "debug",
}
_IGNORED_WHEN_SET = {"sessionId", "scoringStatistics", "minimumCoverage", "searchMode", "searchFields"}
_VECTOR_QUERY_PROPERTIES = {"kind", "vector", "fields", "k", "exhaustive", "weight", "oversampling"}
# Valid in preview API versions only (vector query reference, 2024-05-01-preview and later); the
# double accepts those versions but not these features.
_PREVIEW_VECTOR_QUERY_PROPERTIES = {"threshold", "filterOverride", "perDocumentVectorLimit"}
_PREVIEW_SEARCH_PROPERTIES = {"hybridSearch", "queryRewrites", "semanticFields", "speller", "queryLanguage"}


@dataclass
class SearchRequest:
    filter: Callable[[Mapping[str, Any]], bool] | None
    select: list[str] | None
    orderby: list[OrderClause]
    top: int | None
    skip: int
    count: bool
    vector: np.ndarray | None
    vector_field: str
    k: int
    prefilter: bool

    @classmethod
    def parse(cls, body: Mapping[str, Any], definition: IndexDefinition) -> SearchRequest:
        if not isinstance(body, Mapping):
            raise invalid_request(
                "parameters", "The search request must be a JSON object.", detail_code="InvalidParameter"
            )
        preview_only = sorted(set(body) & _PREVIEW_SEARCH_PROPERTIES)
        if preview_only and any(body.get(name) not in (None, [], "") for name in preview_only):
            raise not_supported(f"The search parameter '{preview_only[0]}' (preview API versions)")
        unknown = sorted(set(body) - _SEARCH_PROPERTIES - _PREVIEW_SEARCH_PROPERTIES)
        if unknown:
            raise invalid_request(
                "parameters",
                f"The parameter '{unknown[0]}' in the request payload is not a valid "
                f"parameter for the operation 'search'.",
                detail_code="InvalidParameter",
            )
        for name in sorted(
            _SEARCH_PROPERTIES
            - _IGNORED_WHEN_SET
            - {
                "search",
                "filter",
                "select",
                "orderby",
                "top",
                "skip",
                "count",
                "vectorQueries",
                "vectorFilterMode",
                "queryType",
            }
        ):
            if body.get(name) not in (None, [], ""):
                raise not_supported(f"The search parameter '{name}'")
        if body.get("queryType") not in (None, "simple", "full"):
            raise not_supported(f"queryType '{body.get('queryType')}'")
        text = body.get("search")
        if text not in (None, "", "*"):
            raise not_supported("Full-text search (search text other than '*')")
        fields = definition.fields
        try:
            predicate = compile_filter(body["filter"], fields) if body.get("filter") is not None else None
            select = parse_select(body.get("select"), fields)
            orderby = parse_orderby(body.get("orderby"), fields)
        except ODataError as error:
            raise odata_error(error) from None
        top = _non_negative_int(body.get("top"), "top")
        skip = _non_negative_int(body.get("skip"), "skip") or 0
        if skip > MAX_SKIP:
            # The live answer quoted in azure-sdk-for-python#32307.
            raise SearchServiceError(
                400,
                "ParameterValueOutOfRange",
                f"Value must be between 0 and {MAX_SKIP}.\nParameter name: $skip",
                details=[{"code": "ParameterValueOutOfRange", "message": f"Value must be between 0 and {MAX_SKIP}."}],
            )
        count = body.get("count")
        if count not in (None, True, False):
            raise invalid_request("count", "count must be true or false.", detail_code="InvalidParameter")
        mode = body.get("vectorFilterMode") or "preFilter"
        if mode not in ("preFilter", "postFilter"):
            raise invalid_request(
                "vectorFilterMode",
                f"'{mode}' is not a valid vector filter mode; use 'preFilter' or 'postFilter'.",
                detail_code="InvalidParameter",
            )
        vector, vector_field, k = cls._vector_query(body.get("vectorQueries"), definition, top)
        return cls(predicate, select, orderby, top, skip, bool(count), vector, vector_field, k, mode == "preFilter")

    @staticmethod
    def _vector_query(queries: Any, definition: IndexDefinition, top: int | None) -> tuple[np.ndarray | None, str, int]:
        if not queries:
            return None, "", 0
        if not isinstance(queries, list):
            raise invalid_request("vectorQueries", "vectorQueries must be an array.", detail_code="InvalidVectorQuery")
        if len(queries) > 1:
            raise not_supported("More than one vector query in a request (results fused by RRF)")
        query = queries[0]
        if not isinstance(query, dict):
            raise invalid_request(
                "vectorQueries", "Each vector query must be a JSON object.", detail_code="InvalidVectorQuery"
            )
        # The kind first: a text query on a field without a vectorizer is refused for that
        # reason, not for its 'text' property, which is valid for that kind.
        kind = query.get("kind")
        if kind in VECTORIZABLE_KINDS:
            vectorizable_field(query, definition)  # refuses a field without a vectorizer, with the live text
            # A field with a vectorizer: the service layer vectorizes such a query before it gets here.
            raise invalid_request(
                "vectorQueries",
                f"The vector query of kind '{kind}' was not vectorized.",
                detail_code="InvalidVectorQuery",
            )
        if kind != "vector":
            raise invalid_request(
                "vectorQueries", f"'{kind}' is not a valid vector query kind.", detail_code="InvalidVectorQuery"
            )
        preview_only = sorted(set(query) & _PREVIEW_VECTOR_QUERY_PROPERTIES)
        if preview_only:
            raise not_supported(f"The vector query parameter '{preview_only[0]}' (preview API versions)")
        unknown = sorted(set(query) - _VECTOR_QUERY_PROPERTIES)
        if unknown:
            raise invalid_request(
                "vectorQueries",
                f"The parameter '{unknown[0]}' is not a valid parameter of a vector query.",
                detail_code="InvalidVectorQuery",
            )
        weight = query.get("weight")
        if weight is not None and (
            isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0
        ):
            # "the value needs to be a positive number larger than zero" (VectorQuery.Weight, REST reference).
            raise invalid_request(
                "vectorQueries",
                f"The weight of a vector query must be a positive number larger than zero, not {weight!r}.",
                detail_code="InvalidVectorQuery",
            )
        if query.get("oversampling") is not None:
            raise invalid_request(
                "vectorQueries",
                "oversampling can only be set when the vector field uses compression.",
                detail_code="InvalidVectorQuery",
            )
        names = [n.strip() for n in str(query.get("fields") or "").split(",") if n.strip()]
        if not names:
            raise invalid_request(
                "vectorQueries",
                "A vector query must name the vector field(s) to search in 'fields'.",
                detail_code="InvalidVectorQuery",
            )
        if len(names) > 1:
            raise not_supported("A vector query over several vector fields")
        name = names[0]
        if name not in definition.fields:
            raise invalid_request(
                "vectorQueries", f"Unknown field '{name}' in vector field list.", detail_code="InvalidVectorQuery"
            )
        vector_field = definition.vector_fields.get(name)
        if vector_field is None:
            raise invalid_request(
                "vectorQueries",
                f"The field '{name}' in the vector field list is not a vector field.",
                detail_code="InvalidVectorQuery",
            )
        vector = query.get("vector")
        if _number_array(vector) is None:
            raise invalid_request(
                "vectorQueries",
                "The vector of a vector query must be an array of numbers.",
                detail_code="InvalidVectorQuery",
            )
        if len(vector) != vector_field.dimensions:
            raise invalid_request(
                "vectorQueries",
                f"The vector field '{name}' has {vector_field.dimensions} dimensions, but the "
                f"query vector has {len(vector)}. Query vector length must match the "
                f"dimensionality of the field.",
                detail_code="InvalidVectorQuery",
            )
        k = query.get("k")
        if k is None:
            k = top if top is not None else DEFAULT_TOP
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise invalid_request(
                "vectorQueries", f"k must be a positive integer, not {k!r}.", detail_code="InvalidVectorQuery"
            )
        try:
            return _unit(vector), name, k
        except ValueError:
            raise invalid_request(
                "vectorQueries",
                "The query vector is all zeros; cosine similarity is undefined for it.",
                detail_code="InvalidVectorQuery",
            ) from None


# ------------------------------------------------------------------ vectorizable queries

# The vector query kinds a vectorizer turns into a vector, and the property that holds the input
# (REST "VectorizableTextQuery" ``text``, "VectorizableImageUrlQuery" ``url``,
# "VectorizableImageBinaryQuery" ``base64Image``).
VECTORIZABLE_KINDS = {"text": "text", "imageUrl": "url", "imageBinary": "base64Image"}


def vectorizable_field(query: Mapping[str, Any], definition: IndexDefinition) -> VectorField:
    """The one vector field a vectorizable query searches, which must have a vectorizer.

    Refused as the service refuses it: unknown properties, an input that is not a non-empty
    string, a field list that names no single vector field (400 ``InvalidVectorQuery``), and
    a field whose profile has no vectorizer, with the live text "Field 'embedding' does not have
    a vectorizer defined in it's vector profile." (quoted in Azure-Samples/azure-search-openai-demo#2679).
    """
    kind = query.get("kind")
    value_property = VECTORIZABLE_KINDS[str(kind)]
    allowed = (_VECTOR_QUERY_PROPERTIES - {"vector"}) | {value_property}
    preview_only = sorted(set(query) & _PREVIEW_VECTOR_QUERY_PROPERTIES)
    if preview_only:
        raise not_supported(f"The vector query parameter '{preview_only[0]}' (preview API versions)")
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise invalid_request(
            "vectorQueries",
            f"The parameter '{unknown[0]}' is not a valid parameter of a vector query of kind '{kind}'.",
            detail_code="InvalidVectorQuery",
        )
    value = query.get(value_property)
    if not isinstance(value, str) or not value.strip():
        raise invalid_request(
            "vectorQueries",
            f"A vector query of kind '{kind}' needs a non-empty string in '{value_property}'.",
            detail_code="InvalidVectorQuery",
        )
    names = [n.strip() for n in str(query.get("fields") or "").split(",") if n.strip()]
    if len(names) != 1:
        if not names:
            raise invalid_request(
                "vectorQueries",
                "A vector query must name the vector field(s) to search in 'fields'.",
                detail_code="InvalidVectorQuery",
            )
        raise not_supported("A vector query over several vector fields")
    name = names[0]
    if name not in definition.fields:
        raise invalid_request(
            "vectorQueries", f"Unknown field '{name}' in vector field list.", detail_code="InvalidVectorQuery"
        )
    field_spec = definition.vector_fields.get(name)
    if field_spec is None:
        raise invalid_request(
            "vectorQueries",
            f"The field '{name}' in the vector field list is not a vector field.",
            detail_code="InvalidVectorQuery",
        )
    if field_spec.vectorizer is None:
        raise SearchServiceError(
            400,
            "InvalidVectorQuery",
            f"Field '{name}' does not have a vectorizer defined in it's vector profile.",
        )
    return field_spec


# ------------------------------------------------------------------ helpers


class _ActionProblem(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


_FAULT_MESSAGES = {
    503: "Service unavailable: the search service is under heavy load; try again later (injected fault).",
    429: "Too many requests: the search service is throttling indexing; try again later (injected fault).",
    409: "A version conflict was detected while indexing this document; try again (injected fault).",
    422: "The index is temporarily unavailable; try again (injected fault).",
}


def check_key(key: Any) -> None:
    """The service's document key rules; a bad key fails the whole batch (400)."""
    if not isinstance(key, str):
        raise _ActionProblem(f"Invalid document key: '{key}'. The key field must be a string.", "InvalidDocumentKey")
    if key.startswith("_"):
        raise _ActionProblem(
            f"Invalid document key: '{key}'. Keys cannot start with a leading underscore.", "InvalidDocumentKey"
        )
    if len(key) > MAX_KEY_LENGTH:
        raise _ActionProblem(
            f"Invalid document key: '{key[:40]}...'. Keys cannot be longer than {MAX_KEY_LENGTH} characters.",
            "InvalidDocumentKey",
        )
    if not _KEY_CHARS.match(key):
        raise _ActionProblem(
            f"Invalid document key: '{key}'. Keys can only contain letters, digits, underscore "
            f"(_), dash (-), or equal sign (=). If the keys in your source data contain other "
            f"characters, we recommend encoding them with a URL-safe version of Base64 encoding.",
            "InvalidDocumentKey",
        )


def _number_array(value: Any) -> np.ndarray | None:
    """``value`` as a float64 array if it is a JSON array of finite numbers, else None
    (booleans, strings, nested arrays and nulls are not numbers to the service)."""
    if not isinstance(value, list):
        return None
    try:
        array = np.array(value)
    except (ValueError, TypeError):
        return None
    if array.ndim != 1 or array.dtype.kind not in "iuf" or (array.size and not np.all(np.isfinite(array))):
        return None
    return array.astype(np.float64)


def _convert_scalar(name: str, edm: str, value: Any) -> Any:
    def wrong() -> _ActionProblem:
        return _ActionProblem(
            f"Cannot convert the value {value!r} of field '{name}' to the expected type '{edm}'.", "InvalidDocument"
        )

    if edm == "Edm.String":
        if not isinstance(value, str):
            raise wrong()
        return value
    if edm in ("Edm.Int32", "Edm.Int64"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise wrong()
        low, high = INT32_RANGE if edm == "Edm.Int32" else INT64_RANGE
        if not low <= value <= high:
            raise wrong()
        return value
    if edm == "Edm.Double":
        if isinstance(value, str) and value in ("NaN", "INF", "-INF"):
            return {"NaN": float("nan"), "INF": float("inf"), "-INF": float("-inf")}[value]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise wrong()
        return float(value)
    if edm == "Edm.Boolean":
        if not isinstance(value, bool):
            raise wrong()
        return value
    if edm == "Edm.DateTimeOffset":
        if not isinstance(value, str):
            raise wrong()
        try:
            return parse_datetime_offset(value)
        except ValueError:
            raise wrong() from None
    raise wrong()  # pragma: no cover - definitions only allow the types above


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime_offset(value)
    if isinstance(value, np.ndarray):
        return [float(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("INF" if value > 0 else "-INF")
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def _order(
    hits: list[tuple[float, str, dict[str, Any]]], clauses: list[OrderClause]
) -> list[tuple[float, str, dict[str, Any]]]:
    ordered = list(hits)
    for clause in reversed(clauses):  # stable sorts, last key first
        if clause.field is None:
            ordered.sort(key=lambda h: h[0], reverse=clause.descending)
        else:
            ordered.sort(key=lambda h, f=clause.field: sort_key_value(h[2].get(f)), reverse=clause.descending)
    return ordered


def _non_negative_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise invalid_request(
            name, f"{name} must be a non-negative integer, not {value!r}.", detail_code="InvalidParameter"
        )
    return value
