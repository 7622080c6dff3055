"""Parsing ``field<op>value`` filters into ``Condition`` objects (``indexer.filters``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.errors import FilterError
from indexer.filters import OPERATORS, Condition, parse_condition, parse_conditions


def test_the_operators_are_odatas():
    assert OPERATORS == ("eq", "ne", "gt", "ge", "lt", "le")


@pytest.mark.parametrize(
    "expression,op",
    [
        ("width=640", "eq"),
        ("width==640", "eq"),
        ("width!=640", "ne"),
        ("width>640", "gt"),
        ("width>=640", "ge"),
        ("width<640", "lt"),
        ("width<=640", "le"),
    ],
)
def test_each_symbol_maps_to_its_operator(expression, op):
    assert parse_condition(expression) == Condition("width", op, "640")


def test_spaces_around_the_parts_are_ignored_and_the_value_stays_text():
    assert parse_condition("  size_bytes  >=  1000  ") == Condition("size_bytes", "ge", "1000")
    assert parse_condition("container=two words") == Condition("container", "eq", "two words")


def test_the_first_operator_wins_and_the_rest_is_the_value():
    assert parse_condition("source=a=b") == Condition("source", "eq", "a=b")
    assert parse_condition("source<=<x") == Condition("source", "le", "<x")
    assert parse_condition("source!==x") == Condition("source", "ne", "=x")


def test_a_value_may_span_lines():
    assert parse_condition("note=line one\nline two") == Condition("note", "eq", "line one\nline two")


def test_an_empty_value_is_kept_as_an_empty_string():
    assert parse_condition("file_name=") == Condition("file_name", "eq", "")


@pytest.mark.parametrize(
    "expression,value",
    [
        ("name='a cat'", "a cat"),
        ('name="a cat"', "a cat"),
        ("name=''", ""),
        ('name=""', ""),
        ("name='it's'", "it's"),  # only the outer pair goes
        ("name=' padded '", " padded "),
        ("name='", "'"),  # a lone quote is a value, not an empty pair
        ('name="', '"'),
        ("name='mixed\"", "'mixed\""),  # quotes that do not match stay
        ("name=x'", "x'"),
        ("name='x", "'x"),
        ("name=aba", "aba"),  # same first and last character, but no quote
        ("name=XyX", "XyX"),
        ("name=``", "``"),
    ],
)
def test_matching_quotes_around_the_value_are_removed(expression, value):
    assert parse_condition(expression).value == value


@pytest.mark.parametrize("expression", ["=5", "", "   ", "width", "width 640", "5width=1", "_x=1", "wi dth=1", "é=1"])
def test_unparseable_expressions_are_refused_with_the_expression_and_the_syntax(expression):
    with pytest.raises(FilterError) as caught:
        parse_condition(expression)
    assert str(caught.value) == f"cannot parse filter {expression!r}; write it as field=value, field>=value, ..."


def test_field_names_may_have_128_characters_but_no_more():
    assert parse_condition("a" * 128 + "=1").field == "a" * 128
    with pytest.raises(FilterError) as caught:
        parse_condition("a" * 129 + "=1")
    assert str(caught.value) == f"invalid field name {'a' * 129!r} in filter"


@pytest.mark.parametrize("field", ["", "1a", "_a", "a-b", "a.b", "a b", "tags/any", "a\n", "width\n", "\nwidth"])
def test_a_condition_refuses_a_field_name_that_is_not_an_identifier(field):
    with pytest.raises(FilterError) as caught:
        Condition(field, "eq", "x")
    assert str(caught.value) == f"invalid field name {field!r} in filter"


@pytest.mark.parametrize("field", ["a", "Z", "a1", "a_b", "A_9_z"])
def test_a_condition_accepts_identifiers(field):
    assert Condition(field, "eq", "x").field == field


@pytest.mark.parametrize("op", ["=", "EQ", "like", "", "and"])
def test_a_condition_refuses_an_unknown_operator_and_lists_the_known_ones(op):
    with pytest.raises(FilterError) as caught:
        Condition("width", op, 1)
    assert str(caught.value) == f"invalid operator {op!r} in filter; use one of eq, ne, gt, ge, lt, le"


@pytest.mark.parametrize("op", OPERATORS)
def test_a_condition_accepts_every_operator(op):
    assert Condition("width", op, 1).op == op


def test_parse_conditions_of_nothing_is_an_empty_list():
    assert parse_conditions(None) == []
    assert parse_conditions([]) == []


def test_parse_conditions_keeps_the_order_and_takes_any_iterable():
    expected = [Condition("width", "ge", "10"), Condition("container", "eq", "photos")]
    assert parse_conditions(["width>=10", "container=photos"]) == expected
    assert parse_conditions(e for e in ("width>=10", "container=photos")) == expected


def test_parse_conditions_fails_on_the_first_bad_expression():
    with pytest.raises(FilterError, match="cannot parse filter 'oops'"):
        parse_conditions(["width>=10", "oops"])


_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True)
_VALUE = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30).filter(
    lambda v: v == v.strip() and not v.startswith(("=", "!", "<", ">"))
)


@given(_NAME, st.sampled_from(["=", "==", "!=", ">", ">=", "<", "<="]), _VALUE)
def test_what_is_written_is_what_is_parsed(name, symbol, value):
    parsed = parse_condition(f"{name} {symbol} {value}")
    assert parsed.field == name
    assert parsed.op == {"=": "eq", "==": "eq", "!=": "ne", ">": "gt", ">=": "ge", "<": "lt", "<=": "le"}[symbol]
    quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
    assert parsed.value == (value[1:-1] if quoted else value)
