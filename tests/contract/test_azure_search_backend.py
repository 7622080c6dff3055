"""AzureSearchBackend, driven through the real azure-search-documents SDK over HTTP against
the search double: the pin, batching within the service limits, per-document retries,
filter escaping, and scores that equal numpy's cosine."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from azure.core.credentials import AzureKeyCredential
from azure.search.documents import SearchClient
from azure.search.documents.indexes import SearchIndexClient
from azure.search.documents.indexes.models import SearchIndex

from indexer.backends.azure_search import AzureSearchBackend, score_to_cosine
from indexer.backends.base import IndexBackend
from indexer.documents import Document, Embedding
from indexer.errors import (
    ConfigurationError,
    IndexNotFoundError,
    InvalidDocumentError,
    InvalidQueryError,
    ModelVersionMismatchError,
    VectorCompressionMismatchError,
)
from indexer.filters import Condition, FilterError, parse_conditions
from indexer.model_versions import OFFLINE_ENGLISH, OFFLINE_MULTILINGUAL
from indexer.schema import load_schema
from standins.search.service import FaultConfig, SearchDoubleConfig, create_app, serve_in_thread
from tests.fixtures.search_double import tiny_schema
from tests.indexing_recorder import read_request_body

TINY = "test-tiny"


def tiny_documents(n: int, *, dimensions: int = 8, seed: int = 0, prefix: str = "doc", **fields) -> list[Document]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dimensions)).astype(np.float32)
    return [
        Document(
            f"{prefix}{i:05d}",
            Embedding(vectors[i], TINY),
            {"source": f"{prefix}-{i}", "content_hash": f"sha256:{i}", **fields},
        )
        for i in range(n)
    ]


def index_requests(search_double, name):
    return search_double.requests_for(name, "index")


# --- the index and its pin -------------------------------------------------------------------


def test_ensure_index_creates_the_pinned_index_from_schemas(azure_backend_factory, search_double, search_index_name):
    backend = azure_backend_factory()
    schema = load_schema("2023-04-15")
    assert backend.ensure_index(schema) == schema.pin
    assert isinstance(backend, IndexBackend)  # (its ``schema`` exists once the index does)

    index = SearchIndexClient(search_double.endpoint, search_double.credential).get_index(search_index_name)
    vector = next(f for f in index.fields if f.name == "image_vector")
    assert vector.vector_search_dimensions == 1024
    profile = next(p for p in index.vector_search.profiles if p.name == vector.vector_search_profile_name)
    algorithm = next(a for a in index.vector_search.algorithms if a.name == profile.algorithm_configuration_name)
    assert algorithm.kind == "hnsw" and algorithm.parameters.metric == "cosine"
    assert index.description == "imgsearch pin: model_version=2023-04-15; dimensions=1024"
    key = next(f for f in index.fields if f.key)
    assert key.name == "id" and key.filterable and key.sortable
    filterable = {f.name for f in index.fields if f.filterable}
    assert {"source", "container", "tags", "last_modified", "content_hash"} <= filterable
    assert {f.name for f in index.fields if f.searchable} == {"file_name", "tags", "image_vector"}


def test_ensure_index_again_changes_nothing(azure_backend_factory, search_double, search_index_name):
    backend = azure_backend_factory()
    schema = tiny_schema()
    backend.ensure_index(schema)
    backend.upsert(tiny_documents(3))
    etag = search_double.service.indexes[search_index_name].definition.etag

    other = azure_backend_factory()  # a second process starting up
    assert other.ensure_index(schema) == schema.pin
    assert search_double.service.indexes[search_index_name].definition.etag == etag
    writes = [
        r
        for r in search_double.requests_for(search_index_name)
        if r.operation in ("create_index", "create_or_update_index")
    ]
    assert len(writes) == 1
    assert other.count() == 3


def test_ensure_index_puts_the_vectorizer_on_an_index_made_without_one(
    azure_backend_factory, search_double, search_index_name
):
    from indexer.schema import VectorizerEndpoint

    schema = load_schema(OFFLINE_MULTILINGUAL)
    backend = azure_backend_factory()
    backend.ensure_index(schema)  # SEARCH_VECTORIZER_URI unset: an index without a vectorizer
    vectors = np.random.default_rng(0).normal(size=(2, schema.pin.dimensions)).astype(np.float32)
    backend.upsert(
        [Document(f"d{i}", Embedding(v, OFFLINE_MULTILINGUAL), {"source": f"d{i}"}) for i, v in enumerate(vectors)]
    )
    assert search_double.service.indexes[search_index_name].definition.vectorizers == {}

    def writes() -> int:
        operations = ("create_index", "create_or_update_index")
        return sum(1 for r in search_double.requests_for(search_index_name) if r.operation in operations)

    endpoint = VectorizerEndpoint("http://127.0.0.1:7071/api/vectorize")
    assert azure_backend_factory().ensure_index(schema.with_vectorizer(endpoint)) == schema.pin
    definition = search_double.service.indexes[search_index_name].definition
    [vectorizer] = definition.vectorizers.values()
    assert vectorizer.uri == endpoint.uri and definition.vector_fields["image_vector"].vectorizer == vectorizer.name
    assert writes() == 2 and azure_backend_factory().count() == 2  # the documents stay
    # The same vectorizer again changes nothing; another URI (a new Function host) is put in.
    azure_backend_factory().ensure_index(schema.with_vectorizer(endpoint))
    assert writes() == 2
    moved = VectorizerEndpoint("https://func-y.azurewebsites.net/api/vectorize", key="k")
    azure_backend_factory().ensure_index(schema.with_vectorizer(moved))
    [vectorizer] = search_double.service.indexes[search_index_name].definition.vectorizers.values()
    assert (vectorizer.uri, vectorizer.http_headers) == (moved.uri, {"x-functions-key": "k"}) and writes() == 3
    # Settings without a URI leave the index's vectorizer alone.
    azure_backend_factory().ensure_index(schema)
    assert search_double.service.indexes[search_index_name].definition.vectorizers and writes() == 3


def test_a_conflicting_pin_raises_and_changes_nothing(azure_backend_factory, search_double, search_index_name):
    azure_backend_factory().ensure_index(load_schema(OFFLINE_ENGLISH))
    backend = azure_backend_factory()
    definition_before = copy.deepcopy(search_double.service.indexes[search_index_name].definition.document)

    with pytest.raises(ModelVersionMismatchError, match="SEARCH_INDEX_NAME.*backfill"):  # (IndexPin.check_pin)
        backend.ensure_index(load_schema(OFFLINE_MULTILINGUAL))
    assert search_double.service.indexes[search_index_name].definition.document == definition_before
    assert backend.get_pin().model_version == OFFLINE_ENGLISH


@pytest.mark.parametrize(("compression", "kind"), [("scalar", "scalarQuantization"), ("binary", "binaryQuantization")])
def test_a_compressed_index_is_created_as_asked_and_another_compression_changes_nothing(
    azure_backend_factory, search_double, search_index_name, compression, kind
):
    schema = load_schema("2023-04-15").with_compression(compression)
    azure_backend_factory().ensure_index(schema)

    index = SearchIndexClient(search_double.endpoint, search_double.credential).get_index(search_index_name)
    vector = next(f for f in index.fields if f.name == "image_vector")
    profile = next(p for p in index.vector_search.profiles if p.name == vector.vector_search_profile_name)
    (entry,) = index.vector_search.compressions
    assert entry.kind == kind and profile.compression_name == entry.compression_name
    assert (
        entry.rescoring_options.enable_rescoring
        and entry.rescoring_options.rescore_storage_method == "preserveOriginals"
    )
    assert vector.stored is False
    backend = azure_backend_factory()
    assert backend.ensure_index(schema) == schema.pin and backend.schema.compression == compression

    definition_before = copy.deepcopy(search_double.service.indexes[search_index_name].definition.document)
    for other in ("none", "binary" if compression == "scalar" else "scalar"):
        with pytest.raises(VectorCompressionMismatchError, match=f"stores its vectors with {compression}"):
            azure_backend_factory().ensure_index(load_schema("2023-04-15").with_compression(other))
    assert search_double.service.indexes[search_index_name].definition.document == definition_before


def test_ensure_index_adds_new_schema_fields_but_refuses_retyping(
    azure_backend_factory, search_double, search_index_name
):
    older = tiny_schema()
    older.definition["fields"] = [f for f in older.definition["fields"] if f["name"] != "indexed_at"]
    backend = azure_backend_factory()
    backend.ensure_index(older)
    backend.upsert(tiny_documents(2))

    assert azure_backend_factory().ensure_index(tiny_schema()) == older.pin
    fields = [f["name"] for f in search_double.service.indexes[search_index_name].definition.document["fields"]]
    assert fields[-1] == "indexed_at" and backend.count() == 2

    retyped = tiny_schema()
    next(f for f in retyped.definition["fields"] if f["name"] == "width")["type"] = "Edm.Int64"
    with pytest.raises(ConfigurationError, match="width"):
        azure_backend_factory().ensure_index(retyped)


def test_an_index_without_a_pin_is_not_ours(azure_backend_factory, search_double, search_index_name):
    definition = tiny_schema().named(search_index_name)
    definition["description"] = "made by hand"
    SearchIndexClient(search_double.endpoint, search_double.credential).create_index(SearchIndex(definition))
    backend = azure_backend_factory()
    with pytest.raises(ModelVersionMismatchError, match="no 'imgsearch pin'"):
        backend.get_pin()
    with pytest.raises(ModelVersionMismatchError):
        backend.ensure_index(tiny_schema())


class OtherCreatorWinsTheRace:
    """ASGI middleware: just before the first "create index" request reaches the double, another
    creator (replaying the same request, or ``winner`` if given) creates the index, so the request
    itself meets an index that already exists, which the double answers as live Azure does."""

    def __init__(self, app, winner: dict | None = None) -> None:
        self.app = app
        self.winner = winner
        self.raced = False

    async def __call__(self, scope, receive, send) -> None:
        if self.raced or scope.get("type") != "http" or scope["method"] != "POST" or scope["path"] != "/indexes":
            await self.app(scope, receive, send)
            return
        self.raced = True
        body = await read_request_body(receive)
        first = json.dumps(self.winner).encode() if self.winner is not None else body
        statuses = []

        def replay(data: bytes):
            async def receive_body():
                return {"type": "http.request", "body": data, "more_body": False}

            return receive_body

        async def swallow(message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await self.app(scope, replay(first), swallow)  # the other creator: 201
        assert statuses == [201]
        await self.app(scope, replay(body), send)  # ours: the index exists by now


@pytest.mark.parametrize("same_pin", [True, False])
def test_ensure_index_survives_the_create_race_against_the_live_400(same_pin):
    schema = tiny_schema()
    winner = None if same_pin else tiny_schema(dimensions=16, model_version="another-model").named("raced")
    app = create_app(SearchDoubleConfig())
    racer = OtherCreatorWinsTheRace(app, winner)
    with serve_in_thread(app=racer) as endpoint:
        backend = AzureSearchBackend(endpoint, "raced", AzureKeyCredential("unused"), retry_backoff_seconds=0.001)
        try:
            if same_pin:
                assert backend.ensure_index(schema) == schema.pin  # "it exists; verify the pin"
            else:
                with pytest.raises(ModelVersionMismatchError, match="another-model"):
                    backend.ensure_index(schema)
        finally:
            backend.close()
    creates = [r.status for r in app.state.service.requests_for("raced", "create_index")]
    assert racer.raced and creates == [201, 400]  # the double answered our create as live Azure does


def test_create_errors_other_than_exists_are_not_taken_for_the_race():
    from azure.core.exceptions import HttpResponseError

    from indexer.backends.azure_search.errors import index_already_exists

    class Answer:
        def __init__(self, status: int, body: dict) -> None:
            self.status_code = status
            self.reason = "x"
            self.headers = {"Content-Type": "application/json"}
            self._body = json.dumps(body).encode()
            self.request = None

        def text(self, encoding=None):
            return self._body.decode()

        def body(self):
            return self._body

    def error(status: int, code: str, details: tuple[str, ...] = ()) -> HttpResponseError:
        body = {"error": {"code": code, "message": "m", "details": [{"code": d, "message": "m"} for d in details]}}
        return HttpResponseError(response=Answer(status, body))

    assert index_already_exists(error(400, "ResourceNameAlreadyInUse"))
    assert index_already_exists(error(400, "", ("CannotCreateExistingIndex",)))
    assert index_already_exists(error(409, "Conflict"))
    assert not index_already_exists(error(400, "InvalidRequestParameter", ("InvalidField",)))
    assert not index_already_exists(error(403, "ResourceNameAlreadyInUse"))


def test_one_wrapper_turns_sdk_errors_into_ours_and_the_caller_says_what_a_404_means(search_double):
    from azure.core.exceptions import ResourceNotFoundError, ServiceRequestError

    from indexer.backends.azure_search.errors import call_service
    from indexer.backends.azure_search.pull import AzureSearchPull
    from indexer.errors import ConfigurationError, SearchServiceError

    def raising(exc: Exception):
        def operation():
            raise exc

        return operation

    gone = raising(ResourceNotFoundError("404"))
    with pytest.raises(IndexNotFoundError, match="^cannot read x$"):
        call_service(gone, "read x", "https://s", not_found=lambda what: IndexNotFoundError(f"cannot {what}"))
    with pytest.raises(ResourceNotFoundError):  # a 404 that is an answer ("absent") passes
        call_service(gone, "read x", "https://s", not_found=None)
    with pytest.raises(SearchServiceError, match="https://s does not answer") as unreachable:
        call_service(raising(ServiceRequestError("refused")), "read x", "https://s", not_found=None)
    assert unreachable.value.code == "ServiceUnreachable"
    # Pull mode: a 404 is a resource not created yet, and the command that creates it is named.
    with pytest.raises(ConfigurationError, match="ensure-indexer"):
        AzureSearchPull(search_double.endpoint, search_double.credential).status("never-created")


def test_a_missing_index_is_reported(azure_backend_factory):
    backend = azure_backend_factory()
    with pytest.raises(IndexNotFoundError, match="imgsearch index"):
        backend.get_pin()
    with pytest.raises(IndexNotFoundError):
        backend.upsert(tiny_documents(1))


def test_an_index_deleted_under_a_running_backend_is_reported(azure_backend_factory, search_double, search_index_name):
    backend = azure_backend_factory()
    backend.ensure_index(tiny_schema())
    SearchIndexClient(search_double.endpoint, search_double.credential).delete_index(search_index_name)
    with pytest.raises(IndexNotFoundError, match="no longer exists"):
        backend.upsert(tiny_documents(1))
    with pytest.raises(IndexNotFoundError):
        backend.get_pin()  # the cached pin was dropped with the index


def test_the_pin_is_checked_before_anything_is_sent(azure_backend_factory, search_double, search_index_name):
    backend = azure_backend_factory()
    backend.ensure_index(tiny_schema())
    before = list(search_double.requests_for(search_index_name))
    good = tiny_documents(2)
    wrong_model = Document("x", Embedding(np.ones(8, dtype=np.float32), "another-model"), {})
    wrong_dims = Document("y", Embedding(np.ones(4, dtype=np.float32), TINY), {})
    for bad in (wrong_model, wrong_dims):
        with pytest.raises(ModelVersionMismatchError):
            backend.upsert(good + [bad])
        with pytest.raises(ModelVersionMismatchError):
            backend.search(bad.embedding)
    with pytest.raises(ModelVersionMismatchError):
        backend.upsert([Document("z", good[0].embedding, {"model_version": "another-model"})])
    with pytest.raises(InvalidDocumentError, match="colour"):
        backend.upsert(good + [Document("w", good[0].embedding, {"colour": "red"})])
    assert search_double.requests_for(search_index_name) == before
    assert backend.count() == 0


# --- writes ----------------------------------------------------------------------------------


def test_2500_small_documents_go_in_three_requests(azure_backend_factory, search_double, search_index_name):
    backend = azure_backend_factory()
    backend.ensure_index(tiny_schema())
    documents = tiny_documents(2500)
    result = backend.upsert(documents)
    assert result.ok and sorted(result.succeeded) == sorted(d.key for d in documents)
    assert [r.actions for r in index_requests(search_double, search_index_name)] == [1000, 1000, 500]
    assert backend.count() == 2500


def test_documents_big_enough_are_split_by_the_16_mb_limit(azure_backend_factory, search_double, search_index_name):
    backend = azure_backend_factory()
    backend.ensure_index(tiny_schema())
    # ~217 kB per document (seven 31 kB tags, each under the service's 32,766-byte term limit):
    # 120 of them are ~26 MB, so one batch of 120 actions must become two requests.
    tags = [chr(ord("a") + i) * 31_000 for i in range(7)]
    documents = tiny_documents(120, tags=tags)
    result = backend.upsert(documents)
    assert result.ok and len(result.succeeded) == 120
    requests = index_requests(search_double, search_index_name)
    assert len(requests) == 2 and sum(r.actions for r in requests) == 120
    assert all(r.status == 200 and r.body_bytes <= 16 * 1024 * 1024 for r in requests)
    assert max(r.body_bytes for r in requests) > 12 * 1024 * 1024  # batches are filled, not tiny
    assert backend.get("doc00119")["tags"] == tags


def test_retriable_failures_are_retried_and_invalid_documents_reported(
    azure_backend_factory, search_double, search_index_name
):
    backend = azure_backend_factory(max_retries=4)
    backend.ensure_index(tiny_schema())
    search_double.set_faults(
        search_index_name,
        FaultConfig(
            document_fault_rate=0.4, document_fault_statuses=(503, 429, 409, 422), max_faults_per_document=3, seed=5
        ),
    )
    documents = tiny_documents(300)
    invalid_key = Document("bad key/with slash", documents[0].embedding, {"source": "bad"})
    too_large = Document("huge", documents[1].embedding, {"source": "huge", "file_name": "x" * 40_000})
    result = backend.upsert(documents[:150] + [invalid_key, too_large] + documents[150:])

    assert sorted(result.succeeded) == sorted(d.key for d in documents)
    assert len(result.succeeded) == len(set(result.succeeded)) == 300  # each reported once
    assert set(result.failed) == {"bad key/with slash", "huge"}
    assert "letters, digits" in result.failed["bad key/with slash"]
    assert result.failed["huge"].startswith("(400)") and "too large" in result.failed["huge"]
    assert not result.retriable  # refused outright: retrying cannot help

    requests = index_requests(search_double, search_index_name)
    assert len(requests) > 1 and any(r.status == 207 for r in requests)
    assert requests[-1].actions < requests[0].actions  # retries carry only what remained
    stored = search_double.service.indexes[search_index_name].documents
    assert set(stored) == {d.key for d in documents}  # nothing lost, nothing extra, nothing twice
    assert stored["doc00042"]["source"] == "doc-42"


def test_whole_request_failures_are_retried_then_reported(azure_backend_factory, search_double, search_index_name):
    backend = azure_backend_factory(max_retries=3)
    backend.ensure_index(tiny_schema())
    search_double.set_faults(
        search_index_name,
        FaultConfig(
            request_fault_rate=1.0, max_request_faults=2, request_fault_status=503, operations=frozenset({"index"})
        ),
    )
    assert backend.upsert(tiny_documents(10)).ok
    assert [r.status for r in index_requests(search_double, search_index_name)] == [503, 503, 200]

    search_double.set_faults(
        search_index_name,
        FaultConfig(request_fault_rate=1.0, request_fault_status=429, operations=frozenset({"index"})),
    )
    result = backend.upsert(tiny_documents(3, prefix="late"))
    assert not result.succeeded and set(result.failed) == {"late00000", "late00001", "late00002"}
    assert result.retriable == set(result.failed)  # busy, not refused: worth trying again later
    assert [r.status for r in index_requests(search_double, search_index_name)][3:] == [429] * 4


def test_a_batch_the_service_refuses_whole_is_split_until_it_goes_through():
    config = SearchDoubleConfig(max_batch_actions=64)  # a service with a smaller limit than ours
    app = create_app(config)
    with serve_in_thread(app=app) as endpoint:
        backend = AzureSearchBackend(
            endpoint, "smaller-limit", AzureKeyCredential("unused"), retry_backoff_seconds=0.001
        )
        backend.ensure_index(tiny_schema())
        result = backend.upsert(tiny_documents(200))
        assert result.ok and len(result.succeeded) == 200
        statuses = [r.status for r in app.state.service.requests_for("smaller-limit", "index")]
        assert statuses[0] == 400 and statuses.count(200) >= 4
        assert backend.count() == 200
        backend.close()


def test_a_search_service_that_has_gone_is_named_with_its_setting():
    with serve_in_thread(app=create_app(SearchDoubleConfig())) as endpoint:
        backend = AzureSearchBackend(
            endpoint, "gone", AzureKeyCredential("unused"), max_retries=1, retry_backoff_seconds=0.001, retry_total=0
        )
        backend.ensure_index(tiny_schema())
    result = backend.upsert(tiny_documents(2))  # the service stopped: connections are refused
    backend.close()
    assert result.retriable == set(result.failed) == {"doc00000", "doc00001"}
    reason = result.failed["doc00000"]
    assert f"the search service at {endpoint} does not answer" in reason and "SEARCH_ENDPOINT" in reason
    assert "serve-search-double" in reason and "HTTPConnection(" not in reason


def test_upsert_replaces_whole_documents(azure_search_backend, search_double):
    backend = azure_search_backend
    vector = np.linspace(-1, 1, 512, dtype=np.float32)
    embedding = Embedding(vector, OFFLINE_MULTILINGUAL)
    backend.upsert([Document("a", embedding, {"source": "s", "file_name": "a.jpg", "width": 10})])
    backend.upsert([Document("a", embedding, {"source": "s2", "width": 20})])
    assert backend.get("a")["file_name"] is None  # replaced, not merged
    stored = backend.get("a")
    assert stored["width"] == 20 and stored["height"] is None and stored["source"] == "s2"
    assert "id" not in stored and "image_vector" not in stored
    assert backend.search(embedding, k=1)[0].score == pytest.approx(1.0, abs=1e-6)
    assert backend.get("nobody") is None and backend.get("not a key!") is None

    deleted = backend.delete(["a", "a", "nobody", "_bad"])
    assert sorted(deleted.succeeded) == ["a", "nobody"] and set(deleted.failed) == {"_bad"}
    assert backend.count() == 0 and backend.get("a") is None


# --- queries ---------------------------------------------------------------------------------


def test_scores_are_numpy_cosines_and_the_threshold_applies_to_them(azure_search_backend, local_index_factory):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(60, 512)).astype(np.float32)
    documents = [
        Document(f"d{i:03d}", Embedding(vectors[i], OFFLINE_MULTILINGUAL), {"source": f"s{i}"}) for i in range(60)
    ]
    azure_search_backend.upsert(documents)
    local = local_index_factory()
    local.upsert(documents)

    query_vector = vectors[5] + 0.8 * rng.normal(size=512).astype(np.float32)
    query = Embedding(query_vector, OFFLINE_MULTILINGUAL)
    hits = azure_search_backend.search(query, k=60)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosines = unit @ (query_vector / np.linalg.norm(query_vector))
    assert [h.key for h in hits] == [f"d{i:03d}" for i in np.argsort(-cosines)]
    for hit in hits:
        assert hit.score == pytest.approx(float(cosines[int(hit.key[1:])]), abs=1e-5)
        assert hit.source == f"s{int(hit.key[1:])}"

    ranked = np.sort(cosines)[::-1]
    threshold = float(ranked[6] + ranked[7]) / 2  # between the 7th and the 8th best cosine
    above = azure_search_backend.search(query, k=20, threshold=threshold)
    assert len(above) == 7 and all(h.score >= threshold for h in above)
    local_hits = local.search(query, k=20, threshold=threshold)
    assert [h.key for h in above] == [h.key for h in local_hits]
    assert [h.score for h in above] == pytest.approx([h.score for h in local_hits], abs=1e-5)
    assert above[0].fields == local_hits[0].fields


def test_score_to_cosine_inverts_the_service_relation():
    for cosine in (-1.0, -0.3, 0.0, 0.5, 0.99, 1.0):
        assert score_to_cosine(1 / (1 + (1 - cosine))) == pytest.approx(cosine, abs=1e-12)
    assert score_to_cosine(1.0000001) == 1.0  # float noise above 1 is clipped


def test_query_options_are_checked_like_the_local_index(azure_search_backend):
    query = Embedding(np.ones(512, dtype=np.float32), OFFLINE_MULTILINGUAL)
    for options in ({"k": 0}, {"k": 1001}, {"threshold": 1.5}, {"select": ["nope"]}, {"select": ["image_vector"]}):
        with pytest.raises(InvalidQueryError):
            azure_search_backend.search(query, **options)
    with pytest.raises(InvalidQueryError):
        azure_search_backend.search(Embedding(np.zeros(512, dtype=np.float32), OFFLINE_MULTILINGUAL))


def filter_fixture(backend: AzureSearchBackend) -> dict[str, Document]:
    base = np.ones(8, dtype=np.float32)
    rows = {
        "evil": {
            "source": "x' or true or id eq 'y",
            "tags": ["cat"],
            "width": 50,
            "last_modified": "2024-04-30T23:00:00Z",
        },
        "x": {"source": "x", "tags": ["cat", "dog"], "width": 100, "last_modified": "2024-05-01T00:00:00Z"},
        "y": {"source": "y", "tags": ["dog"], "width": 150, "last_modified": "2024-06-01T12:00:00+02:00"},
        "quote": {"source": "O'Brien's", "tags": [], "width": 200, "last_modified": "2025-01-01T00:00:00Z"},
    }
    documents = {key: Document(key, Embedding(base + i, TINY), fields) for i, (key, fields) in enumerate(rows.items())}
    backend.upsert(list(documents.values()))
    return documents


@pytest.mark.parametrize(
    "expressions, expected",
    [
        (["source=x' or true or id eq 'y"], {"evil"}),
        (["source=O'Brien's"], {"quote"}),
        (["source=x"], {"x"}),
        (["width>=100", "width<200"], {"x", "y"}),
        (["last_modified>=2024-05-01"], {"x", "y", "quote"}),
        (["last_modified<2024-06-01T11:00:00+01:00"], {"evil", "x"}),
        (["tags=cat"], {"evil", "x"}),
        (["tags!=cat"], {"y", "quote"}),
    ],
)
def test_filters_are_escaped_and_typed(azure_backend_factory, expressions, expected):
    backend = azure_backend_factory()
    backend.ensure_index(tiny_schema())
    documents = filter_fixture(backend)
    conditions = parse_conditions(expressions)
    hits = backend.search(documents["x"].embedding, k=10, filters=conditions)
    assert {h.key for h in hits} == expected
    assert set(backend.keys_with_hashes(conditions)) == expected


def test_field_names_are_checked_before_anything_is_sent(azure_backend_factory, search_double, search_index_name):
    backend = azure_backend_factory()
    backend.ensure_index(tiny_schema())
    query = Embedding(np.ones(8, dtype=np.float32), TINY)
    with pytest.raises(FilterError):
        Condition("source eq 'a' or true", "eq", "x")
    smuggled = object.__new__(Condition)  # bypass Condition's own check: the renderer checks again
    for name, value in (("field", "source) or (true"), ("op", "eq"), ("value", "x")):
        object.__setattr__(smuggled, name, value)
    before = list(search_double.requests_for(search_index_name))
    for conditions in (
        [smuggled],
        parse_conditions(["colour=red"]),
        parse_conditions(["image_vector=1"]),
        parse_conditions(["width>=wide"]),
        parse_conditions(["tags>cat"]),
    ):
        with pytest.raises(FilterError):
            backend.search(query, filters=conditions)
        with pytest.raises(FilterError):
            backend.keys_with_hashes(conditions)
    assert search_double.requests_for(search_index_name) == before


def test_keys_with_hashes_pages_by_key_past_one_page(azure_backend_factory, search_double, search_index_name):
    backend = azure_backend_factory()
    backend.ensure_index(tiny_schema())
    documents = tiny_documents(2345)
    backend.upsert(documents)
    before = len(search_double.requests_for(search_index_name, "search"))
    found = backend.keys_with_hashes()
    assert found == {d.key: d.fields["content_hash"] for d in documents}
    assert len(search_double.requests_for(search_index_name, "search")) - before == 3


def test_keys_with_hashes_on_an_index_whose_key_is_not_sortable(
    azure_backend_factory, search_double, search_index_name
):
    definition = tiny_schema().named(search_index_name)
    next(f for f in definition["fields"] if f["name"] == "id")["sortable"] = False  # the older schema
    SearchIndexClient(search_double.endpoint, search_double.credential).create_index(SearchIndex(definition))
    backend = azure_backend_factory()
    documents = tiny_documents(1500)
    backend.upsert(documents)
    assert set(backend.keys_with_hashes()) == {d.key for d in documents}


def test_counts_reads_and_writes_use_the_sdk_over_http(azure_search_backend, search_double, search_index_name):
    embedding = Embedding(np.ones(512, dtype=np.float32), OFFLINE_MULTILINGUAL)
    azure_search_backend.upsert([Document("k", embedding, {"source": "s", "width": 1})])
    client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
    assert client.get_document_count() == azure_search_backend.count() == 1
    operations = {r.operation for r in search_double.requests_for(search_index_name)}
    assert {"create_index", "index", "count"} <= operations
    assert all(r.api_version == "2026-04-01" for r in search_double.requests_for(search_index_name))


def test_constructor_refuses_bad_settings(search_double):
    credential = search_double.credential
    for kwargs in (
        {"index_name": "Bad Name"},
        {"endpoint": "search.windows.net"},
        {"max_batch_actions": 1001},
        {"max_batch_bytes": 17 * 1024 * 1024},
    ):
        arguments = {"endpoint": search_double.endpoint, "index_name": "fine", **kwargs}
        with pytest.raises(ValueError):
            AzureSearchBackend(
                arguments["endpoint"],
                arguments["index_name"],
                credential,
                **{k: v for k, v in kwargs.items() if k not in ("endpoint", "index_name")},
            )
