"""The search double's vectorizers, data sources, skillsets and indexers, through the real
``azure-search-documents`` clients (and raw REST where a shape is the point), against a fake
Web API endpoint whose answers each test chooses. Every rule here is a row of
``standins/FIDELITY.md`` with its source."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.search.documents import SearchClient
from azure.search.documents.indexes import SearchIndexerClient
from azure.search.documents.indexes.models import (
    SearchIndexer,
    SearchIndexerDataSourceConnection,
    SearchIndexerSkillset,
)
from azure.search.documents.models import VectorizableTextQuery
from azure.storage.blob import RetentionPolicy

from standins.search.web_api import STAND_IN_BEARER_TOKEN

API = "2026-04-01"
DIMS = 4


@dataclass
class FakeWebApi:
    """A Web API endpoint: records each request, answers with ``answer(payload) -> (status, body)``."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    answer: Callable[[dict[str, Any]], tuple[int, Any]] = lambda payload: (200, {"values": []})


@pytest.fixture
def web_api() -> Iterator[FakeWebApi]:
    fake = FakeWebApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            payload = json.loads(body)
            fake.requests.append({"headers": dict(self.headers), "payload": payload, "method": "POST"})
            status, answer = fake.answer(payload)
            data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(answer, bytes) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api/vectorize"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def vectors_for(values: list[dict[str, Any]], vector: list[float]) -> dict[str, Any]:
    return {
        "values": [
            {"recordId": v["recordId"], "data": {"vector": vector}, "errors": None, "warnings": None} for v in values
        ]
    }


def index_definition(name: str, vectorizer: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {"name": "p", "algorithm": "a"}
    vector_search: dict[str, Any] = {"algorithms": [{"name": "a", "kind": "hnsw"}], "profiles": [profile]}
    if vectorizer is not None:
        vector_search["vectorizers"] = [vectorizer]
        profile["vectorizer"] = vectorizer["name"]
    return {
        "name": name,
        "fields": [
            {"name": "id", "type": "Edm.String", "key": True},
            {"name": "v", "type": "Collection(Edm.Single)", "dimensions": DIMS, "vectorSearchProfile": "p"},
            {"name": "source", "type": "Edm.String"},
            {"name": "tags", "type": "Collection(Edm.String)"},
            {"name": "size", "type": "Edm.Int64"},
        ],
        "vectorSearch": vector_search,
        **extra,
    }


def web_api_vectorizer(uri: str, **parameters: Any) -> dict[str, Any]:
    return {"name": "vz", "kind": "customWebApi", "customWebApiParameters": {"uri": uri, **parameters}}


def put_index(search_double, definition: dict[str, Any]) -> requests.Response:
    return requests.put(
        f"{search_double.endpoint}/indexes('{definition['name']}')",
        params={"api-version": API},
        json=definition,
        headers={"api-key": search_double.api_key},
        timeout=30,
    )


def error_of(response: requests.Response) -> dict[str, Any]:
    return response.json()["error"]


# --------------------------------------------------------------------------- vectorizers


def test_vectorizer_definitions_are_checked_as_documented(search_double, search_index_name, web_api):
    def refused(vectorizer: dict[str, Any]) -> dict[str, Any]:
        answer = put_index(search_double, index_definition(search_index_name, vectorizer))
        assert answer.status_code == 400, answer.text
        return error_of(answer)

    assert "only the https URI scheme is allowed" in refused(web_api_vectorizer("http://example.com/v"))["message"]
    assert "prohibited" in refused(web_api_vectorizer(web_api.url, httpHeaders={"Content-Type": "x"}))["message"]
    assert "from 1 to 230" in refused(web_api_vectorizer(web_api.url, timeout="PT231S"))["message"]
    assert "dayTimeDuration" in refused(web_api_vectorizer(web_api.url, timeout="30s"))["message"]
    assert "PUT and POST" in refused(web_api_vectorizer(web_api.url, httpMethod="GET"))["message"]
    dangling = index_definition(search_index_name)
    dangling["vectorSearch"]["profiles"][0]["vectorizer"] = "nowhere"
    answer = put_index(search_double, dangling)
    assert answer.status_code == 400 and "'nowhere', which is not defined" in error_of(answer)["message"]

    accepted = put_index(search_double, index_definition(search_index_name, web_api_vectorizer(web_api.url)))
    assert accepted.status_code == 201, accepted.text
    written = accepted.json()["vectorSearch"]
    assert written["profiles"][0]["vectorizer"] == "vz"
    assert written["vectorizers"][0]["customWebApiParameters"]["timeout"] == "PT30S"  # the documented default


def test_a_text_query_calls_the_vectorizer_with_the_documented_payload(search_double, search_index_name, web_api):
    vectorizer = web_api_vectorizer(
        web_api.url, httpHeaders={"x-functions-key": "k"}, authResourceId="api://00000000-app", timeout="PT10S"
    )
    assert put_index(search_double, index_definition(search_index_name, vectorizer)).status_code == 201
    client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
    client.upload_documents([{"id": "east", "v": [1.0, 0.0, 0.0, 0.0]}, {"id": "north", "v": [0.0, 1.0, 0.0, 0.0]}])
    web_api.answer = lambda payload: (200, vectors_for(payload["values"], [0.1, 0.9, 0.0, 0.0]))

    query = VectorizableTextQuery(text="up", k_nearest_neighbors=2, fields="v")
    hits = list(client.search(search_text=None, vector_queries=[query], top=2))

    assert [h["id"] for h in hits] == ["north", "east"]
    sent = web_api.requests[-1]
    assert sent["payload"] == {"values": [{"recordId": "0", "data": {"text": "up"}}]}
    assert sent["headers"]["x-functions-key"] == "k"
    assert sent["headers"]["Authorization"] == f"Bearer {STAND_IN_BEARER_TOKEN}"  # for authResourceId
    image = requests.post(  # an image query: imgsearch vectorizes images itself
        f"{search_double.endpoint}/indexes('{search_index_name}')/docs/search.post.search",
        params={"api-version": API},
        json={"vectorQueries": [{"kind": "imageUrl", "fields": "v", "k": 1, "url": "https://example.com/a.jpg"}]},
        headers={"api-key": search_double.api_key},
        timeout=30,
    )
    assert image.status_code == 400 and error_of(image)["code"] == "NotSupportedByStandIn"


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (
            "401",
            "Could not complete vectorization action. The vectorization endpoint returned status code "
            "'401' (Unauthorized).",
        ),
        ("down", "Could not complete vectorization action. Could not reach the vectorization endpoint."),
        ("no-vector", "Could not vectorize the query because the vectorization endpoint response is invalid."),
        ("wrong-length", "Could not vectorize the query because the vectorization endpoint response is invalid."),
        ("not-json", "Could not vectorize the query because the vectorization endpoint response is invalid."),
    ],
)
def test_vectorizer_failures_are_answered_as_live(search_double, search_index_name, web_api, behaviour, message):
    uri = "http://127.0.0.1:9/api/vectorize" if behaviour == "down" else web_api.url
    assert put_index(search_double, index_definition(search_index_name, web_api_vectorizer(uri))).status_code == 201
    web_api.answer = {
        "401": lambda p: (401, {"error": "no"}),
        "no-vector": lambda p: (
            200,
            {"values": [{"recordId": "0", "data": {}, "errors": [{"message": "x"}], "warnings": None}]},
        ),
        "wrong-length": lambda p: (200, vectors_for(p["values"], [1.0, 2.0])),
        "not-json": lambda p: (200, b"hello"),
    }.get(behaviour, web_api.answer)
    client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)

    with pytest.raises(HttpResponseError) as raised:
        list(client.search(search_text=None, vector_queries=[VectorizableTextQuery(text="up", fields="v")], top=1))

    assert raised.value.status_code == 400
    assert raised.value.error.code == "" and raised.value.error.message == message


# --------------------------------------------------------------------------- pull mode


@dataclass
class Pull:
    client: SearchIndexerClient
    index: str
    names: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) to delete afterwards

    def data_source(self, container: str, connection: str, **extra: Any) -> str:
        name = f"{self.index}-ds"
        body = {
            "name": name,
            "type": "azureblob",
            "credentials": {"connectionString": connection},
            "container": {"name": container},
            **extra,
        }
        self.client.create_or_update_data_source_connection(SearchIndexerDataSourceConnection(body))
        self.names.append(("datasource", name))
        return name

    def skillset(self, uri: str, **skill: Any) -> str:
        name = f"{self.index}-ss"
        body = {
            "name": name,
            "skills": [
                {
                    "@odata.type": "#Microsoft.Skills.Custom.WebApiSkill",
                    "name": "vec",
                    "uri": uri,
                    "batchSize": 2,
                    "inputs": [
                        {"name": "image", "source": "/document/normalized_images/0"},
                        {"name": "path", "source": "/document/metadata_storage_path"},
                    ],
                    "outputs": [{"name": "vector", "targetName": "v"}],
                    **skill,
                }
            ],
        }
        self.client.create_or_update_skillset(SearchIndexerSkillset(body))
        self.names.append(("skillset", name))
        return name

    def indexer(self, data_source: str, skillset: str | None, **extra: Any) -> str:
        name = f"{self.index}-ix"
        body = {
            "name": name,
            "dataSourceName": data_source,
            "skillsetName": skillset,
            "targetIndexName": self.index,
            "parameters": {"configuration": {"imageAction": "generateNormalizedImages"}, **extra.pop("parameters", {})},
            "fieldMappings": [
                {
                    "sourceFieldName": "metadata_storage_path",
                    "targetFieldName": "id",
                    "mappingFunction": {"name": "base64Encode"},
                },
                {"sourceFieldName": "metadata_storage_path", "targetFieldName": "source"},
                {"sourceFieldName": "metadata_storage_size", "targetFieldName": "size"},
            ],
            "outputFieldMappings": [{"sourceFieldName": "/document/v", "targetFieldName": "v"}],
            **extra,
        }
        self.client.create_or_update_indexer(SearchIndexer(body))
        self.names.append(("indexer", name))
        return name

    def status(self, name: str) -> dict[str, Any]:
        return self.client.get_indexer_status(name).as_dict()


@pytest.fixture
def pull(search_double, search_index_name, web_api) -> Iterator[Pull]:
    assert put_index(search_double, index_definition(search_index_name)).status_code == 201
    client = SearchIndexerClient(search_double.endpoint, search_double.credential)
    setup = Pull(client, search_index_name)
    yield setup
    search_double.service.wait_for_runs()
    with search_double.service.lock:  # imgsearch never deletes these: the test does, behind the API
        for kind, name in setup.names:
            {"datasource": search_double.service.data_sources, "skillset": search_double.service.skillsets}.get(
                kind, search_double.service.indexers
            ).pop(name, None)
    client.close()


def url_token(text: str) -> str:
    encoded = base64.urlsafe_b64encode(text.encode()).decode()
    return encoded.rstrip("=") + str(len(encoded) - len(encoded.rstrip("=")))


def test_definitions_are_checked_as_documented(pull, blob_container, azurite, web_api, search_double):
    def refused(call: Callable[[], Any]) -> HttpResponseError:
        with pytest.raises(HttpResponseError) as raised:
            call()
        assert raised.value.status_code == 400
        return raised.value

    conn = azurite.connection_string
    column = {
        "@odata.type": "#Microsoft.Azure.Search.HighWaterMarkChangeDetectionPolicy",
        "highWaterMarkColumnName": "x",
    }
    assert (
        "metadata_storage_last_modified"
        in refused(
            lambda: pull.data_source(blob_container.container_name, conn, dataChangeDetectionPolicy=column)
        ).message
    )
    resource_id = "ResourceId=/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z;"
    identity = refused(lambda: pull.data_source(blob_container.container_name, resource_id))
    assert identity.error.code == "NotSupportedByStandIn" and "managed identity" in identity.message
    ds = pull.data_source(blob_container.container_name, conn)
    raw = requests.put(  # the connection string never comes back
        f"{search_double.endpoint}/datasources('{ds}')",
        params={"api-version": API},
        json={"name": ds, "type": "azureblob", "credentials": {"connectionString": conn}, "container": {"name": "c"}},
        headers={"api-key": search_double.api_key, "Prefer": "return=representation"},
        timeout=30,
    )
    assert raw.status_code == 200 and raw.json()["credentials"]["connectionString"] is None

    assert "from 1 to 230" in refused(lambda: pull.skillset(web_api.url, timeout="PT300S")).message
    parallel = refused(lambda: pull.skillset(web_api.url, degreeOfParallelism=11)).message
    assert "degreeOfParallelism" in parallel and "from 1 to 10, not 11" in parallel
    assert (
        refused(lambda: pull.skillset(web_api.url, context="/document/pages/*")).error.code == "NotSupportedByStandIn"
    )
    ss = pull.skillset(web_api.url)
    assert "from 300 to 86400" in refused(lambda: pull.indexer(ds, ss, schedule={"interval": "PT1M"})).message
    bad_target = refused(
        lambda: pull.indexer(
            ds, ss, outputFieldMappings=[{"sourceFieldName": "/document/v", "targetFieldName": "nope"}]
        )
    )
    assert bad_target.error.code == ""
    assert bad_target.message.endswith(
        "Output field mapping specifies target field 'nope' that doesn't exist in the index"
    )
    for not_served in (
        {"parameters": {"configuration": {"parsingMode": "json"}}},
        {"parameters": {"configuration": {"allowSkillsetToReadFileData": True}}},  # pull mode reads images
        {
            "fieldMappings": [
                {
                    "sourceFieldName": "metadata_storage_path",
                    "targetFieldName": "id",
                    "mappingFunction": {"name": "urlEncode"},
                }
            ]
        },
    ):
        assert refused(lambda: pull.indexer(ds, ss, **not_served)).error.code == "NotSupportedByStandIn"  # noqa: B023


def test_a_run_indexes_changed_blobs_through_the_skill_with_the_documented_payload(
    pull, blob_container, azurite, web_api, search_double
):
    web_api.answer = lambda payload: (200, vectors_for(payload["values"], [1.0, 0.0, 0.0, 0.0]))
    photos = {name: _png(40 + n, 30) for n, name in enumerate(("a.jpg", "b c.jpg", "d.jpg"))}
    for name, data in photos.items():
        blob_container.upload_blob(name, data)
    ds = pull.data_source(blob_container.container_name, azurite.connection_string)
    ix = pull.indexer(ds, pull.skillset(web_api.url))  # a new indexer runs at once ("202" not needed)
    search_double.service.wait_for_runs()

    status = pull.status(ix)
    assert status["lastResult"]["status"] == "success" and status["lastResult"]["itemsProcessed"] == 3
    assert status["status"] == "running" and status["limits"]["maxRunTime"] == "PT2H"
    # batchSize 2: two calls, sent in parallel (degreeOfParallelism), so either may arrive first;
    # each record's data holds the named inputs, the normalized image as the docs show it.
    batches = sorted((r["payload"]["values"] for r in web_api.requests), key=len, reverse=True)
    assert [[r["recordId"] for r in batch] for batch in batches] == [["0", "1"], ["0"]]
    first = batches[0]
    record = first[0]["data"]
    assert (record["image"]["originalWidth"], record["image"]["originalHeight"]) == (40, 30)
    assert base64.b64decode(record["image"]["data"])[:3] == b"\xff\xd8\xff"  # the service's JPEG
    assert record["path"] == blob_container.get_blob_client("a.jpg").url
    search = SearchClient(search_double.endpoint, pull.index, search_double.credential)
    documents = {d["id"]: d for d in search.search(search_text="*", top=10)}
    path = blob_container.get_blob_client("b c.jpg").url
    assert documents[url_token(path)]["source"] == path  # base64Encode behaves like UrlTokenEncode
    assert documents[url_token(path)]["size"] == len(photos["b c.jpg"])

    # Change detection by LastModified: a new run sees only the changed blob.
    blob_container.upload_blob("d.jpg", b"new bytes", overwrite=True)
    calls = len(web_api.requests)
    pull.client.run_indexer(ix)
    search_double.service.wait_for_runs()
    assert pull.status(ix)["lastResult"]["itemsProcessed"] == 1 and len(web_api.requests) == calls + 1
    # A reset makes the next run read everything again.
    pull.client.reset_indexer(ix)
    assert pull.status(ix)["lastResult"]["status"] == "reset"
    pull.client.run_indexer(ix)
    search_double.service.wait_for_runs()
    assert pull.status(ix)["lastResult"]["itemsProcessed"] == 3


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def test_normalized_images_reach_the_skill_as_the_image_path_documents(
    pull, blob_container, azurite, web_api, search_double
):
    # imageAction generateNormalizedImages: an image blob becomes one JPEG no larger than
    # 2000 x 2000 with its original size; indexedFileNameExtensions leaves other files out; the
    # skill reads the first normalized image by its index.
    web_api.answer = lambda payload: (200, vectors_for(payload["values"], [1.0, 0.0, 0.0, 0.0]))
    blob_container.upload_blob("wide.png", _png(3000, 1500))
    blob_container.upload_blob("broken.png", b"\x89PNG not really")
    blob_container.upload_blob("notes.txt", b"text")
    ds = pull.data_source(blob_container.container_name, azurite.connection_string)
    skill = {
        "inputs": [
            {"name": "image", "source": "/document/normalized_images/0"},
            {"name": "path", "source": "/document/metadata_storage_path"},
        ]
    }
    configuration = {"imageAction": "generateNormalizedImages", "indexedFileNameExtensions": ".png, .jpg"}
    pull.indexer(ds, pull.skillset(web_api.url, **skill), parameters={"configuration": configuration})
    search_double.service.wait_for_runs()

    records = {
        r["data"]["path"].rsplit("/", 1)[-1]: r["data"] for call in web_api.requests for r in call["payload"]["values"]
    }
    assert set(records) == {"wide.png", "broken.png"}, "notes.txt is not an indexed extension"
    image = records["wide.png"]["image"]
    assert (image["width"], image["height"], image["originalWidth"], image["originalHeight"]) == (
        2000,
        1000,
        3000,
        1500,
    )
    assert base64.b64decode(image["data"])[:2] == b"\xff\xd8"  # a JPEG
    assert "image" not in records["broken.png"], "no normalized image: the input is left out"

    for not_served in ({"source": "/document/normalized_images/*"}, {"source": "/document/normalized_images/1"}):
        bad = {"inputs": [{"name": "image", **not_served}]}
        with pytest.raises(HttpResponseError) as raised:
            pull.skillset(web_api.url, **bad)
        assert raised.value.error.code == "NotSupportedByStandIn"
    with pytest.raises(HttpResponseError) as raised:
        pull.indexer(ds, None, parameters={"configuration": {"indexedFileNameExtensions": "png"}})
    assert raised.value.status_code == 400 and "indexedFileNameExtensions" in raised.value.message


def test_a_second_run_while_one_runs_is_409_as_live(pull, blob_container, azurite, web_api, search_double):
    gate = threading.Event()

    def slow(payload: dict[str, Any]) -> tuple[int, Any]:
        gate.wait(30)
        return 200, vectors_for(payload["values"], [1.0, 0.0, 0.0, 0.0])

    web_api.answer = slow
    blob_container.upload_blob("a.jpg", b"a")
    ix = pull.indexer(
        pull.data_source(blob_container.container_name, azurite.connection_string), pull.skillset(web_api.url)
    )
    try:
        with pytest.raises(HttpResponseError) as raised:
            pull.client.run_indexer(ix)
        assert raised.value.status_code == 409 and raised.value.error.code == ""
        assert raised.value.error.message == (
            "Another indexer invocation is currently in progress; concurrent invocations are not allowed."
        )
        assert pull.status(ix)["lastResult"]["status"] == "inProgress"
    finally:
        gate.set()
        search_double.service.wait_for_runs()


def test_item_errors_and_warnings_take_the_live_shapes(pull, blob_container, azurite, web_api, search_double):
    def answer(payload: dict[str, Any]) -> tuple[int, Any]:
        values = []
        for record in payload["values"]:
            if record["data"]["path"].endswith("bad.jpg"):
                values.append(
                    {"recordId": record["recordId"], "data": {}, "errors": [{"message": "no image"}], "warnings": None}
                )
            else:
                values.append(
                    {
                        "recordId": record["recordId"],
                        "data": {"vector": [1, 0, 0, 0]},
                        "errors": None,
                        "warnings": [{"message": "small"}],
                    }
                )
        return 200, {"values": values}

    web_api.answer = answer
    blob_container.upload_blob("bad.jpg", b"x")
    blob_container.upload_blob("good.jpg", b"y")
    ix = pull.indexer(
        pull.data_source(blob_container.container_name, azurite.connection_string),
        pull.skillset(web_api.url),
        parameters={"maxFailedItems": -1, "maxFailedItemsPerBatch": -1},
    )
    search_double.service.wait_for_runs()

    result = pull.status(ix)["lastResult"]
    assert (result["status"], result["itemsProcessed"], result["itemsFailed"]) == ("success", 2, 1)
    (error,) = result["errors"]
    # The shape quoted in Azure-Samples/azure-search-power-skills#19: the blob's URL as the key.
    assert error["key"] == blob_container.get_blob_client("bad.jpg").url
    assert error["name"] == "Enrichment.WebApiSkill.vec" and error["statusCode"] == 400
    assert error["errorMessage"] == "Could not execute skill. WebApi skill response contains errors."
    assert "no image" in error["details"]
    assert [w["message"] for w in result["warnings"]] == ["small"]

    # "fails on the same document each time": the next run tries the failed blob again, only it.
    calls = len(web_api.requests)
    pull.client.run_indexer(ix)
    search_double.service.wait_for_runs()
    again = pull.status(ix)["lastResult"]
    assert (again["itemsProcessed"], again["itemsFailed"]) == (1, 1)
    sent = [r["data"]["path"] for call in web_api.requests[calls:] for r in call["payload"]["values"]]
    assert sent == [blob_container.get_blob_client("bad.jpg").url]


def test_max_failed_items_stops_a_run(pull, blob_container, azurite, web_api, search_double):
    web_api.answer = lambda payload: (500, {"error": "down"})
    blob_container.upload_blob("a.jpg", b"a")
    ix = pull.indexer(
        pull.data_source(blob_container.container_name, azurite.connection_string), pull.skillset(web_api.url)
    )
    search_double.service.wait_for_runs()

    result = pull.status(ix)["lastResult"]
    assert result["status"] == "transientFailure"  # maxFailedItems defaults to 0
    assert "maxFailedItems" in result["errorMessage"]
    assert result["errors"][0]["errorMessage"] == "Could not execute skill."


def test_soft_deleted_blobs_leave_the_index_only_with_delete_retention(
    pull, blob_container, blob_service, azurite, web_api, search_double
):
    web_api.answer = lambda payload: (200, vectors_for(payload["values"], [1.0, 0.0, 0.0, 0.0]))
    blob_container.upload_blob("a.jpg", b"a")
    native = {"@odata.type": "#Microsoft.Azure.Search.NativeBlobSoftDeleteDeletionDetectionPolicy"}
    ds = pull.data_source(blob_container.container_name, azurite.connection_string, dataDeletionDetectionPolicy=native)
    ix = pull.indexer(ds, pull.skillset(web_api.url))
    search_double.service.wait_for_runs()
    search = SearchClient(search_double.endpoint, pull.index, search_double.credential)
    assert search.get_document_count() == 1

    blob_container.delete_blob("a.jpg")
    blob_service.set_service_properties(delete_retention_policy=RetentionPolicy(enabled=False))
    pull.client.run_indexer(ix)
    search_double.service.wait_for_runs()
    assert search.get_document_count() == 1  # no soft delete on the account: the blob is simply gone
    blob_service.set_service_properties(delete_retention_policy=RetentionPolicy(enabled=True, days=7))
    try:
        pull.client.run_indexer(ix)
        search_double.service.wait_for_runs()
        assert search.get_document_count() == 0
    finally:
        blob_service.set_service_properties(delete_retention_policy=RetentionPolicy(enabled=False))


def test_a_blob_over_the_extraction_limit_fails_with_the_service_text(
    pull, blob_container, azurite, web_api, search_double
):
    web_api.answer = lambda payload: (200, vectors_for(payload["values"], [1.0, 0.0, 0.0, 0.0]))
    limit = search_double.service.config.max_document_extraction_bytes
    blob_container.upload_blob("huge.jpg", b"\0" * (limit + 1))
    ix = pull.indexer(
        pull.data_source(blob_container.container_name, azurite.connection_string),
        pull.skillset(web_api.url),
        parameters={"maxFailedItems": -1},
    )
    search_double.service.wait_for_runs()
    (error,) = pull.status(ix)["lastResult"]["errors"]
    assert error["errorMessage"] == (
        f"Document is '{limit + 1}' bytes, which exceeds the maximum size '{limit}' bytes for document extraction for "
        f"your current service tier."
    )


def test_pull_resources_and_their_tracking_persist_in_the_data_dir(tmp_path, azurite, blob_container, web_api):
    from starlette.testclient import TestClient

    from standins.search.service import SearchDoubleConfig, create_app

    config = SearchDoubleConfig(data_dir=tmp_path / "double")
    headers = {"Prefer": "return=representation"}
    web_api.answer = lambda payload: (200, vectors_for(payload["values"], [1.0, 0.0, 0.0, 0.0]))
    blob_container.upload_blob("a.jpg", b"a")
    first = create_app(config)
    with TestClient(first) as client:
        params = {"api-version": API}
        assert client.put("/indexes('idx')", params=params, json=index_definition("idx")).status_code == 201
        source = {
            "name": "ds",
            "type": "azureblob",
            "credentials": {"connectionString": azurite.connection_string},
            "container": {"name": blob_container.container_name},
        }
        assert client.put("/datasources('ds')", params=params, json=source, headers=headers).status_code == 201
        skill = {
            "@odata.type": "#Microsoft.Skills.Custom.WebApiSkill",
            "uri": web_api.url,
            "inputs": [{"name": "path", "source": "/document/metadata_storage_path"}],
            "outputs": [{"name": "vector", "targetName": "v"}],
        }
        assert client.put("/skillsets('ss')", params=params, json={"name": "ss", "skills": [skill]}).status_code == 201
        indexer = {
            "name": "ix",
            "dataSourceName": "ds",
            "skillsetName": "ss",
            "targetIndexName": "idx",
            "outputFieldMappings": [{"sourceFieldName": "/document/v", "targetFieldName": "v"}],
        }
        assert client.put("/indexers('ix')", params=params, json=indexer).status_code == 201
        first.state.service.wait_for_runs()
    calls = len(web_api.requests)

    second = create_app(config)  # a restart
    with TestClient(second) as client:
        service = second.state.service
        assert (
            set(service.indexers) == {"ix"}
            and service.data_sources["ds"].connection_string == azurite.connection_string
        )
        assert client.post("/indexers('ix')/search.run", params={"api-version": API}).status_code == 202
        service.wait_for_runs()
        status = client.get("/indexers('ix')/search.status", params={"api-version": API}).json()
    assert [r["status"] for r in status["executionHistory"]] == ["success", "success"]
    assert status["lastResult"]["itemsProcessed"] == 0 and len(web_api.requests) == calls  # nothing new
