"""Read Bicep files with the tree-sitter-bicep grammar, the stand-in for the Bicep compiler.

Two jobs: report syntax problems (ERROR and MISSING nodes) and extract the declarations the
infrastructure tests reason about (target scope, params with their decorators, variables,
resources, modules, outputs) as plain Python values. Literals become Python values; anything
computed at deployment time stays an :class:`Expr` holding its source text, so tests can still
ask what it refers to.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import tree_sitter
import tree_sitter_bicep

_SKIPPED = {"comment", "diagnostic_comment"}
_ESCAPES = {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}


@lru_cache(maxsize=1)
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


def parse(source: str | bytes) -> tree_sitter.Tree:
    data = source.encode("utf-8") if isinstance(source, str) else source
    return _parser().parse(data)


@dataclass(frozen=True)
class SyntaxProblem:
    line: int  # 1-based
    column: int  # 1-based
    kind: str  # "ERROR" or "MISSING <node type>"
    text: str

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.kind} near {self.text!r}"


def syntax_problems(source: str | bytes) -> list[SyntaxProblem]:
    """Every ERROR and MISSING node of the parse, in document order."""
    problems: list[SyntaxProblem] = []

    def walk(node: tree_sitter.Node) -> None:
        if node.is_error or node.is_missing:
            kind = "ERROR" if node.is_error else f"MISSING {node.type}"
            line, column = node.start_point
            problems.append(SyntaxProblem(line + 1, column + 1, kind, _text(node)[:60]))
        for child in node.children:
            walk(child)

    walk(parse(source).root_node)
    return problems


@dataclass(frozen=True)
class Expr:
    """A Bicep expression that is not a plain literal, kept as source text."""

    text: str
    kind: str  # the grammar's node type, e.g. "member_expression"; "interpolated_string" for '${x}'

    def identifiers(self) -> set[str]:
        """Names the expression mentions (symbols, functions and properties alike)."""
        return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", self.text))

    def __str__(self) -> str:
        return self.text


@dataclass
class Param:
    name: str
    type: str
    default: Any = None
    has_default: bool = False
    decorators: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def allowed(self) -> list[Any] | None:
        args = self.decorators.get("allowed")
        return args[0] if args else None


@dataclass
class Resource:
    symbol: str
    type: str
    api_version: str
    body: Any  # dict for an object body
    existing: bool = False
    condition: str | None = None  # source text of `if (...)`
    loop: str | None = None  # source text of the for-expression header
    parent_symbol: str | None = None  # lexical parent of a nested resource

    def get(self, *path: str, default: Any = None) -> Any:
        value: Any = self.body
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return default
            value = value[key]
        return value


@dataclass
class Module:
    symbol: str
    path: str
    body: Any
    condition: str | None = None
    loop: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        params = self.body.get("params", {}) if isinstance(self.body, dict) else {}
        return params if isinstance(params, dict) else {}


@dataclass
class Output:
    name: str
    type: str
    value: Any
    decorators: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class BicepFile:
    path: Path | None
    source: str
    target_scope: str | None = None
    params: dict[str, Param] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    resources: list[Resource] = field(default_factory=list)
    modules: list[Module] = field(default_factory=list)
    outputs: dict[str, Output] = field(default_factory=dict)

    def resource(self, symbol: str) -> Resource:
        for res in self.resources:
            if res.symbol == symbol:
                return res
        raise KeyError(f"no resource {symbol!r} in {self.path}")

    def resources_of_type(self, type_name: str) -> list[Resource]:
        return [r for r in self.resources if r.type.lower() == type_name.lower()]

    def module(self, symbol: str) -> Module:
        for mod in self.modules:
            if mod.symbol == symbol:
                return mod
        raise KeyError(f"no module {symbol!r} in {self.path}")

    def symbols(self) -> set[str]:
        return {*self.params, *self.variables} | {r.symbol for r in self.resources} | {m.symbol for m in self.modules}

    def resolve(self, value: Any) -> Any:
        """Follow a bare variable reference to the variable's value (one level per call)."""
        if isinstance(value, Expr) and value.kind == "identifier" and value.text in self.variables:
            return self.variables[value.text]
        return value


def load(path: str | Path) -> BicepFile:
    path = Path(path)
    return read(path.read_text(encoding="utf-8"), path=path)


def read(source: str, *, path: Path | None = None) -> BicepFile:
    """Extract the declarations of a Bicep file (the source must parse cleanly)."""
    problems = syntax_problems(source)
    if problems:
        where = path or "<source>"
        raise ValueError(f"{where} does not parse: " + "; ".join(map(str, problems[:5])))
    result = BicepFile(path=path, source=source)
    decorators: dict[str, list[Any]] = {}
    for node in _named(parse(source).root_node):
        if node.type == "decorators":
            decorators = _decorators(node)
            continue
        if node.type == "target_scope_assignment":
            result.target_scope = _value(_named(node)[-1])
        elif node.type == "parameter_declaration":
            param = _param(node)
            param.decorators = decorators
            result.params[param.name] = param
        elif node.type == "variable_declaration":
            name, value = _named(node)[0], _named(node)[-1]
            result.variables[_text(name)] = _value(value)
        elif node.type == "resource_declaration":
            result.resources.extend(_resources(node, parent=None))
        elif node.type == "module_declaration":
            result.modules.append(_module(node))
        elif node.type == "output_declaration":
            children = _named(node)
            result.outputs[_text(children[0])] = Output(
                name=_text(children[0]), type=_text(children[1]), value=_value(children[-1]), decorators=decorators
            )
        decorators = {}
    return result


def identifier_references(source: str) -> Iterator[tuple[str, int]]:
    """Yield (name, line) for every identifier used as a value (a symbol reference).

    Leaves out what is not a reference: declared names, object keys, called function names,
    property names, loop and lambda variables, and the nested-resource half of ``a::b``.
    """

    def walk(node: tree_sitter.Node, bound: frozenset[str]) -> Iterator[tuple[str, int]]:
        if node.type == "for_statement":
            bound = bound | _loop_variables(node)
        elif node.type == "lambda_expression":
            arrow = next(i for i, c in enumerate(node.children) if c.type == "=>")
            bound = bound | {_text(c) for c in node.children[:arrow] if c.type == "identifier"}
        if node.type == "identifier" and _is_reference(node) and _text(node) not in bound:
            yield _text(node), node.start_point[0] + 1
        for child in node.children:
            yield from walk(child, bound)

    yield from walk(parse(source).root_node, frozenset())


def _loop_variables(node: tree_sitter.Node) -> set[str]:
    names: set[str] = set()
    for child in node.children:
        if child.type == "in":
            break
        if child.type == "identifier":
            names.add(_text(child))
        elif child.type == "for_loop_parameters":
            names |= {_text(c) for c in child.children if c.type in ("loop_variable", "loop_enumerator")}
    return names


def _is_reference(node: tree_sitter.Node) -> bool:
    parent = node.parent
    if parent is None:
        return False
    siblings = parent.children
    if parent.type in (
        "parameter_declaration",
        "variable_declaration",
        "resource_declaration",
        "module_declaration",
        "output_declaration",
        "type_declaration",
        "user_defined_function",
    ):
        return False
    if parent.type == "for_statement":
        # `[for x in items: ...]`: x (before `in`) is declared here, items is a reference.
        in_index = next(i for i, c in enumerate(siblings) if c.type == "in")
        return siblings.index(node) > in_index
    if parent.type == "lambda_expression":
        arrow = next(i for i, c in enumerate(siblings) if c.type == "=>")
        return siblings.index(node) > arrow
    first = siblings[0]
    if parent.type in ("object_property", "call_expression") and node == first:
        return False  # an object key, or the name of a called function
    if parent.type == "resource_expression" and node != first:
        return False  # the nested half of parent::child
    return True


def _named(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    return [c for c in node.named_children if c.type not in _SKIPPED]


def _text(node: tree_sitter.Node) -> str:
    return node.text.decode("utf-8")


def _decorators(node: tree_sitter.Node) -> dict[str, list[Any]]:
    result: dict[str, list[Any]] = {}
    for decorator in _named(node):
        call = _named(decorator)[0]
        if call.type != "call_expression":
            result[_text(call)] = []
            continue
        function, arguments = _named(call)[0], _named(call)[-1]
        name = _text(function).split(".")[-1]  # @sys.description(...) -> description
        result[name] = [_value(a) for a in _named(arguments)] if arguments.type == "arguments" else []
    return result


def _param(node: tree_sitter.Node) -> Param:
    children = _named(node)
    name, type_node = children[0], children[1]
    has_default = any(c.type == "=" for c in node.children)
    default = _value(children[-1]) if has_default else None
    return Param(name=_text(name), type=_text(type_node), default=default, has_default=has_default)


def _split_body(node: tree_sitter.Node) -> tuple[tree_sitter.Node, str | None, str | None]:
    """(object body, condition text, loop header text) of a resource or module value."""
    condition = loop = None
    if node.type == "for_statement":
        parts = _text(node)
        loop = parts[1 : parts.index(":")].strip() if ":" in parts else parts
        node = _named(node)[-1]
    if node.type == "if_statement":
        condition = _text(_named(node)[0])
        node = _named(node)[-1]
    return node, condition, loop


def _resources(node: tree_sitter.Node, parent: Resource | None) -> list[Resource]:
    children = _named(node)
    symbol = _text(children[0])
    type_ref = _value(children[1])
    existing = any(c.type == "existing" for c in node.children)
    body_node, condition, loop = _split_body(children[-1])
    type_name, _, api_version = str(type_ref).partition("@")
    if parent is not None and "/" not in type_name.split(".", 1)[0] and not type_name.startswith("Microsoft."):
        # nested resource with a relative type: `resource blob 'blobServices' = {...}`
        type_name = f"{parent.type}/{type_name}"
        api_version = api_version or parent.api_version
    resource = Resource(
        symbol=symbol,
        type=type_name,
        api_version=api_version,
        body=None,
        existing=existing,
        condition=condition,
        loop=loop,
        parent_symbol=parent.symbol if parent else None,
    )
    nested: list[Resource] = []
    if body_node.type == "object":
        body: dict[str, Any] = {}
        for prop in _named(body_node):
            if prop.type != "object_property":
                continue
            inner = _named(prop)
            if inner and inner[0].type == "resource_declaration":
                nested.extend(_resources(inner[0], parent=resource))
                continue
            body[_key(inner[0])] = _value(inner[-1])
        resource.body = body
    else:
        resource.body = _value(body_node)
    return [resource, *nested]


def _module(node: tree_sitter.Node) -> Module:
    children = _named(node)
    body_node, condition, loop = _split_body(children[-1])
    return Module(
        symbol=_text(children[0]), path=str(_value(children[1])), body=_value(body_node), condition=condition, loop=loop
    )


def _key(node: tree_sitter.Node) -> str:
    value = _value(node) if node.type == "string" else _text(node)
    return value.text if isinstance(value, Expr) else str(value)


def _value(node: tree_sitter.Node) -> Any:
    kind = node.type
    if kind == "string":
        if any(c.type == "interpolation" for c in node.children):
            return Expr(_text(node), "interpolated_string")
        parts = []
        for child in node.children:
            if child.type == "string_content":
                parts.append(_text(child))
            elif child.type == "escape_sequence":
                parts.append(_ESCAPES.get(_text(child), _text(child)))
        return "".join(parts)
    if kind == "number":
        return int(_text(node))
    if kind == "boolean":
        return _text(node) == "true"
    if kind == "null":
        return None
    if kind == "object":
        result: dict[str, Any] = {}
        for prop in _named(node):
            if prop.type == "object_property":
                inner = _named(prop)
                result[_key(inner[0])] = _value(inner[-1])
        return result
    if kind == "array":
        return [_value(item) for item in _named(node)]
    if kind == "parenthesized_expression" and len(_named(node)) == 1:
        return Expr(_text(node), kind)
    return Expr(_text(node), kind)
