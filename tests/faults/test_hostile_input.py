"""Hostile input on the search endpoint (``http.search_http`` and the Function's HTTP
trigger) and on ``imgsearch search``, against the Azure AI Search double through the real
``AzureSearchBackend`` (OData rendered by our code, parsed and evaluated by the double).

Two outcomes are acceptable, and nothing else:

- the input is refused with a 4xx (an error body naming the problem; exit code 2 for the CLI):
  unknown or unfilterable fields, filters that are not ``field<op>value``, values of the wrong
  type, ``k`` or ``threshold`` out of range or not numbers, texts over the limits;
- the input is a valid query whose hostile *value* stays a value: quotes, OData operators,
  ``tags/any(...)``, 10,000 characters, any unicode. Such a filter matches exactly the
  documents whose field equals that string, which here is none: it never widens to everything.

Never a 5xx, never a changed query. Extra query parameters (``$filter``, ``search``) are not
ours and are ignored (the Functions host itself adds ``code``), so they change nothing either.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path

import azure.functions as func
import numpy as np
import pytest
from azure.core.credentials import AzureKeyCredential
from azure.storage.blob import BlobServiceClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.backends.azure_search import AzureSearchBackend
from indexer.documents import Embedding
from indexer.entrypoints.http import search_http
from indexer.filters import Condition, parse_condition
from indexer.indexing.failures import JsonlFailureLog
from indexer.indexing.pipeline import prepare
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.schema import load_schema
from indexer.services import build_services
from indexer.settings import Settings
from indexer.sources.base import ImageItem
from indexer.vectorizers.vision.client import VisionClient
from tests.fixtures.worker_services import worker_services_installed

REPO_ROOT = Path(__file__).resolve().parents[2]
PHOTOS = {
    "cat.jpg": ["cat", "pet"],
    "dog.jpg": ["dog", "pet"],
    "coffee.jpg": ["coffee"],
    "fire_truck.jpg": ["truck", "red"],
}
INJECTION = "x' or 1 eq 1 or id eq '"


@pytest.fixture(scope="module")
def hostile_world(search_double, vision_server, samples_dir, tmp_path_factory):
    """Four photos in an Azure AI Search index (the double), and the services the search
    endpoint uses: the Vision client against the local server and ``AzureSearchBackend``."""
    index_name = f"hostile-{uuid.uuid4().hex[:12]}"
    backend = AzureSearchBackend(
        search_double.endpoint,
        index_name,
        AzureKeyCredential(search_double.api_key),
        retry_backoff_seconds=0.001,
        retry_backoff_factor=0.001,
    )
    client = VisionClient(vision_server.url, AzureKeyCredential(vision_server.key), model_version=OFFLINE_MULTILINGUAL)
    pin = backend.ensure_index(load_schema(OFFLINE_MULTILINGUAL))
    documents = []
    for name, tags in PHOTOS.items():
        data = (samples_dir / name).read_bytes()
        item = ImageItem(
            identity=f"photos/{name}",
            source=f"https://example.invalid/photos/{name}",
            read=lambda data=data: data,
            fields={"container": "photos", "blob_path": name, "file_name": name, "tags": tags},
        )
        documents.append(prepare(item, client, pin).document)
    assert backend.upsert(documents).ok
    folder = tmp_path_factory.mktemp("hostile")
    settings_ = Settings(
        VISION_ENDPOINT=vision_server.url,
        VISION_KEY=vision_server.key,
        VISION_MODEL_VERSION=OFFLINE_MULTILINGUAL,
        SEARCH_ENDPOINT=search_double.endpoint,
        SEARCH_KEY=search_double.api_key,
        SEARCH_INDEX_NAME=index_name,
        IMGSEARCH_DATA_DIR=str(folder),
    )
    services = build_services(
        settings_,
        vectorizer=client,
        backend=backend,
        blob_service=BlobServiceClient("http://127.0.0.1:9/devstoreaccount1"),  # never called by search
        failures=JsonlFailureLog(folder / "failures.jsonl"),
    )
    yield services
    client.close()
    backend.close()
    with search_double.service.lock:
        search_double.service.indexes.pop(index_name, None)


@pytest.fixture(scope="module")
def function_app(hostile_world):
    spec = importlib.util.spec_from_file_location("function_app_hostile", REPO_ROOT / "functions" / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.indexed_functions = {f.get_function_name(): f for f in module.app.get_functions()}
    with worker_services_installed(hostile_world):  # what get_services() hands the HTTP trigger
        yield module


def via_handler(services, method="GET", params=None, body=None, content_type=None) -> tuple[int, dict]:
    answer = search_http(method=method, params=params or {}, body=body, content_type=content_type, services=services)
    return answer.status, answer.body


def via_trigger(function_app, method="GET", params=None, body=None, content_type=None) -> tuple[int, dict]:
    headers = {"content-type": content_type} if content_type else {}
    request = func.HttpRequest(
        method=method, url="http://localhost/api/search", headers=headers, params=params or {}, body=body or b""
    )
    response = function_app.indexed_functions["search"].get_user_function()(request)
    return response.status_code, json.loads(response.get_body())


def names(body: dict) -> list[str]:
    return [r["fields"]["file_name"] for r in body["results"]]


# Valid queries whose hostile values must stay values: 200 and nothing matches.
MATCH_NOTHING = {
    "quote injection": {"text": "a cat", "filter": f"file_name={INJECTION}"},
    "closing the literal": {"text": "a cat", "filter": "file_name=cat.jpg' or file_name ne 'x"},
    "lambda injection in a tag": {"text": "a cat", "filter": "tags=cat') or tags/any(t: t ne '"},
    "not-equal injection": {"text": "a cat", "filter": "source=' or ''='"},
    "odata keywords as a value": {"text": "a cat", "filter": "content_type=null or true"},
    "10k characters": {"text": "a cat", "filter": "file_name=" + "ab'" * 3334},
    "unicode and controls": {"text": "猫", "filter": "file_name=猫.jpg\u202e\u0000' or 'a'='a"},
    "smart quotes": {"text": "a cat", "filter": "file_name=\u2019 or 1 eq 1 or \u2018"},
}

# Input that must be refused with a 4xx and an error naming the problem.
REFUSED = {
    "lambda as a filter": ({"text": "a cat", "filter": "tags/any(t: t eq 'cat')"}, 400, "InvalidFilter"),
    "odata expression as a filter": ({"text": "a cat", "filter": "id eq 'x' or 1 eq 1"}, 400, "InvalidFilter"),
    "$filter as a field": ({"text": "a cat", "filter": "$filter=id ne ''"}, 400, "InvalidFilter"),
    "unknown field": ({"text": "a cat", "filter": "colour=red"}, 400, "InvalidFilter"),
    "the vector as a field": ({"text": "a cat", "filter": "image_vector=1"}, 400, "InvalidFilter"),
    "unicode field name": ({"text": "a cat", "filter": "fïle_name=x"}, 400, "InvalidFilter"),
    "number with an operator": ({"text": "a cat", "filter": "size_bytes=1 or 1 eq 1"}, 400, "InvalidFilter"),
    "date with an operator": (
        {"text": "a cat", "filter": "last_modified>=2020-01-01T00:00:00Z or true"},
        400,
        "InvalidFilter",
    ),
    "k of a billion": ({"text": "a cat", "k": "1000000000"}, 400, "BadRequest"),
    "negative k": ({"text": "a cat", "k": "-1"}, 400, "BadRequest"),
    "k with an operator": ({"text": "a cat", "k": "10 or 1 eq 1"}, 400, "BadRequest"),
    "k in exponent form": ({"text": "a cat", "k": "1e3"}, 400, "BadRequest"),
    "threshold nan": ({"text": "a cat", "threshold": "nan"}, 400, "BadRequest"),
    "threshold infinite": ({"text": "a cat", "threshold": "-inf"}, 400, "BadRequest"),
    "threshold overflowing": ({"text": "a cat", "threshold": "1e309"}, 400, "BadRequest"),
    "1 MB of words": ({"text": "cat " * 262_144}, 400, "InputLimitExceeded"),
    # 80 pieces of a script written without spaces: the client lets the service count the words
    # (undocumented for such text), and the service refuses them.
    "80 unspaced words": ({"text": " ".join(["猫"] * 80)}, 400, "InvalidParameter"),
    # Azure's answer for a URL it cannot fetch has no inner code: the outer one is reported.
    "image url with an injection": ({"image_url": f"http://127.0.0.1:9/{INJECTION}"}, 400, "InvalidRequest"),
}

# Valid to Azure however odd: answered 200 (Azure limits words, not characters; the Vision
# stand-in vectorizes the first characters its offline model reads).
ACCEPTED = {
    "1 MB in one word": {"text": "c" * 1_000_000},
}


# The cases go through the handler; the HTTP trigger only adapts the request to it, which
# test_the_http_trigger_answers_as_the_handler_does checks with one case of each kind.
@pytest.mark.parametrize("case", sorted(MATCH_NOTHING))
def test_hostile_filter_values_stay_values_and_match_nothing(case, hostile_world):
    status, body = via_handler(hostile_world, params=MATCH_NOTHING[case])
    assert status == 200, body
    assert body["count"] == 0 and body["results"] == []


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_input_is_refused_with_a_4xx_that_names_the_problem(case, hostile_world):
    params, expected_status, code = REFUSED[case]
    status, body = via_handler(hostile_world, params=params)
    assert status == expected_status, body
    assert body["error"]["code"] == code and body["error"]["message"]


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_odd_but_valid_input_is_answered(case, hostile_world):
    status, body = via_handler(hostile_world, params=ACCEPTED[case])
    assert status == 200, body


@pytest.mark.parametrize(
    "params",
    [MATCH_NOTHING["quote injection"], REFUSED["lambda as a filter"][0], REFUSED["k of a billion"][0]],
    ids=["match-nothing", "refused-filter", "refused-k"],
)
def test_the_http_trigger_answers_as_the_handler_does(params, hostile_world, function_app):
    assert via_trigger(function_app, params=params) == via_handler(hostile_world, params=params)


def test_the_plain_query_finds_everything_so_match_nothing_means_something(hostile_world):
    status, body = via_handler(hostile_world, params={"text": "a cat"})
    assert status == 200 and sorted(names(body)) == sorted(PHOTOS)
    status, body = via_handler(hostile_world, params={"text": "a cat", "filter": "file_name=cat.jpg"})
    assert status == 200 and names(body) == ["cat.jpg"]
    status, body = via_handler(hostile_world, params={"text": "a cat", "filter": "tags=pet"})
    assert status == 200 and sorted(names(body)) == ["cat.jpg", "dog.jpg"]


@pytest.mark.parametrize(
    "extra",
    [
        {"$filter": "file_name eq 'cat.jpg'"},
        {"$filter": INJECTION},
        {"search": "*", "$top": "1000", "$select": "*"},
        {"code": "function-key"},
    ],
)
def test_parameters_that_are_not_ours_change_nothing(extra, hostile_world, function_app):
    _, plain = via_handler(hostile_world, params={"text": "a dog"})
    for status, body in (
        via_handler(hostile_world, params={"text": "a dog", **extra}),
        via_trigger(function_app, params={"text": "a dog", **extra}),
    ):
        assert status == 200 and body["results"] == plain["results"]


@pytest.mark.parametrize(
    "payload, status, code",
    [
        ({"text": "a cat", "filter": [f"file_name={INJECTION}", "tags=cat"]}, 200, None),
        ({"text": "a cat", "filter": {"file_name": "cat.jpg"}}, 400, "BadRequest"),
        ({"text": "a cat", "filter": [["tags=cat"]]}, 400, "BadRequest"),
        ({"text": "a cat", "k": 1e9}, 400, "BadRequest"),
        ({"text": "a cat", "k": True}, 400, "BadRequest"),
        ({"text": "a cat", "threshold": float("nan")}, 400, "BadRequest"),
        ({"text": ["a", "cat"]}, 400, "BadRequest"),
        ({"text": {"$ne": None}}, 400, "BadRequest"),
        ({"text": "a cat", "$filter": "id ne ''", "filters": f"file_name={INJECTION}"}, 200, None),
    ],
)
def test_hostile_json_bodies(payload, status, code, hostile_world):
    body = json.dumps(payload, allow_nan=True).encode()
    got, answer = via_handler(hostile_world, "POST", body=body, content_type="application/json")
    assert got == status, answer
    if code is None:
        assert answer["count"] == 0  # hostile value: no match, not everything
    else:
        assert answer["error"]["code"] == code


# --------------------------------------------------------------------------- any string at all

FILTERABLE_STRINGS = ("file_name", "source", "content_type", "tags", "id")


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    field=st.sampled_from(FILTERABLE_STRINGS),
    value=st.one_of(
        st.text(max_size=60),
        st.sampled_from(
            ["cat.jpg", "pet", "'", "''", "' or '1'='1", "*", "x') or true or ('", "cat.jpg' or 'a' eq 'a"]
        ),
    ),
)
def test_any_string_value_selects_exactly_the_documents_equal_to_it(field, value, hostile_world):
    """Whatever the string, ``field=value`` through the backend and the double selects the
    documents whose field equals the parsed value (for tags: holds it), computed here
    independently from the stored documents: hostile strings select none, real ones theirs."""
    backend = hostile_world.backend
    condition = parse_condition(f"{field}={value}")
    stored = {key: backend.get(key) for key in backend.keys_with_hashes()}

    def holds(fields: dict, key: str) -> bool:
        actual = key if field == "id" else fields.get(field)
        return condition.value in actual if isinstance(actual, list) else actual == condition.value

    expected = sorted(key for key, fields in stored.items() if holds(fields, key))
    query = np.ones(512, dtype=np.float32)
    hits = backend.search(Embedding(query, OFFLINE_MULTILINGUAL), k=10, filters=[condition])
    assert sorted(hit.key for hit in hits) == expected


def test_a_condition_value_is_data_even_when_built_directly(hostile_world):
    """The backend's own API takes ``Condition`` objects; a value there is never syntax either."""
    hits = hostile_world.backend.search(
        Embedding(np.ones(512, dtype=np.float32), OFFLINE_MULTILINGUAL),
        k=10,
        filters=[Condition("file_name", "ne", INJECTION), Condition("file_name", "eq", INJECTION)],
    )
    assert hits == []


# --------------------------------------------------------------------------- imgsearch search


@pytest.fixture
def cli_env(hostile_world) -> dict[str, str]:
    s = hostile_world.settings
    return {
        "VISION_ENDPOINT": s.vision_endpoint,
        "VISION_KEY": s.vision_key,
        "VISION_MODEL_VERSION": OFFLINE_MULTILINGUAL,
        "SEARCH_ENDPOINT": s.search_endpoint,
        "SEARCH_KEY": s.search_key,
        "SEARCH_INDEX_NAME": s.search_index_name,
    }


@pytest.mark.parametrize(
    "case", ["quote injection", "lambda injection in a tag", "10k characters", "unicode and controls"]
)
def test_cli_hostile_filter_values_match_nothing(case, run_cli, cli_env):
    params = MATCH_NOTHING[case]
    result = run_cli(
        "search", params["text"], "--filter", params["filter"].replace("\u0000", ""), "--json", env=cli_env
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize(
    "args, exit_code, words",
    [
        (["a cat", "--filter", "tags/any(t: t eq 'cat')"], 2, "cannot parse filter"),
        (["a cat", "--filter", "id eq 'x' or 1 eq 1"], 2, "cannot parse filter"),
        (["a cat", "--filter", "colour=red"], 2, "colour"),
        (["a cat", "--filter", "size_bytes=1 or 1 eq 1"], 2, "size_bytes"),
        (["a cat", "-k", "1000000000"], 2, "k must be"),
        (["a cat", "--threshold", "nan"], 2, "threshold"),
        (["cat " * 262_144], 2, "70 words"),
        # Refused by the Vision service (its 400): a bad argument all the same, named.
        ([" ".join(["猫"] * 80)], 2, "80 words"),
    ],
)
def test_cli_refuses_hostile_input_with_one_clear_line(args, exit_code, words, run_cli, cli_env):
    result = run_cli("search", *args, env=cli_env)
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
