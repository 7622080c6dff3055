"""``POST /api/vectorize`` against the contract Azure AI Search calls it with, over real HTTP
(``imgsearch serve``'s host, the Function's own handler).

The requests are the documented examples, adapted to this endpoint's inputs:

- "Custom Web API skill" (https://learn.microsoft.com/azure/search/cognitive-search-custom-skill-web-api),
  "Sample input JSON structure": four records with ids "0" to "3" in ``values``, each ``data``
  holding the skill's named inputs; "Sample output JSON structure": one object per record with
  ``recordId``, ``data``, ``errors`` and ``warnings`` (required, may be null), order free.
- "Custom Web API vectorizer" (https://learn.microsoft.com/azure/search/vector-search-vectorizer-custom-web-api),
  "JSON payload structure": one record per request, the input under ``text``, ``imageUrl`` or
  ``imageBinary`` (``{"data": <base64>}``), the embedding expected under ``data.vector``.
- A skill's image inputs: a normalized image as "Extract text and information from images"
  (https://learn.microsoft.com/azure/search/cognitive-search-concept-image-scenarios) shows it
  (``data``, ``width``, ``height``, ``originalWidth``, ``originalHeight``,
  ``rotationFromOriginal``, ``contentOffset``, ``pageNumber``), and ``/document/file_data``
  as the Document Extraction skill defines it (``{"$type": "file", "data": <base64>}``).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import requests
from PIL import Image

from indexer.backends.numpy_index import NumpyIndex
from indexer.entrypoints import vectorize
from indexer.model_versions import OFFLINE_ENGLISH, OFFLINE_MULTILINGUAL
from indexer.services import build_services
from indexer.settings import Settings
from indexer.vectorizers.offline import PrivateUrlsAllowed
from indexer.vectorizers.vision import VisionClient

DOCS_SKILL_EXAMPLE = {  # the skill doc's four records, their inputs renamed to this skill's
    "values": [
        {"recordId": "0", "data": {"text": "Este es un contrato en Inglés", "language": "es"}},
        {"recordId": "1", "data": {"text": "Hello world", "language": "en"}},
        {"recordId": "2", "data": {"text": "Hello world, Hi world", "language": "en"}},
        {"recordId": "3", "data": {"text": "Test", "language": "es"}},
    ]
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 100, 50)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def endpoint(local_host_factory, local_multilingual, local_index):
    # Image URLs in these tests are served on loopback: the development setting lets them through.
    vectorizer = PrivateUrlsAllowed(local_multilingual)
    services = build_services(Settings(), vectorizer=vectorizer, backend=local_index, storage=False)
    return local_host_factory(services) + "/api/vectorize"


def post(endpoint: str, payload, **options) -> requests.Response:
    return requests.post(endpoint, json=payload, timeout=120, **options)


def by_id(answer: requests.Response) -> dict[str, dict]:
    return {record["recordId"]: record for record in answer.json()["values"]}


def test_the_documented_skill_batch_is_answered_record_for_record(endpoint, local_index):
    answer = post(endpoint, DOCS_SKILL_EXAMPLE)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")  # the service checks it
    records = answer.json()["values"]
    assert [r["recordId"] for r in records] == ["0", "1", "2", "3"]
    for record in records:
        assert set(record) == {"recordId", "data", "errors", "warnings"}
        assert record["errors"] is None
        assert len(record["data"]["vector"]) == local_index.get_pin().dimensions
        assert record["data"]["model_version"] == OFFLINE_MULTILINGUAL
        # 'language' is no input of this skill: a warning, never an error.
        assert record["warnings"] == [{"message": "ignored the input(s) language"}]


def test_the_documented_vectorizer_payloads(endpoint, local_multilingual, samples_dir, image_url_server):
    cat = (samples_dir / "cat.jpg").read_bytes()
    for data in (
        {"text": "a cat"},
        {"imageBinary": {"data": b64(cat)}},  # the doc's imageBinary request, verbatim in shape
        {"imageUrl": image_url_server("cat-for-vectorizer.jpg", cat, "image/jpeg")},
    ):
        answer = post(endpoint, {"values": [{"recordId": "0", "data": data}]})
        assert answer.status_code == 200, answer.text
        record = answer.json()["values"][0]
        assert record["errors"] is None, record
        expected = (
            local_multilingual.vectorize_text("a cat") if "text" in data else local_multilingual.vectorize_image(cat)
        )
        assert np.allclose(record["data"]["vector"], expected.vector, atol=1e-5)


def test_a_normalized_image_and_file_data_as_the_service_sends_them(endpoint, samples_dir, local_index):
    cat = (samples_dir / "cat.jpg").read_bytes()
    normalized = {
        "data": b64(cat),
        "width": 500,
        "height": 300,
        "originalWidth": 5000,
        "originalHeight": 3000,
        "rotationFromOriginal": 90,
        "contentOffset": 500,
        "pageNumber": 2,
    }
    file_data = {"$type": "file", "data": b64(cat)}
    answer = post(
        endpoint,
        {
            "values": [
                {"recordId": "n", "data": {"image": normalized}},
                {
                    "recordId": "f",
                    "data": {
                        "file_data": file_data,
                        "blobUrl": "https://acct.blob.core.windows.net/images/pets/cat%201.jpg",
                        "tags": "cat, pet",
                        "lastModified": "2025-05-01T10:00:00Z",
                        "contentType": "application/octet-stream",
                    },
                },
            ]
        },
    )
    records = by_id(answer)
    assert records["n"]["errors"] is None and records["f"]["errors"] is None
    assert records["n"]["data"]["vector"] == records["f"]["data"]["vector"]
    document = records["f"]["data"]
    # Every field of the index, as the push path writes it for this blob.
    assert set(document) == {"vector", *local_index.schema.metadata_fields}
    assert document["source"] == "https://acct.blob.core.windows.net/images/pets/cat%201.jpg"
    assert (document["container"], document["blob_path"], document["file_name"]) == (
        "images",
        "pets/cat 1.jpg",
        "cat 1.jpg",
    )
    assert document["tags"] == ["cat", "pet"]
    assert document["content_type"] == "image/jpeg"  # sniffed, as push does, over a meaningless declared type
    assert document["last_modified"] == "2025-05-01T10:00:00.000Z"
    assert document["size_bytes"] == len(cat) and document["width"] > 10 and document["height"] > 10
    assert document["content_hash"].startswith("sha256:")


def test_a_blobs_normalized_image_is_indexed_as_the_blob_itself(endpoint, samples_dir, local_index):
    # Pull mode sends the service's JPEG re-encoding of the blob (at most 2000 x 2000); the
    # document still describes the blob as push would: its original size, byte count and type.
    cat = (samples_dir / "cat.jpg").read_bytes()
    normalized = {"data": b64(cat), "width": 500, "height": 300, "originalWidth": 5000, "originalHeight": 3000}
    blob = {
        "blobUrl": "https://acct.blob.core.windows.net/images/cat.png",
        "contentType": "image/png",
        "sizeBytes": 7_654_321,
        "lastModified": "2025-05-01T10:00:00Z",
    }
    answer = post(endpoint, {"values": [{"recordId": "n", "data": {"image": normalized, **blob}}]})
    record = by_id(answer)["n"]
    assert record["errors"] is None, record
    document = record["data"]
    assert (document["width"], document["height"], document["size_bytes"]) == (5000, 3000, 7_654_321)
    assert document["content_type"] == "image/png"
    assert document["content_hash"].startswith("sha256:")  # of the bytes vectorized
    assert set(document) == {"vector", *local_index.schema.metadata_fields}


def test_bad_records_get_their_own_errors_and_the_rest_is_answered(endpoint, samples_dir):
    cat = (samples_dir / "cat.jpg").read_bytes()
    records = {
        "good": {"text": "a red double-decker bus"},
        "seventy": {"text": " ".join(["word"] * 70)},
        "seventy-one": {"text": " ".join(["word"] * 71)},
        "empty": {},
        "two": {"text": "a cat", "imageBinary": {"data": b64(cat)}},
        "not-base64": {"imageBinary": {"data": "%%% not base64 %%%"}},
        "punctuation": {"imageBinary": {"data": "!!!"}},  # no character of either alphabet
        "not-an-image": {"imageBinary": {"data": b64(b"these bytes are no image")}},
        "too-small": {"imageBinary": {"data": b64(png(10, 10))}},
        "too-large": {"imageBinary": {"data": b64(png(16000, 1))}},
        "no-data": {"file_data": {"$type": "file"}},
        "good-image": {"file_data": {"$type": "file", "data": b64(cat)}},
        "url-safe-image": {"imageBinary": {"data": base64.urlsafe_b64encode(cat).decode().rstrip("=")}},
    }
    answer = post(endpoint, {"values": [{"recordId": k, "data": v} for k, v in records.items()]})

    assert answer.status_code == 200
    answered = by_id(answer)
    assert set(answered) == set(records)
    goods = {"good", "seventy", "good-image", "url-safe-image"}
    for good in goods:
        assert answered[good]["errors"] is None and answered[good]["data"]["vector"], good
    messages = {k: answered[k]["errors"][0]["message"] for k in records if answered[k]["errors"]}
    assert set(messages) == set(records) - goods
    assert "71 words" in messages["seventy-one"] and "limit: text_words" in messages["seventy-one"]
    assert "no input" in messages["empty"]
    assert "exactly one input" in messages["two"]
    assert "Base64" in messages["not-base64"]
    assert "not valid Base64" in messages["punctuation"]  # not "the image is empty"
    assert "not a readable image" in messages["not-an-image"]
    assert "10x10" in messages["too-small"] and "16000x1" in messages["too-large"]
    assert "neither 'data'" in messages["no-data"]
    for bad in messages:
        assert answered[bad]["data"] == {}


def test_requests_that_are_not_the_contract_are_refused_whole(endpoint):
    too_many = {"values": [{"recordId": str(i), "data": {"text": "a"}} for i in range(vectorize.MAX_RECORDS + 1)]}
    cases = [
        (requests.post(endpoint, data=b"{not json", headers={"content-type": "application/json"}, timeout=30), 400),
        (post(endpoint, {"records": []}), 400),
        (post(endpoint, {"values": [{"data": {"text": "a"}}]}), 400),
        (post(endpoint, {"values": [{"recordId": "1", "data": {}}, {"recordId": "1", "data": {}}]}), 400),
        (post(endpoint, too_many), 400),
        (requests.post(endpoint, data=b"text", headers={"content-type": "text/plain"}, timeout=30), 415),
        (requests.get(endpoint, timeout=30), 405),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
    for response, _ in cases[:-1]:
        assert set(response.json()["error"]) == {"code", "message"}
    assert post(endpoint, {"values": []}).json() == {"values": []}


def test_vectors_of_another_model_than_the_pin_fail_the_whole_call(local_host_factory, local_english, tmp_path):
    index = NumpyIndex(tmp_path / "idx", "images")
    from indexer.schema import load_schema

    index.ensure_index(load_schema(OFFLINE_MULTILINGUAL))  # pinned to the multilingual model
    services = build_services(Settings(), vectorizer=local_english, backend=index, storage=False)
    endpoint = local_host_factory(services) + "/api/vectorize"

    answer = post(endpoint, {"values": [{"recordId": "0", "data": {"text": "a cat"}}]})

    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["code"] == "ModelVersionMismatch"
    assert OFFLINE_ENGLISH in error["message"] and OFFLINE_MULTILINGUAL in error["message"]


@pytest.mark.parametrize(("status", "retry_after"), [(429, "3"), (503, "5")])
def test_a_service_that_throttles_or_is_down_makes_the_caller_retry_the_batch(
    local_host_factory, faulty_vision_server, local_index_factory, status, retry_after
):
    # The indexer "retries twice" on 502, 503 and 429: Vision throttling or an outage answers the
    # whole call 503, with Vision's Retry-After when it gave one (a 429's), else 5 s.
    from azure.core.credentials import AzureKeyCredential

    server = faulty_vision_server(keys=["k"], fault_rate=1.0, fault_statuses=(status,), fault_retry_after=3)
    client = VisionClient(server.url, AzureKeyCredential("k"), model_version="2023-04-15", max_retries=0)
    services = build_services(Settings(), vectorizer=client, backend=local_index_factory(), storage=False)
    endpoint = local_host_factory(services) + "/api/vectorize"

    answer = post(endpoint, {"values": [{"recordId": "0", "data": {"text": "a cat"}}, {"recordId": "1", "data": {}}]})

    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == retry_after
    assert answer.json()["error"]["code"] == "ServiceUnavailable"
    client.close()


def test_records_not_done_within_the_time_budget_get_errors_not_a_timeout(local_multilingual, local_index):
    # The caller gives up on the whole call after its timeout (30 s by default), so what is not
    # done when this endpoint's budget runs out is answered with an error each. Records 2 to 4
    # cannot finish (the one worker is held by record 2 until the answer is in).
    import threading

    embedding = local_multilingual.vectorize_text("a photo")
    release = threading.Event()

    class StuckAfterTwo:
        def vectorize_text(self, text):
            if text.endswith(("2", "3", "4")):
                release.wait(60)
            return embedding

    services = build_services(
        Settings(VISION_CONCURRENCY=1), vectorizer=StuckAfterTwo(), backend=local_index, storage=False
    )
    records = [(str(i), {"text": f"photo number {i}"}) for i in range(5)]
    try:
        answer = vectorize.vectorize_records(records, services, budget_seconds=2.0)
    finally:
        release.set()

    assert answer.status == 200
    values = answer.body["values"]
    assert [v["recordId"] for v in values] == ["0", "1", "2", "3", "4"]
    assert [v["errors"] is None for v in values] == [True, True, False, False, False]
    assert all("time budget" in v["errors"][0]["message"] for v in values[2:])


def test_a_key_is_needed_where_one_is_configured(local_host_factory, local_multilingual, local_index):
    # Image URLs in these tests are served on loopback: the development setting lets them through.
    vectorizer = PrivateUrlsAllowed(local_multilingual)
    services = build_services(Settings(), vectorizer=vectorizer, backend=local_index, storage=False)
    endpoint = local_host_factory(services, keys=("s3cret-s3cret-s3cret",)) + "/api/vectorize"
    payload = {"values": [{"recordId": "0", "data": {"text": "a cat"}}]}
    assert post(endpoint, payload).status_code == 401
    assert post(endpoint, payload, headers={"x-functions-key": "nope"}).status_code == 401
    assert post(endpoint, payload, headers={"x-functions-key": "s3cret-s3cret-s3cret"}).status_code == 200
    assert requests.post(endpoint + "?code=s3cret-s3cret-s3cret", json=payload, timeout=60).status_code == 200
