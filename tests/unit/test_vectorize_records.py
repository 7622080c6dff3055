"""``POST /api/vectorize`` in process (``entrypoints.vectorize``): what is read from a request,
what each record is answered with, and what fails one record or the whole call.

A small deterministic vectorizer stands in for Vision here (a vector from the input's hash, and
the errors Vision gives on cue): what is under test is the contract of the custom Web API skill
and vectorizer, not a model. tests/contract/test_vectorize_endpoint.py sends the documented
payloads over HTTP to the offline models.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import threading
from collections.abc import Callable

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from indexer.documents import Embedding
from indexer.entrypoints import vectorize
from indexer.entrypoints.vectorize import (
    MAX_RECORDS,
    TIME_BUDGET_SECONDS,
    parse_request,
    vectorize_http,
    vectorize_records,
)
from indexer.errors import BadRequest, IndexNotFoundError, VisionRequestError, VisionServiceError
from indexer.limits import check_text
from indexer.model_versions import OFFLINE_ENGLISH, OFFLINE_MULTILINGUAL
from indexer.services import build_services
from indexer.settings import Settings

pillow_heif.register_heif_opener()  # these tests write HEIC files

DIMS = 512  # the local multilingual schema's, as local_index is made from
BLOB_URL = "https://acct.blob.core.windows.net/images/pets/cat%201.jpg"
IMAGE_URL = "https://pictures.example/cat.jpg"


def png(width: int = 32, height: int = 24) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 100, 50)).save(out, "PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


CAT = png()


def hash_vector(data: bytes) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
    return np.random.default_rng(seed).normal(size=DIMS).astype(np.float32)


def vector_of(value: str | bytes) -> list[float]:
    """The vector a record of ``value`` is answered with (as JSON numbers)."""
    return hash_vector(value if isinstance(value, bytes) else value.encode()).astype(float).tolist()


class HashVectorizer:
    """A vector from the input's hash; records each call. Texts are checked against the word
    limit as the real vectorizers do. An input named in ``failures`` raises that error instead
    (what Vision answers for it); ``on_call`` runs first with the input (to hold a call back)."""

    def __init__(self, model_version: str = OFFLINE_MULTILINGUAL) -> None:
        self.model_version = model_version
        self.calls: list[tuple[str, object]] = []
        self.failures: dict[object, Exception] = {}
        self.on_call: Callable[[object], object] = lambda value: None
        self._lock = threading.Lock()

    def _embed(self, kind: str, value: object, data: bytes) -> Embedding:
        with self._lock:
            self.calls.append((kind, value))
        self.on_call(value)
        if value in self.failures:
            raise self.failures[value]
        return Embedding(hash_vector(data), self.model_version)

    def vectorize_text(self, text: str) -> Embedding:
        return self._embed("text", text, check_text(text).encode())

    def vectorize_image(self, image: bytes) -> Embedding:
        return self._embed("image", image, image)

    def vectorize_image_url(self, url: str) -> Embedding:
        return self._embed("url", url, url.encode())


@pytest.fixture
def vectorizer() -> HashVectorizer:
    return HashVectorizer()


@pytest.fixture
def services(vectorizer, local_index):
    return build_services(Settings(), vectorizer=vectorizer, backend=local_index, storage=False)


def call(services, payload, *, method: str = "POST", content_type: str | None = "application/json"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return vectorize_http(method=method, body=body, content_type=content_type, services=services)


def one(services, data) -> dict:
    """The answer to one record with ``data``."""
    answer = call(services, {"values": [{"recordId": "r", "data": data}]})
    assert answer.status == 200, answer.body
    (record,) = answer.body["values"]
    assert record["recordId"] == "r"
    return record


def error_of(services, data) -> str:
    record = one(services, data)
    assert record["data"] == {} and record["warnings"] is None
    (error,) = record["errors"]
    return error["message"]


# --------------------------------------------------------------------------- the request


@pytest.mark.parametrize(
    "content_type", [None, "", "application/json", "Application/JSON; charset=utf-8", "application/json;a=1;b=2"]
)
def test_a_json_body_is_read_with_or_without_its_content_type(content_type):
    body = json.dumps({"values": [{"recordId": "a", "data": {"text": "x"}}]}).encode()
    assert parse_request(body, content_type) == [("a", {"text": "x"})]


def test_another_content_type_is_refused_with_415_naming_it():
    with pytest.raises(BadRequest, match="unsupported Content-Type 'text/plain'") as refused:
        parse_request(b"{}", "text/plain")
    assert (refused.value.status, refused.value.error_code) == (415, "UnsupportedMediaType")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not valid JSON: "),
        (b"\xff\xfe", "the body is not valid JSON: "),
        (None, "the body is not valid JSON: "),
        (b'[{"recordId": "a"}]', 'the body must be {"values": [{"recordId": "...", "data": {...}}, ...]}'),
        (b'{"records": []}', 'the body must be {"values"'),
        (b'{"values": {"recordId": "a"}}', 'the body must be {"values"'),
        (b'{"values": [{"data": {}}]}', "record 0 has no recordId (a non-empty string)"),
        (b'{"values": [{"recordId": "a"}, {"recordId": ""}]}', "record 1 has no recordId"),
        (b'{"values": [{"recordId": 7}]}', "record 0 has no recordId"),
        (b'{"values": ["a"]}', "record 0 has no recordId"),
        (b'{"values": [{"recordId": "a"}, {"recordId": "a"}]}', "the recordId 'a' is used twice; each"),
    ],
)
def test_a_body_that_is_not_the_contract_is_a_bad_request_naming_the_problem(body, message):
    with pytest.raises(BadRequest) as refused:
        parse_request(body, "application/json")
    assert str(refused.value).startswith(message)
    assert (refused.value.status, refused.value.error_code) == (400, "BadRequest")


def test_at_most_the_skills_batch_size_of_records_is_taken():
    values = [{"recordId": str(i), "data": {}} for i in range(MAX_RECORDS + 1)]
    assert len(parse_request(json.dumps({"values": values[:MAX_RECORDS]}).encode(), None)) == MAX_RECORDS
    with pytest.raises(BadRequest, match=f"^{MAX_RECORDS + 1} records in one call; send at most {MAX_RECORDS} "):
        parse_request(json.dumps({"values": values}).encode(), None)


def test_records_are_read_in_order_with_their_data_as_sent():
    body = json.dumps({"values": [{"recordId": "b", "data": {"text": "x"}}, {"recordId": "a"}]}).encode()
    assert parse_request(body, None) == [("b", {"text": "x"}), ("a", None)]


@pytest.mark.parametrize("method", ["POST", "post", "PUT"])
def test_post_and_put_are_answered(services, method):
    assert call(services, {"values": []}, method=method).status == 200


@pytest.mark.parametrize("method", ["GET", "DELETE", ""])
def test_other_methods_are_refused_with_405(services, method):
    answer = call(services, {"values": []}, method=method)
    assert answer.status == 405
    assert answer.body == {
        "error": {"code": "MethodNotAllowed", "message": f"method {method} is not supported; use POST"}
    }


def test_a_bad_request_is_answered_in_the_azure_error_shape(services):
    answer = call(services, b"{not json")
    assert answer.status == 400
    assert answer.body["error"]["code"] == "BadRequest"
    assert answer.body["error"]["message"].startswith("the body is not valid JSON")


def test_a_body_of_another_type_is_answered_415(services):
    answer = call(services, {"values": []}, content_type="text/plain")
    assert answer.status == 415 and answer.body["error"]["code"] == "UnsupportedMediaType"


def test_no_records_are_answered_with_no_values_and_no_vision_call(services, vectorizer):
    assert call(services, {"values": []}).body == {"values": []}
    assert vectorizer.calls == []


def test_without_services_given_the_workers_own_are_used(monkeypatch, services):
    monkeypatch.setattr(vectorize, "get_services", lambda: services)
    answer = vectorize_http(method="POST", body=b'{"values": [{"recordId": "r", "data": {"text": "a cat"}}]}',
                            content_type=None)  # fmt: skip
    assert answer.status == 200 and answer.body["values"][0]["errors"] is None


# --------------------------------------------------------------------------- one record


def test_a_text_is_answered_with_its_vector_and_model_version(services, vectorizer):
    record = one(services, {"text": "a cat"})
    assert record == {
        "recordId": "r",
        "data": {"vector": vector_of("a cat"), "model_version": OFFLINE_MULTILINGUAL},
        "errors": None,
        "warnings": None,
    }
    assert vectorizer.calls == [("text", "a cat")]


@pytest.mark.parametrize("url", [IMAGE_URL, "http://pictures.example/cat.jpg", "HTTPS://PICTURES.EXAMPLE/cat.jpg"])
def test_an_image_url_is_left_to_the_service_to_fetch(services, vectorizer, url):
    record = one(services, {"imageUrl": url})
    assert record["errors"] is None
    assert record["data"] == {"vector": vector_of(url), "model_version": OFFLINE_MULTILINGUAL}
    assert vectorizer.calls == [("url", url)]


@pytest.mark.parametrize("name", ["imageBinary", "image", "file_data"])
def test_image_bytes_are_answered_with_the_documents_fields_of_the_image(services, vectorizer, name):
    record = one(services, {name: {"$type": "file", "data": b64(CAT)} if name == "file_data" else {"data": b64(CAT)}})
    assert record["errors"] is None and record["warnings"] is None
    data = record["data"]
    assert data["vector"] == vector_of(CAT)
    assert data["model_version"] == OFFLINE_MULTILINGUAL
    assert (data["content_type"], data["width"], data["height"], data["size_bytes"]) == ("image/png", 32, 24, len(CAT))
    assert data["content_hash"] == "sha256:" + hashlib.sha256(CAT).hexdigest()
    assert "source" not in data and "container" not in data  # no blob: only what the image says
    assert vectorizer.calls == [("image", CAT)]


def test_a_heic_record_is_vectorized_from_a_rendition_and_described_as_the_original(services, vectorizer):
    out = io.BytesIO()
    Image.new("RGB", (48, 36), (30, 90, 200)).save(out, "HEIF")
    heic = out.getvalue()

    data = one(services, {"imageBinary": {"data": b64(heic)}})["data"]

    [(kind, sent)] = vectorizer.calls
    assert kind == "image" and sent != heic and sent.startswith(b"\xff\xd8\xff")  # a JPEG Vision reads
    assert data["vector"] == vector_of(sent)
    assert (data["content_type"], data["width"], data["height"], data["size_bytes"]) == (
        "image/heif",
        48,
        36,
        len(heic),
    )
    assert data["content_hash"] == "sha256:" + hashlib.sha256(heic).hexdigest()


@pytest.mark.parametrize(
    ("reference", "fetched"),
    [
        ({"$type": "file", "url": IMAGE_URL, "sasToken": "?sv=1&sig=x"}, IMAGE_URL + "?sv=1&sig=x"),
        ({"url": IMAGE_URL + "?v=2", "sasToken": "sv=1"}, IMAGE_URL + "?v=2&sv=1"),
        ({"url": IMAGE_URL, "sasToken": ""}, IMAGE_URL),
        ({"url": IMAGE_URL, "sasToken": 5}, IMAGE_URL),
        ({"url": "HTTP://pictures.example/cat.jpg"}, "HTTP://pictures.example/cat.jpg"),
    ],
)
def test_a_file_reference_by_url_is_fetched_by_the_service_with_its_sas_token(services, vectorizer, reference, fetched):
    record = one(services, {"file_data": reference})
    assert record["errors"] is None
    assert record["data"] == {"vector": vector_of(fetched), "model_version": OFFLINE_MULTILINGUAL}
    assert vectorizer.calls == [("url", fetched)]


def test_an_image_of_a_blob_is_answered_with_every_field_the_push_path_writes(services, local_index):
    record = one(
        services,
        {
            "file_data": {"$type": "file", "data": b64(CAT)},
            "blobUrl": BLOB_URL,
            "tags": "cat, pet,,cat",
            "lastModified": "2025-05-01T12:00:00+02:00",
            "contentType": "image/jpeg",
        },
    )
    data = record["data"]
    assert record["errors"] is None
    assert set(data) == {"vector", *local_index.schema.metadata_fields}
    assert data["source"] == BLOB_URL
    assert (data["container"], data["blob_path"], data["file_name"]) == ("images", "pets/cat 1.jpg", "cat 1.jpg")
    assert data["tags"] == ["cat", "pet"]
    assert data["last_modified"] == "2025-05-01T10:00:00.000Z"  # in UTC, as push writes it
    assert data["content_type"] == "image/png"  # sniffed from the bytes, as push does


def test_the_file_name_of_a_blob_in_nested_folders_is_its_last_part():
    _, fields = vectorize._blob_fields({"blobUrl": "https://acct.blob.core.windows.net/images/2025/05/cat.jpg"})
    assert (fields["blob_path"], fields["file_name"]) == ("2025/05/cat.jpg", "cat.jpg")


def test_what_a_blob_lacks_is_sent_as_null_so_the_indexer_clears_it(services, local_index):
    data = one(services, {"image": {"data": b64(CAT)}, "blobUrl": "https://acct.blob.core.windows.net/images/a.png"})[
        "data"
    ]
    assert set(data) == {"vector", *local_index.schema.metadata_fields}
    assert (data["container"], data["blob_path"], data["file_name"]) == ("images", "a.png", "a.png")
    assert data["tags"] is None and data["last_modified"] is None


@pytest.mark.parametrize(
    ("given", "declared"),
    [("image/webp", "image/webp"), ("IMAGE/WEBP", "IMAGE/WEBP"), ("application/octet-stream", None), (7, None)],
)
def test_a_declared_image_type_is_passed_on_for_bytes_not_sniffed(given, declared):
    url, fields = vectorize._blob_fields({"blobUrl": BLOB_URL, "contentType": given})
    assert url == BLOB_URL
    assert fields.get("content_type") == declared


@pytest.mark.parametrize(
    ("given", "written"),
    [
        ("2025-05-01T10:00:00Z", "2025-05-01T10:00:00.000Z"),
        ("2025-05-01T12:30:00.5+02:00", "2025-05-01T10:30:00.500Z"),
        ("yesterday", None),
        ("", None),
        (1746093600, None),
    ],
)
def test_a_blobs_last_modified_is_written_in_utc_and_a_bad_one_left_out(given, written):
    _, fields = vectorize._blob_fields({"blobUrl": BLOB_URL, "lastModified": given})
    assert fields.get("last_modified") == written


@pytest.mark.parametrize(("given", "tags"), [("a, b,a", ["a", "b"]), ("", None), (["a"], None)])
def test_a_blobs_tags_come_from_its_comma_separated_tags_input(given, tags):
    _, fields = vectorize._blob_fields({"blobUrl": BLOB_URL, "tags": given})
    assert fields.get("tags") == tags


def test_unknown_inputs_are_named_in_a_warning_not_an_error(services):
    record = one(services, {"text": "a cat", "language": "en", "context": "x", "blobUrl": BLOB_URL})
    assert record["errors"] is None and record["data"]["vector"]
    assert record["warnings"] == [{"message": "ignored the input(s) context, language"}]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("a cat", "the record's data must be an object"),
        (None, "the record's data must be an object"),
        ({}, "the record has no input: give one of text, imageUrl, imageBinary, image, file_data"),
        ({"text": "", "imageUrl": None}, "the record has no input: give one of"),
        ({"text": "a cat", "imageUrl": IMAGE_URL}, "the record has text and imageUrl; give exactly one input"),
        ({"text": 7}, "the input 'text' must be a string"),
        ({"imageUrl": "ftp://pictures.example/cat.jpg"}, "the input 'imageUrl' must be an http(s) URL"),
        ({"imageUrl": ["https://x"]}, "the input 'imageUrl' must be an http(s) URL"),
        ({"imageBinary": "Zm9v"}, "the input 'imageBinary' must be an object with 'data' (Base64), as the service"),
        ({"file_data": {"$type": "folder", "data": "Zm9v"}}, "the input 'file_data' has $type 'folder'; a file"),
        ({"file_data": {"$type": "file"}}, "the input 'file_data' has neither 'data' (Base64) nor an http(s) 'url'"),
        ({"image": {"url": "file:///etc/passwd"}}, "the input 'image' has neither 'data'"),
        ({"image": {"url": 7}}, "the input 'image' has neither 'data'"),
        ({"imageBinary": {"data": "%%%"}}, "the input 'imageBinary' (data) is not valid Base64"),
        ({"imageBinary": {"data": b64(b"no image")}}, "InvalidImageError: "),
        ({"text": " ".join(["word"] * 71)}, "the text has 71 words; the limit is 70 words (limit: text_words)"),
    ],
)
def test_a_records_own_fault_is_an_error_on_that_record(services, vectorizer, data, message):
    assert error_of(services, data).startswith(message)


def test_a_blob_url_that_names_no_blob_is_the_records_fault(services):
    message = error_of(services, {"image": {"data": b64(CAT)}, "blobUrl": "https://acct.blob.core.windows.net/images"})
    assert message == "the input 'blobUrl' names no blob: 'https://acct.blob.core.windows.net/images'"


def test_an_image_vision_refuses_is_an_error_naming_visions_code(services, vectorizer):
    vectorizer.failures[IMAGE_URL] = VisionRequestError("the image is too small", code="InvalidImageSize",
                                                        status_code=400)  # fmt: skip
    assert error_of(services, {"imageUrl": IMAGE_URL}) == "(InvalidImageSize) the image is too small"


# --------------------------------------------------------------------------- the batch


def test_each_record_is_answered_in_the_order_sent_and_bad_ones_do_not_stop_the_rest(services, vectorizer):
    values = [
        {"recordId": "3", "data": {"text": "a dog"}},
        {"recordId": "1", "data": {}},
        {"recordId": "2", "data": {"imageUrl": IMAGE_URL}},
    ]
    answer = call(services, {"values": values})
    assert answer.status == 200
    records = answer.body["values"]
    assert [r["recordId"] for r in records] == ["3", "1", "2"]
    assert [r["errors"] is None for r in records] == [True, False, True]
    assert records[0]["data"]["vector"] == vector_of("a dog")
    assert records[2]["data"]["vector"] == vector_of(IMAGE_URL)


def test_records_are_vectorized_concurrently_up_to_the_vision_concurrency(vectorizer, local_index):
    # Two records, two workers: each waits until the other has started.
    both = threading.Barrier(2, timeout=10)
    vectorizer.on_call = lambda value: both.wait()
    services = build_services(Settings(VISION_CONCURRENCY=2), vectorizer=vectorizer, backend=local_index,
                              storage=False)  # fmt: skip
    answer = call(services, {"values": [{"recordId": str(i), "data": {"text": f"cat {i}"}} for i in range(2)]})
    assert [r["errors"] for r in answer.body["values"]] == [None, None]


def test_no_more_records_are_vectorized_at_once_than_the_vision_concurrency(vectorizer, local_index):
    # One worker: the first record waits a little for another one to start beside it.
    another_started = threading.Event()
    overlapped: list[bool] = []

    def alone(value):
        if value == "cat 0":
            overlapped.append(another_started.wait(timeout=0.3))
        else:
            another_started.set()

    vectorizer.on_call = alone
    services = build_services(Settings(VISION_CONCURRENCY=1), vectorizer=vectorizer, backend=local_index,
                              storage=False)  # fmt: skip
    answer = call(services, {"values": [{"recordId": str(i), "data": {"text": f"cat {i}"}} for i in range(3)]})
    assert [r["errors"] for r in answer.body["values"]] == [None, None, None]
    assert overlapped == [False]


def test_a_vision_call_that_can_succeed_later_makes_the_caller_retry_the_whole_batch(services, vectorizer):
    vectorizer.failures["a cat"] = VisionServiceError("busy", code="TooManyRequests", status_code=429)
    answer = call(services, {"values": [{"recordId": "1", "data": {"text": "a cat"}}]})
    assert answer.status == 503
    assert answer.headers == {"Retry-After": "5"}  # Vision named no wait: the default
    assert answer.body["error"]["code"] == "ServiceUnavailable"


def test_the_batch_is_answered_as_soon_as_one_record_needs_a_retry(services, vectorizer):
    # The other records are not waited for: the caller redoes the whole batch anyway.
    release, finished = threading.Event(), threading.Event()

    def slow_dog(value):
        if value == "a dog":
            release.wait(5)
            finished.set()

    vectorizer.on_call = slow_dog
    vectorizer.failures["a cat"] = VisionServiceError("down", code="ServiceUnavailable", status_code=503)
    values = [{"recordId": "1", "data": {"text": "a dog"}}, {"recordId": "2", "data": {"text": "a cat"}}]
    try:
        answer = call(services, {"values": values})
        assert not finished.is_set(), "the answer waited for the slow record"
    finally:
        release.set()
    assert answer.status == 503


def test_the_retry_after_vision_asked_for_is_passed_on(services, vectorizer):
    vectorizer.failures["a cat"] = VisionServiceError("busy", code="TooManyRequests", status_code=429, retry_after=12)
    answer = call(services, {"values": [{"recordId": "1", "data": {"text": "a cat"}}]})
    assert answer.status == 503 and answer.headers == {"Retry-After": "12"}


def test_a_missing_index_makes_the_caller_retry_later(services, monkeypatch, caplog):
    def no_index():
        raise IndexNotFoundError("the index 'images' does not exist")

    monkeypatch.setattr(services.backend, "get_pin", no_index)
    answer = call(services, {"values": [{"recordId": "1", "data": {"text": "a cat"}}]})
    assert answer.status == 503 and answer.headers == {"Retry-After": "5"}
    assert [r.getMessage() for r in caplog.records] == ["vectorize cannot run: the index 'images' does not exist"]


@pytest.mark.parametrize(
    ("data", "action"),
    [({"text": "a cat"}, "vectorize the record's text"), ({"imageBinary": {"data": b64(CAT)}}, "index ")],
)
def test_vectors_of_another_model_than_the_pin_fail_the_whole_call(local_index, caplog, data, action):
    services = build_services(Settings(), vectorizer=HashVectorizer(OFFLINE_ENGLISH), backend=local_index,
                              storage=False)  # fmt: skip
    answer = call(services, {"values": [{"recordId": "1", "data": data}]})
    assert answer.status == 500
    assert answer.body["error"]["code"] == "ModelVersionMismatch"
    message = answer.body["error"]["message"]
    assert message.startswith(f"cannot {action}") and OFFLINE_ENGLISH in message
    assert [r.getMessage() for r in caplog.records] == [f"vectorize cannot run: {message}"]


def test_a_bug_is_raised_for_the_host_to_log_not_answered_as_a_record_error(services, vectorizer):
    vectorizer.failures["a cat"] = RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        call(services, {"values": [{"recordId": "1", "data": {"text": "a cat"}}]})


def test_records_not_done_when_the_time_budget_runs_out_get_an_error_each(services, vectorizer):
    release = threading.Event()
    vectorizer.on_call = lambda value: value == "cat 1" and release.wait(10)
    records = [(str(i), {"text": f"cat {i}"}) for i in range(2)]
    try:
        answer = vectorize_records(records, services, budget_seconds=0.3)
    finally:
        release.set()

    values = answer.body["values"]
    assert answer.status == 200 and [v["recordId"] for v in values] == ["0", "1"]
    assert values[0]["errors"] is None
    assert values[1]["data"] == {}
    assert values[1]["errors"] == [
        {
            "message": "not vectorized within this endpoint's time budget of 0.3 s (the caller waits 30 s by "
            "default): send fewer records per call (the skill's batchSize)"
        }
    ]


def test_the_time_budget_is_counted_from_the_start_of_the_call(services):
    # The clock says the budget is spent by the first look: no record is waited for.
    moments = itertools.chain([0.0, TIME_BUDGET_SECONDS], itertools.repeat(TIME_BUDGET_SECONDS))
    answer = vectorize_records([("0", {"text": "a cat"})], services, clock=lambda: next(moments))
    (value,) = answer.body["values"]
    assert value["errors"][0]["message"].startswith(
        f"not vectorized within this endpoint's time budget of {TIME_BUDGET_SECONDS:g} s"
    )


# --------------------------------------------------------------------------- pull mode's normalized image


def normalized(**extra) -> dict:
    """A normalized image as the indexer sends it: the service's re-encoding of the blob."""
    return {"data": b64(CAT), "width": 32, "height": 24, **extra}


def test_a_normalized_image_of_a_blob_describes_the_original_blob(services):
    record = {"image": normalized(originalWidth=4032, originalHeight=3024), "blobUrl": BLOB_URL}
    record |= {"sizeBytes": 2_500_000, "contentType": "image/heic"}
    data = one(services, record)["data"]
    assert (data["width"], data["height"], data["size_bytes"]) == (4032, 3024, 2_500_000)
    assert data["content_type"] == "image/heic"  # the blob's declared type, not the JPEG sent


@pytest.mark.parametrize("bad", [0, -1, True, "4032", 4032.0, None])
def test_an_original_size_that_is_no_positive_whole_number_leaves_the_vectorized_images(services, bad):
    record = {"image": normalized(originalWidth=bad, originalHeight=bad), "blobUrl": BLOB_URL, "sizeBytes": bad}
    data = one(services, record)["data"]
    assert (data["width"], data["height"]) == (32, 24)
    assert data["size_bytes"] == len(CAT)


@pytest.mark.parametrize("declared", ["application/octet-stream", "", 7, None])
def test_a_declared_type_that_is_no_image_type_leaves_the_sniffed_one(services, declared):
    record = {"image": normalized(), "blobUrl": BLOB_URL, "contentType": declared}
    assert one(services, record)["data"]["content_type"] == "image/png"


def test_an_image_that_is_no_blobs_keeps_its_own_description(services):
    data = one(services, {"image": normalized(originalWidth=4032, originalHeight=3024)})["data"]
    assert (data["width"], data["height"]) == (32, 24)  # no blob: the image sent is the original


# --------------------------------------------------------------------------- text that is no text


@pytest.mark.parametrize(
    ("record_id", "data", "where"),
    [
        ("r\ud800", {"text": "a cat"}, "the recordId"),
        ("r", {"text": "a \udfff cat"}, "the record's data"),
        ("r", {"\udc00": "a cat"}, "the record's data"),
    ],
)
def test_a_lone_surrogate_fails_its_record_only_naming_where(services, vectorizer, record_id, data, where):
    answer = vectorize_records([(record_id, data), ("ok", {"text": "a dog"})], services)
    assert answer.status == 200
    bad, good = answer.body["values"]
    assert not bad["data"] and where in bad["errors"][0]["message"]
    assert "not valid Unicode" in bad["errors"][0]["message"]
    assert good["errors"] is None and good["data"]["vector"] == vector_of("a dog")
    assert vectorizer.calls == [("text", "a dog")]  # the bad record never reached Vision
