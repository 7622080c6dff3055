"""The OData subset Azure AI Search accepts in ``$filter``, ``$orderby`` and ``$select``,
parsed for real so the search double rejects what the service rejects.

The grammar follows the service's published EBNF ("OData expression syntax reference for
Azure AI Search") for the parts the double supports:

- comparisons ``eq ne gt ge lt le`` between a field (or a lambda's range variable) and a
  constant, in either order; ``and``, ``or``, ``not`` and parentheses, with the service's
  precedence (``not`` binds tightest, then comparisons, then ``and``, then ``or``);
- constants: strings in single quotes with ``''`` as the escaped quote, integers, floats
  (also ``NaN``, ``INF``, ``-INF``), ``true``/``false``, ``null`` and unquoted
  ``Edm.DateTimeOffset`` literals such as ``2024-05-06T12:30:05.451Z``;
- ``field/any()``, ``field/any(t: ...)`` and ``field/all(t: ...)`` over collections, with the
  service's limits on string collections (``any``: ``eq`` and ``search.in`` joined by ``or``;
  ``all``: ``ne`` and ``not search.in`` joined by ``and``);
- ``search.in(field, 'a, b')`` with optional delimiters.

Geo functions, ``search.ismatch`` and complex (sub-field) paths are refused with an error
that says the double does not support them, rather than being half-implemented.

Parsing yields a small AST; ``compile_filter`` checks it against the index's fields (exists,
filterable, compatible types) and returns a predicate over stored documents. Documents hold
typed values: ``str``, ``int``, ``float``, ``bool``, aware ``datetime`` and lists of them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

COMPARISON_OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")
_OPERATOR_KIND = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
_FLIPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
_NUMERIC = ("Edm.Int32", "Edm.Int64", "Edm.Double", "Edm.Single")
INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)


class ODataError(ValueError):
    """An expression the service would refuse. ``parameter`` is ``$filter``, ``$orderby`` or
    ``$select``; the message reads like the service's own ("Invalid expression: ...")."""

    def __init__(self, message: str, *, parameter: str) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter

    def service_message(self) -> str:
        return f"Invalid expression: {self.message}\r\nParameter name: {self.parameter}"


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


# --------------------------------------------------------------------------- literals

_DATETIME = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)"
)
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_datetime_offset(text: str) -> datetime:
    """An ``Edm.DateTimeOffset`` value (ISO 8601 with a zone) as an aware UTC datetime.

    Raises ``ValueError`` for anything else; a value without a zone is refused because the
    service cannot know which instant it means.
    """
    match = _DATETIME.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not an ISO 8601 date and time with a time zone")
    body = text
    fraction = re.search(r"\.(\d+)", body)
    if fraction and len(fraction.group(1)) > 6:  # Python keeps microseconds; the service 100 ns
        body = body.replace(fraction.group(0), "." + fraction.group(1)[:6])
    return datetime.fromisoformat(body.replace("Z", "+00:00")).astimezone(UTC)


def format_datetime_offset(value: datetime) -> str:
    """How the service writes an ``Edm.DateTimeOffset`` back: UTC with a ``Z``."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


@dataclass(frozen=True)
class Literal:
    value: Any
    edm: str | None  # None for the null literal
    position: int


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # "string", "number", "datetime", "ident", "punct", "end"
    text: str
    position: int
    value: Any = None


def tokenize(text: str, *, parameter: str = "$filter") -> list[Token]:
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "(),:/":
            tokens.append(Token("punct", ch, i))
            i += 1
            continue
        if ch == "'":
            start = i
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise ODataError(
                        f"Syntax error at position {start}: the string literal that starts "
                        f"there is never closed in '{text}'.",
                        parameter=parameter,
                    )
                if text[i] == "'":
                    if i + 1 < n and text[i + 1] == "'":
                        chars.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            tokens.append(Token("string", text[start:i], start, "".join(chars)))
            continue
        match = _DATETIME.match(text, i)
        if match:
            tokens.append(Token("datetime", match.group(0), i))
            i = match.end()
            continue
        if text.startswith("-INF", i) and not _continues_identifier(text, i + 4):
            tokens.append(Token("number", "-INF", i, float("-inf")))
            i += 4
            continue
        match = _NUMBER.match(text, i)
        if match and (ch.isdigit() or (ch in "+-" and i + 1 < n and text[i + 1].isdigit())):
            if _continues_identifier(text, match.end()):
                raise ODataError(f"Syntax error at position {i} in '{text}'.", parameter=parameter)
            tokens.append(Token("number", match.group(0), i))
            i = match.end()
            continue
        match = _IDENTIFIER.match(text, i)
        if match:
            end = match.end()
            # Function names carry a namespace: search.in, search.ismatch, geo.distance.
            while end < n and text[end] == "." and _IDENTIFIER.match(text, end + 1):
                end = _IDENTIFIER.match(text, end + 1).end()
            tokens.append(Token("ident", text[i:end], i))
            i = end
            continue
        raise ODataError(f"Syntax error at position {i} in '{text}'.", parameter=parameter)
    tokens.append(Token("end", "", n))
    return tokens


def _continues_identifier(text: str, index: int) -> bool:
    return index < len(text) and (text[index].isalnum() or text[index] == "_")


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Path:
    """A field path or a range variable (``t`` in ``tags/any(t: t eq 'x')``)."""

    parts: tuple[str, ...]
    position: int

    @property
    def text(self) -> str:
        return "/".join(self.parts)


@dataclass(frozen=True)
class Compare:
    op: str
    left: Any
    right: Any
    position: int


@dataclass(frozen=True)
class Logical:
    op: str  # "and" / "or"
    left: Any
    right: Any
    position: int


@dataclass(frozen=True)
class Not:
    operand: Any
    position: int


@dataclass(frozen=True)
class Lambda:
    collection: Path
    kind: str  # "any" / "all"
    variable: str | None
    body: Any | None
    position: int


@dataclass(frozen=True)
class FunctionCall:
    name: str
    args: tuple[Any, ...]
    position: int


_KEYWORDS = {"and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "true", "false", "null", "NaN", "INF"}


class _Parser:
    def __init__(self, text: str, parameter: str) -> None:
        self.text = text
        self.parameter = parameter
        self.tokens = tokenize(text, parameter=parameter)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, token: Token | None = None, detail: str = "") -> ODataError:
        token = token or self.current
        suffix = f" {detail}" if detail else ""
        return ODataError(
            f"Syntax error at position {token.position} in '{self.text}'.{suffix}", parameter=self.parameter
        )

    def expect_punct(self, char: str) -> Token:
        if self.current.kind != "punct" or self.current.text != char:
            raise self.error(detail=f"Expected '{char}'.")
        return self.advance()

    def is_word(self, word: str) -> bool:
        return self.current.kind == "ident" and self.current.text == word

    # boolean_expression with the service's precedence: or < and < comparison < not
    def parse(self) -> Any:
        if self.current.kind == "end":
            raise ODataError("The expression is empty.", parameter=self.parameter)
        node = self.parse_or()
        if self.current.kind != "end":
            raise self.error()
        return node

    def parse_or(self) -> Any:
        node = self.parse_and()
        while self.is_word("or"):
            token = self.advance()
            node = Logical("or", node, self.parse_and(), token.position)
        return node

    def parse_and(self) -> Any:
        node = self.parse_comparison()
        while self.is_word("and"):
            token = self.advance()
            node = Logical("and", node, self.parse_comparison(), token.position)
        return node

    def parse_comparison(self) -> Any:
        left = self.parse_unary()
        if self.current.kind == "ident" and self.current.text in COMPARISON_OPERATORS:
            token = self.advance()
            right = self.parse_unary()
            if self.current.kind == "ident" and self.current.text in COMPARISON_OPERATORS:
                raise self.error(detail="Comparisons cannot be chained; use 'and'.")
            return Compare(token.text, left, right, token.position)
        return left

    def parse_unary(self) -> Any:
        if self.is_word("not"):
            token = self.advance()
            return Not(self.parse_unary(), token.position)
        return self.parse_primary()

    def parse_primary(self) -> Any:
        token = self.current
        if token.kind == "punct" and token.text == "(":
            self.advance()
            node = self.parse_or()
            self.expect_punct(")")
            return node
        if token.kind == "string":
            self.advance()
            return Literal(token.value, "Edm.String", token.position)
        if token.kind == "datetime":
            self.advance()
            try:
                return Literal(parse_datetime_offset(token.text), "Edm.DateTimeOffset", token.position)
            except ValueError:
                raise self.error(token, detail=f"'{token.text}' is not a valid Edm.DateTimeOffset.") from None
        if token.kind == "number":
            self.advance()
            return self.number_literal(token)
        if token.kind == "ident":
            word = token.text
            if word in ("true", "false"):
                self.advance()
                return Literal(word == "true", "Edm.Boolean", token.position)
            if word == "null":
                self.advance()
                return Literal(None, None, token.position)
            if word in ("NaN", "INF"):
                self.advance()
                return Literal(float("nan") if word == "NaN" else float("inf"), "Edm.Double", token.position)
            if word in _KEYWORDS:
                raise self.error(token)
            if "." in word:
                return self.parse_function()
            return self.parse_path_or_lambda()
        raise self.error(token)

    def number_literal(self, token: Token) -> Literal:
        if token.value is not None:  # -INF
            return Literal(token.value, "Edm.Double", token.position)
        text = token.text
        if re.fullmatch(r"[+-]?\d+", text):
            value = int(text)
            if INT32_RANGE[0] <= value <= INT32_RANGE[1]:
                return Literal(value, "Edm.Int32", token.position)
            if INT64_RANGE[0] <= value <= INT64_RANGE[1]:
                return Literal(value, "Edm.Int64", token.position)
            raise self.error(token, detail=f"The integer literal '{text}' is out of range.")
        return Literal(float(text), "Edm.Double", token.position)

    def parse_path_or_lambda(self) -> Any:
        first = self.advance()
        parts = [first.text]
        while self.current.kind == "punct" and self.current.text == "/":
            self.advance()
            name = self.current
            if name.kind != "ident":
                raise self.error(name)
            self.advance()
            if name.text in ("any", "all") and self.current.kind == "punct" and self.current.text == "(":
                return self.parse_lambda(Path(tuple(parts), first.position), name)
            parts.append(name.text)
        return Path(tuple(parts), first.position)

    def parse_lambda(self, collection: Path, kind: Token) -> Lambda:
        self.expect_punct("(")
        if self.current.kind == "punct" and self.current.text == ")":
            self.advance()
            if kind.text == "all":
                raise self.error(kind, detail="'all' needs a lambda expression.")
            return Lambda(collection, "any", None, None, kind.position)
        variable = self.current
        if variable.kind != "ident" or variable.text in _KEYWORDS or "." in variable.text:
            raise self.error(variable, detail="Expected a range variable name.")
        self.advance()
        self.expect_punct(":")
        body = self.parse_or()
        self.expect_punct(")")
        return Lambda(collection, kind.text, variable.text, body, kind.position)

    def parse_function(self) -> FunctionCall:
        name = self.advance()
        self.expect_punct("(")
        args: list[Any] = []
        if not (self.current.kind == "punct" and self.current.text == ")"):
            args.append(self.parse_or())
            while self.current.kind == "punct" and self.current.text == ",":
                self.advance()
                args.append(self.parse_or())
        self.expect_punct(")")
        return FunctionCall(name.text, tuple(args), name.position)


def parse_filter(text: str) -> Any:
    """Parse a ``$filter`` expression into an AST; raises ``ODataError`` on bad syntax."""
    return _Parser(text, "$filter").parse()


# --------------------------------------------------------------------------- binding


Predicate = Callable[[Mapping[str, Any], dict[str, Any]], bool]


class _Binder:
    """Checks an AST against the index fields and turns it into a predicate."""

    def __init__(self, text: str, fields: Mapping[str, FieldSpec]) -> None:
        self.text = text
        self.fields = fields

    def fail(self, message: str) -> ODataError:
        return ODataError(message, parameter="$filter")

    # Each bind_* returns (predicate) for boolean nodes.
    def bind_bool(self, node: Any, scope: dict[str, FieldSpec]) -> Predicate:
        if isinstance(node, Logical):
            left = self.bind_bool(node.left, scope)
            right = self.bind_bool(node.right, scope)
            if node.op == "and":
                return lambda doc, env: left(doc, env) and right(doc, env)
            return lambda doc, env: left(doc, env) or right(doc, env)
        if isinstance(node, Not):
            inner = self.bind_bool(node.operand, scope)
            return lambda doc, env: not inner(doc, env)
        if isinstance(node, Compare):
            return self.bind_compare(node, scope)
        if isinstance(node, Literal):
            if node.edm != "Edm.Boolean":
                raise self.fail(f"The expression at position {node.position} is not a Boolean expression.")
            value = bool(node.value)
            return lambda doc, env: value
        if isinstance(node, Path):
            getter, edm = self.bind_value(node, scope)
            if edm != "Edm.Boolean":
                raise self.fail(
                    f"A unary operator with an incompatible type was detected. Found operand type "
                    f"'{edm}' where a Boolean expression is required (position {node.position})."
                )
            return lambda doc, env: getter(doc, env) is True
        if isinstance(node, Lambda):
            return self.bind_lambda(node, scope)
        if isinstance(node, FunctionCall):
            return self.bind_function(node, scope)
        raise self.fail("The expression is not a Boolean expression.")

    def bind_value(self, path: Path, scope: dict[str, FieldSpec]) -> tuple[Callable, str]:
        """A getter for a field or range variable, and its EDM type."""
        name = path.parts[0]
        if name in scope:  # a range variable: its value is the current element
            if len(path.parts) > 1:
                raise self.fail(
                    f"The range variable '{name}' has no sub-field '{path.parts[1]}' "
                    f"(complex collections are not supported by this stand-in)."
                )
            element_type = scope[name].element_type
            return (lambda doc, env, _n=name: env[_n]), element_type
        if len(path.parts) > 1:
            raise self.fail(
                f"Could not find a property named '{path.text}' on type 'search.document' "
                f"(sub-field paths of complex fields are not supported by this stand-in)."
            )
        spec = self.fields.get(name)
        if spec is None:
            raise self.fail(f"Could not find a property named '{name}' on type 'search.document'.")
        if not spec.filterable:
            raise self.fail(
                f"The field '{name}' is not filterable. Only filterable fields can be used in filter expressions."
            )
        return (lambda doc, env, _n=name: doc.get(_n)), spec.type

    def bind_compare(self, node: Compare, scope: dict[str, FieldSpec]) -> Predicate:
        op = node.op
        left, right = node.left, node.right
        if isinstance(left, Literal) and not isinstance(right, Literal):
            left, right, op = right, left, _FLIPPED[op]
        if not isinstance(right, Literal):
            raise self.fail(
                f"Comparison at position {node.position} must compare a field or range variable with a constant."
            )
        if isinstance(left, Not) and isinstance(left.operand, Path):
            _, operand_type = self.bind_value(left.operand, scope)
            raise self.fail(
                f"A unary operator with an incompatible type was detected. Found operand type "
                f"'{operand_type}' for operator kind 'Not'."
            )
        if isinstance(left, FunctionCall):
            raise self.fail(
                f"The function '{left.name}' cannot be compared (geo.distance is not supported by this stand-in)."
            )
        if not isinstance(left, Path):
            raise self.fail(
                f"Comparison at position {node.position} must compare a field or range variable with a constant."
            )
        getter, edm = self.bind_value(left, scope)
        if edm.startswith("Collection("):
            raise self.fail(
                f"The field '{left.text}' is a collection; compare its elements with "
                f"'{left.text}/any(x: x eq ...)' or '{left.text}/all(x: x ne ...)'."
            )
        literal = right
        kind = _OPERATOR_KIND[op]
        if literal.edm is None:
            if op not in ("eq", "ne"):
                raise self.fail(f"The null literal can only be compared with 'eq' or 'ne', not '{op}'.")
            return (
                (lambda doc, env: getter(doc, env) is None)
                if op == "eq"
                else (lambda doc, env: getter(doc, env) is not None)
            )
        if not _compatible(edm, literal.edm):
            raise self.fail(
                f"A binary operator with incompatible types was detected. Found operand types "
                f"'{edm}' and '{literal.edm}' for operator kind '{kind}'."
            )
        if edm == "Edm.Boolean" and op not in ("eq", "ne"):
            raise self.fail(f"Boolean values can only be compared with 'eq' or 'ne', not '{op}'.")
        expected = literal.value
        if op == "ne":
            return lambda doc, env: (lambda v: v is None or v != expected)(getter(doc, env))
        compare = _COMPARE[op]
        return lambda doc, env: (lambda v: v is not None and compare(v, expected))(getter(doc, env))

    def bind_lambda(self, node: Lambda, scope: dict[str, FieldSpec]) -> Predicate:
        collection = node.collection
        if collection.parts[0] in scope:
            raise self.fail(f"'{collection.text}' is a range variable, not a collection.")
        getter, edm = self.bind_value(collection, scope)
        if not edm.startswith("Collection("):
            raise self.fail(
                f"'{collection.text}/{node.kind}' needs a collection field, but '{collection.text}' is of type '{edm}'."
            )
        if node.body is None:  # field/any(): the collection is not empty
            return lambda doc, env: bool(getter(doc, env))
        spec = self.fields[collection.parts[0]]
        inner_scope = {**scope, node.variable: spec}
        if spec.element_type == "Edm.String":
            self.check_string_lambda(node)
        body = self.bind_bool(node.body, inner_scope)
        variable = node.variable
        if node.kind == "any":
            return lambda doc, env: any(body(doc, {**env, variable: item}) for item in (getter(doc, env) or ()))
        return lambda doc, env: all(body(doc, {**env, variable: item}) for item in (getter(doc, env) or ()))

    def check_string_lambda(self, node: Lambda) -> None:
        """The service's rule for string collections: positive checks joined by ``or`` inside
        ``any``, negative checks joined by ``and`` inside ``all``."""
        variable = node.variable

        def allowed(expr: Any) -> bool:
            if isinstance(expr, Logical):
                joiner = "or" if node.kind == "any" else "and"
                return expr.op == joiner and allowed(expr.left) and allowed(expr.right)
            if node.kind == "any":
                if isinstance(expr, Compare):
                    return expr.op == "eq" and _refers_to(expr, variable)
                return isinstance(expr, FunctionCall) and expr.name == "search.in"
            if isinstance(expr, Compare):
                return expr.op == "ne" and _refers_to(expr, variable)
            return isinstance(expr, Not) and isinstance(expr.operand, FunctionCall) and expr.operand.name == "search.in"

        if not allowed(node.body):
            if node.kind == "any":
                raise self.fail(
                    "Invalid lambda expression. Found a test for inequality or a range comparison, or "
                    "a combination with 'and' or 'not', in a lambda expression over a string "
                    "collection with 'any'. Only 'eq' comparisons and 'search.in' joined by 'or' "
                    "are allowed there."
                )
            raise self.fail(
                "Invalid lambda expression. In a lambda expression over a string collection with "
                "'all', only 'ne' comparisons and 'not search.in' joined by 'and' are allowed."
            )

    def bind_function(self, node: FunctionCall, scope: dict[str, FieldSpec]) -> Predicate:
        if node.name != "search.in":
            raise self.fail(
                f"The function '{node.name}' is not supported by this stand-in of Azure AI Search "
                f"(supported: search.in)."
            )
        if len(node.args) not in (2, 3):
            raise self.fail(
                "search.in takes a field or range variable, a string of values and optionally a string of delimiters."
            )
        target, values, *rest = node.args
        if not isinstance(target, Path):
            raise self.fail("The first argument of search.in must be a field or range variable.")
        if not (isinstance(values, Literal) and values.edm == "Edm.String"):
            raise self.fail("The second argument of search.in must be a string literal.")
        delimiters = " ,"
        if rest:
            if not (isinstance(rest[0], Literal) and rest[0].edm == "Edm.String") or not rest[0].value:
                raise self.fail("The third argument of search.in must be a non-empty string of delimiters.")
            delimiters = rest[0].value
        getter, edm = self.bind_value(target, scope)
        if edm != "Edm.String":
            raise self.fail(f"search.in needs a field or range variable of type 'Edm.String', not '{edm}'.")
        pattern = "[" + re.escape(delimiters) + "]"
        allowed = frozenset(v for v in re.split(pattern, values.value) if v != "")
        return lambda doc, env: getter(doc, env) in allowed


def _refers_to(expr: Compare, variable: str | None) -> bool:
    sides = (expr.left, expr.right)
    return any(isinstance(s, Path) and s.parts == (variable,) for s in sides)


def _compatible(field_type: str, literal_type: str) -> bool:
    if field_type in _NUMERIC:
        return literal_type in _NUMERIC
    return field_type == literal_type


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def compile_filter(text: str, fields: Mapping[str, FieldSpec]) -> Callable[[Mapping[str, Any]], bool]:
    """Parse and check ``text``; return ``predicate(document) -> bool``.

    Raises ``ODataError`` with the service's wording for syntax errors, unknown or
    non-filterable fields, incompatible types and unsupported constructs.
    """
    tree = parse_filter(text)
    binder = _Binder(text, fields)
    predicate = binder.bind_bool(tree, {})
    return lambda document: bool(predicate(document, {}))


# --------------------------------------------------------------------------- $select / $orderby


def parse_select(text: str | Sequence[str] | None, fields: Mapping[str, FieldSpec]) -> list[str] | None:
    """Field names to return, or None for "all retrievable fields" (``*`` or absent)."""
    if text is None:
        return None
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    if items == ["*"] or items == []:
        return None
    names: list[str] = []
    for item in items:
        if item == "*":
            return None
        if not _IDENTIFIER.fullmatch(item):
            raise ODataError(f"Syntax error: '{item}' is not a field name.", parameter="$select")
        spec = fields.get(item)
        if spec is None:
            raise ODataError(
                f"Could not find a property named '{item}' on type 'search.document'.", parameter="$select"
            )
        if not spec.retrievable:
            raise ODataError(
                f"The field '{item}' is not retrievable. Only retrievable fields can be selected.", parameter="$select"
            )
        names.append(item)
    return names


@dataclass(frozen=True)
class OrderClause:
    field: str | None  # None for search.score()
    descending: bool


MAX_ORDERBY_CLAUSES = 32


def parse_orderby(text: str | Sequence[str] | None, fields: Mapping[str, FieldSpec]) -> list[OrderClause]:
    if text is None:
        return []
    raw = text.split(",") if isinstance(text, str) else [c for item in text for c in item.split(",")]
    clauses: list[OrderClause] = []
    for item in raw:
        words = item.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise ODataError(
                f"Syntax error in $orderby clause '{item.strip()}'; write 'field [asc|desc]'.", parameter="$orderby"
            )
        descending = len(words) == 2 and words[1] == "desc"
        target = words[0]
        if target == "search.score()":
            clauses.append(OrderClause(None, descending))
            continue
        if not _IDENTIFIER.fullmatch(target):
            raise ODataError(f"Syntax error: '{target}' is not a field name.", parameter="$orderby")
        spec = fields.get(target)
        if spec is None:
            raise ODataError(
                f"Could not find a property named '{target}' on type 'search.document'.", parameter="$orderby"
            )
        if spec.is_collection or not spec.sortable:
            raise ODataError(
                f"The field '{target}' is not sortable. Only sortable fields can be used in $orderby.",
                parameter="$orderby",
            )
        clauses.append(OrderClause(target, descending))
    if len(clauses) > MAX_ORDERBY_CLAUSES:
        raise ODataError(f"There can be at most {MAX_ORDERBY_CLAUSES} $orderby clauses.", parameter="$orderby")
    return clauses


def sort_key_value(value: Any) -> tuple:
    """Order values the way the service does: nulls first in ascending order."""
    if value is None:
        return (0, 0)
    if isinstance(value, float) and math.isnan(value):
        return (1, float("-inf"))
    return (1, value)
