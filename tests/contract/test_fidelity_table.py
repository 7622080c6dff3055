"""``standins/FIDELITY.md`` stays complete: every error code a stand-in can emit is in it, every
test it names exists, and every rule has a source or says it is an assumption.

The codes are read from the stand-ins' source (not imported), from every place a code is
written: the code argument of ``SearchServiceError``, ``ErrorAnswer`` and the double's action
problems, ``code``/``detail_code``/``inner_code`` keywords and their defaults, ``"code"`` keys
of detail dicts, and values assigned to a variable named ``code``. A new error code without a
row in the table fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "standins" / "FIDELITY.md"
CODE_ARGUMENTS = {"SearchServiceError": (1,), "_ActionProblem": (1,), "ErrorAnswer": (1, 3)}
CODE_KEYWORDS = {"code", "detail_code", "inner_code"}


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def emitted_codes(path: Path) -> set[str]:
    codes: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            for position in CODE_ARGUMENTS.get(name, ()):
                if len(node.args) > position:
                    codes |= _strings(node.args[position])
            for keyword in node.keywords:
                if keyword.arg in CODE_KEYWORDS:
                    codes |= _strings(keyword.value)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "code" and value is not None:
                    codes |= _strings(value)
        elif isinstance(node, ast.FunctionDef):
            positional = node.args.args[len(node.args.args) - len(node.args.defaults) :]
            for argument, default in zip(
                positional + node.args.kwonlyargs, node.args.defaults + node.args.kw_defaults, strict=True
            ):
                if argument.arg in CODE_KEYWORDS and default is not None:
                    codes |= _strings(default)
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "code" for t in node.targets):
            codes |= _strings(node.value)
    return codes


def all_emitted_codes() -> dict[str, set[str]]:
    found = {}
    for path in sorted((ROOT / "standins").rglob("*.py")):
        codes = emitted_codes(path)
        if codes:
            found[str(path.relative_to(ROOT))] = codes
    return found


def test_the_scan_finds_the_codes_it_must():
    # If the scan silently stopped finding codes, the next test would pass vacuously.
    found = set().union(*all_emitted_codes().values())
    assert {"ResourceNameAlreadyInUse", "MissingKeyField", "OperationNotAllowed", "", "InvalidImageSize"} <= found
    assert {"Gone", "NotSupportedByStandIn", "ParameterValueOutOfRange", "InvalidImageFormat"} <= found


def test_every_error_code_a_stand_in_can_emit_is_in_the_table():
    table = TABLE.read_text(encoding="utf-8")
    quoted = set(re.findall(r"`([^`]*)`", table))

    def documented(code: str) -> bool:
        return "empty code" in table if code == "" else code in quoted

    missing = {path: sorted(c for c in codes if not documented(c)) for path, codes in all_emitted_codes().items()}
    missing = {path: codes for path, codes in missing.items() if codes}
    assert not missing, f"error codes with no row in standins/FIDELITY.md: {missing}"


def test_every_test_the_table_names_exists():
    table = TABLE.read_text(encoding="utf-8")
    references = re.findall(r"(tests/[\w/]+\.py)::(\w+)", table)
    assert len(references) > 60
    absent = [
        f"{path}::{name}"
        for path, name in references
        if not (ROOT / path).is_file() or not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M)
    ]
    assert not absent, f"tests named in standins/FIDELITY.md that do not exist: {absent}"


def test_every_rule_row_has_a_source_and_a_test():
    rows = [line for line in TABLE.read_text(encoding="utf-8").splitlines() if re.match(r"\| [A-Z]+\d+[a-z]? \|", line)]
    assert len(rows) > 60
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 5, row
        rule_id, _rule, _azure, source, test = cells
        assert source, f"{rule_id} has no source (write **assumption** if there is none)"
        assert "tests/" in test, f"{rule_id} names no test"
