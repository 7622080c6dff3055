"""The pull-mode commands of ``imgsearch``: ``ensure-indexer`` and ``indexer run|status|reset``
(registered by ``indexer.entrypoints.cli.imgsearch``).

Pull mode: an Azure AI Search indexer reads the images container on its schedule (every 5
minutes, ``schemas/indexer.json``) and writes the index through ``/api/vectorize`` as its custom
skill; the push path (the Function's blob trigger) does it in seconds. Both write the same
documents under the same keys. These commands are edges: the work is in ``indexer.index_setup``
and ``indexer.backends.azure_search.pull``.
"""

from __future__ import annotations

import json
from contextlib import ExitStack

import typer

from indexer.entrypoints.cli.common import fail, handle_errors, state

indexer_app = typer.Typer(
    name="indexer",
    help="Drive the pull-mode indexer: run it now, show its status, or reset its change tracking.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _print_run(run, as_json: bool) -> None:  # run: indexer.backends.azure_search.pull.IndexerRun
    if as_json:
        typer.echo(json.dumps(run.to_dict(), indent=2))
        return
    if run.previous is not None:
        typer.echo("the run in progress, which this one waited for:")
        _print_run(run.previous, False)
        typer.echo("then:")
    typer.echo(f"indexer:   {run.indexer} ({run.status})")
    if run.run_status is None:
        typer.echo("last run:  none yet")
        return
    typer.echo(
        f"last run:  {run.run_status}, {run.processed} items processed, {run.failed} failed"
        f" ({run.started or '?'} to {run.ended or '...'})"
    )
    if run.error_message:
        typer.echo(f"           {run.error_message}")
    for problem in run.errors[:20]:
        details = f" ({problem.details})" if problem.details else ""
        typer.echo(f"  error:   {problem.item}: {problem.message}{details}")
    if len(run.errors) > 20:
        typer.echo(f"  ... and {len(run.errors) - 20} more errors (--json lists them all)")
    for problem in run.warnings[:10]:
        typer.echo(f"  warning: {problem.item}: {problem.message}")


def _exit_for(run) -> None:
    """Exit 1 when the last run failed or failed items: a script must not take it for done."""
    if run.previous is not None and not run.previous.ok:
        _exit_for(run.previous)
    if not run.ok:
        raise fail(
            f"the last run of {run.indexer} did not index everything ({run.run_status}, {run.failed} failed); the "
            f"errors above name each item"
        )


def ensure_indexer_command(ctx: typer.Context) -> None:
    """Create the pull-mode indexer, or bring it up to date.

    Creates (or updates) the pinned index with its vectorizer, then the data source (the images
    container, with change detection by LastModified and native blob soft-delete detection),
    the skillset (a Web API skill calling SEARCH_VECTORIZER_URI) and the indexer (every 5
    minutes) from schemas/. A new indexer runs at once."""
    from indexer.index_setup import describe_backend, ensure_indexer
    from indexer.services import build_backend, build_pull, close_quietly

    with handle_errors(), ExitStack() as cleanup:
        settings = state(ctx).settings
        backend = build_backend(settings)
        cleanup.callback(close_quietly, backend)
        pull = build_pull(settings)
        cleanup.callback(close_quietly, pull)
        pin, name = ensure_indexer(settings, backend, pull)
    typer.echo(
        f"indexer {name} is ready: it reads {settings.images_container} into the {describe_backend(settings)} "
        f"(pinned to {pin.model_version}) through {settings.search_vectorizer_uri}"
    )


@indexer_app.command("run")
def run_command(
    ctx: typer.Context,
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the run to end and show its result."),
    timeout: float = typer.Option(600.0, "--timeout", min=1.0, help="Seconds to wait for the run."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Run the indexer now (a run in progress is let finish first)."""
    from indexer.index_setup import indexer_name
    from indexer.services import build_pull, close_quietly

    with handle_errors(), ExitStack() as cleanup:
        settings = state(ctx).settings
        pull = build_pull(settings)
        cleanup.callback(close_quietly, pull)
        run = pull.run(indexer_name(settings), wait=wait, timeout=timeout)
    _print_run(run, as_json)
    if wait:
        _exit_for(run)


@indexer_app.command("status")
def status_command(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print the status as JSON.")
) -> None:
    """Show the indexer's status and its last run, with each failed item and why."""
    from indexer.index_setup import indexer_name
    from indexer.services import build_pull, close_quietly

    with handle_errors(), ExitStack() as cleanup:
        settings = state(ctx).settings
        pull = build_pull(settings)
        cleanup.callback(close_quietly, pull)
        run = pull.status(indexer_name(settings))
    _print_run(run, as_json)
    if run.finished:
        _exit_for(run)


@indexer_app.command("reset")
def reset_command(ctx: typer.Context) -> None:
    """Forget the change tracking: the next run reads and vectorizes every blob again."""
    from indexer.index_setup import indexer_name
    from indexer.services import build_pull, close_quietly

    with handle_errors(), ExitStack() as cleanup:
        settings = state(ctx).settings
        pull = build_pull(settings)
        cleanup.callback(close_quietly, pull)
        name = indexer_name(settings)
        pull.reset(name)
    typer.echo(f"indexer {name} is reset; its next run reads every blob again (`imgsearch indexer run`)")


def register(app: typer.Typer) -> None:
    """Add ``ensure-indexer`` and ``indexer run|status|reset`` to the ``imgsearch`` app."""
    app.command("ensure-indexer")(ensure_indexer_command)
    app.add_typer(indexer_app, name="indexer")
