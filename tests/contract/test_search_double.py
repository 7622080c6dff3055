"""The Azure AI Search double is as strict as the service for what imgsearch sends: the real SDK
and raw HTTP requests get the service's status codes and error shape; what imgsearch never sends
gets the double's one "not served" 400."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import requests
from azure.core.credentials import AccessToken, AzureKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.search.documents import SearchClient
from azure.search.documents.indexes import SearchIndexClient
from azure.search.documents.indexes.models import SearchIndex
from azure.search.documents.models import VectorizableTextQuery, VectorizedQuery
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.backends.azure_search.odata import quote_string
from indexer.schema import load_schema
from standins.search.odata_parser import FieldSpec, ODataError, compile_filter
from standins.search.service import FaultConfig, SearchDoubleConfig, create_app, serve_in_thread
from tests.fixtures.clock import ManualClock
from tests.fixtures.search_double import RunningSearchDouble, tiny_schema

API = "2026-04-01"


def url(double: RunningSearchDouble, path: str) -> str:
    return f"{double.endpoint}{path}"


def admin(double: RunningSearchDouble) -> dict[str, str]:
    return {"api-key": double.api_key}


def put_index(double: RunningSearchDouble, name: str, body: dict[str, Any]) -> requests.Response:
    return requests.put(
        url(double, f"/indexes('{name}')"), params={"api-version": API}, json=body, headers=admin(double), timeout=10
    )


def create_tiny_index(double: RunningSearchDouble, name: str, dimensions: int = 4) -> dict[str, Any]:
    response = put_index(double, name, tiny_schema(dimensions).named(name))
    assert response.status_code == 201, response.text
    return response.json()


def post_batch(double: RunningSearchDouble, name: str, actions: list[dict[str, Any]]) -> requests.Response:
    return requests.post(
        url(double, f"/indexes('{name}')/docs/search.index"),
        params={"api-version": API},
        json={"value": actions},
        headers=admin(double),
        timeout=30,
    )


def assert_error(response: requests.Response, status: int, *fragments: str, code: str | None = None) -> dict[str, Any]:
    """Azure's error shape; ``code`` when given is the exact code (Azure sends "" for some)."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["code"], str)
    if code is None:
        assert error["code"]
    else:
        assert error["code"] == code
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return error


def count(double: RunningSearchDouble, name: str) -> int:
    response = requests.get(
        url(double, f"/indexes('{name}')/docs/$count"), params={"api-version": API}, headers=admin(double), timeout=10
    )
    assert response.status_code == 200
    return int(response.text)


# --- index definitions -----------------------------------------------------------------------


def test_created_index_reads_back_with_service_defaults(search_double, search_index_name):
    client = SearchIndexClient(search_double.endpoint, search_double.credential)
    schema = load_schema("2023-04-15")
    client.create_index(SearchIndex(schema.named(search_index_name)))

    raw = requests.get(
        url(search_double, f"/indexes('{search_index_name}')"),
        params={"api-version": API},
        headers=admin(search_double),
        timeout=10,
    )
    assert raw.status_code == 200
    body = raw.json()
    assert body["@odata.context"].endswith("$metadata#indexes/$entity")
    assert body["@odata.etag"] == raw.headers["ETag"]
    vector = next(f for f in body["fields"] if f["name"] == "image_vector")
    assert vector["dimensions"] == 1024 and vector["vectorSearchProfile"] == "image-vector-profile"
    assert body["vectorSearch"]["algorithms"][0]["hnswParameters"]["metric"] == "cosine"
    assert body["description"] == schema.definition["description"]


@pytest.mark.parametrize("name", ["A-upper", "x", "-leading", "double--dash", "double__under", "dot.name", "n" * 129])
def test_invalid_index_names_are_refused(search_double, name):
    body = tiny_schema().named(name)
    response = requests.post(
        url(search_double, "/indexes"), params={"api-version": API}, json=body, headers=admin(search_double), timeout=10
    )
    assert_error(response, 400, "Invalid index name")
    client = SearchIndexClient(search_double.endpoint, search_double.credential)
    with pytest.raises(HttpResponseError) as raised:
        client.create_index(SearchIndex(body))
    assert raised.value.status_code == 400
    assert name not in search_double.service.indexes


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d["fields"].append({"name": "azureSearchX", "type": "Edm.String"}), "Invalid field name"),
        (lambda d: d["fields"].append({"name": "9lives", "type": "Edm.String"}), "Invalid field name"),
        (lambda d: d["fields"].append({"name": "width", "type": "Edm.Int32"}), "used more than once"),
        (lambda d: d["fields"][1].pop("dimensions"), "must have the properties 'dimensions'"),
        (lambda d: d["fields"][1].update(vectorSearchProfile="nope"), "not defined in vectorSearch"),
        (lambda d: d["fields"][1].update(filterable=True), "cannot be filterable"),
        (lambda d: d["fields"][0].update(key=False), "exactly one key field"),
        (lambda d: d["vectorSearch"]["algorithms"][0]["hnswParameters"].update(m=50), "between 4 and 10"),
        (lambda d: next(f for f in d["fields"] if f["name"] == "tags").update(sortable=True), "cannot be sortable"),
        (lambda d: d["fields"][2].update(searchable=True, type="Edm.Int32"), "only string and vector fields"),
        (lambda d: d.update(name="another-index"), "does not match the name"),
    ],
)
def test_invalid_definitions_are_refused(search_double, search_index_name, mutate, fragment):
    body = tiny_schema().named(search_index_name)
    mutate(body)
    response = put_index(search_double, search_index_name, body)
    assert_error(response, 400, fragment)
    assert search_index_name not in search_double.service.indexes


def test_an_update_may_add_fields_but_not_change_existing_ones(search_double, search_index_name):
    client = SearchIndexClient(search_double.endpoint, search_double.credential)
    definition = tiny_schema().named(search_index_name)
    client.create_or_update_index(SearchIndex(definition))

    added = json.loads(json.dumps(definition))
    added["fields"].append({"name": "caption", "type": "Edm.String"})
    updated = client.create_or_update_index(SearchIndex(added))
    assert "caption" in [f.name for f in updated.fields]

    retyped = json.loads(json.dumps(added))
    next(f for f in retyped["fields"] if f["name"] == "width")["type"] = "Edm.Int64"
    with pytest.raises(HttpResponseError) as raised:
        client.create_or_update_index(SearchIndex(retyped))
    assert raised.value.status_code == 400 and raised.value.error.code == "OperationNotAllowed"
    assert raised.value.error.message == "Existing field 'width' cannot be changed."  # as live answers say it
    assert [d.code for d in raised.value.error.details] == ["CannotChangeExistingField"]

    dropped = json.loads(json.dumps(added))
    dropped["fields"] = [f for f in dropped["fields"] if f["name"] != "tags"]
    with pytest.raises(HttpResponseError) as raised:
        client.create_or_update_index(SearchIndex(dropped))
    assert "'tags'" in raised.value.message
    assert [f.name for f in client.get_index(search_index_name).fields] == [f["name"] for f in added["fields"]]


def test_creating_an_existing_index_is_400_as_live_and_deleting_twice_is_not_found(search_double, search_index_name):
    create_tiny_index(search_double, search_index_name)
    again = requests.post(
        url(search_double, "/indexes"),
        params={"api-version": API},
        json=tiny_schema(4).named(search_index_name),
        headers=admin(search_double),
        timeout=10,
    )
    # azure-sdk-for-net#38026 quotes the live answer: 400, not 409.
    error = assert_error(again, 400, "already exists", code="ResourceNameAlreadyInUse")
    assert [d["code"] for d in error["details"]] == ["CannotCreateExistingIndex"]
    client = SearchIndexClient(search_double.endpoint, search_double.credential)
    with pytest.raises(HttpResponseError) as raised:
        client.create_index(SearchIndex(tiny_schema(4).named(search_index_name)))
    assert raised.value.status_code == 400 and not isinstance(raised.value, ResourceExistsError)
    first = requests.delete(
        url(search_double, f"/indexes('{search_index_name}')"),
        params={"api-version": API},
        headers=admin(search_double),
        timeout=10,
    )
    assert first.status_code == 204
    second = requests.delete(
        url(search_double, f"/indexes('{search_index_name}')"),
        params={"api-version": API},
        headers=admin(search_double),
        timeout=10,
    )
    # A missing index's 404 carries an empty code (Azure-Samples/azure-search-openai-demo#79).
    assert_error(second, 404, f"The index '{search_index_name}'", "was not found", code="")


def test_reads_of_a_missing_index_are_404_with_an_empty_code(search_double, search_index_name):
    client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
    for read in (client.get_document_count, lambda: client.get_document("a"), lambda: list(client.search("*"))):
        with pytest.raises(ResourceNotFoundError) as raised:
            read()
        assert raised.value.status_code == 404
    for path in (f"/indexes('{search_index_name}')", f"/indexes('{search_index_name}')/docs/$count"):
        response = requests.get(
            url(search_double, path), params={"api-version": API}, headers=admin(search_double), timeout=10
        )
        assert_error(response, 404, "was not found", code="")


def test_a_missing_document_is_404_without_a_body(search_double, search_index_name):
    create_tiny_index(search_double, search_index_name)
    response = requests.get(
        url(search_double, f"/indexes('{search_index_name}')/docs('nope')"),
        params={"api-version": API},
        headers=admin(search_double),
        timeout=10,
    )
    assert response.status_code == 404 and response.content == b""
    with pytest.raises(ResourceNotFoundError):
        SearchClient(search_double.endpoint, search_index_name, search_double.credential).get_document("nope")


# --- documents -------------------------------------------------------------------------------


def test_batch_answers_per_document_with_the_service_shape(search_double, search_index_name):
    create_tiny_index(search_double, search_index_name)
    first = post_batch(
        search_double,
        search_index_name,
        [{"@search.action": "upload", "id": "a", "source": "s", "width": 5, "image_vector": [1, 0, 0, 0]}],
    )
    assert first.status_code == 200
    assert first.json()["value"] == [{"key": "a", "status": True, "errorMessage": None, "statusCode": 201}]

    again = post_batch(
        search_double,
        search_index_name,
        [
            {"@search.action": "upload", "id": "a", "source": "t"},
            {"@search.action": "delete", "id": "never-there", "source": "ignored"},
        ],
    )
    assert again.status_code == 200
    assert {r["key"]: r["statusCode"] for r in again.json()["value"]} == {"a": 200, "never-there": 200}

    client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
    document = client.get_document("a")
    assert document["source"] == "t" and document["width"] is None  # upload replaced the whole document
    assert "image_vector" not in document  # not retrievable
    assert client.get_document("a", selected_fields=["source"]) == {"source": "t"}
    assert client.get_document_count() == 1


@pytest.mark.parametrize(
    "action, status, fragment",
    [
        ({"id": "a", "image_vector": [1, 0, 0]}, 400, "mismatch in vector dimensions"),
        ({"id": "a", "image_vector": [1, 0, "x", 0]}, 400, "array of numbers"),
        ({"id": "a", "colour": "red"}, 400, "The property 'colour' does not exist on type 'search.documentFields'"),
        ({"id": "a", "width": "wide"}, 400, "Edm.Int32"),
        ({"id": "a", "width": 2**40}, 400, "Edm.Int32"),
        ({"id": "a", "last_modified": "2024-05-01"}, 400, "Edm.DateTimeOffset"),
        ({"id": "a", "tags": "cat"}, 400, "must be an array"),
        ({"id": "_a"}, 400, "leading underscore"),
        ({"id": "a/b"}, 400, "Keys can only contain letters"),
        ({"id": "k" * 1025}, 400, "longer than 1024"),
        ({"source": "no key"}, 400, "Document key cannot be missing or empty."),
        ({"@search.action": "replace", "id": "a"}, 400, "not a valid @search.action"),
    ],
)
def test_a_bad_action_fails_the_whole_batch(search_double, search_index_name, action, status, fragment):
    create_tiny_index(search_double, search_index_name)
    good = {"@search.action": "upload", "id": "good", "image_vector": [0, 1, 0, 0]}
    response = post_batch(search_double, search_index_name, [good, {"@search.action": "upload", **action}])
    error = response.json()["error"]
    assert response.status_code == status and fragment in error["message"], response.text
    if "colour" in action:
        # Read with the body: an empty code (Azure-Samples/azure-search-openai-demo#2823).
        assert error["code"] == "" and "or is not present in the API version '2026-04-01'" in error["message"]
    else:
        # OperationNotAllowed, the action numbered, its own code in details (azure-sdk-for-net#24607).
        assert error["code"] == "OperationNotAllowed"
        assert error["message"].startswith("The request is invalid. Details: actions : 1: ")
        assert error["details"][0]["message"].startswith("1: ")
        if "source" in action and "id" not in action:
            assert error["details"][0]["code"] == "MissingKeyField"
    assert count(search_double, search_index_name) == 0  # nothing applied, not even the good one

    if "@search.action" not in action:  # the SDK's upload_documents sets the action itself
        client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
        with pytest.raises(HttpResponseError) as raised:
            client.upload_documents([action])
        assert raised.value.status_code == status and fragment in raised.value.message


def test_too_large_terms_fail_only_their_document(search_double, search_index_name):
    create_tiny_index(search_double, search_index_name)
    response = post_batch(
        search_double,
        search_index_name,
        [
            {"@search.action": "upload", "id": "ok", "file_name": "a.jpg"},
            {"@search.action": "upload", "id": "huge", "file_name": "x" * 40_000},
        ],
    )
    assert response.status_code == 207
    results = {r["key"]: r for r in response.json()["value"]}
    assert results["ok"]["status"] is True
    assert results["huge"]["statusCode"] == 400 and "too large" in results["huge"]["errorMessage"]
    assert count(search_double, search_index_name) == 1


def test_batch_limits_are_enforced(search_double, search_index_name):
    create_tiny_index(search_double, search_index_name)
    too_many = [{"@search.action": "delete", "id": f"k{i}"} for i in range(1001)]
    assert_error(post_batch(search_double, search_index_name, too_many), 400, "from 1 to 1000")
    assert_error(post_batch(search_double, search_index_name, []), 400, "from 1 to 1000")
    body = json.dumps({"value": [{"@search.action": "upload", "id": "big", "source": "s" * (16 * 1024 * 1024)}]})
    response = requests.post(
        url(search_double, f"/indexes('{search_index_name}')/docs/search.index"),
        params={"api-version": API},
        data=body,
        headers={**admin(search_double), "Content-Type": "application/json"},
        timeout=60,
    )
    assert_error(response, 413, "too large")
    assert count(search_double, search_index_name) == 0


# --- queries ---------------------------------------------------------------------------------


def seed_documents(double: RunningSearchDouble, name: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(n, 4)).astype(np.float32)
    actions = [
        {
            "@search.action": "upload",
            "id": f"k{i:04d}",
            "source": f"src-{i}",
            "width": i,
            "tags": ["even"] if i % 2 == 0 else ["odd"],
            "image_vector": vectors[i].tolist(),
        }
        for i in range(n)
    ]
    assert post_batch(double, name, actions).status_code == 200
    return vectors


@pytest.mark.parametrize(
    "odata_filter, fragment",
    [
        ("width eq", "Syntax error"),
        ("source eq 'unclosed", "never closed"),
        ("colour eq 'red'", "Could not find a property named 'colour'"),
        ("width eq 'ten'", "incompatible types"),
        ("tags eq 'odd'", "collection"),
        ("tags/any(t: t ne 'odd')", "lambda expression"),
        ("not width gt 5", "unary operator"),
        ("image_vector eq null", "not filterable"),
        ("width eq n", "compares a field with a constant"),
    ],
)
def test_malformed_or_invalid_filters_are_refused(search_double, search_index_name, odata_filter, fragment):
    create_tiny_index(search_double, search_index_name)
    client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
    with pytest.raises(HttpResponseError) as raised:
        list(client.search(search_text="*", filter=odata_filter, top=10))
    assert raised.value.status_code == 400 and raised.value.error.code == ""
    assert "Invalid expression" in raised.value.message and fragment in raised.value.message


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"select": ["colour"]}, "Could not find a property named 'colour'"),
        ({"select": ["image_vector"]}, "not retrievable"),
        ({"order_by": ["tags asc"]}, "not sortable"),
        ({"skip": 100_001}, "Value must be between 0 and 100000"),
    ],
)
def test_unknown_or_unusable_fields_in_select_and_orderby_are_refused(
    search_double, search_index_name, options, fragment
):
    create_tiny_index(search_double, search_index_name)
    client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
    with pytest.raises(HttpResponseError) as raised:
        list(client.search(search_text="*", top=10, **options))
    assert raised.value.status_code == 400 and fragment in raised.value.message


def test_vector_query_scores_follow_the_documented_cosine_relation(search_double, search_index_name):
    create_tiny_index(search_double, search_index_name)
    vectors = seed_documents(search_double, search_index_name, 20)
    query = np.array([0.3, -1.0, 0.2, 0.5], dtype=np.float32)
    client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
    results = list(
        client.search(
            search_text=None,
            vector_queries=[VectorizedQuery(vector=query.tolist(), k_nearest_neighbors=5, fields="image_vector")],
            filter="tags/any(t: t eq 'even')",
            select=["id"],
            top=5,
        )
    )
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosines = unit @ (query / np.linalg.norm(query))
    even = [i for i in range(20) if i % 2 == 0]
    expected = sorted(even, key=lambda i: -cosines[i])[:5]
    assert [r["id"] for r in results] == [f"k{i:04d}" for i in expected]
    for row, i in zip(results, expected, strict=False):
        assert row["@search.score"] == pytest.approx(1 / (1 + (1 - cosines[i])), abs=1e-6)

    with pytest.raises(HttpResponseError) as raised:
        list(
            client.search(
                search_text=None,
                vector_queries=[VectorizedQuery(vector=[1.0, 2.0], k_nearest_neighbors=3, fields="image_vector")],
                top=3,
            )
        )
    assert raised.value.status_code == 400 and "dimensions" in raised.value.message


def test_a_text_vector_query_without_a_vectorizer_says_so(search_double, search_index_name):
    create_tiny_index(search_double, search_index_name)
    client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
    query = VectorizableTextQuery(text="a red bus", k_nearest_neighbors=2, fields="image_vector")
    with pytest.raises(HttpResponseError) as raised:
        list(client.search(search_text=None, vector_queries=[query], top=2))
    assert raised.value.status_code == 400
    # The live text, quoted in Azure-Samples/azure-search-openai-demo#2679.
    assert raised.value.error.code == "InvalidVectorQuery"
    assert "Field 'image_vector' does not have a vectorizer defined in it's vector profile." in raised.value.message
    assert "not a valid parameter" not in raised.value.message


def test_pages_are_ordered_by_key_and_skip_as_the_listing_asks(search_double, search_index_name):
    create_tiny_index(search_double, search_index_name)
    seed_documents(search_double, search_index_name, 60)
    client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)

    def page(**options) -> list[str]:
        return [r["id"] for r in client.search(search_text="*", select=["id"], **options)]

    assert page(order_by=["id asc"], top=5) == [f"k{i:04d}" for i in range(5)]
    assert page(order_by=["id asc"], filter="id gt 'k0004'", top=5) == [f"k{i:04d}" for i in range(5, 10)]
    assert page(order_by=["width desc"], skip=10, top=3) == ["k0049", "k0048", "k0047"]
    assert len(page(skip=58, top=5)) == 2
    assert len(page(filter="width lt 50")) == 50  # without top: 50, the service's default page
    with pytest.raises(HttpResponseError) as raised:  # more would need a next page
        page(filter="width lt 51")
    assert raised.value.error.code == "NotSupportedByStandIn" and "paging" in raised.value.message


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_quoted_value_is_one_literal_to_the_parser(text):
    fields = {"source": FieldSpec("source", "Edm.String"), "id": FieldSpec("id", "Edm.String")}
    matches = compile_filter(f"source eq {quote_string(text)}", fields)
    # Exactly one equality: the value itself matches, nothing else does (an injected
    # "or true" would match the other documents too).
    assert matches({"source": text, "id": "y"})
    assert not matches({"source": text + "x", "id": "y"})
    assert not matches({"source": None, "id": "y"})


def test_unquoted_injection_would_change_the_query_but_quoted_cannot(search_double, search_index_name):
    create_tiny_index(search_double, search_index_name)
    seed_documents(search_double, search_index_name, 5)
    evil = "x' or true or id eq 'y"
    post_batch(search_double, search_index_name, [{"@search.action": "upload", "id": "evil", "source": evil}])
    client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
    with pytest.raises(HttpResponseError) as raised:  # pasted without escaping, the value became "or true"
        list(client.search(search_text="*", filter=f"source eq '{evil}'", top=10))
    assert raised.value.error.code == "NotSupportedByStandIn" and "'or'" in raised.value.message
    quoted = [r["id"] for r in client.search(search_text="*", filter=f"source eq {quote_string(evil)}", top=10)]
    assert quoted == ["evil"]


@pytest.mark.parametrize(
    "odata_filter, expected",
    [
        ("width ge 2 and width lt 4", {2, 3}),
        ("not (width gt 3) and (width ne 1)", {0, 2, 3}),
        ("(tags/any(t: t eq 'odd')) and (width ne 1)", {3, 5}),
        ("not tags/any(t: t eq 'odd')", {0, 2, 4}),
        ("id gt 'k0003'", {4, 5}),
        ("search.in(id, 'k0000,k0005,k9999', ',')", {0, 5}),
        ("last_modified eq null and width gt 3", {4, 5}),
    ],
)
def test_filters_select_the_documents_odata_describes(search_double, search_index_name, odata_filter, expected):
    create_tiny_index(search_double, search_index_name)
    seed_documents(search_double, search_index_name, 6)
    client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
    found = {int(r["id"][1:]) for r in client.search(search_text="*", filter=odata_filter, top=10)}
    assert found == expected


def test_odata_parser_refuses_what_the_service_refuses():
    fields = {"n": FieldSpec("n", "Edm.Int32"), "ok": FieldSpec("ok", "Edm.Boolean")}
    for bad in (
        "n eq 1 eq 2",
        "n gt null",
        "ok gt true",
        "n eq 99999999999999999999",
        "(n eq 1",
        "n eq n",
        "N eq 1",
        "n EQ 1",
        "",
    ):
        with pytest.raises(ODataError):
            compile_filter(bad, fields)
    assert compile_filter("ok eq true", fields)({"ok": True}) and not compile_filter("ok eq true", fields)({"ok": None})
    assert compile_filter("not (ok eq true)", fields)({"ok": None})


# --- protocol: api-version and authentication ------------------------------------------------


def test_api_version_is_required(search_double):
    missing = requests.get(url(search_double, "/indexes('x')"), headers=admin(search_double), timeout=10)
    assert_error(missing, 400, "api-version", code="MissingApiVersionParameter")


def test_keys_and_tokens_are_checked(search_double, search_index_name):
    create_tiny_index(search_double, search_index_name)
    path = url(search_double, f"/indexes('{search_index_name}')/docs/$count")
    params = {"api-version": API}
    assert_error(requests.get(path, params=params, timeout=10), 401, "missing")
    assert_error(requests.get(path, params=params, headers={"api-key": "wrong"}, timeout=10), 403, code="Forbidden")
    bearer = {"Authorization": f"Bearer {search_double.bearer_token}"}
    assert requests.get(path, params=params, headers=bearer, timeout=10).text == "0"
    assert_error(requests.get(path, params=params, headers={"Authorization": "Bearer nope"}, timeout=10), 401)

    with pytest.raises(HttpResponseError) as raised:
        SearchClient(search_double.endpoint, search_index_name, AzureKeyCredential("wrong")).get_document_count()
    assert raised.value.status_code == 403

    class StaticToken:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            assert scopes == ("https://search.azure.com/.default",)
            return AccessToken(search_double.bearer_token, 2**31)

    client = SearchClient(search_double.endpoint, search_index_name, StaticToken())
    assert client.get_document_count(enforce_https=False) == 0  # the double speaks plain HTTP


def test_an_empty_or_unparsable_body_is_400(search_double):
    for body in (b"", b"{not json"):
        response = requests.post(
            url(search_double, "/indexes"),
            params={"api-version": API},
            data=body,
            headers={**admin(search_double), "Content-Type": "application/json"},
            timeout=10,
        )
        error = assert_error(response, 400, code="InvalidRequestParameter")
        assert error["details"][0]["code"] == "InvalidRequestBody"


# --- indexing latency ------------------------------------------------------------------------


@pytest.fixture
def delayed_double():
    """A double whose writes become visible 5 (fake) seconds after they are answered."""
    clock = ManualClock()
    app = create_app(SearchDoubleConfig(visibility_delay_seconds=5.0, clock=clock))
    with serve_in_thread(app=app) as endpoint:
        yield endpoint, clock, app.state.service


def test_writes_become_visible_to_reads_only_after_the_delay(delayed_double):
    endpoint, clock, _ = delayed_double
    credential = AzureKeyCredential("any")
    SearchIndexClient(endpoint, credential).create_index(SearchIndex(tiny_schema(4).named("late")))
    client = SearchClient(endpoint, "late", credential)
    client.upload_documents([{"id": "a", "source": "first", "image_vector": [1, 0, 0, 0]}])
    # Answered 200, but not yet searchable, countable or readable ...
    assert client.get_document_count() == 0
    with pytest.raises(ResourceNotFoundError):
        client.get_document("a")
    assert list(client.search(search_text="*", top=5)) == []
    query = VectorizedQuery(vector=[1.0, 0.0, 0.0, 0.0], k_nearest_neighbors=1, fields="image_vector")
    assert list(client.search(search_text=None, vector_queries=[query], top=1)) == []
    # ... while writes already see it: uploading it again replaces it (200), not creates it (201).
    again = client.upload_documents([{"id": "a", "source": "second", "image_vector": [1, 0, 0, 0]}])
    assert again[0].succeeded and again[0].status_code == 200

    clock.now += 5.0
    assert client.get_document_count() == 1
    assert client.get_document("a")["source"] == "second"
    assert [r["id"] for r in client.search(search_text=None, vector_queries=[query], top=1)] == ["a"]

    client.delete_documents([{"id": "a"}])
    assert client.get_document("a")["source"] == "second"  # the delete is not visible yet either
    clock.now += 5.0
    assert client.get_document_count() == 0


def test_the_delay_can_be_set_per_index(delayed_double):
    endpoint, clock, service = delayed_double
    credential = AzureKeyCredential("any")
    service.set_visibility_delay("prompt", 0)
    for name in ("prompt", "late"):
        SearchIndexClient(endpoint, credential).create_index(SearchIndex(tiny_schema(4).named(name)))
        SearchClient(endpoint, name, credential).upload_documents([{"id": "a"}])
    assert SearchClient(endpoint, "prompt", credential).get_document_count() == 1
    assert SearchClient(endpoint, "late", credential).get_document_count() == 0
    with pytest.raises(ValueError):
        service.set_visibility_delay("late", -1)


# --- fault injection and persistence ---------------------------------------------------------


def test_injected_document_faults_are_reproducible_and_capped(search_double, search_index_name):
    create_tiny_index(search_double, search_index_name)
    faults = FaultConfig(
        document_fault_rate=0.5, document_fault_statuses=(503, 429), max_faults_per_document=1, seed=11
    )
    actions = [{"@search.action": "upload", "id": f"k{i}"} for i in range(40)]

    def failing_keys() -> list[str]:
        search_double.set_faults(search_index_name, faults)  # resets the generator
        body = post_batch(search_double, search_index_name, actions).json()["value"]
        assert {r["statusCode"] for r in body if not r["status"]} <= {503, 429}
        return [r["key"] for r in body if not r["status"]]

    first = failing_keys()
    assert 0 < len(first) < 40
    assert failing_keys() == first  # same seed, same failures

    seen: dict[str, int] = dict.fromkeys(first, 1)
    for _ in range(40):  # keep sending: no key fails more than once, so this converges
        body = post_batch(search_double, search_index_name, actions)
        for result in body.json()["value"]:
            if not result["status"]:
                seen[result["key"]] = seen.get(result["key"], 0) + 1
        if body.status_code == 200:
            break
    assert body.status_code == 200
    assert max(seen.values()) == 1


def test_whole_request_faults(search_double, search_index_name):
    create_tiny_index(search_double, search_index_name)
    search_double.set_faults(
        search_index_name,
        FaultConfig(
            request_fault_rate=1.0, max_request_faults=2, operations=frozenset({"count"}), retry_after_seconds=0
        ),
    )
    statuses = [
        requests.get(
            url(search_double, f"/indexes('{search_index_name}')/docs/$count"),
            params={"api-version": API},
            headers=admin(search_double),
            timeout=10,
        )
        for _ in range(3)
    ]
    assert [r.status_code for r in statuses] == [503, 503, 200]
    assert statuses[0].json()["error"]["code"] == "ServiceUnavailable"
    assert statuses[0].headers["Retry-After"] == "0"


def test_indexes_persist_in_the_data_dir(tmp_path):
    config = SearchDoubleConfig(data_dir=tmp_path / "search")
    body = tiny_schema(4).named("kept")
    with serve_in_thread(config) as endpoint:
        assert (
            requests.put(f"{endpoint}/indexes('kept')", params={"api-version": API}, json=body, timeout=10).status_code
            == 201
        )
        batch = {
            "value": [
                {
                    "@search.action": "upload",
                    "id": "a",
                    "width": 3,
                    "last_modified": "2024-05-01T10:00:00+02:00",
                    "image_vector": [1, 2, 3, 4],
                }
            ]
        }
        assert (
            requests.post(
                f"{endpoint}/indexes('kept')/docs/search.index", params={"api-version": API}, json=batch, timeout=10
            ).status_code
            == 200
        )
    app = create_app(config)
    with serve_in_thread(app=app) as endpoint:
        document = requests.get(f"{endpoint}/indexes('kept')/docs('a')", params={"api-version": API}, timeout=10).json()
    assert document["width"] == 3 and document["last_modified"] == "2024-05-01T08:00:00Z"
    assert app.state.service.indexes["kept"].documents["a"]["image_vector"].tolist() == [1, 2, 3, 4]


# --- what imgsearch never sends: one 400, never a second implementation ----------------------

VECTOR_QUERY = {"kind": "vector", "vector": [1, 0, 0, 0], "fields": "image_vector", "k": 1}
NOT_SERVED = {
    "listing indexes": ("GET", "/indexes", None, {}),
    "index statistics": ("GET", "/indexes('{index}')/search.stats", None, {}),
    "synonym maps": ("GET", "/synonymmaps", None, {}),
    "a method a path does not take": ("PATCH", "/indexes('{index}')", None, {}),
    "another api-version": ("GET", "/indexes('{index}')?api-version=2024-07-01", None, {}),
    "If-Match": ("DELETE", "/indexes('{index}')", None, {"If-Match": "*"}),
    "full-text search": ("POST", "{search}", {"search": "cat", "top": 5}, {}),
    "facets": ("POST", "{search}", {"facets": ["tags"], "top": 5}, {}),
    "server-side paging": ("POST", "{search}", {"search": "*", "top": 1001}, {}),
    "search.ismatch": ("POST", "{search}", {"filter": "search.ismatch('x')", "top": 5}, {}),
    "or": ("POST", "{search}", {"filter": "width eq 1 or width eq 2", "top": 5}, {}),
    "all()": ("POST", "{search}", {"filter": "tags/all(t: t ne 'odd')", "top": 5}, {}),
    "search.in in a lambda": ("POST", "{search}", {"filter": "tags/any(t: search.in(t, 'a,b'))", "top": 5}, {}),
    "orderby search.score()": ("POST", "{search}", {"orderby": "search.score() desc", "top": 5}, {}),
    "a vector query weight": ("POST", "{search}", {"vectorQueries": [{**VECTOR_QUERY, "weight": 2}], "top": 1}, {}),
    "two vector queries": ("POST", "{search}", {"vectorQueries": [VECTOR_QUERY, VECTOR_QUERY], "top": 1}, {}),
    "a merge": (
        "POST",
        "/indexes('{index}')/docs/search.index",
        {"value": [{"@search.action": "merge", "id": "a"}]},
        {},
    ),
    "a scoring profile": ("PUT", "/indexes('{index}')", {"scoringProfiles": [{"name": "boost"}]}, {}),
    "an analyzer": (
        "PUT",
        "/indexes('{index}')",
        {"fields": [{"name": "id", "type": "Edm.String", "key": True, "analyzer": "en.lucene"}]},
        {},
    ),
    "a Boolean field": (
        "PUT",
        "/indexes('{index}')",
        {"fields": [{"name": "id", "type": "Edm.String", "key": True}, {"name": "ok", "type": "Edm.Boolean"}]},
        {},
    ),
    "an Azure AI Vision vectorizer": (
        "PUT",
        "/indexes('{index}')",
        {"vectorSearch": {"vectorizers": [{"name": "v", "kind": "aiServicesVision"}]}},
        {},
    ),
    "a data source of another type": ("PUT", "/datasources('x')", {"name": "x", "type": "azuresql"}, {}),
    "deleting an indexer": ("DELETE", "/indexers('x')", None, {}),
}


@pytest.mark.parametrize("what", sorted(NOT_SERVED))
def test_requests_imgsearch_never_sends_get_the_one_not_served_400(search_double, search_index_name, what):
    create_tiny_index(search_double, search_index_name)
    seed_documents(search_double, search_index_name, 2)
    method, path, body, headers = NOT_SERVED[what]
    search = f"/indexes('{search_index_name}')/docs/search.post.search"
    path = path.format(index=search_index_name, search=search)
    if isinstance(body, dict) and method == "PUT" and path.startswith("/indexes"):
        body = {**tiny_schema(4).named(search_index_name), **body}
    params = {} if "api-version" in path else {"api-version": API}
    response = requests.request(
        method,
        url(search_double, path),
        params=params,
        json=body,
        headers={**admin(search_double), **headers},
        timeout=10,
    )
    assert_error(response, 400, "The search double does not serve", code="NotSupportedByStandIn")
    assert count(search_double, search_index_name) == 2  # nothing was changed
