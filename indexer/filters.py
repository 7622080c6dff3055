"""Metadata filters as data, not strings.

Users give filters as ``field=value``, ``field!=value`` or ``field>=value`` (also ``>``, ``<``,
``<=``). They are parsed into ``Condition`` objects; each backend evaluates or renders them
itself (the numpy index compares values, the Azure backend writes OData with every value
escaped). A value can therefore never change the shape of a query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from indexer.errors import FilterError

OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")
_SYMBOLS = {"=": "eq", "==": "eq", "!=": "ne", ">": "gt", ">=": "ge", "<": "lt", "<=": "le"}
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}\Z")
_EXPRESSION = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*(==|!=|>=|<=|=|>|<)\s*(.*?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if not _FIELD.match(self.field):
            raise FilterError(f"invalid field name {self.field!r} in filter")
        if self.op not in OPERATORS:
            raise FilterError(f"invalid operator {self.op!r} in filter; use one of {', '.join(OPERATORS)}")


def parse_condition(expression: str) -> Condition:
    """Parse ``field<op>value``. The value is kept as text; quotes around it are removed."""
    match = _EXPRESSION.match(expression)
    if not match:
        raise FilterError(f"cannot parse filter {expression!r}; write it as field=value, field>=value, ...")
    name, symbol, raw = match.groups()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        raw = raw[1:-1]
    return Condition(name, _SYMBOLS[symbol], raw)


def parse_conditions(expressions: Iterable[str] | None) -> list[Condition]:
    return [parse_condition(e) for e in expressions or ()]
