"""The OData ``$filter`` text the Azure AI Search backend sends
(``indexer.backends.azure_search.odata``), asserted exactly, and read back with the search
double's independent OData parser: a value never changes the shape of the query, and the
rendered filter selects what ``tests/oracle.py`` says it should."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.backends.azure_search.odata import (
    and_filters,
    format_datetime,
    quote_string,
    render_condition,
    render_filter,
    render_literal,
)
from indexer.documents import IndexPin
from indexer.errors import FilterError
from indexer.filters import Condition, parse_condition
from indexer.model_versions import AZURE_MULTILINGUAL
from indexer.schema import IndexSchema, load_schema
from standins.search.odata_parser import (
    Compare,
    FieldSpec,
    Lambda,
    Literal,
    Logical,
    Not,
    Path,
    compile_filter,
    parse_filter,
)
from tests.oracle import matches_all


def field(name: str, edm_type: str, filterable: bool = True) -> dict:
    return {"name": name, "type": edm_type, "filterable": filterable, "retrievable": True}


SCHEMA = IndexSchema(
    IndexPin("test-model", 4),
    {
        "description": "test",
        "fields": [
            field("id", "Edm.String") | {"key": True},
            {"name": "image_vector", "type": "Collection(Edm.Single)", "dimensions": 4, "retrievable": False},
            field("source", "Edm.String"),
            field("width", "Edm.Int32"),
            field("size_bytes", "Edm.Int64"),
            field("ratio", "Edm.Double"),
            field("flag", "Edm.Boolean"),
            field("taken", "Edm.DateTimeOffset"),
            field("tags", "Collection(Edm.String)"),
            field("sizes", "Collection(Edm.Int32)"),
            field("days", "Collection(Edm.DateTimeOffset)"),
            field("secret", "Edm.String", filterable=False),
        ],
    },
)
TYPES = {name: f["type"] for name, f in SCHEMA.fields.items()}
FIELD_SPECS = {
    name: FieldSpec(name, f["type"], filterable=bool(f.get("filterable"))) for name, f in SCHEMA.fields.items()
}


def render(name: str, op: str, value) -> str:
    return render_condition(Condition(name, op, value), TYPES[name])


# --- string literals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,literal",
    [
        ("cat", "'cat'"),
        ("", "''"),
        ("Alice's car", "'Alice''s car'"),
        ("'", "''''"),
        ("''", "''''''"),
        ("x' or true or id eq 'y", "'x'' or true or id eq ''y'"),
        ('say "hi"', "'say \"hi\"'"),
    ],
)
def test_quote_string_doubles_every_single_quote(value, literal):
    assert quote_string(value) == literal


@pytest.mark.parametrize("value", [5, None, b"cat"])
def test_quote_string_takes_only_text(value):
    with pytest.raises(TypeError) as caught:
        quote_string(value)
    assert str(caught.value) == f"quote_string needs a str, not {type(value).__name__}"


@given(st.text())
def test_a_quoted_string_reads_back_as_one_literal_with_the_same_text(value):
    assert parse_filter(f"source eq {quote_string(value)}") == Compare(
        "eq", Path(("source",), 0), Literal(value, "Edm.String", 10), 7
    )


# --- dates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,text",
    [
        ("2024-05-01", "2024-05-01T00:00:00Z"),
        (date(2024, 5, 1), "2024-05-01T00:00:00Z"),
        ("2024-05-01T12:30:05Z", "2024-05-01T12:30:05Z"),
        ("2024-05-01T14:30:05+02:00", "2024-05-01T12:30:05Z"),
        ("2024-05-01T01:00:00+02:00", "2024-04-30T23:00:00Z"),
        (datetime(2024, 5, 1, 7, 30, tzinfo=timezone(timedelta(hours=-5))), "2024-05-01T12:30:00Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC), "2024-05-01T12:00:00.25Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC), "2024-05-01T12:00:00.123456Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC), "2024-05-01T12:00:00.000001Z"),
    ],
)
def test_format_datetime_writes_utc_with_a_z(value, text):
    assert format_datetime(value) == text


@pytest.mark.parametrize("value", ["2024-05-01T12:00:00", datetime(2024, 5, 1, 12), " 2024-05-01T12:00 "])
def test_format_datetime_reads_a_date_without_a_zone_as_utc_not_local_time(far_from_utc, value):
    text = format_datetime(value)
    assert text == "2024-05-01T12:00:00Z"
    # The same instant as the aware value, read back by an independent parser.
    assert parse_filter(f"taken eq {text}").right.value == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_format_datetime_writes_utc_even_when_the_local_zone_is_not(far_from_utc):
    assert format_datetime("2024-05-01T14:00:00+02:00") == "2024-05-01T12:00:00Z"
    assert format_datetime(datetime(2024, 5, 1, 12, tzinfo=UTC)) == "2024-05-01T12:00:00Z"


# --- literals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,edm_type,literal",
    [
        (None, "Edm.String", "null"),
        (None, "Edm.Int32", "null"),
        (None, "Edm.Boolean", "null"),
        ("a'b", "Edm.String", "'a''b'"),
        (True, "Edm.Boolean", "true"),
        (False, "Edm.Boolean", "false"),
        ("2024-05-01", "Edm.DateTimeOffset", "2024-05-01T00:00:00Z"),
        (5, "Edm.Int32", "5"),
        (-5, "Edm.Int32", "-5"),
        (0, "Edm.Double", "0"),
        (2**63 - 1, "Edm.Int64", "9223372036854775807"),
        (5.0, "Edm.Double", "5.0"),
        (0.5, "Edm.Double", "0.5"),
        (-2.5, "Edm.Int32", "-2.5"),
        (1e20, "Edm.Double", "1e+20"),
        (1.5e-7, "Edm.Double", "1.5e-07"),
        (float(2**63), "Edm.Int64", "9.223372036854776e+18"),
        (np.float32(0.25), "Edm.Double", "0.25"),
    ],
)
def test_render_literal(value, edm_type, literal):
    assert render_literal(value, edm_type) == literal


@pytest.mark.parametrize("value", [True, False])
def test_render_literal_refuses_a_boolean_for_a_number(value):
    with pytest.raises(FilterError) as caught:
        render_literal(value, "Edm.Int32")
    assert str(caught.value) == f"{value!r} is not a number"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_render_literal_refuses_nan_and_infinity(value):
    with pytest.raises(FilterError) as caught:
        render_literal(value, "Edm.Double")
    assert str(caught.value) == f"{value!r} is not a finite number"


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_an_integer_reads_back_as_the_same_integer(value):
    literal = parse_filter(f"size_bytes eq {render_literal(value, 'Edm.Int64')}").right
    assert literal.value == value and type(literal.value) is int


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_reads_back_as_the_same_float(value):
    literal = parse_filter(f"ratio eq {render_literal(value, 'Edm.Double')}").right
    assert literal.edm == "Edm.Double" and literal.value == value


# --- conditions ---------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["eq", "ne", "gt", "ge", "lt", "le"])
def test_every_operator_is_written_as_given(op):
    assert render("width", op, "5") == f"width {op} 5"
    assert render("source", op, "a") == f"source {op} 'a'"


@pytest.mark.parametrize(
    "name,op,value,text",
    [
        ("source", "eq", "Alice's car", "source eq 'Alice''s car'"),
        ("source", "eq", "5 or true", "source eq '5 or true'"),
        ("width", "ge", "5", "width ge 5"),  # an integer, not 5.0
        ("width", "ge", 5, "width ge 5"),
        ("width", "ge", np.int64(5), "width ge 5"),
        ("width", "lt", " 640 ", "width lt 640"),
        ("width", "lt", "5.5", "width lt 5.5"),
        ("size_bytes", "gt", str(2**40), "size_bytes gt 1099511627776"),
        ("size_bytes", "gt", str(2**63), "size_bytes gt 9.223372036854776e+18"),
        ("ratio", "gt", "2", "ratio gt 2"),
        ("ratio", "gt", "2.5", "ratio gt 2.5"),
        ("ratio", "le", 0.25, "ratio le 0.25"),
        ("ratio", "le", np.float64(-1.5), "ratio le -1.5"),
        ("flag", "eq", "true", "flag eq true"),
        ("flag", "eq", " FALSE ", "flag eq false"),
        ("flag", "ne", True, "flag ne true"),
        ("flag", "ne", False, "flag ne false"),
        ("taken", "ge", "2024-05-01", "taken ge 2024-05-01T00:00:00Z"),
        ("taken", "lt", "2024-05-01T14:00:00+02:00", "taken lt 2024-05-01T12:00:00Z"),
        ("taken", "lt", datetime(2024, 5, 1, 12, tzinfo=UTC), "taken lt 2024-05-01T12:00:00Z"),
        ("source", "eq", None, "source eq null"),
        ("width", "ne", None, "width ne null"),
        ("ratio", "eq", None, "ratio eq null"),
        ("flag", "eq", None, "flag eq null"),
        ("taken", "ne", None, "taken ne null"),
    ],
)
def test_render_condition_writes_each_type_as_odata(name, op, value, text):
    assert render(name, op, value) == text


def test_a_date_without_a_zone_is_sent_as_utc(far_from_utc):
    assert render("taken", "ge", "2024-05-01T12:00:00") == "taken ge 2024-05-01T12:00:00Z"
    assert render("taken", "ge", datetime(2024, 5, 1, 12)) == "taken ge 2024-05-01T12:00:00Z"


@pytest.mark.parametrize(
    "name,op,value,text",
    [
        ("tags", "eq", "cat", "tags/any(t: t eq 'cat')"),
        ("tags", "ne", "cat", "not tags/any(t: t eq 'cat')"),
        ("tags", "eq", "it's", "tags/any(t: t eq 'it''s')"),
        ("sizes", "eq", "3", "sizes/any(t: t eq 3)"),
        ("sizes", "ne", 3, "not sizes/any(t: t eq 3)"),
        ("sizes", "ge", "3", "sizes/any(t: t ge 3)"),
        ("sizes", "lt", 2.5, "sizes/any(t: t lt 2.5)"),
        ("days", "gt", "2024-05-01", "days/any(t: t gt 2024-05-01T00:00:00Z)"),
        ("days", "eq", "2024-05-01", "days/any(t: t eq 2024-05-01T00:00:00Z)"),
        ("days", "ne", "2024-05-01", "not days/any(t: t eq 2024-05-01T00:00:00Z)"),
    ],
)
def test_collections_are_written_with_any(name, op, value, text):
    assert render(name, op, value) == text
    compile_filter(text, FIELD_SPECS)  # the service's grammar accepts it


@pytest.mark.parametrize("op", ["gt", "ge", "lt", "le"])
def test_a_range_comparison_on_a_string_collection_is_refused(op):
    with pytest.raises(FilterError) as caught:
        render("tags", op, "cat")
    assert str(caught.value) == (
        f"filter on 'tags' (Collection(Edm.String)): Azure AI Search cannot compare the items of a string "
        f"collection with {op!r}; use = or !="
    )


@pytest.mark.parametrize("name,op", [("tags", "eq"), ("sizes", "ne"), ("days", "eq"), ("width", "gt")])
def test_null_on_a_collection_or_with_a_range_is_refused(name, op):
    with pytest.raises(FilterError) as caught:
        render(name, op, None)
    assert str(caught.value) == f"filter on {name!r}: null can only be compared with = or != on a single-valued field"


@pytest.mark.parametrize("name", ["taken", "days"])
def test_a_date_filter_needs_a_date(name):
    with pytest.raises(FilterError) as caught:
        render(name, "ge", "soon")
    assert str(caught.value) == (
        f"filter on {name!r} ({TYPES[name]}) needs a date ('soon' is not an ISO 8601 date, "
        "e.g. 2024-05-01 or 2024-05-01T12:00:00Z)"
    )


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("width", "5 or true", "filter on 'width' (Edm.Int32) needs a number, got '5 or true'"),
        ("width", True, "filter on 'width' (Edm.Int32) needs a number, got True"),
        ("ratio", "nan", "filter on 'ratio' (Edm.Double) needs a finite number, got 'nan'"),
        ("flag", "1", "filter on 'flag' (Edm.Boolean) needs true or false, got '1'"),
        ("source", 5, "filter on 'source' (Edm.String) needs a string, got 5"),
        ("sizes", "x", "filter on 'sizes' (Collection(Edm.Int32)) needs a number, got 'x'"),
    ],
)
def test_a_value_that_does_not_fit_the_type_is_refused_before_anything_is_sent(name, value, message):
    with pytest.raises(FilterError) as caught:
        render(name, "eq", value)
    assert str(caught.value) == message


def forged(field: str, op: str = "eq", value: object = 5) -> Condition:
    """A Condition whose field skipped Condition's own check (as a subclass or a bug could)."""
    condition = Condition("width", op, value)
    object.__setattr__(condition, "field", field)
    return condition


@pytest.mark.parametrize("field", ["width or true", "width\n", "1width", "w" * 129, "tags/any(t: true)", ""])
def test_render_condition_checks_the_field_name_itself(field):
    with pytest.raises(FilterError) as caught:
        render_condition(forged(field), "Edm.Int32")
    assert str(caught.value) == f"invalid field name {field!r} in filter"


def test_render_condition_accepts_the_longest_identifier():
    assert render_condition(forged("w" * 128), "Edm.Int32") == "w" * 128 + " eq 5"


# --- whole filters ------------------------------------------------------------------------


def test_no_conditions_is_no_filter():
    assert render_filter(None, SCHEMA) is None
    assert render_filter([], SCHEMA) is None


def test_one_condition_is_written_bare_and_may_be_given_alone():
    assert render_filter(Condition("width", "ge", "5"), SCHEMA) == "width ge 5"
    assert render_filter([Condition("width", "ge", "5")], SCHEMA) == "width ge 5"


def test_several_conditions_are_and_ed_each_in_parentheses():
    conditions = [Condition("width", "ge", "5"), Condition("tags", "ne", "x"), Condition("flag", "eq", "true")]
    assert render_filter(conditions, SCHEMA) == "(width ge 5) and (not tags/any(t: t eq 'x')) and (flag eq true)"
    assert render_filter(iter(conditions[:2]), SCHEMA) == "(width ge 5) and (not tags/any(t: t eq 'x'))"


def test_the_type_of_each_field_comes_from_the_schema():
    schema = load_schema(AZURE_MULTILINGUAL)
    conditions = [
        parse_condition("container=photos"),
        parse_condition("width>=640"),
        parse_condition("size_bytes<1000000"),
        parse_condition("last_modified>=2024-05-01"),
        parse_condition("tags=cat"),
    ]
    assert render_filter(conditions, schema) == (
        "(container eq 'photos') and (width ge 640) and (size_bytes lt 1000000) "
        "and (last_modified ge 2024-05-01T00:00:00Z) and (tags/any(t: t eq 'cat'))"
    )


def test_unknown_and_unfilterable_fields_are_refused():
    with pytest.raises(FilterError) as caught:
        render_filter([Condition("width", "eq", 1), Condition("colour", "eq", "red")], SCHEMA)
    assert str(caught.value).startswith("cannot filter on unknown field 'colour'; filterable fields: ")
    with pytest.raises(FilterError) as caught:
        render_filter([Condition("secret", "eq", "x")], SCHEMA)
    assert str(caught.value) == "field 'secret' is not filterable"


@pytest.mark.parametrize(
    "filters,joined",
    [
        ((), None),
        ((None,), None),
        ((None, ""), None),
        (("a eq 1",), "a eq 1"),
        ((None, "a eq 1", ""), "a eq 1"),
        (("a eq 1", "b eq 2"), "(a eq 1) and (b eq 2)"),
        (("a eq 1 or b eq 2", None, "c eq 3"), "(a eq 1 or b eq 2) and (c eq 3)"),
        (("a", "b", "c"), "(a) and (b) and (c)"),
    ],
)
def test_and_filters(filters, joined):
    assert and_filters(*filters) == joined


# --- the shape never depends on the values ----------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from(list("ab ' ()=eqornt/:\"\\")), max_size=12)


@given(st.lists(_TEXT, min_size=2, max_size=4))
def test_string_values_never_change_the_shape_of_the_query(values):
    conditions = [Condition("source", "eq", values[0]), Condition("tags", "ne", values[1])]
    conditions += [Condition("source", "ne", v) for v in values[2:]]
    tree = parse_filter(render_filter(conditions, SCHEMA))
    leaves = []

    def walk(node):
        if isinstance(node, Logical):
            assert node.op == "and"
            walk(node.left)
            walk(node.right)
        else:
            leaves.append(node)

    walk(tree)
    assert len(leaves) == len(conditions)
    first, second, *rest = leaves
    assert (first.op, first.left.parts, first.right.value, first.right.edm) == (
        "eq",
        ("source",),
        values[0],
        "Edm.String",
    )
    assert isinstance(second, Not) and isinstance(second.operand, Lambda)
    lam = second.operand
    assert (lam.collection.parts, lam.kind, lam.variable) == (("tags",), "any", "t")
    assert (lam.body.op, lam.body.left.parts, lam.body.right.value) == ("eq", ("t",), values[1])
    assert [(c.op, c.left.parts, c.right.value) for c in rest] == [("ne", ("source",), v) for v in values[2:]]


# --- what the rendered filter selects -----------------------------------------------------------

_WORDS = ["", "a", "b", "it's", "B"]
_DOCUMENT = st.fixed_dictionaries(
    {
        "source": st.none() | st.sampled_from(_WORDS),
        "width": st.none() | st.integers(-3, 3),
        "size_bytes": st.none() | st.integers(2**62, 2**62 + 3),
        "ratio": st.none() | st.sampled_from([-1.5, 0.0, 2.0, 2.5]),
        "flag": st.none() | st.booleans(),
        "tags": st.none() | st.lists(st.sampled_from(_WORDS), max_size=3),
        "sizes": st.none() | st.lists(st.integers(-2, 2), max_size=3),
    }
)
_OPS = st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"])
_EQUALITY = st.sampled_from(["eq", "ne"])
_CONDITION = st.one_of(
    st.builds(Condition, st.just("source"), _OPS, st.sampled_from(_WORDS)),
    st.builds(Condition, st.just("width"), _OPS, st.integers(-4, 4) | st.integers(-4, 4).map(str)),
    st.builds(Condition, st.just("size_bytes"), _OPS, st.integers(2**62 - 1, 2**62 + 4).map(str)),
    st.builds(Condition, st.just("ratio"), _OPS, st.sampled_from([-1.5, 0.0, 2.0, 2.5, 2, "2", "2.5", "-1.5", "0"])),
    st.builds(Condition, st.just("flag"), _EQUALITY, st.sampled_from([True, False, "true", "false", "True"])),
    st.builds(Condition, st.just("tags"), _EQUALITY, st.sampled_from(_WORDS)),
    st.builds(Condition, st.just("sizes"), _EQUALITY, st.integers(-3, 3)),
    st.builds(Condition, st.sampled_from(["source", "width", "ratio", "flag"]), _EQUALITY, st.none()),
)


@given(st.lists(_CONDITION, min_size=1, max_size=3), st.lists(_DOCUMENT, min_size=1, max_size=5))
def test_the_rendered_filter_selects_what_the_oracle_says(conditions, documents):
    predicate = compile_filter(render_filter(conditions, SCHEMA), FIELD_SPECS)
    for document in documents:
        assert predicate(document) == matches_all(conditions, document), (conditions, document)
