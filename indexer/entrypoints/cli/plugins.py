"""Commands other installed packages add to ``imgsearch``, found by declaration.

A package declares ``register(app)`` in the ``imgsearch.commands`` entry-point group (the
stand-ins do, in pyproject.toml), so the product names no such package. A plugin whose import
fails because a package it needs is not installed (an optional dependency, or the plugin's own
package left out) is skipped; any other error surfaces, since it is a bug in the plugin.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

import typer

COMMANDS_GROUP = "imgsearch.commands"

log = logging.getLogger(__name__)


def register_plugins(app: typer.Typer, plugins: Iterable[EntryPoint] | None = None) -> None:
    """Call ``register(app)`` of each plugin (default: every entry point of ``COMMANDS_GROUP``)."""
    for plugin in entry_points(group=COMMANDS_GROUP) if plugins is None else plugins:
        try:
            register = plugin.load()
        except ModuleNotFoundError as exc:
            if not _not_installed(exc.name):
                raise
            log.debug("imgsearch commands of %s skipped: %s is not installed", plugin.value, exc.name)
            continue
        register(app)


def _not_installed(module: str | None) -> bool:
    """True when no package of ``module``'s top-level name is installed at all; a missing module
    inside an installed package is a broken plugin, not an optional part left out."""
    if not module:
        return False
    try:
        return importlib.util.find_spec(module.partition(".")[0]) is None
    except ModuleNotFoundError:  # a finder that hides the package raises instead of answering None
        return True
