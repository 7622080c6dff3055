"""The Azure AI Search backend: ``IndexBackend`` over ``azure-search-documents``.

On top of the SDK it settles the create race, tells a missing index by its 404, checks every
write and query against the pin read from the live index, batches within the service limits
(1000 actions, 16 MB of JSON), retries per document and isolates bad documents, and returns
the same cosine scores and ``Hit`` as the numpy index.
(design, with the sources: docs/design.md#the-azure-ai-search-backend)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from azure.core.credentials import AzureKeyCredential, TokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest
from azure.search.documents import SearchClient
from azure.search.documents.indexes import SearchIndexClient
from azure.search.documents.indexes.models import SearchIndex
from azure.search.documents.models import VectorizableTextQuery, VectorizedQuery

from indexer.backends.azure_search.errors import (
    call_service,
    error_code,
    error_message,
    index_already_exists,
    service_error,
)
from indexer.backends.azure_search.odata import and_filters, quote_string, render_filter
from indexer.backends.base import WriteResult, normalize
from indexer.backends.schema_rules import (
    InvalidDocumentError,
    InvalidQueryError,
    check_index_name,
    check_k,
    check_select,
    check_threshold,
    key_problem,
    validate_fields,
)
from indexer.documents import Document, Embedding, Hit, IndexPin
from indexer.errors import CREATE_INDEX_REMEDY, ConfigurationError, IndexNotFoundError, ModelVersionMismatchError
from indexer.filters import Condition
from indexer.retry import RetryPolicy, is_retriable_status, retry_after_from_headers
from indexer.schema import KEY_FIELD, VECTOR_FIELD, IndexSchema, parse_pin
from indexer.vector_compression import check_compression, compression_of

MAX_BATCH_ACTIONS = 1000
MAX_BATCH_BYTES = 16 * 1024 * 1024
DEFAULT_API_VERSION = "2026-04-01"
PAGE_SIZE = 1000  # the most results one search request returns
MAX_SKIP = 100_000  # the service refuses larger $skip values
RETRIABLE_DOCUMENT_STATUSES = frozenset({409, 422, 429, 503})
_ENVELOPE_BYTES = len('{"value": [') + len("]}")
_SEPARATOR_BYTES = len(", ")


def score_to_cosine(score: float) -> float:
    """Invert the service's cosine score ``1 / (2 - cosine)``; clipped to [-1, 1] because
    float rounding can put a vector's similarity to itself a hair above 1."""
    if score <= 0:
        return -1.0
    return max(-1.0, min(1.0, 2.0 - 1.0 / score))


@dataclass(frozen=True)
class _LiveIndex:
    """What the backend learned from the live index definition."""

    pin: IndexPin
    schema: IndexSchema
    key_sortable: bool


@dataclass
class _Pending:
    key: str
    text: str  # the action as JSON, exactly as it goes into the request body
    last_error: str = ""


class AzureSearchBackend:
    """One Azure AI Search index pinned to one model version.

    ``credential`` is an ``AzureKeyCredential`` (admin key) or any ``TokenCredential``
    (Microsoft Entra ID; needs the "Search Index Data Contributor" role for writes and
    "Search Service Contributor" for ``ensure_index``). ``client_kwargs`` go to both SDK
    clients (e.g. ``retry_backoff_factor``, ``transport``, ``audience``).
    ``exhaustive=True`` asks the service for exact k-nearest neighbours instead of HNSW.
    """

    def __init__(  # noqa: PLR0913 (a constructor takes its options as keywords)
        self,
        endpoint: str,
        index_name: str,
        credential: AzureKeyCredential | TokenCredential,
        *,
        api_version: str | None = None,
        max_batch_actions: int = MAX_BATCH_ACTIONS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_retries: int = 5,
        retry_backoff_seconds: float = 0.5,
        retry_backoff_max_seconds: float = 30.0,
        exhaustive: bool = False,
        **client_kwargs: Any,
    ) -> None:
        if not endpoint or not endpoint.lower().startswith(("https://", "http://")):
            raise ValueError(f"the search endpoint must be an http(s) URL, got {endpoint!r}")
        check_index_name(index_name)
        if not 1 <= max_batch_actions <= MAX_BATCH_ACTIONS:
            raise ValueError(f"max_batch_actions must be from 1 to {MAX_BATCH_ACTIONS}, got {max_batch_actions}")
        if not 1024 <= max_batch_bytes <= MAX_BATCH_BYTES:
            raise ValueError(f"max_batch_bytes must be from 1024 to {MAX_BATCH_BYTES}, got {max_batch_bytes}")
        if max_retries < 0 or retry_backoff_seconds < 0 or retry_backoff_max_seconds < 0:
            raise ValueError("max_retries and the retry backoff must not be negative")
        self.endpoint = endpoint.rstrip("/")
        self.index_name = index_name
        self.max_batch_actions = max_batch_actions
        self.max_batch_bytes = max_batch_bytes
        self.max_retries = max_retries
        self.retry_backoff_seconds = retry_backoff_seconds
        self.retry_backoff_max_seconds = retry_backoff_max_seconds
        self.exhaustive = exhaustive
        if api_version is not None:
            client_kwargs["api_version"] = api_version
        self._index_client = SearchIndexClient(self.endpoint, credential, **client_kwargs)
        self._client = SearchClient(self.endpoint, index_name, credential, **client_kwargs)
        # The version the SDK clients speak (their default unless ``api_version`` is given);
        # indexing requests built here use the same one.
        self.api_version: str = api_version or getattr(self._client._config, "api_version", None) or DEFAULT_API_VERSION
        self._live: _LiveIndex | None = None
        self._retry = RetryPolicy(
            max_retries=max_retries, backoff_factor=retry_backoff_seconds, backoff_max=retry_backoff_max_seconds
        )

    def __repr__(self) -> str:
        return f"AzureSearchBackend({self.endpoint!r}, {self.index_name!r})"

    def close(self) -> None:
        self._client.close()
        self._index_client.close()

    def __enter__(self) -> AzureSearchBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the index and its pin

    def ensure_index(self, schema: IndexSchema) -> IndexPin:
        """Create the index from ``schema`` or check the existing one's pin.

        An existing index pinned to another model version or dimension count raises
        ``ModelVersionMismatchError`` and nothing is changed. Fields that ``schema`` adds to an
        existing index with the same pin are added (the service allows adding fields);
        removing or retyping a field is refused with ``ConfigurationError``. A Web API
        vectorizer in ``schema`` (``SEARCH_VECTORIZER_URI``) is added to the existing index or
        brought up to date (vectorizers can change without a rebuild); one the index has that
        ``schema`` lacks is left alone.
        """
        existing = self._get_index_or_none()
        if existing is None:
            definition = SearchIndex(schema.named(self.index_name))
            created = call_service(
                lambda: self._create_unless_exists(definition),
                f"create index {self.index_name!r}",
                self.endpoint,
                not_found=self._index_gone,
            )
            if created is not None:
                self._live = self._read_live(created.as_dict())
                return self._live.pin
            existing = self._get_index_or_none()  # someone else created it meanwhile: check theirs
        if existing is None:  # pragma: no cover - created and deleted in between
            raise IndexNotFoundError(f"the index {self.index_name!r} disappeared while it was being created")
        current = existing.as_dict()
        live = self._read_live(current, expected=schema.pin)
        check_compression(
            compression_of(current, VECTOR_FIELD),
            schema.compression,
            where=f"the Azure AI Search index {self.index_name!r} at {self.endpoint}",
            remedy=_NEW_INDEX_ADVICE,
        )
        added = self._added_fields(current, schema)
        vector_search = _vectorizers_brought_up_to_date(current, schema)
        if added or vector_search is not None:
            updated = dict(current)
            changes = []
            if added:
                updated["fields"] = list(current["fields"]) + added
                changes.append(f"add fields {', '.join(f['name'] for f in added)} to")
            if vector_search is not None:
                updated["vectorSearch"] = vector_search
                changes.append("point the vectorizer of")
            call_service(
                lambda: self._index_client.create_or_update_index(SearchIndex(updated)),
                f"{' and '.join(changes)} index {self.index_name!r}",
                self.endpoint,
                not_found=self._index_gone,
            )
            live = self._read_live(self._get_index_or_none().as_dict())  # type: ignore[union-attr]
        self._live = live
        return live.pin

    def delete_index(self) -> None:
        """Delete the index on the service (documents and definition). A missing index is fine."""
        try:
            call_service(
                lambda: self._index_client.delete_index(self.index_name),
                f"delete index {self.index_name!r}",
                self.endpoint,
                not_found=None,
            )
        except ResourceNotFoundError:
            pass
        self._live = None

    def _create_unless_exists(self, definition: SearchIndex) -> SearchIndex | None:
        """Create the index; None when the service answers that it already exists."""
        try:
            return self._index_client.create_index(definition)
        except HttpResponseError as exc:
            if index_already_exists(exc):
                return None
            raise

    def get_pin(self) -> IndexPin:
        return self._live_index().pin

    @property
    def schema(self) -> IndexSchema:
        """The live index's definition (with its pin), as the checks here use it."""
        return self._live_index().schema

    def _get_index_or_none(self) -> SearchIndex | None:
        try:
            return call_service(
                lambda: self._index_client.get_index(self.index_name),
                f"read index {self.index_name!r}",
                self.endpoint,
                not_found=None,
            )
        except ResourceNotFoundError:
            return None

    def _live_index(self) -> _LiveIndex:
        if self._live is None:
            existing = self._get_index_or_none()
            if existing is None:
                raise IndexNotFoundError(
                    f"the Azure AI Search index {self.index_name!r} does not exist at {self.endpoint}; "
                    f"{CREATE_INDEX_REMEDY}, or run the provisioning hook"
                )
            self._live = self._read_live(existing.as_dict())
        return self._live

    def _read_live(self, definition: dict[str, Any], *, expected: IndexPin | None = None) -> _LiveIndex:
        """The pin of an index definition (REST shape); raises ``ModelVersionMismatchError`` if
        it has none, if its vector field disagrees with it, or if it differs from ``expected``."""
        pin = parse_pin(definition.get("description"))
        fields = {f["name"]: f for f in definition.get("fields") or []}
        vector = fields.get(VECTOR_FIELD) or {}
        where = f"the Azure AI Search index {self.index_name!r} at {self.endpoint}"
        advice = _NEW_INDEX_ADVICE
        if pin is None:
            raise ModelVersionMismatchError(
                f"{where} has no 'imgsearch pin' in its description, so it was not created by this tool and its "
                f"model version is unknown; {advice}",
                expected=expected,
                actual=None,
            )
        if vector.get("dimensions") != pin.dimensions:
            raise ModelVersionMismatchError(
                f"{where} is pinned to {pin.dimensions} dimensions but its vector field {VECTOR_FIELD!r} has "
                f"{vector.get('dimensions')!r}; the index is inconsistent: {advice}",
                expected=pin.dimensions,
                actual=vector.get("dimensions"),
            )
        if expected is not None:
            pin.check_pin(expected, where=where, remedy=advice)
        schema_definition = {k: v for k, v in definition.items() if k not in ("name", "@odata.etag", "e_tag")}
        key = fields.get(KEY_FIELD) or {}
        return _LiveIndex(
            pin=pin, schema=IndexSchema(pin=pin, definition=schema_definition), key_sortable=bool(key.get("sortable"))
        )

    def _added_fields(self, definition: dict[str, Any], schema: IndexSchema) -> list[dict[str, Any]]:
        live_fields = {f["name"]: f for f in definition.get("fields") or []}
        added = []
        for name, wanted in schema.fields.items():
            have = live_fields.get(name)
            if have is None:
                added.append(wanted)
            elif have.get("type") != wanted.get("type"):
                raise ConfigurationError(
                    f"the schema changes the type of field {name!r} of index {self.index_name!r} from "
                    f"{have.get('type')} to {wanted.get('type')}; Azure AI Search cannot change a field's type: "
                    f"create a new index (SEARCH_INDEX_NAME) and backfill it"
                )
        return added

    # ------------------------------------------------------------------ writes

    def upsert(self, documents: Sequence[Document]) -> WriteResult:
        """Insert or replace whole documents by key.

        Every document is checked first (pin, schema, key); a pin or schema problem raises and
        nothing is sent. Invalid keys and unusable vectors fail only their document. The rest
        go out in batches within the service limits, with retries per document
        (design: docs/design.md#the-azure-ai-search-backend).
        """
        live = self._live_index()
        result = WriteResult()
        actions: dict[str, str] = {}
        for position, document in enumerate(documents):
            if not isinstance(document, Document):
                raise InvalidDocumentError(
                    f"item {position} of the batch is a {type(document).__name__}, not a Document"
                )
            vector = self._checked_vector(live.pin, document.embedding, action=f"index document {document.key!r}")
            fields = validate_fields(live.schema, document.key, document.fields)
            live.pin.check_claim(document.key, fields)
            problem = key_problem(document.key)
            if problem is None:
                try:
                    normalize(vector)
                except ValueError as exc:
                    problem = f"document {document.key!r}: {exc}"
            if problem is not None:
                result.failed[document.key] = problem
                continue
            actions.pop(document.key, None)  # a key given twice: the last one wins
            actions[document.key] = _upload_action(document.key, fields, vector)
        self._send(list(actions.items()), result, what="index")
        return result

    def delete(self, keys: Iterable[str]) -> WriteResult:
        """Delete by key; keys that are not in the index succeed too (the service's delete is
        idempotent)."""
        self._live_index()
        result = WriteResult()
        actions: dict[str, str] = {}
        for key in keys:
            problem = key_problem(key)
            if problem is not None:
                result.failed[key] = problem
                continue
            actions[key] = json.dumps({"@search.action": "delete", KEY_FIELD: key})
        self._send(list(actions.items()), result, what="delete from")
        return result

    def _send(self, actions: list[tuple[str, str]], result: WriteResult, *, what: str) -> dict[str, int]:
        """Send ``(key, action as JSON)`` pairs in batches; fill ``result``; return each key's
        last status code."""
        statuses: dict[str, int] = {}
        batch: list[_Pending] = []
        batch_bytes = _ENVELOPE_BYTES
        for key, text in actions:
            size = len(text.encode("utf-8"))
            if _ENVELOPE_BYTES + size > self.max_batch_bytes:
                result.failed[key] = (
                    f"document {key!r} is {size:,} bytes as JSON; one indexing request may carry "
                    f"at most {self.max_batch_bytes:,} bytes (16 MB)"
                )
                continue
            if batch and (
                len(batch) >= self.max_batch_actions or batch_bytes + _SEPARATOR_BYTES + size > self.max_batch_bytes
            ):
                self._send_batch(batch, result, statuses, what)
                batch, batch_bytes = [], _ENVELOPE_BYTES
            batch_bytes += size + (_SEPARATOR_BYTES if batch else 0)
            batch.append(_Pending(key, text))
        if batch:
            self._send_batch(batch, result, statuses, what)
        return statuses

    def _send_batch(self, batch: list[_Pending], result: WriteResult, statuses: dict[str, int], what: str) -> None:
        pending = batch
        attempt = 0
        while pending:
            try:
                answers = self._post_batch(pending)
            except (ServiceRequestError, ServiceResponseError) as exc:
                if self._wait(attempt):
                    attempt += 1
                    continue
                self._fail_all(
                    pending,
                    result,
                    f"the search service at {self.endpoint} does not answer after {self.max_retries} retries "
                    f"({_short_reason(exc)}); check SEARCH_ENDPOINT (the local double: `imgsearch "
                    f"serve-search-double` or `imgsearch dev` starts it)",
                    retriable=True,
                )
                return
            except HttpResponseError as exc:
                status = exc.status_code or 0
                busy = is_retriable_status(status)
                answer: Any = exc.response
                hint = retry_after_from_headers(answer.headers if answer is not None else None)
                if busy and self._wait(attempt, hint):
                    attempt += 1
                    continue
                if status == 404:
                    self._live = None
                    raise IndexNotFoundError(
                        f"the Azure AI Search index {self.index_name!r} no longer exists at "
                        f"{self.endpoint}; {CREATE_INDEX_REMEDY}"
                    ) from None
                if status in (400, 413) and len(pending) > 1:
                    # One bad document fails the whole request: halve until it is isolated.
                    middle = len(pending) // 2
                    self._send_batch(pending[:middle], result, statuses, what)
                    self._send_batch(pending[middle:], result, statuses, what)
                    return
                if status in (400, 413) or busy:
                    suffix = f" after {self.max_retries} retries" if busy else ""
                    for p in pending:
                        statuses[p.key] = status
                    self._fail_all(pending, result, f"({error_code(exc)}) {error_message(exc)}{suffix}", retriable=busy)
                    return
                raise service_error(exc, f"{what} index {self.index_name!r}") from None
            by_key = {answer.get("key"): answer for answer in answers}
            retry: list[_Pending] = []
            for p in pending:
                answer = by_key.get(p.key)
                if answer is None:  # pragma: no cover - the service answers for every action
                    p.last_error = "the service returned no result for this document"
                    retry.append(p)
                    continue
                code = int(answer.get("statusCode") or 0)
                statuses[p.key] = code
                if answer.get("status"):
                    result.succeeded.append(p.key)
                elif code in RETRIABLE_DOCUMENT_STATUSES:
                    p.last_error = f"({code}) {answer.get('errorMessage')}"
                    retry.append(p)
                else:
                    result.fail(p.key, f"({code}) {answer.get('errorMessage')}")
            pending = retry
            if pending:
                if not self._wait(attempt):
                    for p in pending:
                        result.fail(
                            p.key, f"still failing after {self.max_retries} retries: {p.last_error}", retriable=True
                        )
                    return
                attempt += 1

    def _post_batch(self, pending: list[_Pending]) -> list[dict[str, Any]]:
        """POST one indexing batch; return the per-document results (``key``, ``status``,
        ``statusCode``, ``errorMessage``) of a 200 or 207 answer, else raise ``HttpResponseError``.

        The body is the actions' JSON text, sent with the client's ``send_request`` (same pipeline)
        rather than ``index_documents``: SDK models cost over a millisecond per document, and the text
        is what the 16 MB limit is measured on. The SDK's retries are off (``retry_total=0``): ours
        retry per document, and on 429 too. (design: docs/design.md#the-azure-ai-search-backend)"""
        body = '{"value": [' + ", ".join(p.text for p in pending) + "]}"
        request = HttpRequest(
            "POST",
            f"/indexes('{self.index_name}')/docs/search.index",
            params={"api-version": self.api_version},
            headers={"Content-Type": "application/json", "Accept": "application/json;odata.metadata=none"},
            content=body.encode("utf-8"),
        )
        response = self._client.send_request(request, retry_total=0)
        if response.status_code not in (200, 207):
            raise HttpResponseError(response=response)
        return list(response.json().get("value") or [])

    @staticmethod
    def _fail_all(pending: list[_Pending], result: WriteResult, reason: str, *, retriable: bool = False) -> None:
        for p in pending:
            result.fail(p.key, reason, retriable=retriable)

    def _wait(self, attempt: int, retry_after: float | None = None) -> bool:
        """Sleep before retry ``attempt`` (``indexer.retry``); False when it is time to give up."""
        delay = self._retry.delay(attempt, retry_after)
        if delay is None:
            return False
        if delay > 0:
            time.sleep(delay)
        return True

    # ------------------------------------------------------------------ reads

    def get(self, key: str) -> dict[str, Any] | None:
        """The document's retrievable metadata fields (null ones as None), without the key and
        the vector; None if the key is not in the index."""
        live = self._live_index()
        if key_problem(key) is not None:
            return None  # such a key can never have been stored
        selected = check_select(live.schema, None)
        try:
            document = call_service(
                lambda: self._client.get_document(key, selected_fields=list(selected) or [KEY_FIELD]),
                f"read document {key!r}",
                self.endpoint,
                not_found=None,
            )
        except ResourceNotFoundError:
            return None  # a 404 here: this document is absent, not the index
        return {name: document.get(name) for name in selected}

    def count(self) -> int:
        self._live_index()
        what = f"count the documents of {self.index_name!r}"
        return int(call_service(self._client.get_document_count, what, self.endpoint, not_found=self._index_gone))

    def search(
        self,
        query: Embedding,
        *,
        k: int = 10,
        threshold: float | None = None,
        filters: Sequence[Condition] = (),
        select: Sequence[str] | None = None,
    ) -> list[Hit]:
        """Top-``k`` by cosine similarity, best first, at or above ``threshold`` (a cosine from
        -1 to 1) if given, among documents matching every filter."""
        k = check_k(k)
        threshold = check_threshold(threshold)
        live = self._live_index()
        vector = self._checked_vector(live.pin, query, action="search", error=InvalidQueryError)
        try:
            normalize(vector)
        except ValueError as exc:
            raise InvalidQueryError(f"cannot search: {exc}") from None
        vector_query = VectorizedQuery(
            vector=vector.astype(np.float32).tolist(),
            k_nearest_neighbors=k,
            fields=VECTOR_FIELD,
            exhaustive=True if self.exhaustive else None,
        )
        return self._vector_search(live, vector_query, k=k, threshold=threshold, filters=filters, select=select)

    def search_by_text(
        self,
        text: str,
        *,
        k: int = 10,
        threshold: float | None = None,
        filters: Sequence[Condition] = (),
        select: Sequence[str] | None = None,
    ) -> list[Hit]:
        """Top-``k`` for a text the *search service* vectorizes (``VectorizableTextQuery``, REST
        ``kind: "text"``), with the index's Web API vectorizer, which calls this project's
        ``/api/vectorize``; that endpoint checks the vector against the index's pin. Needs an
        index created with ``SEARCH_VECTORIZER_URI`` set."""
        k = check_k(k)
        threshold = check_threshold(threshold)
        live = self._live_index()
        if not live.schema.vectorizer_name:
            raise ConfigurationError(
                f"the index {self.index_name!r} has no vectorizer on its vector field, so the search service cannot "
                f"vectorize a text: set SEARCH_VECTORIZER_URI to the vectorize endpoint and run `imgsearch "
                f"ensure-index`, or vectorize the query here"
            )
        if not isinstance(text, str) or not text.strip():
            raise InvalidQueryError("the query text is empty; give 1 to 70 words")
        vector_query = VectorizableTextQuery(
            text=text, k_nearest_neighbors=k, fields=VECTOR_FIELD, exhaustive=True if self.exhaustive else None
        )
        return self._vector_search(live, vector_query, k=k, threshold=threshold, filters=filters, select=select)

    def _vector_search(
        self,
        live: _LiveIndex,
        vector_query: Any,
        *,
        k: int,
        threshold: float | None,
        filters: Sequence[Condition],
        select: Sequence[str] | None,
    ) -> list[Hit]:
        selected = check_select(live.schema, select)
        odata_filter = render_filter(list(filters), live.schema)
        request_fields = list(
            dict.fromkeys([KEY_FIELD, *(["source"] if "source" in live.schema.fields else []), *selected])
        )
        rows = call_service(
            lambda: list(
                self._client.search(
                    search_text=None, vector_queries=[vector_query], filter=odata_filter, select=request_fields, top=k
                )
            ),
            f"search index {self.index_name!r}",
            self.endpoint,
            not_found=self._index_gone,
        )
        hits = []
        for row in rows:
            cosine = score_to_cosine(float(row["@search.score"]))
            if threshold is not None and cosine < threshold:
                continue
            key = row[KEY_FIELD]
            fields = {name: key if name == KEY_FIELD else row.get(name) for name in selected}
            hits.append(Hit(key=key, source=row.get("source") or "", score=cosine, fields=fields))
        hits.sort(key=lambda h: -h.score)  # the service already ranks; keep it explicit and stable
        return hits

    def keys_with_hashes(self, conditions: Sequence[Condition] = ()) -> dict[str, str]:
        """Key -> ``content_hash`` ("" where null) of every document matching ``conditions``.

        Pages by key: ``$orderby=id`` plus ``id gt '<last key>'``, 1000 at a time, because
        ``$skip`` stops at 100,000. An index whose key field is not sortable (created from an
        older schema) is paged with ``$skip`` instead, and refused past 100,000 documents.
        """
        live = self._live_index()
        base_filter = render_filter(list(conditions), live.schema)
        select = [KEY_FIELD] + (["content_hash"] if "content_hash" in live.schema.fields else [])
        found: dict[str, str] = {}
        last: str | None = None
        skip = 0
        while True:
            if live.key_sortable:
                page_filter = and_filters(base_filter, f"{KEY_FIELD} gt {quote_string(last)}" if last else None)
                options: dict[str, Any] = {"order_by": [f"{KEY_FIELD} asc"]}
            else:
                if skip > MAX_SKIP:
                    raise ConfigurationError(
                        f"cannot list more than {MAX_SKIP:,} documents of index {self.index_name!r}: its key field "
                        f"{KEY_FIELD!r} is not sortable, so it can only be paged with $skip; recreate the index "
                        f"from the current schema (SEARCH_INDEX_NAME) and backfill it"
                    )
                page_filter = base_filter
                options = {"skip": skip}
            page: list[Any] = call_service(
                partial(self._search_page, filter=page_filter, select=select, **options),
                f"list the documents of {self.index_name!r}",
                self.endpoint,
                not_found=self._index_gone,
            )
            for row in page:
                found[row[KEY_FIELD]] = row.get("content_hash") or ""
            if len(page) < PAGE_SIZE:
                return found
            last = page[-1][KEY_FIELD]
            skip += len(page)

    def not_yet_visible(self, expected: Mapping[str, str | None]) -> set[str]:
        """See ``IndexBackend.not_yet_visible``. Asks for the expected keys with
        ``search.in(id, ...)``, up to ``PAGE_SIZE`` keys per request, so the cost follows the
        number of keys checked, not the size of the index."""
        live = self._live_index()
        has_hash = "content_hash" in live.schema.fields
        select = [KEY_FIELD] + (["content_hash"] if has_hash else [])
        keys = [key for key in expected if key_problem(key) is None]  # (keys with commas cannot exist)
        pending = {key for key in expected if key_problem(key) is not None and expected[key] is not None}
        for start in range(0, len(keys), PAGE_SIZE):
            chunk = keys[start : start + PAGE_SIZE]
            odata_filter = f"search.in({KEY_FIELD}, {quote_string(','.join(chunk))}, ',')"
            rows: list[Any] = call_service(
                partial(self._search_page, filter=odata_filter, select=select),
                f"check which writes {self.index_name!r} shows",
                self.endpoint,
                not_found=self._index_gone,
            )
            found = {row[KEY_FIELD]: row.get("content_hash") or "" for row in rows}
            for key in chunk:
                digest = expected[key]
                if digest is None:
                    if key in found:
                        pending.add(key)
                elif key not in found or (has_hash and found[key] != digest):
                    pending.add(key)
        return pending

    # ------------------------------------------------------------------ helpers

    def _search_page(self, **options: Any) -> list[Any]:
        """One page (``PAGE_SIZE`` rows) of all documents, as the listing asks for it."""
        return list(self._client.search(search_text="*", top=PAGE_SIZE, **options))

    @staticmethod
    def _checked_vector(
        pin: IndexPin, embedding: Any, *, action: str, error: type[Exception] = InvalidDocumentError
    ) -> np.ndarray:
        if not isinstance(embedding, Embedding):
            raise error(f"cannot {action}: expected an Embedding, got {type(embedding).__name__}")
        vector = np.asarray(embedding.vector)
        if vector.ndim != 1:
            raise error(f"cannot {action}: the vector must be one-dimensional, got shape {vector.shape}")
        pin.check(Embedding(vector, embedding.model_version), action=action)
        if not np.all(np.isfinite(vector)):
            raise error(f"cannot {action}: the vector has non-finite values")
        return vector

    def _index_gone(self, what: str) -> IndexNotFoundError:
        """What a 404 on an index-level request means: the index is gone (its body has an empty code)."""
        self._live = None
        return IndexNotFoundError(
            f"cannot {what}: the Azure AI Search index {self.index_name!r} does not exist at {self.endpoint}; "
            f"{CREATE_INDEX_REMEDY}"
        )


_NEW_INDEX_ADVICE = (
    "create a new index with these settings (set SEARCH_INDEX_NAME to a new name), backfill it with "
    "`imgsearch backfill`, then switch your apps to it"
)


def _short_reason(exc: Exception) -> str:
    """The type and the last part of a connection error (urllib3's text runs to 300 characters:
    "HTTPConnection(...): Failed to establish a new connection: [Errno 111] Connection refused")."""
    text = str(getattr(exc, "message", None) or exc)
    return f"{type(exc).__name__}: {text.rsplit(': ', 1)[-1][:160]}"


def _vectorizers_brought_up_to_date(current: dict[str, Any], schema: IndexSchema) -> dict[str, Any] | None:
    """The live index's ``vectorSearch`` with the vectorizers of ``schema`` put in and bound to
    the same profiles, or None when nothing needs to change. A vectorizer whose parameters hold
    a key is always sent again: the service may not show the key it keeps."""
    wanted = (schema.definition.get("vectorSearch") or {}).get("vectorizers") or []
    if not wanted:
        return None
    live_search = dict(current.get("vectorSearch") or {})
    live_vectorizers = {v.get("name"): v for v in live_search.get("vectorizers") or []}
    wanted_profiles = {
        p["name"]: p.get("vectorizer") for p in (schema.definition.get("vectorSearch") or {}).get("profiles") or []
    }
    live_profiles = [dict(p) for p in live_search.get("profiles") or []]

    def same(mine: dict[str, Any], theirs: dict[str, Any] | None) -> bool:
        if theirs is None or (mine.get("customWebApiParameters") or {}).get("httpHeaders"):
            return False
        ours = mine.get("customWebApiParameters") or {}
        live = theirs.get("customWebApiParameters") or {}
        return mine.get("kind") == theirs.get("kind") and all(live.get(k) == v for k, v in ours.items())

    changed = not all(same(v, live_vectorizers.get(v["name"])) for v in wanted)
    for profile in live_profiles:
        binding = wanted_profiles.get(profile.get("name"))
        if binding and profile.get("vectorizer") != binding:
            profile["vectorizer"] = binding
            changed = True
    if not changed:
        return None
    names = {v["name"] for v in wanted}
    live_search["vectorizers"] = [v for n, v in live_vectorizers.items() if n not in names] + list(wanted)
    live_search["profiles"] = live_profiles
    return live_search


def _upload_action(key: str, fields: dict[str, Any], vector: np.ndarray) -> str:
    """An ``upload`` action as JSON text. The vector is written with 9 significant digits,
    which round-trip every float32 exactly, so the service stores the same values while the
    request stays about 40% smaller than with float64 reprs (and ``%.9g`` formats about three
    times faster than numpy's shortest-repr ``astype(str)``)."""
    head = json.dumps({"@search.action": "upload", KEY_FIELD: key, **fields})
    values = np.asarray(vector, dtype=np.float32).tolist()
    numbers = ",".join(["%.9g" % x for x in values])  # noqa: UP031 - %-formatting is the fast path
    return f'{head[:-1]}, "{VECTOR_FIELD}": [{numbers}]}}'
