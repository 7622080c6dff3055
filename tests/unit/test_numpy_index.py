"""The numpy fallback index: its answers, its strictness, and its files under crashes and
concurrent writers. Everything runs against real files in ``tmp_path``; the crash and
concurrency tests use real child processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.backends.base import IndexBackend
from indexer.backends.numpy_index import NumpyIndex
from indexer.backends.numpy_index import store as local_store
from indexer.documents import Document, Embedding
from indexer.errors import (
    ConfigurationError,
    FilterError,
    IndexNotFoundError,
    InvalidDocumentError,
    InvalidQueryError,
    ModelVersionMismatchError,
)
from indexer.filters import Condition, parse_condition
from indexer.keys import document_key
from indexer.model_versions import AZURE_MULTILINGUAL, OFFLINE_ENGLISH, OFFLINE_MULTILINGUAL
from indexer.schema import load_schema
from tests.oracle import matches_all, stored_documents

MODEL = OFFLINE_MULTILINGUAL
DIMS = 512
REPO = Path(__file__).resolve().parents[2]


def vector(seed: int, dims: int = DIMS) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=dims).astype(np.float32)


def doc(key: str, vec: np.ndarray, *, model: str = MODEL, **fields) -> Document:
    return Document(key, Embedding(np.asarray(vec, dtype=np.float32), model), {"source": f"images/{key}.jpg", **fields})


def files_on_disk(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def contents(index: NumpyIndex) -> dict[str, tuple[dict, bytes]]:
    """The whole logical state: key -> (fields, vector bytes)."""
    return {d.key: (d.fields, d.embedding.vector.tobytes()) for d in stored_documents(index)}


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# --- basic operations ---------------------------------------------------------------------


def test_local_index_implements_the_backend_protocol(local_index):
    assert isinstance(local_index, IndexBackend)


def test_upsert_get_count_and_replace_the_whole_document(local_index):
    result = local_index.upsert([doc("a", vector(1), width=640, tags=["cat"]), doc("b", vector(2))])
    assert result.ok and result.succeeded == ["a", "b"]
    assert local_index.count() == 2
    assert local_index.get("a")["width"] == 640
    assert local_index.get("a")["tags"] == ["cat"]
    assert local_index.get("missing") is None

    local_index.upsert([doc("a", vector(3), height=480)])  # replaces all of "a"
    stored = local_index.get("a")
    assert stored["height"] == 480 and stored["width"] is None and stored["tags"] is None
    assert local_index.count() == 2
    hit = local_index.search(Embedding(vector(3), MODEL), k=1)[0]
    assert hit.key == "a" and hit.score == pytest.approx(1.0, abs=1e-6)


def test_a_key_given_twice_in_one_batch_keeps_the_last(local_index):
    local_index.upsert([doc("a", vector(1), width=1), doc("a", vector(2), width=2)])
    assert local_index.count() == 1
    assert local_index.get("a")["width"] == 2
    assert local_index.search(Embedding(vector(2), MODEL), k=1)[0].score == pytest.approx(1.0, abs=1e-6)


def test_delete_existing_and_missing_keys(local_index):
    local_index.upsert([doc(k, vector(i)) for i, k in enumerate("abc")])
    result = local_index.delete(["a", "zzz"])
    assert result.ok and set(result.succeeded) == {"a", "zzz"}
    assert local_index.count() == 2 and local_index.get("a") is None
    assert {h.key for h in local_index.search(Embedding(vector(0), MODEL), k=10)} == {"b", "c"}


def test_deleting_only_missing_keys_writes_nothing(local_index):
    local_index.upsert([doc("a", vector(1))])
    before = files_on_disk(local_index.root)
    assert local_index.delete(["x", "y"]).ok
    assert files_on_disk(local_index.root) == before


def test_keys_with_hashes(local_index):
    assert local_index.keys_with_hashes() == {}
    assert local_index.keys_with_hashes([Condition("container", "eq", "one")]) == {}  # empty index
    local_index.upsert(
        [doc("a", vector(1), content_hash="sha256:aa", container="one"), doc("b", vector(2), container="two")]
    )
    assert local_index.keys_with_hashes() == {"a": "sha256:aa", "b": ""}
    assert local_index.keys_with_hashes([Condition("container", "eq", "two")]) == {"b": ""}


# --- search -----------------------------------------------------------------------------


def test_top_k_order_and_scores_equal_numpy_cosine(local_index_factory):
    index = local_index_factory(merge_fanout=3)  # several segments and merges along the way
    rng = np.random.default_rng(7)
    vectors = {f"doc{i}": rng.normal(size=DIMS).astype(np.float32) * rng.uniform(0.1, 10) for i in range(120)}
    keys = list(vectors)
    for start in range(0, 120, 13):
        index.upsert([doc(k, vectors[k]) for k in keys[start : start + 13]])
    index.delete(keys[:10])
    for k in keys[10:20]:  # replace some vectors
        vectors[k] = rng.normal(size=DIMS).astype(np.float32)
    index.upsert([doc(k, vectors[k]) for k in keys[10:20]])
    live = keys[10:]

    query = rng.normal(size=DIMS).astype(np.float32)
    expected = sorted(((float(unit(vectors[k]) @ unit(query)), k) for k in live), reverse=True)[:15]
    hits = index.search(Embedding(query, MODEL), k=15)
    assert [h.key for h in hits] == [k for _, k in expected]
    assert [h.score for h in hits] == pytest.approx([s for s, _ in expected], abs=1e-5)
    assert all(isinstance(h.score, float) for h in hits)
    assert hits[0].source == f"images/{hits[0].key}.jpg"


@pytest.mark.parametrize("n", [5, 300, 20_000])
def test_top_k_selection_equals_a_full_sort_including_ties_and_masks(n):
    from indexer.backends.numpy_index.index import _top_k

    rng = np.random.default_rng(n)
    for trial in range(20):
        scores = rng.normal(size=n).astype(np.float32)
        if trial % 2:
            scores = np.round(scores, 1)  # many ties
        mask = rng.random(n) < 0.3 if trial % 3 == 0 else None
        k = int(rng.integers(1, 60))
        rows = np.flatnonzero(mask) if mask is not None else np.arange(n)
        expected = sorted(rows, key=lambda r: (-scores[r], r))[:k]
        assert _top_k(scores, k, mask).tolist() == expected


def test_k_larger_than_the_index_returns_everything(local_index):
    local_index.upsert([doc(k, vector(i)) for i, k in enumerate("abc")])
    assert {h.key for h in local_index.search(Embedding(vector(9), MODEL), k=50)} == {"a", "b", "c"}


def test_search_in_an_empty_index(local_index):
    assert local_index.search(Embedding(vector(1), MODEL), k=5) == []
    assert local_index.search(Embedding(vector(1), MODEL), k=5, filters=[Condition("width", "gt", 3)]) == []
    local_index.upsert([doc("a", vector(1))])
    local_index.delete(["a"])  # emptied again: no segments left at all
    assert local_index.search(Embedding(vector(1), MODEL), k=5, filters=[Condition("width", "gt", 3)]) == []
    assert local_index.keys_with_hashes([Condition("width", "gt", 3)]) == {}


def test_threshold_keeps_scores_at_or_above_it(local_index):
    base = vector(1)
    near = base + 0.3 * vector(2)
    local_index.upsert([doc("same", base), doc("near", near), doc("far", vector(3))])
    cos_near = float(unit(base) @ unit(near))
    hits = local_index.search(Embedding(base, MODEL), k=10, threshold=cos_near - 1e-4)
    assert [h.key for h in hits] == ["same", "near"]
    assert all(h.score >= cos_near - 1e-4 for h in hits)
    assert local_index.search(Embedding(-base, MODEL), k=10, threshold=0.5) == []


@pytest.mark.parametrize(
    ("k", "threshold"), [(0, None), (1001, None), (2.5, None), (True, None), (5, 1.5), (5, -1.01), (5, float("nan"))]
)
def test_search_options_out_of_range(local_index, k, threshold):
    with pytest.raises(InvalidQueryError):
        local_index.search(Embedding(vector(1), MODEL), k=k, threshold=threshold)


@pytest.fixture
def catalogue(local_index):
    """Six documents with varied metadata, all with nearly the same vector so that
    filters, not scores, decide what comes back."""
    base = vector(100)
    rows = [
        (
            "a",
            dict(
                container="photos",
                size_bytes=500,
                width=100,
                tags=["cat", "pet"],
                last_modified="2024-01-01T00:00:00Z",
                content_type="image/jpeg",
            ),
        ),
        (
            "b",
            dict(
                container="photos",
                size_bytes=1500,
                width=200,
                tags=["dog"],
                last_modified="2024-03-01T12:00:00+02:00",
                content_type="image/png",
            ),
        ),
        (
            "c",
            dict(
                container="scans",
                size_bytes=2500,
                width=300,
                tags=[],
                last_modified="2024-03-01T11:00:00Z",
                content_type="image/jpeg",
            ),
        ),
        (
            "d",
            dict(container="scans", size_bytes=10_000_000_000, tags=["cat"], last_modified="2023-12-31T23:59:59.999Z"),
        ),
        ("e", dict(size_bytes=1000, width=150)),
        ("f", dict(container="photos", size_bytes=1000, file_name="Zebra.jpg")),
    ]
    local_index.upsert([doc(key, base + 0.01 * vector(i), **fields) for i, (key, fields) in enumerate(rows)])
    return local_index


def found(index, *filters, **options):
    return {h.key for h in index.search(Embedding(vector(100), MODEL), k=100, filters=list(filters), **options)}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("container=photos", {"a", "b", "f"}),
        ("container!=photos", {"c", "d", "e"}),  # null is "not equal" too
        ("size_bytes>=1000", {"b", "c", "d", "e", "f"}),
        ("size_bytes>1000", {"b", "c", "d"}),
        ("size_bytes<1000", {"a"}),
        ("size_bytes<=1000", {"a", "e", "f"}),
        ("size_bytes=1000", {"e", "f"}),
        ("size_bytes>9999999999", {"d"}),  # beyond 32 bits
        ("width<200", {"a", "e"}),  # documents without a width never match a range
        ("content_type>=image/n", {"b"}),
        ("content_type<image/n", {"a", "c"}),
        ("container>photos", {"c", "d"}),
        ("file_name=Zebra.jpg", {"f"}),
        ("file_name=zebra.jpg", set()),  # comparisons are case-sensitive, as in OData
        ("container=nowhere", set()),
    ],
)
def test_equality_and_range_filters(catalogue, expression, expected):
    assert found(catalogue, parse_condition(expression)) == expected


def test_date_filters_compare_instants_across_time_zones(catalogue):
    # b is 2024-03-01T10:00Z (written with +02:00), c is 11:00Z
    assert found(catalogue, parse_condition("last_modified<2024-03-01T10:30:00Z")) == {"a", "b", "d"}
    assert found(catalogue, parse_condition("last_modified>=2024-03-01T11:30:00+01:00")) == {"c"}
    assert found(catalogue, parse_condition("last_modified>=2024-01-01")) == {"a", "b", "c"}  # bare date: midnight UTC
    assert found(catalogue, Condition("last_modified", "lt", datetime(2024, 1, 1, tzinfo=UTC))) == {"d"}
    assert found(catalogue, parse_condition("last_modified=2024-01-01T01:00:00+01:00")) == {"a"}


def test_collection_filters_match_any_item(catalogue):
    assert found(catalogue, parse_condition("tags=cat")) == {"a", "d"}
    assert found(catalogue, parse_condition("tags=pet")) == {"a"}
    # "no tag is cat", as Azure's `not tags/any(t: t eq 'cat')`: untagged documents match too
    assert found(catalogue, parse_condition("tags!=cat")) == {"b", "c", "e", "f"}
    assert found(catalogue, parse_condition("tags>=d")) == {"a", "b"}  # "dog", "pet"


def test_several_filters_all_apply(catalogue):
    assert found(
        catalogue, parse_condition("container=photos"), parse_condition("size_bytes>=1000"), parse_condition("tags=dog")
    ) == {"b"}


def test_null_comparisons(catalogue):
    assert found(catalogue, Condition("width", "eq", None)) == {"d", "f"}
    assert found(catalogue, Condition("width", "ne", None)) == {"a", "b", "c", "e"}


def test_filters_combine_with_threshold_and_k(catalogue):
    hits = catalogue.search(
        Embedding(vector(100), MODEL), k=2, filters=[parse_condition("container=photos")], threshold=0.5
    )
    assert len(hits) == 2 and {h.key for h in hits} <= {"a", "b", "f"}


def test_vectorised_filters_agree_with_condition_matches(local_index_factory):
    """The numpy masks must mean what ``Condition.matches`` (the shared contract) means, for
    the types where both compare the same way (numbers, strings, string collections)."""
    index = local_index_factory(merge_fanout=2)
    rng = np.random.default_rng(3)
    words = ["ant", "bee", "cat", "dog", "eel"]
    docs = []
    for i in range(60):
        fields = {}
        if rng.random() < 0.8:
            fields["size_bytes"] = int(rng.integers(0, 50))
        if rng.random() < 0.8:
            fields["container"] = str(rng.choice(words))
        if rng.random() < 0.8:
            fields["tags"] = [str(w) for w in rng.choice(words, size=int(rng.integers(0, 3)), replace=False)]
        docs.append(doc(f"d{i}", vector(i), **fields))
    for start in range(0, 60, 7):
        index.upsert(docs[start : start + 7])
    stored = {d.key: d.fields for d in stored_documents(index)}
    conditions = [
        Condition(f, op, v)
        for op in ("eq", "ne", "gt", "ge", "lt", "le")
        for f, v in (("size_bytes", "25"), ("container", "cat"), ("tags", "bee"), ("tags", "zzz"))
    ]
    for condition in conditions:
        # A missing collection counts as an empty one (as in OData, where tags/any(...) is
        # false for it).
        expected = {k for k, fields in stored.items() if matches_all([condition], {"tags": [], **fields})}
        assert found_all(index, condition) == expected, condition


def found_all(index, condition):
    return {h.key for h in index.search(Embedding(vector(0), MODEL), k=1000, filters=[condition])}


def test_select_limits_the_returned_fields(catalogue):
    hit = catalogue.search(Embedding(vector(100), MODEL), k=1, select=["size_bytes", "tags"])[0]
    assert set(hit.fields) == {"size_bytes", "tags"}
    assert hit.source  # the source is always filled in
    hit = catalogue.search(Embedding(vector(100), MODEL), k=1, select="id,container")[0]
    assert hit.fields == {"id": hit.key, "container": catalogue.get(hit.key)["container"]}
    default = catalogue.search(Embedding(vector(100), MODEL), k=1)[0]
    assert "image_vector" not in default.fields and "size_bytes" in default.fields


@pytest.mark.parametrize("select", [["colour"], ["image_vector"]])
def test_select_of_an_unknown_or_unretrievable_field_is_an_error(catalogue, select):
    with pytest.raises(InvalidQueryError, match=select[0]):
        catalogue.search(Embedding(vector(1), MODEL), select=select)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (Condition("colour", "eq", "red"), "colour"),
        (Condition("image_vector", "eq", "1"), "image_vector"),
        (Condition("size_bytes", "ge", "big"), "size_bytes"),
        (Condition("last_modified", "ge", "yesterday"), "last_modified"),
        (Condition("tags", "eq", None), "tags"),
        (Condition("size_bytes", "gt", None), "size_bytes"),
    ],
)
def test_bad_filters_are_errors_naming_the_field(catalogue, condition, message):
    with pytest.raises(FilterError, match=message):
        catalogue.search(Embedding(vector(1), MODEL), filters=[condition])


# --- strictness ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"width": "640"}, "'width'"),
        ({"width": True}, "'width'"),
        ({"width": 2**31}, "'width'"),
        ({"size_bytes": 1.5}, "'size_bytes'"),
        ({"container": ["a"]}, "'container'"),
        ({"tags": "cat"}, "'tags'"),
        ({"tags": ["cat", 3]}, "'tags'"),
        ({"tags": ["cat", None]}, "'tags'"),
        ({"last_modified": "2024-05-01T12:00:00"}, "'last_modified'"),  # no time zone
        ({"last_modified": "2024-05-01"}, "'last_modified'"),
        ({"last_modified": datetime(2024, 5, 1)}, "'last_modified'"),
        ({"last_modified": "last tuesday"}, "'last_modified'"),
        ({"image_vector": [0.0] * DIMS}, "image_vector"),
        ({"id": "other"}, "'id'"),
    ],
)
def test_documents_that_do_not_fit_the_schema_are_refused_whole(local_index, fields, message):
    local_index.upsert([doc("old", vector(1))])
    before = files_on_disk(local_index.root)
    batch = [doc("good", vector(2)), Document("bad", Embedding(vector(3), MODEL), fields)]
    with pytest.raises(InvalidDocumentError, match=message):
        local_index.upsert(batch)
    assert files_on_disk(local_index.root) == before
    assert local_index.count() == 1


def test_valid_values_are_stored_as_json(local_index):
    local_index.upsert(
        [
            doc(
                "a",
                vector(1),
                last_modified=datetime(2024, 5, 1, 14, tzinfo=UTC),
                width=np.int64(640),
                tags=("x", "y"),
                container=None,
            )
        ]
    )
    stored = local_index.get("a")
    assert stored["last_modified"] == "2024-05-01T14:00:00Z"
    assert stored["width"] == 640 and type(stored["width"]) is int
    assert stored["tags"] == ["x", "y"] and stored["container"] is None


@pytest.mark.parametrize("key", ["", "_hidden", "has space", "a/b", "é", "x" * 1025, "a.b"])
def test_invalid_keys_fail_only_their_document(local_index, key):
    result = local_index.upsert([doc("fine", vector(1)), Document(key, Embedding(vector(2), MODEL), {})])
    assert result.succeeded == ["fine"]
    assert key in result.failed and "key" in result.failed[key]
    assert local_index.count() == 1


def test_keys_from_document_key_are_accepted(local_index):
    keys = [document_key(f"images/{name}") for name in ("a b.jpg", "über/ç.png", "x" * 2000)]
    assert local_index.upsert([doc(k, vector(i)) for i, k in enumerate(keys)]).ok
    assert local_index.count() == 3


def test_a_zero_vector_fails_only_its_document(local_index):
    result = local_index.upsert(
        [doc("zero", np.zeros(DIMS)), doc("fine", vector(1)), doc("nan", np.full(DIMS, np.nan))]
    )
    assert result.succeeded == ["fine"] and set(result.failed) == {"zero", "nan"}
    assert local_index.count() == 1


def test_a_vector_that_is_not_numbers_refuses_the_batch(local_index):
    with pytest.raises(InvalidDocumentError, match="not a list of numbers"):
        local_index.upsert([doc("fine", vector(1)), Document("odd", Embedding(["a"] * DIMS, MODEL), {})])
    assert local_index.count() == 0


@pytest.mark.parametrize("name", ["a", "Images", "-images", "im--ages", "im__ages", "im/ages", "..", "x" * 129])
def test_index_names_follow_azure_rules(tmp_path, name):
    with pytest.raises(ValueError, match="index name"):
        NumpyIndex(tmp_path, name)


# --- the pin ----------------------------------------------------------------------------


def test_get_pin_and_a_missing_index(tmp_path):
    index = NumpyIndex(tmp_path, "images")
    with pytest.raises(IndexNotFoundError):
        index.get_pin()
    for call in (
        index.count,
        lambda: index.get("a"),
        lambda: index.upsert([doc("a", vector(1))]),
        lambda: index.search(Embedding(vector(1), MODEL)),
        lambda: index.delete(["a"]),
    ):
        with pytest.raises(IndexNotFoundError):
            call()
    assert not (tmp_path / "images").exists()
    assert index.ensure_index(load_schema(MODEL)).model_version == MODEL
    assert index.get_pin().dimensions == DIMS


def test_ensure_index_is_idempotent_and_refuses_another_pin(local_index):
    local_index.upsert([doc("a", vector(1))])
    assert local_index.ensure_index(load_schema(MODEL)).model_version == MODEL
    before = files_on_disk(local_index.root)
    with pytest.raises(ModelVersionMismatchError):  # (IndexPin.check_pin)
        local_index.ensure_index(load_schema(OFFLINE_ENGLISH))
    assert files_on_disk(local_index.root) == before
    assert local_index.count() == 1


def test_ensure_index_adopts_added_fields_and_refuses_retyped_ones(local_index):
    schema = load_schema(MODEL)
    added = type(schema)(
        pin=schema.pin,
        definition={
            **schema.definition,
            "fields": schema.definition["fields"]
            + [{"name": "camera", "type": "Edm.String", "filterable": True, "retrievable": True}],
        },
    )
    local_index.ensure_index(added)
    local_index.upsert([doc("a", vector(1), camera="X100")])
    assert found_all(local_index, Condition("camera", "eq", "X100")) == {"a"}
    retyped_fields = [dict(f, type="Edm.Int32") if f["name"] == "camera" else f for f in added.definition["fields"]]
    retyped = type(schema)(pin=schema.pin, definition={**schema.definition, "fields": retyped_fields})
    with pytest.raises(ConfigurationError, match="camera"):
        local_index.ensure_index(retyped)
    with pytest.raises(ConfigurationError, match="camera"):
        local_index.ensure_index(schema)  # drops the field again


def test_double_and_boolean_fields_validate_and_filter(local_index):
    schema = load_schema(MODEL)
    extra = [
        {"name": "rating", "type": "Edm.Double", "filterable": True, "retrievable": True},
        {"name": "favourite", "type": "Edm.Boolean", "filterable": True, "retrievable": True},
    ]
    local_index.ensure_index(
        type(schema)(pin=schema.pin, definition={**schema.definition, "fields": schema.definition["fields"] + extra})
    )
    local_index.upsert(
        [
            doc("a", vector(1), rating=4.5, favourite=True),
            doc("b", vector(2), rating=3, favourite=False),
            doc("c", vector(3)),
        ]
    )
    assert found_all(local_index, parse_condition("rating>=4")) == {"a"}
    assert found_all(local_index, parse_condition("rating<4.5")) == {"b"}
    assert found_all(local_index, parse_condition("favourite=true")) == {"a"}
    assert found_all(local_index, parse_condition("favourite!=true")) == {"b", "c"}
    with pytest.raises(FilterError, match="favourite"):
        found_all(local_index, parse_condition("favourite>false"))
    with pytest.raises(FilterError, match="favourite"):
        found_all(local_index, parse_condition("favourite=yes"))
    for bad in ({"rating": "high"}, {"rating": float("inf")}, {"favourite": 1}):
        with pytest.raises(InvalidDocumentError):
            local_index.upsert([doc("d", vector(4), **bad)])


@pytest.mark.parametrize(
    "bad",
    [
        Embedding(vector(9), OFFLINE_ENGLISH),  # another model version
        Embedding(vector(9, dims=384), MODEL),  # the right name, the wrong dimension count
    ],
)
def test_a_write_with_another_model_changes_nothing_even_mid_batch(local_index, bad):
    local_index.upsert([doc("a", vector(1), width=1)])
    before_files, before_state = files_on_disk(local_index.root), contents(local_index)
    batch = [doc("a", vector(2), width=2), doc("new", vector(3)), Document("bad", bad, {"source": "x"})]
    with pytest.raises(ModelVersionMismatchError):
        local_index.upsert(batch)
    assert files_on_disk(local_index.root) == before_files
    assert contents(NumpyIndex(local_index.root.parent, local_index.name)) == before_state


def test_a_document_claiming_another_model_version_is_refused(local_index):
    with pytest.raises(ModelVersionMismatchError):
        local_index.upsert([doc("a", vector(1), model_version=OFFLINE_ENGLISH)])
    local_index.upsert([doc("a", vector(1), model_version=MODEL)])
    with pytest.raises(ModelVersionMismatchError):
        local_index.upsert([doc("a", vector(1), model_version=AZURE_MULTILINGUAL)])
    assert local_index.get("a")["model_version"] == MODEL


@pytest.mark.parametrize("query", [Embedding(vector(1), OFFLINE_ENGLISH), Embedding(vector(1, dims=384), MODEL)])
def test_a_query_with_another_model_fails(local_index, query):
    local_index.upsert([doc("a", vector(1))])
    before = files_on_disk(local_index.root)
    with pytest.raises(ModelVersionMismatchError):
        local_index.search(query, k=1)
    assert files_on_disk(local_index.root) == before


# --- storage --------------------------------------------------------------------------------


def test_many_small_writes_keep_the_segment_count_small(local_index_factory):
    index = local_index_factory(merge_fanout=3)
    for i in range(60):
        index.upsert([doc(f"k{i}", vector(i))])
    manifest = json.loads((index.root / "manifest.json").read_text())
    assert len(manifest["segments"]) <= 2 * 4  # (fanout - 1) per size level, 4 levels for 60 rows
    assert index.count() == 60
    segment_files = sorted(p.name for p in (index.root / "segments").iterdir())
    assert segment_files == sorted(f"{s['id']}{ext}" for s in manifest["segments"] for ext in (".json", ".npy"))


def test_a_deletion_survives_merges_of_newer_segments(local_index_factory):
    index = local_index_factory(merge_fanout=2)
    index.upsert([doc(f"k{i}", vector(i)) for i in range(8)])  # one big, old segment
    index.delete(["k0"])  # a small segment that only says "k0 is gone"
    index.upsert([doc("n1", vector(100))])  # merges the two small newest segments
    index.upsert([doc("n2", vector(101))])
    manifest = json.loads((index.root / "manifest.json").read_text())
    assert len(manifest["segments"]) > 1 and manifest["segments"][0]["rows"] == 8  # k0's row is still on disk
    for reader in (index, NumpyIndex(index.root.parent, index.name)):
        assert reader.get("k0") is None and reader.count() == 9
        assert "k0" not in {h.key for h in reader.search(Embedding(vector(0), MODEL), k=20)}


def test_big_vector_files_are_memory_mapped_with_the_same_results(local_index_factory, tmp_path):
    mapped = local_index_factory(name="mapped", mmap_threshold_bytes=0)
    read = local_index_factory(name="read")
    docs = [doc(f"k{i}", vector(i)) for i in range(40)]
    mapped.upsert(docs)
    read.upsert(docs)
    fresh = NumpyIndex(mapped.root.parent, "mapped", mmap_threshold_bytes=0)
    query = Embedding(vector(5), MODEL)
    assert [(h.key, h.score) for h in fresh.search(query, k=10)] == [(h.key, h.score) for h in read.search(query, k=10)]
    vectors = fresh._current().segments[0].vectors
    assert isinstance(vectors.base, np.memmap) and not vectors.flags.writeable  # mapped, not read


def test_repeated_queries_reuse_the_loaded_matrix(local_index, monkeypatch):
    local_index.upsert([doc(f"k{i}", vector(i)) for i in range(10)])
    reader = NumpyIndex(local_index.root.parent, local_index.name)
    loads = []
    real_load = local_store.load_segment
    monkeypatch.setattr(local_store, "load_segment", lambda *a, **kw: loads.append(a[1]["id"]) or real_load(*a, **kw))
    for _ in range(5):
        reader.search(Embedding(vector(1), MODEL), k=3)
    assert len(loads) == 1
    local_index.upsert([doc("new", vector(99))])  # one more segment
    assert reader.search(Embedding(vector(99), MODEL), k=1)[0].key == "new"
    assert len(loads) == 2  # only the new segment was read


def test_a_reader_sees_another_instances_writes_on_its_next_call(local_index):
    reader = NumpyIndex(local_index.root.parent, local_index.name)
    assert reader.count() == 0
    local_index.upsert([doc("a", vector(1))])
    assert reader.count() == 1
    local_index.delete(["a"])
    assert reader.get("a") is None and reader.count() == 0


def test_a_reader_never_reuses_segments_of_a_deleted_and_recreated_index(local_index):
    reader = NumpyIndex(local_index.root.parent, local_index.name)
    local_index.upsert([doc("old", vector(1))])
    assert reader.get("old") is not None
    shutil.rmtree(local_index.root)
    recreated = NumpyIndex(local_index.root.parent, local_index.name)
    recreated.ensure_index(load_schema(MODEL))
    recreated.upsert([doc("new", vector(2))])  # the same segment id as "old" had
    assert reader.get("old") is None and reader.get("new") is not None


# --- other processes ----------------------------------------------------------------------

CHILD_PRELUDE = """
import json, os, sys
import numpy as np
from indexer.backends.numpy_index import NumpyIndex
from indexer.schema import load_schema
from indexer.documents import Document, Embedding

MODEL = "local-conse-usem3-v1"

def vector(seed, dims=512):
    return np.random.default_rng(seed).normal(size=dims).astype(np.float32)

def doc(key, seed, **fields):
    return Document(key, Embedding(vector(seed), MODEL), {"source": "images/" + key + ".jpg", **fields})
"""


def run_child(body: str, *args: str, check: bool = True, **popen) -> subprocess.CompletedProcess:
    script = CHILD_PRELUDE + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
        **popen,
    )


def test_writes_in_one_process_are_read_in_another(local_index):
    local_index.upsert([doc("parent", vector(1), width=1)])
    directory, name = str(local_index.root.parent), local_index.name
    run_child(
        """
        index = NumpyIndex(sys.argv[1], sys.argv[2])
        assert index.get("parent")["width"] == 1
        index.upsert([doc("child", 2, width=2)])
        index.upsert([doc("parent", 1, width=10)])
    """,
        directory,
        name,
    )
    assert local_index.get("child")["width"] == 2 and local_index.get("parent")["width"] == 10
    assert local_index.search(Embedding(vector(2), MODEL), k=1)[0].key == "child"

    local_index.delete(["child"])
    out = run_child(
        """
        index = NumpyIndex(sys.argv[1], sys.argv[2])
        hits = index.search(Embedding(vector(1), MODEL), k=5)
        print(json.dumps({"count": index.count(), "keys": [h.key for h in hits]}))
    """,
        directory,
        name,
    )
    assert json.loads(out.stdout) == {"count": 1, "keys": ["parent"]}


CRASHING_WRITER = """
target = int(sys.argv[3])
calls = [0]

def crash_before(real):
    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == target:
            os._exit(77)  # dies like a killed process: no cleanup, no flush, no finally
        return real(*args, **kwargs)
    return wrapped

os.replace = crash_before(os.replace)
os.fsync = crash_before(os.fsync)
index = NumpyIndex(sys.argv[1], sys.argv[2], merge_fanout=2)
operation = sys.argv[4]
if operation == "upsert":
    index.upsert([doc(f"k{i}", 1000 + i, width=i) for i in range(8, 13)])  # and merges
elif operation == "delete":
    index.delete([f"k{i}" for i in range(0, 12)])
else:
    index.upsert([doc("k3", 3, width=333, tags=["replaced"])])
print(calls[0])
"""


def seed_crash_index(directory: Path) -> NumpyIndex:
    index = NumpyIndex(directory, "images", merge_fanout=2)
    index.ensure_index(load_schema(MODEL))
    for start in range(0, 15, 5):  # a few segments, so the next write merges
        index.upsert([doc(f"k{i}", vector(i), width=i) for i in range(start, start + 5)])
    return index


@pytest.mark.parametrize("operation", ["upsert", "delete", "replace"])
def test_a_crash_at_any_point_of_a_write_leaves_the_old_or_the_new_state(tmp_path, operation):
    seed = seed_crash_index(tmp_path / "seed")
    old = contents(seed)
    complete = tmp_path / "complete"
    shutil.copytree(tmp_path / "seed", complete)
    total_calls = int(run_child(CRASHING_WRITER, str(complete), "images", "0", operation).stdout)
    new = contents(NumpyIndex(complete, "images"))
    assert new != old and total_calls > 5

    outcomes = []
    for crash_at in range(1, total_calls + 1):
        trial = tmp_path / f"crash{crash_at}"
        shutil.copytree(tmp_path / "seed", trial)
        child = run_child(CRASHING_WRITER, str(trial), "images", str(crash_at), operation, check=False)
        assert child.returncode == 77, child.stderr
        index = NumpyIndex(trial, "images", merge_fanout=2)
        state = contents(index)
        assert state in (old, new), f"crash before call {crash_at} left a third state"
        outcomes.append(state == new)
        # the index stays writable, and the next write sweeps away what the crash left
        index.upsert([doc("after", vector(5000))])
        manifest = json.loads((index.root / "manifest.json").read_text())
        referenced = {f"{s['id']}{ext}" for s in manifest["segments"] for ext in (".json", ".npy")}
        assert {p.name for p in (index.root / "segments").iterdir()} == referenced
        assert sorted(p.name for p in index.root.iterdir()) == ["lock", "manifest.json", "segments"]
        shutil.rmtree(trial)
    assert outcomes[0] is False and outcomes[-1] is True  # both sides of the switch were hit


KILLED_WRITER = """
index = NumpyIndex(sys.argv[1], sys.argv[2], merge_fanout=2)
for batch in range(1000):
    index.upsert([doc(f"b{batch}-{j}", batch * 1000 + j, width=batch) for j in range(400)])
    print(batch, flush=True)
"""


def test_sigkill_during_large_writes_leaves_whole_batches(local_index):
    script = CHILD_PRELUDE + textwrap.dedent(KILLED_WRITER)
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(local_index.root.parent), local_index.name],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(3):  # let it commit a few batches (and merge), then kill it mid-stream
            assert child.stdout.readline(), child.stderr.read()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    state = contents(NumpyIndex(local_index.root.parent, local_index.name))
    batches = sorted({int(key.split("-")[0][1:]) for key in state})
    assert len(batches) >= 3 and batches == list(range(len(batches)))
    assert len(state) == 400 * len(batches)
    for key in (f"b{b}-{j}" for b in batches for j in (0, 399)):
        batch, j = (int(x) for x in key[1:].split("-"))
        expected = unit(vector(batch * 1000 + j)).astype(np.float32)
        assert np.allclose(np.frombuffer(state[key][1], dtype=np.float32), expected, atol=1e-6)
        assert state[key][0]["width"] == batch


CONCURRENT_WRITER = """
index = NumpyIndex(sys.argv[1], sys.argv[2], merge_fanout=2)
me = sys.argv[3]
field = "width" if me == "w1" else "height"
for i in range(15):
    index.upsert([doc(f"{me}-{i}", (1 if me == "w1" else 2) * 100 + i)])
    index.upsert([doc(f"last-{me}", 1, **{field: i})])
    if i % 5 == 4:
        index.delete([f"{me}-{i - 4}"])
"""


def test_concurrent_writers_in_two_processes_do_not_lose_updates(local_index):
    script = CHILD_PRELUDE + textwrap.dedent(CONCURRENT_WRITER)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(local_index.root.parent), local_index.name, me],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me in ("w1", "w2")
    ]
    for child in children:
        assert child.wait(timeout=120) == 0, child.stderr.read()
    expected = {"last-w1", "last-w2"} | {f"{me}-{i}" for me in ("w1", "w2") for i in range(15) if i % 5 != 0}
    assert set(contents(local_index)) == expected
    assert (local_index.get("last-w1")["width"], local_index.get("last-w2")["height"]) == (14, 14)


# --- a random walk against a plain dict ----------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("upsert"), st.lists(st.tuples(st.integers(0, 7), st.integers(0, 50)), min_size=1, max_size=4)
        ),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 9), min_size=1, max_size=3)),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, fanout=st.integers(2, 3))
def test_any_sequence_of_writes_matches_a_dict_model(tmp_path_factory, ops, fanout):
    directory = tmp_path_factory.mktemp("walk")
    index = NumpyIndex(directory, "images", merge_fanout=fanout)
    index.ensure_index(load_schema(MODEL))
    follower = NumpyIndex(directory, "images")  # another instance, reloading after every write
    model: dict[str, tuple[dict, int]] = {}
    for op, arg in ops:
        if op == "upsert":
            index.upsert([doc(f"k{key}", vector(seed), width=seed) for key, seed in arg])
            for key, seed in arg:
                model[f"k{key}"] = ({"source": f"images/k{key}.jpg", "width": seed}, seed)
        else:
            index.delete([f"k{key}" for key in arg])
            for key in arg:
                model.pop(f"k{key}", None)
        assert index.count() == len(model)
        assert {k: v[0] for k, v in contents(follower).items()} == {k: v[0] for k, v in model.items()}
    for reader in (index, follower, NumpyIndex(directory, "images")):  # in memory, and freshly loaded from disk
        state = contents(reader)
        assert {k: v[0] for k, v in state.items()} == {k: v[0] for k, v in model.items()}
        for key, (_, seed) in model.items():
            assert np.allclose(np.frombuffer(state[key][1], dtype=np.float32), unit(vector(seed)), atol=1e-6)
        if model:
            probe = next(iter(model))
            hits = reader.search(Embedding(vector(model[probe][1]), MODEL), k=len(model))
            assert len(hits) == len(model) and hits[0].score == pytest.approx(1.0, abs=1e-5)
