"""The value types of ``indexer.documents``: an index's pin refuses vectors of another model
version or dimension count, another pin, and documents that claim another version."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.documents import Document, Embedding, Hit, IndexPin
from indexer.errors import ModelVersionMismatchError

PIN = IndexPin(model_version="2023-04-15", dimensions=4)


def embedding(model_version: str = "2023-04-15", dimensions: int = 4) -> Embedding:
    return Embedding(np.ones(dimensions, dtype=np.float32), model_version)


def test_an_embedding_counts_its_dimensions():
    assert embedding(dimensions=7).dimensions == 7
    assert isinstance(embedding().dimensions, int)


def test_a_vector_of_the_pinned_version_and_size_passes():
    assert PIN.check(embedding(), action="upsert") is None


def test_a_vector_of_another_model_version_is_refused_naming_both_versions_and_the_action():
    with pytest.raises(ModelVersionMismatchError) as caught:
        PIN.check(embedding("2022-04-11"), action="search")
    assert str(caught.value) == (
        "cannot search: the vector was made by model version '2022-04-11' but the index is pinned to "
        "'2023-04-15'; use a vectorizer with that model version, or create a new index for the new "
        "version and backfill it"
    )
    assert (caught.value.expected, caught.value.actual) == ("2023-04-15", "2022-04-11")


def test_a_vector_with_another_dimension_count_is_refused_naming_both_counts():
    with pytest.raises(ModelVersionMismatchError) as caught:
        PIN.check(embedding(dimensions=5), action="upsert")
    assert (
        str(caught.value) == "cannot upsert: the vector has 5 dimensions but the index pinned to '2023-04-15' holds 4"
    )
    assert (caught.value.expected, caught.value.actual) == (4, 5)


def test_the_model_version_is_checked_before_the_dimensions():
    with pytest.raises(ModelVersionMismatchError) as caught:
        PIN.check(embedding("other", dimensions=3), action="upsert")
    assert (caught.value.expected, caught.value.actual) == ("2023-04-15", "other")


def test_an_index_pin_is_checked_against_the_wanted_one_naming_both_and_where_the_index_lives():
    assert PIN.check_pin(IndexPin("2023-04-15", 4), where="the index 'x'", remedy="do y") is None
    for wanted in (IndexPin("2022-04-11", 4), IndexPin("2023-04-15", 5)):
        with pytest.raises(ModelVersionMismatchError) as caught:
            PIN.check_pin(wanted, where="the index 'x' at https://s", remedy="use another index")
        assert str(caught.value) == (
            f"the index 'x' at https://s is pinned to model version '2023-04-15' (4 dimensions), not "
            f"{wanted.model_version!r} ({wanted.dimensions} dimensions), and vectors of different model versions "
            f"never share an index; use another index"
        )
        assert (caught.value.expected, caught.value.actual) == (PIN, wanted)


@pytest.mark.parametrize("fields", [{}, {"model_version": None}, {"model_version": "2023-04-15"}, {"width": 3}])
def test_a_document_may_leave_out_or_repeat_the_pinned_version(fields):
    assert PIN.check_claim("k1", fields) is None


@pytest.mark.parametrize("claimed", ["2022-04-11", "", "2023-04-15 "])
def test_a_document_claiming_another_version_is_refused_naming_the_key_and_both_versions(claimed):
    with pytest.raises(ModelVersionMismatchError) as caught:
        PIN.check_claim("k1", {"model_version": claimed, "width": 3})
    assert str(caught.value) == f"document 'k1' says model_version={claimed!r} but the index is pinned to '2023-04-15'"
    assert (caught.value.expected, caught.value.actual) == ("2023-04-15", claimed)


def test_a_document_keeps_its_fields_apart_from_the_vector():
    first, second = Document("a", embedding()), Document("b", embedding())
    first.fields["width"] = 3
    assert second.fields == {}  # each document has its own dict


def test_a_hit_as_a_dict():
    hit = Hit("k", "images/a.jpg", 0.5, {"width": 3})
    assert hit.to_dict() == {"key": "k", "source": "images/a.jpg", "score": 0.5, "fields": {"width": 3}}
    assert Hit("k", "s", 0.1).fields == {}
