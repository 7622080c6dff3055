"""Filterable metadata as numpy columns, so a filter costs a few vectorised comparisons
instead of a Python loop over every document's dict.

A ``Column`` is built once per (immutable) segment and field, on first use: numbers, booleans
and dates as arrays with a "present" mask, strings dictionary-encoded with codes in sorted
order, a collection flattened with the row of each item. Comparisons follow OData's
semantics, as the Azure backend renders them. (design: docs/design.md#filters)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.backends.schema_rules import datetime_micros, element_type


@dataclass(frozen=True)
class _Encoded:
    """One scalar per slot: numbers/dates/booleans as ``values``, strings as ``codes``."""

    kind: str  # "string", "number", "boolean"
    present: np.ndarray  # bool
    values: np.ndarray | None = None  # number/boolean kinds
    uniques: np.ndarray | None = None  # string kind: sorted distinct values (object array)
    codes: np.ndarray | None = None  # string kind: index into uniques, -1 for null

    def compare(self, op: str, value: Any) -> np.ndarray:
        if value is None:
            return ~self.present if op == "eq" else self.present.copy()
        if self.kind == "string":
            return self._compare_codes(op, value)
        values = self.values
        with np.errstate(invalid="ignore"):
            if op == "eq":
                return self.present & (values == value)
            if op == "ne":
                return ~self.present | (values != value)
            if op == "gt":
                return self.present & (values > value)
            if op == "ge":
                return self.present & (values >= value)
            if op == "lt":
                return self.present & (values < value)
            return self.present & (values <= value)

    def _compare_codes(self, op: str, value: str) -> np.ndarray:
        codes: Any = self.codes  # the string kind always has both
        uniques: Any = self.uniques
        left = int(np.searchsorted(uniques, value, side="left"))
        found = left < len(uniques) and uniques[left] == value
        if op in ("eq", "ne"):
            hit = codes == left if found else np.zeros(len(codes), dtype=bool)
            return hit if op == "eq" else ~hit  # null rows count as "not equal"
        right = int(np.searchsorted(uniques, value, side="right"))
        if op == "gt":
            return codes >= right
        if op == "ge":
            return codes >= left
        if op == "lt":
            return self.present & (codes < left)
        return self.present & (codes < right)


def _encode(scalar_type: str, values: Sequence[Any]) -> _Encoded:
    present = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    if scalar_type == "Edm.String":
        codes = np.full(len(values), -1, dtype=np.int32)
        non_null = [v for v in values if v is not None]
        if non_null:
            uniques, inverse = np.unique(np.array(non_null, dtype=object), return_inverse=True)
            codes[present] = inverse.astype(np.int32)
        else:
            uniques = np.array([], dtype=object)
        return _Encoded("string", present, uniques=uniques, codes=codes)
    if scalar_type == "Edm.Boolean":
        array = np.fromiter((bool(v) for v in values), dtype=bool, count=len(values))
        return _Encoded("boolean", present, values=array)
    if scalar_type == "Edm.Double":
        array = np.fromiter((0.0 if v is None else float(v) for v in values), dtype=np.float64, count=len(values))
        return _Encoded("number", present, values=array)
    if scalar_type == "Edm.DateTimeOffset":
        array = np.fromiter((0 if v is None else datetime_micros(v) for v in values), dtype=np.int64, count=len(values))
        return _Encoded("number", present, values=array)
    # Edm.Int32 / Edm.Int64
    array = np.fromiter((0 if v is None else int(v) for v in values), dtype=np.int64, count=len(values))
    return _Encoded("number", present, values=array)


class Column:
    """One field over the rows of one segment."""

    def __init__(self, edm_type: str, values: Sequence[Any]) -> None:
        self.edm_type = edm_type
        self.scalar_type, self.is_collection = element_type(edm_type)
        self.rows = len(values)
        if self.is_collection:
            items: list[Any] = []
            owners: list[int] = []
            for row, value in enumerate(values):
                if value:
                    items.extend(value)
                    owners.extend([row] * len(value))
            self.owners = np.asarray(owners, dtype=np.int64)
            self.encoded = _encode(self.scalar_type, items)
        else:
            self.encoded = _encode(self.scalar_type, values)

    def mask(self, op: str, value: Any) -> np.ndarray:
        """Rows matching ``<field> <op> <value>``; ``value`` comes from ``coerce_filter_value``."""
        if not self.is_collection:
            return self.encoded.compare(op, value)
        if op == "ne":
            # As the Azure backend renders it, ``not tags/any(t: t eq x)``: no item equals x
            # (so empty and null collections match), never "some item differs".
            return ~self.mask("eq", value)
        rows = np.zeros(self.rows, dtype=bool)
        rows[self.owners[self.encoded.compare(op, value)]] = True
        return rows
