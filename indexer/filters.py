"""Metadata filters as data, not strings.

Users give filters as ``field=value``, ``field!=value`` or ``field>=value`` (also ``>``, ``<``,
``<=``). They are parsed into ``Condition`` objects; each backend evaluates or renders them
itself (the numpy index compares values, the Azure backend writes OData with every value
escaped). A value can therefore never change the shape of a query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")
_SYMBOLS = {"=": "eq", "==": "eq", "!=": "ne", ">": "gt", ">=": "ge", "<": "lt", "<=": "le"}
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
_EXPRESSION = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*(==|!=|>=|<=|=|>|<)\s*(.*?)\s*$", re.DOTALL)


class FilterError(ValueError):
    """A filter expression that cannot be understood; the message says which and why."""


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

    def matches(self, fields: dict[str, Any]) -> bool:
        """Evaluate against one document's fields (used by the numpy index)."""
        actual = fields.get(self.field)
        if actual is None:
            return self.op == "ne" and self.value is not None
        if isinstance(actual, (list, tuple)):
            # Collections follow what OData can say: ``any`` element matches, and ``ne`` means
            # no element equals the value (``not tags/any(t: t eq 'x')``).
            if self.op == "ne":
                return not Condition(self.field, "eq", self.value).matches(fields)
            return any(Condition(self.field, self.op, self.value).matches({self.field: a}) for a in actual)
        try:
            expected = _coerce_like(self.value, actual)
            if self.op == "eq":
                return actual == expected
            if self.op == "ne":
                return actual != expected
            if self.op == "gt":
                return actual > expected
            if self.op == "ge":
                return actual >= expected
            if self.op == "lt":
                return actual < expected
            return actual <= expected
        except (TypeError, ValueError):
            return False


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


def matches_all(conditions: Iterable[Condition], fields: dict[str, Any]) -> bool:
    return all(c.matches(fields) for c in conditions)
