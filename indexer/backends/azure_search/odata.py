"""Render ``indexer.filters.Condition`` lists as Azure AI Search OData ``$filter`` text.

Values never become syntax: strings are quoted literals, numbers, booleans and dates are
re-formatted from their parsed value by the field's EDM type, and field names are checked
against the schema and the OData identifier grammar. The checks and coercions are the numpy
index's (``schema_rules``), so both backends accept the same filters.
(design: docs/design.md#filters)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from indexer.backends.schema_rules import check_filter_fields, coerce_filter_value, element_type, parse_datetime_offset
from indexer.errors import FilterError
from indexer.filters import Condition
from indexer.schema import IndexSchema

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}\Z")
_RANGE_VARIABLE = "t"


def quote_string(value: str) -> str:
    """An OData string literal: single quotes around, each inner single quote doubled."""
    if not isinstance(value, str):
        raise TypeError(f"quote_string needs a str, not {type(value).__name__}")
    return "'" + value.replace("'", "''") + "'"


def format_datetime(value: Any) -> str:
    """An ``Edm.DateTimeOffset`` literal (unquoted, UTC): ``2024-05-01T12:00:00Z``."""
    moment = parse_datetime_offset(value).astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def render_literal(value: Any, edm_type: str) -> str:
    """A constant of the field's scalar type, from a value already coerced for that type."""
    if value is None:
        return "null"
    if edm_type == "Edm.String":
        return quote_string(value)
    if edm_type == "Edm.Boolean":
        return "true" if value else "false"
    if edm_type == "Edm.DateTimeOffset":
        return format_datetime(value)
    if isinstance(value, bool):  # pragma: no cover - coerce_filter_value refuses booleans for numbers
        raise FilterError(f"{value!r} is not a number")
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if not math.isfinite(number):  # pragma: no cover - coerce_filter_value refuses these
        raise FilterError(f"{value!r} is not a finite number")
    return repr(number)  # a finite float's repr always has a '.' or an exponent: 5.0, 1e+20


def render_condition(condition: Condition, edm_type: str) -> str:
    """One condition as an OData Boolean expression over a field of type ``edm_type``."""
    name = condition.field
    if not _IDENTIFIER.match(name):  # Condition checks this too; a field name is syntax, so twice
        raise FilterError(f"invalid field name {name!r} in filter")
    scalar, is_collection = element_type(edm_type)
    value = condition.value
    if scalar == "Edm.DateTimeOffset" and value is not None:
        try:
            parse_datetime_offset(value)
        except ValueError as exc:
            raise FilterError(f"filter on {name!r} ({edm_type}) needs a date ({exc})") from None
    else:
        value = coerce_filter_value(condition, edm_type)
    if not is_collection:
        return f"{name} {condition.op} {render_literal(value, scalar)}"
    if scalar != "Edm.String" and condition.op not in ("eq", "ne"):
        # Numeric collections accept range checks inside any(); keep the local index's
        # meaning: some element satisfies the comparison.
        return f"{name}/any({_RANGE_VARIABLE}: {_RANGE_VARIABLE} {condition.op} {render_literal(value, scalar)})"
    if condition.op == "eq":
        return f"{name}/any({_RANGE_VARIABLE}: {_RANGE_VARIABLE} eq {render_literal(value, scalar)})"
    if condition.op == "ne":
        return f"not {name}/any({_RANGE_VARIABLE}: {_RANGE_VARIABLE} eq {render_literal(value, scalar)})"
    raise FilterError(
        f"filter on {name!r} ({edm_type}): Azure AI Search cannot compare the items of a string "
        f"collection with {condition.op!r}; use = or !="
    )


def render_filter(conditions: Sequence[Condition] | Condition | None, schema: IndexSchema) -> str | None:
    """The ``$filter`` for ``conditions`` (all must hold), or None when there are none.

    Raises ``FilterError`` for an unknown or non-filterable field or a value that does not
    fit the field's type, before anything is sent.
    """
    if conditions is None:
        return None
    if isinstance(conditions, Condition):
        conditions = [conditions]
    checked = check_filter_fields(schema, conditions)
    fields = schema.fields
    parts = [render_condition(c, fields[c.field]["type"]) for c in checked]
    return and_filters(*parts)


def and_filters(*filters: str | None) -> str | None:
    """Join filter expressions with ``and``, each in parentheses so that none can change
    how another is grouped."""
    present = [f for f in filters if f]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return " and ".join(f"({f})" for f in present)


__all__ = ["and_filters", "format_datetime", "quote_string", "render_condition", "render_filter", "render_literal"]
