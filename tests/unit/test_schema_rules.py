"""The Azure AI Search rules both backends enforce (``indexer.backends.schema_rules``), one
function at a time: names and keys, the schema, document values by EDM type, dates, query
options and filter values. Errors are checked by type, the field or limit they name, and
the words that say what was expected."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pytest

from indexer.backends.schema_rules import (
    MAX_K,
    check_filter_fields,
    check_index_name,
    check_k,
    check_schema_supported,
    check_select,
    check_threshold,
    coerce_filter_value,
    datetime_micros,
    element_type,
    key_problem,
    parse_datetime_offset,
    validate_fields,
)
from indexer.documents import IndexPin
from indexer.errors import FilterError, InvalidDocumentError, InvalidQueryError
from indexer.filters import Condition
from indexer.keys import document_key
from indexer.model_versions import MODEL_VERSIONS
from indexer.schema import IndexSchema, load_schema


def field(name: str, edm_type: str, **options) -> dict:
    return {"name": name, "type": edm_type, "filterable": True, "retrievable": True, **options}


def make_schema(*extra: dict, dims: int = 4, key: dict | None = None, vector: dict | None = None) -> IndexSchema:
    """A schema with one field of every type the local index supports (and ``extra`` ones)."""
    fields = [
        key if key is not None else field("id", "Edm.String", key=True),
        vector
        if vector is not None
        else {"name": "image_vector", "type": "Collection(Edm.Single)", "dimensions": dims, "retrievable": False},
        field("source", "Edm.String"),
        field("width", "Edm.Int32"),
        field("size_bytes", "Edm.Int64"),
        field("ratio", "Edm.Double"),
        field("flag", "Edm.Boolean"),
        field("taken", "Edm.DateTimeOffset"),
        field("tags", "Collection(Edm.String)"),
        field("sizes", "Collection(Edm.Int32)"),
        {"name": "secret", "type": "Edm.String", "filterable": False, "retrievable": False},
        {"name": "note", "type": "Edm.String"},  # neither flag given: filterable no, retrievable yes
        *extra,
    ]
    return IndexSchema(IndexPin("test-model", dims), {"description": "test", "fields": fields})


SCHEMA = make_schema()
METADATA = ["source", "width", "size_bytes", "ratio", "flag", "taken", "tags", "sizes", "secret", "note"]

# --- names and keys -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ab", "images", "0x", "a-b_c", "a-b-c", "my_index_2", "a" * 128, "a_-b", "a-_b"])
def test_index_names_azure_accepts(name):
    assert check_index_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "",
        "Images",
        "-images",
        "_images",
        "im--ages",
        "im__ages",
        "im/ages",
        "..",
        "a" * 129,
        "images\n",
        "im ages",
    ],
)
def test_index_names_azure_refuses(name):
    with pytest.raises(ValueError) as caught:
        check_index_name(name)
    assert str(caught.value) == (
        f"invalid index name {name!r}: use 2 to 128 lower-case letters, digits, '-' and '_', "
        f"starting with a letter or digit, without consecutive dashes or underscores"
    )


@pytest.mark.parametrize("name", [None, 42, b"images"])
def test_an_index_name_must_be_a_string(name):
    with pytest.raises(ValueError, match="invalid index name"):
        check_index_name(name)


@pytest.mark.parametrize("key", ["a", "A-z_0=", "=sha256=abc", "x" * 1024, document_key("photos/é?.jpg")])
def test_valid_keys_have_no_problem(key):
    assert key_problem(key) is None


@pytest.mark.parametrize("key", ["", None, 42, b"abc"])
def test_a_key_must_be_a_non_empty_string(key):
    assert key_problem(key) == f"invalid document key {key!r}: the key must be a non-empty string"


def test_a_key_may_have_1024_characters_but_no_more():
    assert key_problem("x" * 1024) is None
    assert key_problem("x" * 1025) == "invalid document key: 1025 characters, the limit is 1024"
    # The length is checked first: the (long) key itself is not repeated in the reason.
    assert key_problem("/" * 1025) == "invalid document key: 1025 characters, the limit is 1024"


@pytest.mark.parametrize("key", ["a b", "a/b", "a.b", "é", "a+b", "abc\n", "\nabc", "a\tb"])
def test_a_key_with_other_characters_is_refused_naming_the_allowed_ones(key):
    assert key_problem(key) == (
        f"invalid document key {key!r}: keys can only contain letters, digits, underscore (_), "
        f"dash (-) or equal sign (=); encode other identities with indexer.keys.document_key"
    )


@pytest.mark.parametrize("key", ["_", "_hidden", "__x"])
def test_a_key_cannot_start_with_an_underscore(key):
    assert key_problem(key) == f"invalid document key {key!r}: a key cannot start with an underscore"


# --- the schema -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edm_type,expected",
    [
        ("Edm.String", ("Edm.String", False)),
        ("Collection(Edm.String)", ("Edm.String", True)),
        ("Collection(Edm.Int32)", ("Edm.Int32", True)),
        ("Collection(Edm.String", ("Collection(Edm.String", False)),
        ("Edm.String)", ("Edm.String)", False)),
        ("Collection()", ("", True)),
    ],
)
def test_element_type(edm_type, expected):
    assert element_type(edm_type) == expected


@pytest.mark.parametrize("model_version", sorted(MODEL_VERSIONS))
def test_every_shipped_schema_is_supported(model_version):
    assert check_schema_supported(load_schema(model_version)) is None


def test_a_schema_of_every_supported_type_is_supported():
    assert SCHEMA.metadata_fields == {
        "source": "Edm.String",
        "width": "Edm.Int32",
        "size_bytes": "Edm.Int64",
        "ratio": "Edm.Double",
        "flag": "Edm.Boolean",
        "taken": "Edm.DateTimeOffset",
        "tags": "Collection(Edm.String)",
        "sizes": "Collection(Edm.Int32)",
        "secret": "Edm.String",
        "note": "Edm.String",
    }
    assert check_schema_supported(SCHEMA) is None


@pytest.mark.parametrize(
    "key",
    [
        field("other", "Edm.String", key=True),  # no field named id
        field("id", "Edm.String"),  # id, but not the key
        field("id", "Edm.String", key=False),
        field("id", "Edm.Int32", key=True),
    ],
)
def test_a_schema_without_a_string_key_field_named_id_is_refused(key):
    with pytest.raises(ValueError) as caught:
        check_schema_supported(make_schema(key=key))
    assert str(caught.value) == "the index schema needs the key field 'id' of type Edm.String"


@pytest.mark.parametrize(
    "vector",
    [
        {"name": "vec", "type": "Collection(Edm.Single)", "dimensions": 4},
        {"name": "image_vector", "type": "Collection(Edm.Single)", "dimensions": 3},
        {"name": "image_vector", "type": "Collection(Edm.Single)"},
    ],
)
def test_a_schema_without_the_pinned_vector_field_is_refused(vector):
    with pytest.raises(ValueError) as caught:
        check_schema_supported(make_schema(vector=vector))
    assert str(caught.value) == "the index schema needs the vector field 'image_vector' with 4 dimensions"


@pytest.mark.parametrize(
    "edm_type", ["Edm.GeographyPoint", "Edm.ComplexType", "Collection(Edm.ComplexType)", "Edm.Single"]
)
def test_a_schema_with_a_type_the_local_index_cannot_hold_is_refused_naming_the_field(edm_type):
    with pytest.raises(ValueError) as caught:
        check_schema_supported(make_schema(field("where", edm_type)))
    assert str(caught.value) == f"field 'where' has type {edm_type}, which the local index does not support"


# --- document fields ------------------------------------------------------------------------


def test_valid_fields_are_returned_as_stored_without_nulls():
    fields = {
        "id": "k1",
        "source": "images/a.jpg",
        "width": np.int32(640),
        "size_bytes": 2**40,
        "ratio": 1,
        "flag": np.bool_(True),
        "taken": datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))),
        "tags": ("cat", "sofa"),
        "sizes": np.array([1, 2], dtype=np.int64),
        "note": None,
    }
    stored = validate_fields(SCHEMA, "k1", fields)
    assert stored == {
        "source": "images/a.jpg",
        "width": 640,
        "size_bytes": 2**40,
        "ratio": 1.0,
        "flag": True,
        "taken": "2024-05-01T12:30:00Z",
        "tags": ["cat", "sofa"],
        "sizes": [1, 2],
    }
    assert [type(stored[n]) for n in ("width", "ratio", "flag", "tags")] == [int, float, bool, list]
    assert [type(v) for v in stored["sizes"]] == [int, int]


def test_a_null_field_is_dropped_and_the_fields_after_it_still_count():
    assert validate_fields(SCHEMA, "k1", {"source": None, "width": 5, "note": None, "flag": False}) == {
        "width": 5,
        "flag": False,
    }
    with pytest.raises(InvalidDocumentError, match="unknown field 'colour'"):
        validate_fields(SCHEMA, "k1", {"source": None, "colour": "red"})
    with pytest.raises(InvalidDocumentError, match="field 'width' is Edm.Int32 and needs an integer"):
        validate_fields(SCHEMA, "k1", {"id": "k1", "width": "wide"})


def test_no_fields_is_fine():
    assert validate_fields(SCHEMA, "k1", {}) == {}


@pytest.mark.parametrize("fields", [["source"], "source=a", None])
def test_fields_must_be_a_dict(fields):
    with pytest.raises(InvalidDocumentError) as caught:
        validate_fields(SCHEMA, "k1", fields)
    assert str(caught.value) == f"document 'k1': fields must be a dict, not {type(fields).__name__}"


def test_the_key_field_may_repeat_the_key_but_not_contradict_it():
    assert validate_fields(SCHEMA, "k1", {"id": "k1", "width": 20}) == {"width": 20}
    with pytest.raises(InvalidDocumentError) as caught:
        validate_fields(SCHEMA, "k1", {"id": "k2"})
    assert str(caught.value) == (
        "document 'k1': field 'id' is the document key and says 'k2'; set the key through Document.key only"
    )


def test_the_vector_is_not_a_field():
    with pytest.raises(InvalidDocumentError) as caught:
        validate_fields(SCHEMA, "k1", {"image_vector": [0.1, 0.2, 0.3, 0.4]})
    assert str(caught.value) == (
        "document 'k1': the vector field 'image_vector' goes in Document.embedding, not in fields"
    )


def test_an_unknown_field_is_refused_listing_the_schemas_fields():
    with pytest.raises(InvalidDocumentError) as caught:
        validate_fields(SCHEMA, "k1", {"source": "a", "colour": "red"})
    assert str(caught.value) == (
        "document 'k1': unknown field 'colour'; the index schema has: "
        "flag, note, ratio, secret, size_bytes, sizes, source, tags, taken, width"
    )
    with pytest.raises(InvalidDocumentError, match="unknown field 'colour'"):
        validate_fields(SCHEMA, "k1", {"colour": None})  # even when null


def test_precomputed_types_are_used_instead_of_the_schemas():
    types = {"source": "Edm.String", "extra": "Edm.Int32"}
    assert validate_fields(SCHEMA, "k1", {"extra": 5}, types=types) == {"extra": 5}
    with pytest.raises(InvalidDocumentError) as caught:
        validate_fields(SCHEMA, "k1", {"width": 5}, types=types)
    assert str(caught.value) == "document 'k1': unknown field 'width'; the index schema has: extra, source"


def check_one(name: str, value, edm_type: str | None = None):
    types = {name: edm_type} if edm_type else None
    return validate_fields(SCHEMA, "k1", {name: value}, types=types)[name]


def refused(name: str, value, edm_type: str | None = None) -> str:
    with pytest.raises(InvalidDocumentError) as caught:
        check_one(name, value, edm_type)
    return str(caught.value)


@pytest.mark.parametrize("value", [5, b"a", ["a"], None.__class__])
def test_a_string_field_needs_a_string(value):
    assert refused("source", value) == (
        f"document 'k1': field 'source' is Edm.String and needs a string, got {type(value).__name__} {value!r}"
    )


def test_a_string_field_keeps_the_text():
    assert check_one("source", "") == ""
    assert check_one("source", "a'b") == "a'b"


@pytest.mark.parametrize("name,low,high", [("width", -(2**31), 2**31 - 1), ("size_bytes", -(2**63), 2**63 - 1)])
def test_integer_fields_take_exactly_their_edm_range(name, low, high):
    assert check_one(name, low) == low
    assert check_one(name, high) == high
    assert check_one(name, 0) == 0
    edm_type = SCHEMA.metadata_fields[name]
    for outside in (low - 1, high + 1):
        assert refused(name, outside) == (
            f"document 'k1': field {name!r} is {edm_type} and needs an integer from {low} to {high}, got int {outside}"
        )


def test_the_int32_bounds_are_the_powers_of_two():
    assert check_one("width", 2**31 - 1) == 2147483647
    assert "from -2147483648 to 2147483647" in refused("width", 2**31)
    assert check_one("width", -(2**31)) == -2147483648
    assert "from -2147483648 to 2147483647" in refused("width", -(2**31) - 1)
    assert check_one("size_bytes", 2**63 - 1) == 9223372036854775807
    assert "from -9223372036854775808 to 9223372036854775807" in refused("size_bytes", 2**63)
    assert check_one("size_bytes", -(2**63)) == -9223372036854775808
    assert "from -9223372036854775808 to 9223372036854775807" in refused("size_bytes", -(2**63) - 1)


@pytest.mark.parametrize("name", ["width", "size_bytes"])
@pytest.mark.parametrize("value", [True, False, np.bool_(True), 5.0, "5", np.float64(5.0), None.__class__])
def test_integer_fields_refuse_booleans_floats_and_text(name, value):
    edm_type = SCHEMA.metadata_fields[name]
    assert refused(name, value).startswith(
        f"document 'k1': field {name!r} is {edm_type} and needs an integer, got {type(value).__name__} "
    )


@pytest.mark.parametrize("value", [np.int8(5), np.int64(5), np.uint16(5)])
def test_integer_fields_take_numpy_integers_as_ints(value):
    stored = check_one("width", value)
    assert stored == 5 and type(stored) is int


def test_a_refused_value_is_shown_cut_to_80_characters():
    message = refused("width", "x" * 200)
    assert message.endswith("got str '" + "x" * 79)


@pytest.mark.parametrize("value,stored", [(1, 1.0), (0.5, 0.5), (np.float32(0.25), 0.25), (-(2**80), -(2.0**80))])
def test_a_double_field_takes_any_finite_real_as_a_float(value, stored):
    result = check_one("ratio", value)
    assert result == stored and type(result) is float


@pytest.mark.parametrize("value", [True, np.bool_(False), "0.5", None.__class__, 1j])
def test_a_double_field_refuses_what_is_not_a_number(value):
    assert refused("ratio", value).startswith(
        f"document 'k1': field 'ratio' is Edm.Double and needs a number, got {type(value).__name__} "
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), np.float64("nan")])
def test_a_double_field_refuses_nan_and_infinity(value):
    assert refused("ratio", value) == (
        f"document 'k1': field 'ratio' is Edm.Double and needs a finite number, got {type(value).__name__} {value!r}"
    )


@pytest.mark.parametrize(
    "value,stored", [(True, True), (False, False), (np.bool_(True), True), (np.bool_(False), False)]
)
def test_a_boolean_field_takes_booleans(value, stored):
    result = check_one("flag", value)
    assert result is stored


@pytest.mark.parametrize("value", [1, 0, "true", "false", None.__class__])
def test_a_boolean_field_refuses_numbers_and_text(value):
    assert refused("flag", value) == (
        f"document 'k1': field 'flag' is Edm.Boolean and needs true or false, got {type(value).__name__} {value!r}"
    )


@pytest.mark.parametrize(
    "value,stored",
    [
        (datetime(2024, 5, 1, 12, tzinfo=UTC), "2024-05-01T12:00:00Z"),
        (datetime(2024, 5, 1, 2, 30, tzinfo=timezone(timedelta(hours=5))), "2024-04-30T21:30:00Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC), "2024-05-01T12:00:00.250000Z"),
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),  # text is kept as given
        ("2024-05-01T14:00:00+02:00", "2024-05-01T14:00:00+02:00"),
        ("2024-05-01T12:00Z", "2024-05-01T12:00Z"),
    ],
)
def test_a_date_field_takes_aware_datetimes_and_iso_text_with_a_zone(value, stored):
    assert check_one("taken", value) == stored


def test_a_datetime_is_stored_in_utc_whatever_the_local_zone(far_from_utc):
    stored = check_one("taken", datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))))
    assert stored == "2024-05-01T12:30:00Z"
    assert parse_datetime_offset(stored) == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def test_a_date_field_refuses_a_naive_datetime():
    assert refused("taken", datetime(2024, 5, 1, 12)) == (
        "document 'k1': field 'taken' is Edm.DateTimeOffset and needs a date and time with a time zone "
        "(a naive datetime is ambiguous), got datetime datetime.datetime(2024, 5, 1, 12, 0)"
    )


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00",  # no zone
        "2024-05-01",  # no time
        "2024-05-01 12:00:00+00:00",  # no T
        "2024-05-01T25:00:00Z",  # has a T, but is no date
        "Tomorrow",
        "soon",
        "",
        date(2024, 5, 1),
        1714564800,
    ],
)
def test_a_date_field_refuses_anything_but_a_zoned_date_and_time(value):
    assert refused("taken", value) == (
        "document 'k1': field 'taken' is Edm.DateTimeOffset and needs an ISO 8601 date and time with a time "
        f"zone, e.g. 2024-05-01T12:00:00Z, got {type(value).__name__} {value!r}"
    )


def test_a_collection_takes_a_list_tuple_or_array_and_checks_every_item():
    assert check_one("tags", ["a", "b"]) == ["a", "b"]
    assert check_one("tags", ()) == []
    assert check_one("sizes", np.array([3, 4])) == [3, 4]
    assert refused("sizes", [1, 2**31]) == (
        "document 'k1': field 'sizes' is Edm.Int32 and needs an integer from -2147483648 to 2147483647, "
        "got int 2147483648"
    )
    assert refused("tags", ["a", 5]) == "document 'k1': field 'tags' is Edm.String and needs a string, got int 5"


@pytest.mark.parametrize("value", ["cat", b"cat", {"cat": 1}, 5, {"cat"}])
def test_a_collection_needs_a_list(value):
    assert refused("tags", value) == (
        f"document 'k1': field 'tags' is Collection(Edm.String) and needs a list, not {type(value).__name__}"
    )


def test_a_collection_cannot_hold_null():
    assert refused("tags", ["a", None]) == "document 'k1': field 'tags' (Collection(Edm.String)) cannot hold null"


def test_a_type_the_rules_do_not_know_is_refused():
    assert refused("where", "POINT(1 2)", "Edm.GeographyPoint") == (
        "document 'k1': field 'where' is Edm.GeographyPoint and needs a supported type, got str 'POINT(1 2)'"
    )


# --- dates in filters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 5, 1, 12),
        "2024-05-01T12:00:00",
        " 2024-05-01T12:00:00 ",
    ],
)
def test_a_date_without_a_zone_means_utc_whatever_the_local_zone(far_from_utc, value):
    parsed = parse_datetime_offset(value)
    assert parsed == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)
    assert (parsed.hour, parsed.minute) == (12, 0)


def test_a_bare_date_means_midnight_utc(far_from_utc):
    for value in (date(2024, 5, 1), "2024-05-01"):
        parsed = parse_datetime_offset(value)
        assert parsed == datetime(2024, 5, 1, tzinfo=UTC)
        assert (parsed.hour, parsed.utcoffset()) == (0, timedelta(0))


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2))),
        "2024-05-01T14:00:00+02:00",
        "2024-05-01T12:00:00Z",
        "2024-05-01T07:00:00-05:00",
    ],
)
def test_a_zoned_date_is_converted_to_utc(value):
    parsed = parse_datetime_offset(value)
    assert parsed.tzinfo is UTC
    assert (parsed.year, parsed.month, parsed.day, parsed.hour, parsed.minute) == (2024, 5, 1, 12, 0)


def test_what_is_no_date_is_refused_naming_it():
    with pytest.raises(ValueError) as caught:
        parse_datetime_offset("soon")
    assert str(caught.value) == "'soon' is not an ISO 8601 date, e.g. 2024-05-01 or 2024-05-01T12:00:00Z"
    with pytest.raises(ValueError) as caught:
        parse_datetime_offset(1714564800)
    assert str(caught.value) == "1714564800 is not a date"
    with pytest.raises(ValueError) as caught:
        parse_datetime_offset(None)
    assert str(caught.value) == "None is not a date"


@pytest.mark.parametrize(
    "value,micros",
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:01Z", 1_000_000),
        ("1970-01-02", 86_400_000_000),
        ("1969-12-31T23:59:59Z", -1_000_000),
        (datetime(1970, 1, 1, 0, 0, 0, 7, tzinfo=UTC), 7),
        ("2024-05-01T12:00:00.5+02:00", 1_714_557_600_500_000),
    ],
)
def test_datetime_micros_counts_microseconds_since_the_epoch(value, micros):
    assert datetime_micros(value) == micros


# --- filters ----------------------------------------------------------------------------------


def test_filter_fields_returns_the_conditions_in_order():
    conditions = [Condition("width", "ge", "5"), Condition("source", "eq", "a"), Condition("id", "eq", "k")]
    assert check_filter_fields(SCHEMA, conditions) == conditions
    assert check_filter_fields(SCHEMA, iter(conditions)) == conditions
    assert check_filter_fields(SCHEMA, []) == []


def test_a_filter_must_be_a_condition():
    with pytest.raises(FilterError) as caught:
        check_filter_fields(SCHEMA, [Condition("width", "eq", 1), "width=5"])
    assert str(caught.value) == "a filter must be a Condition, not str: 'width=5'"


def test_a_filter_on_an_unknown_field_lists_the_fields_a_person_filters_on():
    with pytest.raises(FilterError) as caught:
        check_filter_fields(SCHEMA, [Condition("colour", "eq", "red")])
    assert str(caught.value) == (
        "cannot filter on unknown field 'colour'; filterable fields: "
        "width, size_bytes, ratio, flag, taken, tags, sizes"  # the key and source are bookkeeping
    )
    assert check_filter_fields(SCHEMA, [Condition("source", "eq", "a.jpg")])  # still accepted


def test_the_readme_names_the_shipped_schemas_filter_fields():
    from pathlib import Path

    from indexer.model_versions import DEFAULT_MODEL_VERSION
    from indexer.schema import load_schema

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    paragraph = readme[readme.index("filterable fields: ") :].split(". ", 1)[0]
    named = [part.strip(" `\n") for part in paragraph.removeprefix("filterable fields: ").split(",")]
    assert named == load_schema(DEFAULT_MODEL_VERSION).filter_fields


@pytest.mark.parametrize("name", ["secret", "note", "image_vector"])
def test_a_filter_on_a_field_that_is_not_filterable_is_refused(name):
    with pytest.raises(FilterError) as caught:
        check_filter_fields(SCHEMA, [Condition(name, "eq", "x")])
    assert str(caught.value) == f"field {name!r} is not filterable"


def test_select_defaults_to_every_retrievable_metadata_field_in_schema_order():
    assert check_select(SCHEMA, None) == (
        "source",
        "width",
        "size_bytes",
        "ratio",
        "flag",
        "taken",
        "tags",
        "sizes",
        "note",
    )


@pytest.mark.parametrize(
    "select,expected",
    [
        ("width", ("width",)),
        (" width , source ", ("width", "source")),
        (["source", "width"], ("source", "width")),
        (("note",), ("note",)),
        (["width", "source", "width"], ("width", "source")),
        ("id", ("id",)),
        ([], ()),
    ],
)
def test_select_names_exactly_the_fields_asked_for(select, expected):
    assert check_select(SCHEMA, select) == expected


@pytest.mark.parametrize("select,bad", [("colour", "'colour'"), (["width", 5], "5"), ("width,", "''")])
def test_select_of_an_unknown_field_lists_the_fields(select, bad):
    with pytest.raises(InvalidQueryError) as caught:
        check_select(SCHEMA, select)
    assert str(caught.value) == (
        f"cannot select unknown field {bad}; fields: "
        "flag, id, image_vector, note, ratio, secret, size_bytes, sizes, source, tags, taken, width"
    )


@pytest.mark.parametrize("name", ["secret", "image_vector"])
def test_select_of_a_field_that_is_not_retrievable_is_refused(name):
    with pytest.raises(InvalidQueryError) as caught:
        check_select(SCHEMA, ["width", name])
    assert str(caught.value) == f"cannot select field {name!r}: it is not retrievable"


@pytest.mark.parametrize("k", [1, 10, MAX_K, np.int64(7)])
def test_k_from_1_to_1000(k):
    assert check_k(k) == int(k) and type(check_k(k)) is int
    assert MAX_K == 1000


@pytest.mark.parametrize("k", [0, -1, 1001, True, np.bool_(True), 5.0, "5", None])
def test_k_outside_1_to_1000_or_not_a_whole_number_is_refused(k):
    with pytest.raises(InvalidQueryError) as caught:
        check_k(k)
    assert str(caught.value) == f"k must be a whole number from 1 to 1000, got {k!r}"


@pytest.mark.parametrize("threshold", [-1, -1.0, 0, 0.5, 1, 1.0, np.float32(0.5)])
def test_threshold_from_minus_1_to_1_is_a_float(threshold):
    result = check_threshold(threshold)
    assert result == float(threshold) and type(result) is float


def test_no_threshold_is_none():
    assert check_threshold(None) is None


@pytest.mark.parametrize("threshold", [1.0001, -1.0001, 2, True, np.bool_(False), "0.5", float("nan"), 1j])
def test_threshold_outside_the_cosine_range_is_refused(threshold):
    with pytest.raises(InvalidQueryError) as caught:
        check_threshold(threshold)
    assert str(caught.value) == f"threshold must be a cosine similarity from -1 to 1, got {threshold!r}"


# --- filter values --------------------------------------------------------------------------


def coerce(name: str, op: str, value):
    return coerce_filter_value(Condition(name, op, value), SCHEMA.fields[name]["type"])


def coerce_error(name: str, op: str, value) -> str:
    with pytest.raises(FilterError) as caught:
        coerce(name, op, value)
    return str(caught.value)


@pytest.mark.parametrize("name", ["source", "width", "ratio", "flag", "taken"])
@pytest.mark.parametrize("op", ["eq", "ne"])
def test_null_compares_with_equality_on_single_valued_fields(name, op):
    assert coerce(name, op, None) is None


@pytest.mark.parametrize("name,op", [("width", "gt"), ("source", "le"), ("tags", "eq"), ("sizes", "ne")])
def test_null_with_a_range_or_on_a_collection_is_refused(name, op):
    assert coerce_error(name, op, None) == (
        f"filter on {name!r}: null can only be compared with = or != on a single-valued field"
    )


def test_string_values():
    assert coerce("source", "eq", "a'b") == "a'b"
    assert coerce("source", "ge", "") == ""
    assert coerce("tags", "eq", "cat") == "cat"
    assert coerce_error("source", "eq", 5) == "filter on 'source' (Edm.String) needs a string, got 5"
    assert coerce_error("tags", "eq", True) == "filter on 'tags' (Collection(Edm.String)) needs a string, got True"


@pytest.mark.parametrize(
    "value,expected",
    [(True, True), (False, False), (np.bool_(True), True), ("true", True), (" TRUE ", True), ("False", False)],
)
@pytest.mark.parametrize("op", ["eq", "ne"])
def test_boolean_values(value, expected, op):
    result = coerce("flag", op, value)
    assert result is expected


@pytest.mark.parametrize("op", ["gt", "ge", "lt", "le"])
def test_booleans_only_compare_for_equality(op):
    assert coerce_error("flag", op, True) == (
        "filter on 'flag' (Edm.Boolean): only = and != apply to true/false values"
    )


@pytest.mark.parametrize("value", ["yes", "1", 1, 0, "", "truely"])
def test_a_boolean_filter_needs_true_or_false(value):
    assert coerce_error("flag", "eq", value) == f"filter on 'flag' (Edm.Boolean) needs true or false, got {value!r}"


def test_date_values_become_microseconds_since_the_epoch():
    assert coerce("taken", "ge", "1970-01-01T00:00:01Z") == 1_000_000
    assert coerce("taken", "lt", datetime(1970, 1, 2, tzinfo=UTC)) == 86_400_000_000
    assert coerce_error("taken", "eq", "soon") == (
        "filter on 'taken' (Edm.DateTimeOffset) needs a date ('soon' is not an ISO 8601 date, "
        "e.g. 2024-05-01 or 2024-05-01T12:00:00Z), got 'soon'"
    )
    assert (
        coerce_error("taken", "eq", 5) == "filter on 'taken' (Edm.DateTimeOffset) needs a date (5 is not a date), got 5"
    )


@pytest.mark.parametrize(
    "name,value,expected",
    [
        ("width", "5", 5),
        ("width", " -5 ", -5),
        ("width", 5, 5),
        ("width", np.int64(5), 5),
        ("width", "5.5", 5.5),
        ("width", "1e3", 1000.0),
        ("width", 5.5, 5.5),
        ("ratio", np.float32(0.5), 0.5),
        ("ratio", "5", 5),
        ("sizes", "3", 3),
        ("size_bytes", str(2**63 - 1), 2**63 - 1),
        ("size_bytes", str(-(2**63)), -(2**63)),
    ],
)
def test_number_values_keep_integers_as_integers(name, value, expected):
    result = coerce(name, "ge", value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("text", [str(2**63), str(-(2**63) - 1), str(10**30)])
def test_integers_beyond_int64_compare_as_floats_on_integer_fields(text):
    result = coerce("size_bytes", "gt", text)
    assert type(result) is float and result == float(int(text))
    assert type(coerce("width", "gt", text)) is float


def test_a_double_field_keeps_big_integers_exact():
    assert coerce("ratio", "gt", str(2**63)) == 2**63
    assert type(coerce("ratio", "gt", str(2**63))) is int


@pytest.mark.parametrize("value", ["abc", "", "5 or true", "0x10", True, np.bool_(False), [5], None.__class__])
def test_a_number_filter_refuses_what_is_not_a_number(value):
    assert coerce_error("width", "eq", value) == f"filter on 'width' (Edm.Int32) needs a number, got {value!r}"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan"), float("inf"), np.float64("inf")])
def test_a_number_filter_refuses_nan_and_infinity(value):
    assert coerce_error("ratio", "eq", value) == f"filter on 'ratio' (Edm.Double) needs a finite number, got {value!r}"
