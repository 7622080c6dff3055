"""Vector compression on the search double, through the real ``azure-search-documents`` client
over HTTP: the compressions ``SEARCH_VECTOR_COMPRESSION`` makes are checked as the REST
specification defines them, come back as the SDK's models, cannot change under an existing
field, and change no query answer (the double never quantizes); anything else in a compression
is not served. Each rule is a row of ``standins/FIDELITY.md`` (D17 to D21, N2, Q16)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from azure.core.exceptions import HttpResponseError
from azure.search.documents import SearchClient
from azure.search.documents.indexes import SearchIndexClient
from azure.search.documents.indexes.models import (
    BinaryQuantizationCompression,
    ScalarQuantizationCompression,
    SearchIndex,
)
from azure.search.documents.models import VectorizedQuery

from indexer.schema import VECTOR_FIELD
from indexer.vector_compression import compression_definition
from tests.fixtures.search_double import RunningSearchDouble, tiny_schema

DIMS = 8
PROFILE = "image-vector-profile"


def compressed_definition(name: str, compression: str) -> dict[str, Any]:
    """The project's index definition with ``compression`` as ``ensure-index`` makes it."""
    return tiny_schema(DIMS).with_compression(compression).named(name)


def index_client(double: RunningSearchDouble) -> SearchIndexClient:
    return SearchIndexClient(double.endpoint, double.credential)


def refused(double: RunningSearchDouble, definition: dict[str, Any], *, update: bool = False) -> HttpResponseError:
    client = index_client(double)
    with pytest.raises(HttpResponseError) as raised:
        (client.create_or_update_index if update else client.create_index)(SearchIndex(definition))
    assert raised.value.status_code == 400
    return raised.value


@pytest.mark.parametrize(
    "compression, model", [("scalar", ScalarQuantizationCompression), ("binary", BinaryQuantizationCompression)]
)
def test_the_compressions_imgsearch_makes_round_trip_through_the_sdk_models(
    search_double, search_index_name, compression, model
):
    client, sent = index_client(search_double), compression_definition(compression)
    client.create_index(SearchIndex(compressed_definition(search_index_name, compression)))

    index = client.get_index(search_index_name)
    (parsed,) = index.vector_search.compressions
    assert isinstance(parsed, model) and parsed.compression_name == sent["name"]
    assert parsed.rescoring_options.enable_rescoring is True
    assert parsed.rescoring_options.rescore_storage_method == "preserveOriginals"
    assert parsed.rescoring_options.default_oversampling == sent["rescoringOptions"]["defaultOversampling"]
    assert next(p for p in index.vector_search.profiles if p.name == PROFILE).compression_name == sent["name"]
    vector = next(f for f in index.fields if f.name == VECTOR_FIELD)
    assert (vector.stored, vector.retrievable) == (False, False)
    # What was sent comes back, with the service's null truncationDimension.
    assert index.as_dict()["vectorSearch"]["compressions"] == [{**sent, "truncationDimension": None}]
    # Sending back what GET gave is an update that changes nothing.
    assert client.create_or_update_index(index).as_dict()["vectorSearch"] == index.as_dict()["vectorSearch"]


def test_a_compression_that_leaves_its_rescoring_out_is_not_served(search_double, search_index_name):
    # imgsearch always sends every rescoring option; what Azure would fill in is not the double's to guess.
    definition = compressed_definition(search_index_name, "scalar")
    definition["vectorSearch"]["compressions"] = [{"name": "image-scalar", "kind": "scalarQuantization"}]
    error = refused(search_double, definition)
    assert error.error.code == "NotSupportedByStandIn" and "rescored from the preserved originals" in error.message
    assert search_index_name not in search_double.service.indexes


Change = dict[str, Any] | Callable[[dict[str, Any]], None]


def apply(definition: dict[str, Any], change: Change) -> None:
    """Apply ``change``: a function, or dotted paths in the first compression and their new values."""
    if callable(change):
        change(definition)
        return
    for path, value in change.items():
        target = definition["vectorSearch"]["compressions"][0]
        *parents, last = path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value


def _duplicate(definition: dict[str, Any]) -> None:
    compressions = definition["vectorSearch"]["compressions"]
    compressions.append(copy.deepcopy(compressions[0]))


def _unknown_in_profile(definition: dict[str, Any]) -> None:
    next(p for p in definition["vectorSearch"]["profiles"] if p["name"] == PROFILE)["compression"] = "image-int4"


RESCORING = "rescoringOptions."
# (compression, change, what the message names)
INVALID: dict[str, tuple[str, Change, str]] = {
    "an unknown kind": ("scalar", {"kind": "productQuantization"}, "must be 'scalarQuantization' or"),
    "no name": ("scalar", {"name": ""}, "needs a name of its own"),
    "a name used twice": ("binary", _duplicate, "needs a name of its own"),
    "another data type": ("scalar", {"scalarQuantizationParameters.quantizedDataType": "int4"}, "is 'int4'"),
    "oversampling under 1": ("binary", {RESCORING + "defaultOversampling": 0.5}, "defaultOversampling is 0.5"),
    "oversampling not a number": ("scalar", {RESCORING + "defaultOversampling": "2"}, "defaultOversampling is '2'"),
    "a profile naming none": ("scalar", _unknown_in_profile, "the compression 'image-int4', which is not defined"),
}
# What imgsearch never sends in a compression, valid on Azure or not: the one not-served 400.
NOT_SERVED: dict[str, tuple[str, Change, str]] = {
    "scalar parameters on binary": (
        "binary",
        {"scalarQuantizationParameters.quantizedDataType": "int8"},
        "'scalarQuantizationParameters'",
    ),
    "rescoring off": ("scalar", {RESCORING + "enableRescoring": False}, "rescored from the preserved originals"),
    "enableRescoring not a boolean": ("scalar", {RESCORING + "enableRescoring": "yes"}, "rescored from the"),
    "discarded originals": ("binary", {RESCORING + "rescoreStorageMethod": "discardOriginals"}, "preserved originals"),
    "an unknown storage method": ("binary", {RESCORING + "rescoreStorageMethod": "all"}, "preserved originals"),
    "2024-07-01's rerank": ("scalar", {"rerankWithOriginalVectors": True}, "'rerankWithOriginalVectors'"),
    "2024-07-01's oversampling": ("binary", {"defaultOversampling": 4}, "'defaultOversampling'"),
    "a truncation dimension": ("binary", {"truncationDimension": 4}, "'truncationDimension'"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_compressions_are_refused_naming_the_problem(search_double, search_index_name, case):
    compression, change, fragment = INVALID[case]
    definition = compressed_definition(search_index_name, compression)
    apply(definition, change)
    error = refused(search_double, definition)
    assert fragment in error.message
    assert error.error.code == "InvalidRequestParameter"
    assert search_index_name not in search_double.service.indexes


@pytest.mark.parametrize("case", sorted(NOT_SERVED))
def test_compressions_imgsearch_never_sends_get_the_not_served_400(search_double, search_index_name, case):
    compression, change, fragment = NOT_SERVED[case]
    definition = compressed_definition(search_index_name, compression)
    apply(definition, change)
    error = refused(search_double, definition)
    assert fragment in error.message and "does not serve" in error.message
    assert error.error.code == "NotSupportedByStandIn"
    assert search_index_name not in search_double.service.indexes


@pytest.mark.parametrize(
    "compression, change",
    [("scalar", {"truncationDimension": None}), ("binary", {RESCORING + "defaultOversampling": 1})],
)
def test_documented_variants_within_what_imgsearch_sends_are_accepted(
    search_double, search_index_name, compression, change
):
    definition = compressed_definition(search_index_name, compression)
    apply(definition, change)
    index_client(search_double).create_index(SearchIndex(definition))
    assert search_index_name in search_double.service.indexes


def test_an_update_that_changes_a_compression_is_not_served_and_one_sending_it_back_is_fine(
    search_double, search_index_name
):
    # ensure-index refuses another compression before it sends anything, so imgsearch's updates
    # send the compressions back as read (Azure too keeps a field's compression: FIDELITY D21).
    client = index_client(search_double)
    created = compressed_definition(search_index_name, "scalar")
    client.create_index(SearchIndex(created))

    binary = compressed_definition(search_index_name, "binary")  # the profile now names another compression
    kind_changed = copy.deepcopy(created)
    kind_changed["vectorSearch"]["compressions"] = [{**compression_definition("binary"), "name": "image-scalar"}]
    uncompressed = copy.deepcopy(created)
    next(p for p in uncompressed["vectorSearch"]["profiles"] if p["name"] == PROFILE)["compression"] = None
    retuned = copy.deepcopy(created)
    retuned["vectorSearch"]["compressions"][0]["rescoringOptions"]["defaultOversampling"] = 3.0
    for update in (binary, kind_changed, uncompressed, retuned):
        error = refused(search_double, update, update=True)
        assert error.error.code == "NotSupportedByStandIn" and "changes vectorSearch.compressions" in error.message

    added = client.get_index(search_index_name).as_dict()
    added["fields"].append({"name": "caption", "type": "Edm.String"})
    updated = client.create_or_update_index(SearchIndex(added))
    assert [c.compression_name for c in updated.vector_search.compressions] == ["image-scalar"]
    assert "caption" in [f.name for f in updated.fields]


@pytest.fixture
def twin_index_names(search_double: RunningSearchDouble, search_index_name: str) -> Iterator[tuple[str, str]]:
    twin = f"t-{uuid.uuid4().hex[:16]}"
    yield search_index_name, twin
    with search_double.service.lock:
        search_double.service.indexes.pop(twin, None)


@pytest.mark.parametrize("compression", ["scalar", "binary"])
def test_a_compressed_index_answers_exactly_as_an_uncompressed_one(search_double, twin_index_names, compression):
    vectors = np.random.default_rng(11).normal(size=(60, DIMS)).astype(np.float32)
    documents = [{"id": f"k{i:03d}", "image_vector": v.tolist()} for i, v in enumerate(vectors)]
    query = VectorizedQuery(
        vector=[0.4, -1.0, 0.2, 0.5, 0.0, 1.3, -0.2, 0.7], k_nearest_neighbors=10, fields=VECTOR_FIELD
    )
    answers = []
    for name, kind in zip(twin_index_names, ("none", compression), strict=True):
        index_client(search_double).create_index(SearchIndex(compressed_definition(name, kind)))
        search = SearchClient(search_double.endpoint, name, search_double.credential)
        search.upload_documents(documents)
        hits = search.search(search_text=None, vector_queries=[query], select=["id"], top=10)
        answers.append([(hit["id"], hit["@search.score"]) for hit in hits])
    assert len(answers[0]) == 10 and answers[1] == answers[0]
