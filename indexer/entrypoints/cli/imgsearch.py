"""``imgsearch``: index a folder of images, search it by text or by example image, inspect
the index, work with a blob container, and run the local stand-ins.

An edge: it parses arguments, builds objects through ``indexer.services`` and formats output;
expected failures print one ``error: ...`` line and exit with the code ``errors.classify``
gives (README, "CLI reference"). Commands register themselves: ``commands``, ``blob``,
``pull``, ``verify``, ``plan``, and the installed plugins of the ``imgsearch.commands`` entry-point group
(``plugins``), such as the stand-ins' ``standins.cli``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from indexer.entrypoints.cli import blob, commands, plan, pull, verify
from indexer.entrypoints.cli.common import CliState, configure_logging
from indexer.entrypoints.cli.plugins import register_plugins

app = typer.Typer(
    name="imgsearch",
    help="Search images by meaning: index a folder, search it by text or by example image, inspect "
    "the index, and run the local stand-ins.",
    epilog="Exit codes: 0 done (skipped images are listed), 1 run or service failure (also: images left "
    "undone for a transient reason; run again), 2 configuration or argument error, 3 index pinned to another "
    "model version, 130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    # Plain help: rich's boxes cut lines at 80 columns and show a type on every flag.
    rich_markup_mode=None,
    # Tracebacks of real bugs must never print local variables: they may hold credentials.
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        from indexer import __version__

        typer.echo(f"imgsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        metavar="PATH",
        show_default=False,
        help="Folder of the local index and run records (env IMGSEARCH_DATA_DIR; default .imgsearch).",
    ),
    index_name: str | None = typer.Option(
        None,
        "--index-name",
        metavar="NAME",
        help="Index to use (env SEARCH_INDEX_NAME; default images).",
        show_default=False,
    ),
    verbose: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        metavar="",
        help="-v: each service call and this tool's debug messages; -vv: every library's debug messages too.",
    ),
    version: bool = typer.Option(
        False, "--version", metavar="", is_eager=True, help="Print the version and exit.", callback=_print_version
    ),
) -> None:
    """Search images by meaning with Azure AI Vision multimodal embeddings, or offline."""
    configure_logging(verbose)
    ctx.obj = CliState(overrides={"data_dir": data_dir, "search_index_name": index_name})


def main() -> None:
    """Console-script entry point (``imgsearch``) and ``python -m indexer``."""
    app(prog_name="imgsearch")


commands.register(app)
blob.register(app)
pull.register(app)
verify.register(app)
plan.register(app)
register_plugins(app)
