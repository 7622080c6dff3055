"""Reading a JSON request body so that whatever a caller sends is a 400 naming the problem.

``json.loads`` alone lets three kinds of body through to a 500: nesting deep enough to exhaust
the parser's recursion (``RecursionError``), a number too long to convert (a ``ValueError`` that
is no ``JSONDecodeError``), and ``\\ud800``-style escapes of lone surrogates, which parse into
strings that cannot be encoded as UTF-8 again (not for a service call, not for the answer that
echoes them). ``load_json`` refuses the first two; ``unicode_problem`` finds the third, so each
endpoint decides whether it refuses the call or one record.
"""

from __future__ import annotations

import json
from typing import Any

from indexer.errors import BadRequest


def load_json(body: bytes | None) -> Any:
    """The parsed body; ``BadRequest`` (400) when it is not JSON, not UTF-8, nested too deep or
    holds a number no one can convert."""
    try:
        return json.loads(body or b"")
    except RecursionError:
        raise BadRequest("the body is not valid JSON: it nests arrays or objects too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a 5,000-digit number
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def unicode_problem(value: Any, where: str = "the body") -> str | None:
    """Where ``value`` (parsed JSON) holds a string that is not valid Unicode (a lone surrogate),
    as a message, or None. The message shows no such string itself, so it can be answered."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return None  # the common case, one pass in C
    except UnicodeEncodeError:
        pass
    path = _first_invalid(value, where)
    return f"{path} is not valid Unicode: it holds a lone surrogate (an unpaired \\ud800-\\udfff escape)"


def _first_invalid(value: Any, where: str) -> str:
    pending: list[tuple[Any, str]] = [(value, where)]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str) and not _encodes(item):
            return path
        if isinstance(item, dict):
            for key, inner in item.items():
                shown = json.dumps(key)  # ASCII escapes: safe to show whatever the key holds
                if not _encodes(key):
                    return f"a key in {path} ({shown})"
                pending.append((inner, f"{path}[{shown}]"))
        elif isinstance(item, list):
            pending.extend((inner, f"{path}[{i}]") for i, inner in enumerate(item))
    return where


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
