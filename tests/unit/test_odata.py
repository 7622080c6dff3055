"""The OData ``$filter`` text the Azure AI Search backend sends
(``indexer.backends.azure_search.odata``), asserted exactly, and checked against the search
double's independent OData parser: a value never changes the shape of the query."""

from __future__ import annotations

import pytest

from indexer.backends.azure_search.odata import render_condition
from indexer.errors import FilterError
from indexer.filters import Condition


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
