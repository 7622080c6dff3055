"""What every ``imgsearch`` command shares: the settings of this invocation, the exit codes,
and turning expected errors into one clear line on stderr instead of a traceback.

Kept apart from ``indexer.entrypoints.cli`` so that command modules registered into the app (such as
``indexer.entrypoints.cli.blob``) can import it without importing the CLI itself (no import cycle).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import typer
from azure.core.exceptions import HttpResponseError

from indexer.errors import EXIT_FAILED, VisionRequestError, classify, describe

log = logging.getLogger("indexer.entrypoints.cli")


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
        from indexer.settings import load_settings  # pydantic: only when a command needs settings

        if self._settings is None:
            self._settings = load_settings(**self.overrides)
        return self._settings


def state(ctx: typer.Context) -> CliState:
    """The ``CliState`` of this invocation (created if a command runs without the callback)."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (a test runner swaps it)."""

    @property
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
        # DefaultAzureCredential logs every credential it tried as a warning (15 lines); the
        # CLI's own error already names the failure and the setting to fix. -vv shows them.
        logging.getLogger("azure.identity").setLevel(logging.ERROR)
        return
    logging.getLogger("azure.identity").setLevel(logging.NOTSET)
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


def runnable_command(cwd: str | None = None) -> str:
    """``imgsearch`` as this shell can run it, for commands printed to be copied.

    ``make setup`` puts the console script in ``.venv/bin``, which is not on ``PATH`` unless the
    virtualenv is activated; a printed bare ``imgsearch`` would then fail. So: ``imgsearch``
    when ``PATH`` finds this very script, else its path (relative when under ``cwd``), else
    ``python -m indexer`` with this interpreter.
    """
    script = os.path.join(os.path.dirname(sys.executable), "imgsearch")
    if not os.path.isfile(script):
        return f"{shlex.quote(sys.executable)} -m indexer"
    found = shutil.which("imgsearch")
    if found and os.path.realpath(found) == os.path.realpath(script):
        return "imgsearch"
    relative = os.path.relpath(script, cwd or os.getcwd())
    # A path with a slash is run as a path by the shell (.venv/bin/imgsearch).
    return shlex.quote(script if relative.startswith("..") else relative)


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print ``error: message`` to stderr and return the ``typer.Exit`` to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _message(exc: BaseException) -> str:
    """What ``error: ...`` says about an expected error: one line, naming the problem."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted; what was written stays written, a re-run continues"
    if isinstance(exc, VisionRequestError):
        # The Vision service refused the query's own text or image (a 4xx validation error):
        # a bad argument, like the limits checked before sending.
        return f"the Vision service refused the query: {describe(exc)}"
    if isinstance(exc, HttpResponseError):  # our ServiceError and the Azure SDKs' errors
        status = f"HTTP {exc.status_code}: " if exc.status_code else ""
        return status + describe(exc)
    return describe(exc)


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn the errors a person can act on into ``error: ...`` and the exit code
    ``errors.classify`` gives. Anything else is a bug and keeps its traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise  # the CLI's own exits and usage errors
    except (Exception, KeyboardInterrupt) as exc:
        kind = classify(exc)
        if kind.kind == "bug":
            raise
        raise fail(_message(exc), kind.exit_code) from None
