"""The OData imgsearch writes in ``$filter``, ``$orderby`` and ``$select``, parsed for real so the
search double refuses what Azure AI Search refuses and evaluates what it accepts. Valid OData
beyond what ``indexer.backends.azure_search`` writes gets the "not served" 400;
``compile_filter`` checks the tree against the index's fields and returns a predicate.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, NoReturn

from standins.search.errors import SearchServiceError, not_served

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
_KINDS = ("Equal", "NotEqual", "GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual")
_OPERATOR_KIND = dict(zip(COMPARISONS, _KINDS, strict=True))  # how the service's messages name them
_COMPARE = {"eq": operator.eq, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}
_NUMERIC = ("Edm.Int32", "Edm.Int64", "Edm.Double")
INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)
_KEYWORDS = {"and", "or", "not", "true", "false", "null", *COMPARISONS}
_DATETIME = (
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)
_TOKEN = re.compile(
    rf"\s+|(?P<string>'(?:[^']|'')*')|(?P<datetime>{_DATETIME})"
    r"|(?P<number>[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![A-Za-z0-9_])"
    r"|(?P<word>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)|(?P<punct>[(),:/])"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ODataError(SearchServiceError):
    """An expression the service refuses, answered as the live answer has it: 400, an empty code,
    "Invalid expression: ... Parameter name: $select" (MicrosoftLearning/AI-102-AIEngineer#113)."""

    def __init__(self, problem: str, parameter: str = "$filter") -> None:
        message = f"Invalid expression: {problem}\r\nParameter name: {parameter}"
        super().__init__(400, "", message, details=[{"code": "InvalidExpression", "message": problem}])


@dataclass(frozen=True)
class FieldSpec:
    """What the parser needs to know about one index field."""

    name: str
    type: str
    filterable: bool = True
    sortable: bool = True
    retrievable: bool = True

    @property
    def is_collection(self) -> bool:
        return self.type.startswith("Collection(")

    @property
    def element_type(self) -> str:
        return self.type[len("Collection(") : -1] if self.is_collection else self.type


def parse_datetime_offset(text: str) -> datetime:
    """An ``Edm.DateTimeOffset`` (ISO 8601 with a zone) as an aware UTC datetime; ``ValueError``
    for anything else (without a zone the instant is unknown)."""
    if not re.fullmatch(_DATETIME, text):
        raise ValueError(f"{text!r} is not an ISO 8601 date and time with a time zone")
    # Python keeps microseconds; the service keeps 100 ns: drop the digits Python cannot hold.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def format_datetime_offset(value: datetime) -> str:
    """How the service writes an ``Edm.DateTimeOffset`` back: UTC with a ``Z``."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


# --------------------------------------------------------------------------- the tree


class Token(NamedTuple):
    """A token: kind is string, datetime, number, word, punct or end."""

    kind: str
    text: str
    position: int


class Path(NamedTuple):
    """A field, or a lambda's range variable (``t`` in ``tags/any(t: t eq 'x')``)."""

    parts: tuple[str, ...]
    position: int


class Literal(NamedTuple):
    """A constant; ``edm`` is None for null."""

    value: Any
    edm: str | None
    position: int


class Compare(NamedTuple):
    op: str
    left: Path
    right: Literal
    position: int


class Logical(NamedTuple):
    op: str  # "and"
    left: Any
    right: Any
    position: int


class Not(NamedTuple):
    operand: Any
    position: int


class Lambda(NamedTuple):
    """``collection/any(variable: body)``."""

    collection: Path
    kind: str  # "any"
    variable: str
    body: Compare
    position: int


class FunctionCall(NamedTuple):
    """``search.in(field, values, delimiters)``."""

    name: str
    args: tuple[Any, ...]
    position: int


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None:
                detail = "The string literal that starts there is never closed." if text[position] == "'" else ""
                raise self.error(Token("", "", position), detail)
            if match.lastgroup is not None:
                self.tokens.append(Token(match.lastgroup, match.group(), position))
            position = match.end()
        self.tokens.append(Token("end", "", len(text)))
        self.index = 0

    def error(self, token: Token, detail: str = "") -> ODataError:
        return ODataError(f"Syntax error at position {token.position} in '{self.text}'. {detail}".rstrip())

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        self.index += 1
        return self.tokens[self.index - 1]

    def at(self, kind: str, *texts: str) -> bool:
        return self.current.kind == kind and (not texts or self.current.text in texts)

    def expect(self, char: str) -> None:
        if not self.at("punct", char):
            raise self.error(self.current, f"Expected '{char}'.")
        self.take()

    def parse(self) -> Any:
        if self.at("end"):
            raise ODataError("The expression is empty.")
        node = self.expression()
        if not self.at("end"):
            raise self.error(self.current)
        return node

    def expression(self) -> Any:
        node = self.unary()
        while self.at("word", "and", "or"):
            if self.current.text == "or":
                raise not_served("'or' in a $filter")
            token = self.take()
            node = Logical("and", node, self.unary(), token.position)
        return node

    def unary(self) -> Any:
        if self.at("word", "not"):
            token = self.take()
            return Not(self.primary(after_not=True), token.position)
        return self.primary()

    def primary(self, after_not: bool = False) -> Any:
        token = self.current
        if self.at("punct", "("):
            self.take()
            node = self.expression()
            self.expect(")")
            return node
        if token.kind in ("string", "number", "datetime") or self.at("word", "true", "false", "null"):
            raise not_served("a constant on the left of a comparison")
        if token.kind != "word" or token.text in _KEYWORDS:
            raise self.error(token)
        if "." in token.text:
            return self.function()
        self.take()
        path = Path((token.text,), token.position)
        if self.at("punct", "/"):
            return self.lambda_expression(path)
        if not self.at("word", *COMPARISONS):
            if self.at("end") or self.at("punct", ")") or self.at("word", "and", "or"):
                raise not_served(f"a field alone as a Boolean expression ('{token.text}')")
            raise self.error(self.current)
        if after_not:  # `not` takes the field alone, and a field is no Boolean to negate
            raise ODataError(
                f"A unary operator with an incompatible type was detected: 'not' applies to '{token.text}' "
                f"alone (position {token.position}); write 'not ({token.text} {self.current.text} ...)'."
            )
        operator = self.take()
        node = Compare(operator.text, path, self.literal(), operator.position)
        if self.at("word", *COMPARISONS):
            raise self.error(self.current, "Comparisons cannot be chained; use 'and'.")
        return node

    def literal(self) -> Literal:
        token = self.take()
        if token.kind == "string":
            return Literal(token.text[1:-1].replace("''", "'"), "Edm.String", token.position)
        if token.kind == "datetime":
            try:
                return Literal(parse_datetime_offset(token.text), "Edm.DateTimeOffset", token.position)
            except ValueError:  # a day the month does not have
                raise self.error(token, f"'{token.text}' is not a valid Edm.DateTimeOffset.") from None
        if token.kind == "number":
            if re.fullmatch(r"[+-]?\d+", token.text):
                value = int(token.text)
                for edm, (low, high) in (("Edm.Int32", INT32_RANGE), ("Edm.Int64", INT64_RANGE)):
                    if low <= value <= high:
                        return Literal(value, edm, token.position)
                raise self.error(token, f"The integer literal '{token.text}' is out of range.")
            return Literal(float(token.text), "Edm.Double", token.position)
        if token.kind == "word" and token.text in ("true", "false", "null"):
            if token.text == "null":
                return Literal(None, None, token.position)
            return Literal(token.text == "true", "Edm.Boolean", token.position)
        raise self.error(token, "A comparison compares a field with a constant.")

    def lambda_expression(self, collection: Path) -> Lambda:
        self.take()  # the "/"
        kind = self.take()
        if kind.kind != "word":
            raise self.error(kind)
        if kind.text == "all" and self.at("punct", "("):
            raise not_served("all() lambdas")
        if kind.text != "any" or not self.at("punct", "("):
            raise not_served(f"the sub-field path '{collection.parts[0]}/{kind.text}' (complex fields)")
        self.take()
        if self.at("punct", ")"):
            raise not_served("any() without a lambda expression")
        variable = self.take()
        if variable.kind != "word" or variable.text in _KEYWORDS or "." in variable.text:
            raise self.error(variable, "Expected a range variable name.")
        self.expect(":")
        body = self.expression()
        self.expect(")")
        if not isinstance(body, Compare) or body.left.parts != (variable.text,):
            raise not_served("a lambda expression other than one comparison of its range variable")
        return Lambda(collection, "any", variable.text, body, kind.position)

    def function(self) -> FunctionCall:
        name = self.take()
        if name.text != "search.in":
            raise not_served(f"the function '{name.text}'")
        self.expect("(")
        target = self.take()
        if target.kind != "word" or target.text in _KEYWORDS:
            raise self.error(target, "search.in takes a field first.")
        args: list[Any] = [Path((target.text,), target.position)]
        while self.at("punct", ","):
            self.take()
            argument = self.literal()
            if argument.edm != "Edm.String":
                raise self.error(self.tokens[self.index - 1], "search.in takes string literals after the field.")
            args.append(argument)
        self.expect(")")
        if len(args) not in (2, 3) or (len(args) == 3 and not args[2].value):
            raise self.error(name, "search.in takes a field, a string of values and a string of delimiters.")
        return FunctionCall(name.text, tuple(args), name.position)


def parse_filter(text: str) -> Any:
    """The tree of a ``$filter`` expression; ``ODataError`` for bad syntax."""
    return _Parser(text).parse()


# --------------------------------------------------------------------------- meaning


def _fail(message: str) -> NoReturn:
    raise ODataError(message)


def _filterable(fields: Mapping[str, FieldSpec], path: Path) -> FieldSpec:
    spec = fields.get(path.parts[0])
    if spec is None:
        _fail(f"Could not find a property named '{path.parts[0]}' on type 'search.document'.")
    if not spec.filterable:
        _fail(f"The field '{spec.name}' is not filterable. Only filterable fields can be used in filter expressions.")
    return spec


def _comparison(node: Compare, edm: str) -> Callable[[Any], bool]:
    """``value op constant`` for a value of type ``edm`` (None is null)."""
    op, literal = node.op, node.right
    if literal.edm is None:
        if op not in ("eq", "ne"):
            _fail(f"The null literal can only be compared with 'eq' or 'ne', not '{op}'.")
        return (lambda v: v is None) if op == "eq" else (lambda v: v is not None)
    compatible = literal.edm in _NUMERIC if edm in _NUMERIC else literal.edm == edm
    if not compatible:
        _fail(
            f"A binary operator with incompatible types was detected. Found operand types '{edm}' and "
            f"'{literal.edm}' for operator kind '{_OPERATOR_KIND[op]}'."
        )
    if edm == "Edm.Boolean" and op not in ("eq", "ne"):
        _fail(f"Boolean values can only be compared with 'eq' or 'ne', not '{op}'.")
    expected = literal.value
    if op == "ne":
        return lambda v: v is None or v != expected
    compare = _COMPARE[op]
    return lambda v: v is not None and compare(v, expected)


def _bind(node: Any, fields: Mapping[str, FieldSpec]) -> Callable[[Mapping[str, Any]], bool]:
    if isinstance(node, Logical):
        left, right = _bind(node.left, fields), _bind(node.right, fields)
        return lambda d: left(d) and right(d)
    if isinstance(node, Not):
        inner = _bind(node.operand, fields)
        return lambda d: not inner(d)
    if isinstance(node, Compare):
        spec = _filterable(fields, node.left)
        if spec.is_collection:
            _fail(f"The field '{spec.name}' is a collection; compare its elements with '{spec.name}/any(x: x eq ...)'.")
        test, name = _comparison(node, spec.type), spec.name
        return lambda d: test(d.get(name))
    if isinstance(node, Lambda):
        spec = _filterable(fields, node.collection)
        if not spec.is_collection:
            _fail(f"'{spec.name}/any' needs a collection field, but '{spec.name}' is of type '{spec.type}'.")
        if spec.element_type == "Edm.String" and node.body.op != "eq":
            _fail(
                "Invalid lambda expression. Found a test for inequality or a range comparison in a lambda "
                "expression over a string collection with 'any'. Only 'eq' comparisons are allowed there."
            )
        element, name = _comparison(node.body, spec.element_type), spec.name
        return lambda d: any(element(v) for v in d.get(name) or ())
    if isinstance(node, FunctionCall):  # search.in
        target, values, *delimiters = node.args
        spec = _filterable(fields, target)
        if spec.type != "Edm.String":
            _fail(f"search.in needs a field of type 'Edm.String', not '{spec.type}'.")
        separators = "[" + re.escape(delimiters[0].value if delimiters else " ,") + "]"
        allowed, name = frozenset(v for v in re.split(separators, values.value) if v), spec.name
        return lambda d: d.get(name) in allowed
    _fail("The expression is not a Boolean expression.")  # pragma: no cover - the parser makes no other node


def compile_filter(text: str, fields: Mapping[str, FieldSpec]) -> Callable[[Mapping[str, Any]], bool]:
    """``predicate(document) -> bool`` for a ``$filter``; ``ODataError`` with the service's
    wording for syntax errors, unknown or non-filterable fields and incompatible types."""
    predicate = _bind(parse_filter(text), fields)
    return lambda document: bool(predicate(document))


# --------------------------------------------------------------------------- $select / $orderby


def parse_select(text: str | Sequence[str] | None, fields: Mapping[str, FieldSpec]) -> list[str] | None:
    """Field names to return, or None for "all retrievable fields" (``*`` or absent)."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text or ["*"])]
    if "*" in items:
        return None
    for item in items:
        spec = fields.get(item)
        if spec is None:
            raise ODataError(
                f"Could not find a property named '{item}' on type 'search.document'.", parameter="$select"
            )
        if not spec.retrievable:
            raise ODataError(
                f"The field '{item}' is not retrievable. Only retrievable fields can be selected.", parameter="$select"
            )
    return items


def parse_orderby(text: str | None, fields: Mapping[str, FieldSpec]) -> list[tuple[str, bool]]:
    """``(field, descending)`` per clause of ``field [asc|desc], ...``."""
    clauses = []
    for clause in text.split(",") if text else []:
        words = clause.split()
        if words and words[0] == "search.score()":
            raise not_served("$orderby=search.score()")
        if not 1 <= len(words) <= 2 or not _IDENTIFIER.fullmatch(words[0]) or words[1:] not in ([], ["asc"], ["desc"]):
            raise ODataError(f"Syntax error in the $orderby clause '{clause.strip()}'.", parameter="$orderby")
        spec = fields.get(words[0])
        if spec is None:
            raise ODataError(f"Could not find a property named '{words[0]}' on type 'search.document'.", "$orderby")
        if spec.is_collection or not spec.sortable:
            raise ODataError(
                f"The field '{words[0]}' is not sortable. Only sortable fields can be used in $orderby.", "$orderby"
            )
        clauses.append((words[0], words[1:] == ["desc"]))
    return clauses
