"""The ``imgsearch`` command line; the app is built in ``indexer.entrypoints.cli.imgsearch``.

Importing this package stays cheap and does not build the app, so command modules (and the
stand-ins' commands) can import ``cli.common`` without a cycle.
"""

from __future__ import annotations

from typing import Any


def main() -> None:
    """Console-script entry point (``imgsearch``) and ``python -m indexer``."""
    from indexer.entrypoints.cli.imgsearch import main as run

    run()


def __getattr__(name: str) -> Any:
    if name == "app":
        from indexer.entrypoints.cli.imgsearch import app

        return app
    raise AttributeError(f"module 'indexer.entrypoints.cli' has no attribute {name!r}")
