"""What every ``imgsearch`` command shares: the settings of this invocation, the exit codes,
and turning expected errors into one clear line on stderr instead of a traceback.

Kept apart from ``indexer.cli`` so that command modules registered into the app (such as
``indexer.cli_blob``) can import it without importing the CLI itself (no import cycle).
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import typer

from indexer.errors import (ConfigurationError, ImageSearchError, InputLimitError, InvalidImageError,
                            ModelVersionMismatchError, VisionRequestError)

# Exit codes, documented in ``imgsearch --help``.
EXIT_OK = 0
EXIT_FAILED = 1  # a service or run failure
EXIT_CONFIG = 2  # bad settings or arguments, e.g. a query (click also uses 2 for usage errors)
EXIT_PIN_MISMATCH = 3  # the index is pinned to another model version

log = logging.getLogger("indexer.cli")


@dataclass
class CliState:
    """Per-invocation state stored in ``ctx.obj`` by the app callback.

    The settings are read from the environment at most once, on first use, so ``--help``
    works even while the environment holds an invalid value.
    """

    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Any = None

    @property
    def settings(self):  # -> indexer.settings.Settings
        if self._settings is None:
            self._settings = read_settings(**self.overrides)
        return self._settings


def read_settings(**overrides: Any):
    """``load_settings`` with validation errors turned into a ``ConfigurationError`` that
    names the environment variable."""
    from pydantic import ValidationError

    from indexer.settings import load_settings

    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid setting: {problems}") from None


def state(ctx: typer.Context) -> CliState:
    """The ``CliState`` of this invocation (created if a command runs without the callback)."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (a test runner swaps it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(verbosity: int) -> None:
    """``-v``: this package's debug messages; ``-vv``: every library's too.

    Without ``-v`` nothing is configured: warnings reach stderr through Python's last-resort
    handler, and a host that embeds the CLI keeps its own logging set-up. Azure SDK request
    logs redact credential headers, and this package never logs keys.
    """
    if verbosity <= 0:
        return
    package, root = logging.getLogger("indexer"), logging.getLogger()
    for logger in (package, root):  # one handler of ours, however often the CLI runs in a process
        for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
            logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    target = root if verbosity >= 2 else package
    target.addHandler(handler)
    target.setLevel(logging.DEBUG)
    package.setLevel(logging.DEBUG)


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print ``error: message`` to stderr and return the ``typer.Exit`` to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _one_line(text: Any) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else str(text)


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn the errors a person can act on into ``error: ...`` and an exit code.

    Anything else is a bug and keeps its traceback.
    """
    from azure.core.exceptions import AzureError, HttpResponseError

    from indexer.backends.schema_rules import InvalidQueryError
    from indexer.filters import FilterError

    try:
        yield
    except ModelVersionMismatchError as exc:
        raise fail(str(exc), EXIT_PIN_MISMATCH) from None
    except (ConfigurationError, FilterError, InvalidQueryError, InputLimitError, InvalidImageError) as exc:
        # Bad settings or arguments (a bulk run never raises the image errors: it records
        # them per image; here they can only come from a query's own text or example image).
        raise fail(str(exc), EXIT_CONFIG) from None
    except ImageSearchError as exc:
        raise fail(str(exc)) from None
    except VisionRequestError as exc:
        # The Vision service refused the query's own text or image (a 4xx validation error):
        # a bad argument, like the limits checked before sending.
        raise fail(f"the Vision service refused the query: ({exc.code}) {_one_line(exc.error_message)}",
                   EXIT_CONFIG) from None
    except HttpResponseError as exc:  # our ServiceError and the Azure SDKs' errors
        status = f"HTTP {exc.status_code}: " if exc.status_code else ""
        raise fail(f"{status}{_one_line(exc.message)}") from None
    except AzureError as exc:  # e.g. the Search endpoint cannot be reached
        raise fail(f"{type(exc).__name__}: {_one_line(exc.message)}") from None
    except KeyboardInterrupt:
        raise fail("interrupted; what was written stays written, a re-run continues", 130) from None
