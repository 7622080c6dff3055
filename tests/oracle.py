"""Reference implementations the tests compare the product against.

``matches`` evaluates one filter condition on one document's fields in plain Python, the way
OData does, so the numpy index's vectorised columns and the OData the Azure backend renders
can both be checked against something written independently of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from indexer.documents import Document, Embedding
from indexer.filters import Condition


def _coerce_like(value: Any, like: Any) -> Any:
    """Give a parsed string value the type of the stored field it is compared with."""
    if isinstance(value, str) and not isinstance(like, str):
        if isinstance(like, bool):
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return value.lower() == "true"
        if isinstance(like, int):
            return int(value)
        if isinstance(like, float):
            return float(value)
    return value


def matches(condition: Condition, fields: dict[str, Any]) -> bool:
    actual = fields.get(condition.field)
    if actual is None:
        # OData: ``field eq null`` holds for a null field, and a null differs from any value.
        return condition.op == ("eq" if condition.value is None else "ne")
    if isinstance(actual, (list, tuple)):
        # Collections follow what OData can say: ``any`` element matches, and ``ne`` means no
        # element equals the value (``not tags/any(t: t eq 'x')``).
        if condition.op == "ne":
            return not matches(Condition(condition.field, "eq", condition.value), fields)
        return any(matches(condition, {condition.field: a}) for a in actual)
    try:
        expected = _coerce_like(condition.value, actual)
        return {
            "eq": lambda: actual == expected,
            "ne": lambda: actual != expected,
            "gt": lambda: actual > expected,
            "ge": lambda: actual >= expected,
            "lt": lambda: actual < expected,
            "le": lambda: actual <= expected,
        }[condition.op]()
    except (TypeError, ValueError):
        return False


def matches_all(conditions: Iterable[Condition], fields: dict[str, Any]) -> bool:
    return all(matches(c, fields) for c in conditions)


def stored_documents(index: Any) -> list[Document]:
    """Every live document of a ``NumpyIndex`` with its stored (unit-length) vector, read from
    its in-memory state, to compare whole states in tests."""
    from indexer.backends.numpy_index.index import _rows_in

    state = index._current()
    return [
        Document(
            segment.keys[local],
            Embedding(np.array(segment.vectors[local], dtype=np.float32), state.pin.model_version),
            dict(segment.fields[local]),
        )
        for segment, local in _rows_in(state, state.live)
    ]
