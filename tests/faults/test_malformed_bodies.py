"""Malformed request bodies and secrets in URLs, on ``/api/search`` and ``/api/vectorize``:
through the handlers, the Function's HTTP triggers and ``imgsearch serve`` over HTTP.

- Every malformed body is a 400 naming the problem, never a 500: JSON nested 100,000 deep, a
  number of 5,000 digits, a lone surrogate (``\\ud800``), values of the wrong type. In a
  vectorize batch a record with such a value gets its own error and the others are answered.
- A URL in an answer or a log keeps no query string: a record's error lands in the indexer's
  execution history, and a SAS token there is a credential for anyone who reads it.
- Nothing already stored changes.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import requests

from indexer.entrypoints.http import search_http
from indexer.entrypoints.vectorize import vectorize_http
from indexer.errors import InvalidImageError
from indexer.redact import redact_urls, without_query
from indexer.services import build_services
from indexer.settings import Settings
from tests.fixtures.worker_services import worker_services_installed

REPO_ROOT = Path(__file__).resolve().parents[2]
DEEP = 100_000
# A SAS token's shape with a made-up signature (no account signs it); "S3CRET" marks it in output.
SAS = "&".join(["sv=2024-11-04", "sp=r", "se=2030-01-01T00%3A00%3A00Z", "sig=" + "S3CRET-made-up-for-tests"])
BLOB = "https://account.blob.core.windows.net/photos/cat.jpg"


class SayingTheUrl:
    """The offline vectorizer, except that an image URL fails with an error that names it, as
    a fetcher's error does (the query string included)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def vectorize_image_url(self, url: str) -> Any:
        raise InvalidImageError(f"the image URL answered HTTP 404: {url}")


@pytest.fixture
def services(indexed_samples):
    return build_services(Settings(IMGSEARCH_DATA_DIR=str(indexed_samples.data_dir)), storage=False)


@pytest.fixture
def stored(indexed_samples):
    """Asserts at the end of the test that no file of the index changed."""
    data_dir = indexed_samples.data_dir

    def state() -> dict[str, bytes]:
        return {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file()}

    before = state()
    yield
    assert state() == before


def search(services, body: bytes, params: dict[str, str] | None = None) -> tuple[int, dict]:
    answer = search_http(
        method="POST", params=params or {}, body=body, content_type="application/json", services=services
    )
    return answer.status, json.loads(answer.payload().decode("utf-8"))


def vectorize(services, body: bytes) -> tuple[int, dict]:
    answer = vectorize_http(method="POST", body=body, content_type="application/json", services=services)
    return answer.status, json.loads(answer.payload().decode("utf-8"))


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --------------------------------------------------------------------------- whole bodies

BAD_BODIES = {
    "deep search": (b'{"text": ' + nested(DEEP) + b"}", "nests arrays or objects too deeply"),
    "deep values": (b'{"values": ' + nested(DEEP) + b"}", "nests arrays or objects too deeply"),
    "deep object": (b'{"a":' * DEEP + b"1" + b"}" * DEEP, "nests arrays or objects too deeply"),
    "long number": (b'{"k": ' + b"7" * 5000 + b"}", "not valid JSON"),
    "not utf-8": (b'{"text": "\xff\xfe"}', "not valid JSON"),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_a_body_no_parser_can_take_is_a_400_naming_the_problem(case, services, stored):
    body, words = BAD_BODIES[case]
    for call in (search, vectorize):
        status, answer = call(services, body)
        assert status == 400 and answer["error"]["code"] == "BadRequest", (call.__name__, answer)
        assert words in answer["error"]["message"]


def test_a_lone_surrogate_in_a_query_is_a_400_naming_where(services, stored):
    status, answer = search(services, b'{"text": "a \\ud800 cat"}')
    assert status == 400 and 'the body["text"] is not valid Unicode' in answer["error"]["message"]
    status, answer = search(services, b'{"text": "a cat", "filter": ["tags=\\udfff"]}')
    assert status == 400 and 'the body["filter"][0]' in answer["error"]["message"]
    status, answer = (
        search_http(
            method="GET", params={"text": "a \udc80 cat"}, body=None, content_type=None, services=services
        ).status,
        None,
    )
    assert status == 400


WRONG_TYPES = [
    {"text": {"a": 1}},
    {"text": 5},
    {"text": "a cat", "k": [1]},
    {"text": "a cat", "k": True},
    {"text": "a cat", "k": 1e308 * 10},
    {"text": "a cat", "threshold": {}},
    {"text": "a cat", "filter": {"tags": "cat"}},
    {"text": "a cat", "filter": [1, 2]},
    {"image_url": 5},
    {"image_url": ["https://example.com/cat.jpg"]},
    {"like": [1]},
    {"image": 5},
    {"image": {"data": "aGk="}},
    ["text", "a cat"],
    "a cat",
    None,
]


@pytest.mark.parametrize("payload", WRONG_TYPES, ids=[json.dumps(p)[:40] for p in WRONG_TYPES])
def test_a_value_of_the_wrong_type_is_a_400(payload, services, stored):
    body = json.dumps(payload).encode() if payload is not None else b"null"
    status, answer = search(services, body)
    assert status == 400, answer
    assert answer["error"]["message"]


# --------------------------------------------------------------------------- vectorize records


def test_a_record_that_cannot_be_read_gets_its_own_error_and_the_rest_are_answered(services, samples_dir, stored):
    import base64

    cat = base64.b64encode((samples_dir / "cat.jpg").read_bytes()).decode()
    records = [
        ("good", {"text": "a cat"}),
        ("\ud800", {"text": "a dog"}),  # a recordId that is no text
        ("surrogate-text", {"text": "a \udfff dog"}),
        ("surrogate-key", {"text": "a dog", "\udc00": 1}),
        ("bad-blob-url", {"image": {"data": cat}, "blobUrl": "http://[::1"}),
        ("number-blob-url", {"image": {"data": cat}, "blobUrl": 5}),
        ("list-data", ["text", "a cat"]),
        ("number-text", {"text": 5}),
        ("object-url", {"imageUrl": {"url": "https://example.com/cat.jpg"}}),
        ("string-file", {"file_data": "https://example.com/cat.jpg"}),
        ("good-image", {"image": {"data": cat}}),
    ]
    body = json.dumps({"values": [{"recordId": r, "data": d} for r, d in records]}).encode()  # \u escapes: ASCII
    status, answer = vectorize(services, body)

    assert status == 200
    answered = {value["recordId"]: value for value in answer["values"]}
    assert list(answered) == [r for r, _ in records]
    for good in ("good", "good-image"):
        assert answered[good]["errors"] is None and len(answered[good]["data"]["vector"]) == 512
    errors = {r: v["errors"][0]["message"] for r, v in answered.items() if v["errors"]}
    assert set(errors) == {r for r, _ in records} - {"good", "good-image"}
    assert "the recordId is not valid Unicode" in errors["\ud800"]
    assert 'data["text"] is not valid Unicode' in errors["surrogate-text"]
    assert "a key in the record's data" in errors["surrogate-key"]
    assert "names no blob" in errors["bad-blob-url"] and "blobUrl' must be a string" in errors["number-blob-url"]
    assert "must be an object" in errors["list-data"] and "must be a string" in errors["number-text"]
    assert "http(s) URL" in errors["object-url"] and "must be an object" in errors["string-file"]


def test_over_http_the_same_bodies_are_400s_and_the_answer_is_utf8_json(services, local_host_factory, stored):
    url = local_host_factory(services)
    deep = requests.post(f"{url}/api/search", data=BAD_BODIES["deep search"][0], timeout=60)
    assert deep.status_code == 400 and "too deeply" in deep.json()["error"]["message"]
    surrogate = requests.post(
        f"{url}/api/search", data=b'{"text": "\\ud800"}', headers={"content-type": "application/json"}, timeout=60
    )
    assert surrogate.status_code == 400 and "not valid Unicode" in surrogate.json()["error"]["message"]
    batch = {"values": [{"recordId": "\ud800", "data": {"text": "a"}}, {"recordId": "ok", "data": {"text": "a cat"}}]}
    answer = requests.post(f"{url}/api/vectorize", data=json.dumps(batch), timeout=60)
    assert answer.status_code == 200
    values = json.loads(answer.content.decode("utf-8"))["values"]
    assert values[0]["recordId"] == "\ud800" and values[0]["errors"]
    assert values[1]["errors"] is None and values[1]["data"]["vector"]


# --------------------------------------------------------------------------- no secret in answers or logs


def test_the_redaction_keeps_what_a_url_means_and_cuts_what_may_be_a_secret():
    assert without_query(f"{BLOB}?{SAS}") == f"{BLOB}?…"
    assert without_query("https://user:password@host:8443/a/b#frag") == "https://host:8443/a/b"
    assert without_query("http://[::1]:7071/api/search?code=key") == "http://[::1]:7071/api/search?…"
    text = f"cannot download {BLOB}?{SAS}: 404 (then 'ftp://h/x?sig=abc')."
    assert redact_urls(text) == f"cannot download {BLOB}?…: 404 (then 'ftp://h/x?…')."
    assert redact_urls("no URL here, k=5") == "no URL here, k=5"
    # An HTTP library's own words name the path and query without scheme or host.
    library = f"HTTPConnectionPool(host='h', port=9): Max retries exceeded with url: /photos/cat.jpg?{SAS} (Caused by"
    assert (
        redact_urls(library)
        == "HTTPConnectionPool(host='h', port=9): Max retries exceeded with url: /photos/cat.jpg?… (Caused by"
    )
    assert redact_urls("give the document key: ?key=...") == "give the document key: ?key=..."  # advice stays


def test_a_sas_token_in_a_records_url_never_reaches_its_error(indexed_samples, stored):
    settings = Settings(IMGSEARCH_DATA_DIR=str(indexed_samples.data_dir))
    plain = build_services(settings, storage=False)
    services = build_services(settings, vectorizer=SayingTheUrl(plain.vectorizer), storage=False)
    records = [
        {"recordId": "url", "data": {"imageUrl": f"{BLOB}?{SAS}"}},
        {"recordId": "file", "data": {"file_data": {"$type": "file", "url": BLOB, "sasToken": f"?{SAS}"}}},
    ]
    status, answer = vectorize(services, json.dumps({"values": records}).encode())
    assert status == 200
    for value in answer["values"]:
        message = value["errors"][0]["message"]
        assert BLOB in message and "sig=" not in message and "S3CRET" not in message, message


def test_a_sas_token_never_reaches_the_search_answer_or_the_function_log(indexed_samples, caplog, stored):
    settings = Settings(IMGSEARCH_DATA_DIR=str(indexed_samples.data_dir))
    plain = build_services(settings, storage=False)
    services = build_services(settings, vectorizer=SayingTheUrl(plain.vectorizer), storage=False)
    spec = importlib.util.spec_from_file_location("function_app_bodies", REPO_ROOT / "functions" / "function_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    trigger = {f.get_function_name(): f for f in module.app.get_functions()}["search"].get_user_function()
    request = func.HttpRequest(
        "POST", "http://localhost/api/search", body=json.dumps({"image_url": f"{BLOB}?{SAS}"}).encode(), headers={}
    )
    with caplog.at_level(logging.DEBUG), worker_services_installed(services):
        response = trigger(request)
    assert response.status_code == 400
    message = json.loads(response.get_body())["error"]["message"]
    assert BLOB in message and "sig=" not in message
    assert BLOB in caplog.text  # the 4xx is logged, at INFO, without its query
    assert "sig=" not in caplog.text and "S3CRET" not in caplog.text


def test_over_http_a_failed_fetch_names_the_url_without_its_query(services, local_host_factory, image_url_server):
    url = local_host_factory(services)
    missing = image_url_server("present.jpg", b"not an image").rsplit("/", 1)[0] + "/absent.jpg"
    closed = "http://127.0.0.1:9/photos/cat.jpg"  # nothing listens: the error is the HTTP library's
    batch = {
        "values": [
            {"recordId": "1", "data": {"imageUrl": f"{missing}?{SAS}"}},
            {"recordId": "2", "data": {"imageUrl": f"{closed}?{SAS}"}},
            {"recordId": "3", "data": {"file_data": {"$type": "file", "url": closed, "sasToken": SAS}}},
        ]
    }
    answer = requests.post(f"{url}/api/vectorize", json=batch, timeout=60)
    assert answer.status_code == 200
    assert all(value["errors"] for value in answer.json()["values"])
    assert "S3CRET" not in answer.text and "sig=" not in answer.text
    searched = requests.post(f"{url}/api/search", json={"image_url": f"{missing}?{SAS}"}, timeout=60)
    assert searched.status_code in (400, 503) and "S3CRET" not in searched.text
