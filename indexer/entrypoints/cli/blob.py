"""The blob-container commands of ``imgsearch``: ``backfill``, ``reconcile`` and ``watch``.

``indexer.entrypoints.cli`` calls ``register(app)``. These are edges: they read settings, build objects
(``indexer.services``) and print summaries; the work is in ``indexer.indexing.backfill``,
``indexer.indexing.sync`` and ``indexer.entrypoints.watch``. Permanent failures of ``backfill`` and
``reconcile`` go to ``IMGSEARCH_DATA_DIR/failures.jsonl``; ``watch`` stands in for the
Function app, so it records them where the Function does (the ``imgsearch-failures``
container of the same storage account).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from indexer.entrypoints.cli.common import fail, handle_errors, state
from indexer.errors import EXIT_FAILED

FAILURES_FILE = "failures.jsonl"


def _ready_index(settings: Any, vectorizer: Any):
    from indexer.services import build_backend, ensure_index

    backend = build_backend(settings)
    ensure_index(settings, backend, vectorizer=vectorizer)
    return backend


def _print_failures(failed: list, limit: int = 20) -> None:
    for outcome in failed[:limit]:
        kind = "transient" if getattr(outcome, "transient", False) else "permanent"
        typer.echo(f"  not indexed ({kind}): {outcome.source}: {outcome.reason}", err=True)
    if len(failed) > limit:
        typer.echo(f"  ... and {len(failed) - limit} more", err=True)


def _progress(desc: str):
    from tqdm import tqdm

    return tqdm(unit="blob", desc=desc, file=sys.stderr, disable=None, dynamic_ncols=True)


def backfill_command(
    ctx: typer.Context,
    container: str | None = typer.Option(
        None, "--container", metavar="NAME", help="Container (default: IMAGES_CONTAINER)."
    ),
    prefix: str = typer.Option("", "--prefix", metavar="PREFIX", help="Only blobs whose names start with this."),
    force: bool = typer.Option(False, "--force", help="Vectorize every blob again, even unchanged ones."),
    restart: bool = typer.Option(False, "--restart", help="Ignore the checkpoint of an interrupted run."),
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", min=1, help="Blobs in flight at once (default: VISION_CONCURRENCY)."
    ),
    batch_size: int = typer.Option(
        100,
        "--batch-size",
        min=1,
        max=1000,
        help="Documents per index upload (a smaller batch redoes less after a kill).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Index every existing blob of a container.

    The blob trigger only sees new blobs; backfill indexes what was there before.

    Resumable: run it again after an interruption and it continues where it stopped.
    Vision calls are paced at VISION_REQUESTS_PER_SECOND."""
    from indexer.indexing.backfill import backfill, checkpoint_path
    from indexer.services import blob_source

    with handle_errors():
        settings = state(ctx).settings
        source = blob_source(settings, container=container, prefix=prefix)
        options = _bulk_options(settings, concurrency)
        backend = _ready_index(settings, options["vectorizer"])
        with _progress("backfill") as bar:
            summary = backfill(
                source,
                backend=backend,
                **options,
                checkpoint_file=checkpoint_path(settings.data_dir, source, settings.search_index_name),
                batch_size=batch_size,
                force=force,
                restart=restart,
                progress=bar,
            )
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        scope = f"{summary.container}/{summary.prefix}" if summary.prefix else summary.container
        typer.echo(
            f"{summary.listed} blobs in {scope}: {summary.indexed} indexed, {summary.unchanged} unchanged, "
            f"{len(summary.failed)} not indexed, {summary.resumed} done by an earlier run, "
            f"{summary.known_failures} known failures skipped ({summary.elapsed_seconds:.1f} s)"
        )
        _print_failures(summary.failed)
    if not summary.completed:
        transient = sum(1 for o in summary.failed if o.transient)
        raise fail(
            f"{transient} blob(s) could not be indexed for a transient reason; run `imgsearch backfill` again "
            f"to retry them (it continues from {summary.checkpoint})"
        )


def _bulk_options(settings, concurrency: int | None) -> dict:
    """What backfill and reconcile share: a paced Vision client that loads on first use, the
    local failure record, and the concurrency."""
    from indexer.indexing.failures import JsonlFailureLog
    from indexer.services import build_vectorizer
    from indexer.vectorizers import LazyVectorizer

    return dict(
        vectorizer=LazyVectorizer(lambda: build_vectorizer(settings, paced=True)),
        failures=JsonlFailureLog(settings.data_dir / FAILURES_FILE),
        concurrency=concurrency or settings.vision_concurrency,
    )


def reconcile_command(
    ctx: typer.Context,
    container: str | None = typer.Option(
        None, "--container", metavar="NAME", help="Container (default: IMAGES_CONTAINER)."
    ),
    prefix: str = typer.Option(
        "", "--prefix", metavar="PREFIX", help="Only blobs (and documents) whose names start with this."
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", min=1, help="Blobs in flight at once (default: VISION_CONCURRENCY)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Make the index match a container.

    Removes, adds and updates documents.

    Removes documents of deleted blobs and indexes missing or changed blobs. Downloads every
    blob to compare hashes; calls Vision only for new or changed ones."""
    from indexer.indexing.sync import sync
    from indexer.services import blob_source

    with handle_errors():
        settings = state(ctx).settings
        source = blob_source(settings, container=container, prefix=prefix)
        options = _bulk_options(settings, concurrency)
        backend = _ready_index(settings, options["vectorizer"])
        with _progress("reconcile") as bar:
            summary = sync(source, backend=backend, **options, progress=bar)
    if as_json:
        typer.echo(json.dumps({"container": source.container_name, "prefix": prefix, **summary.to_dict()}, indent=2))
    else:
        scope = f"{source.container_name}/{prefix}" if prefix else source.container_name
        typer.echo(
            f"{summary.listed} blobs in {scope}: {summary.indexed} indexed, {summary.unchanged} unchanged, "
            f"{summary.removed} documents removed, {len(summary.failed)} not indexed, "
            f"{summary.known_failures} known failures skipped ({summary.elapsed_seconds:.1f} s)"
        )
        _print_failures(summary.failed)
    if summary.transient_failures:
        raise fail(
            f"{len(summary.transient_failures)} blob(s) could not be indexed for a transient reason; run "
            f"`imgsearch reconcile` again"
        )


def watch_command(
    ctx: typer.Context,
    container: str | None = typer.Option(
        None, "--container", metavar="NAME", help="Container (default: IMAGES_CONTAINER)."
    ),
    prefix: str = typer.Option("", "--prefix", metavar="PREFIX", help="Only blobs whose names start with this."),
    interval: float = typer.Option(2.0, "--interval", min=0.1, help="Seconds between polls."),
    once: bool = typer.Option(False, "--once", help="Poll once, handle the changes, and exit."),
    max_seconds: float | None = typer.Option(None, "--max-seconds", min=0, help="Stop after this long."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Do not index the blobs present at start (only later changes)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON at the end."),
) -> None:
    """Follow a container's changes like the Function.

    Indexes and removes images as blobs change. Ctrl-C stops.

    The offline stand-in for the Functions host and Event Grid: polls the container and
    calls the same handlers as the deployed functions."""
    from indexer.entrypoints.watch import BlobWatcher, Change
    from indexer.services import blob_source, build_services, ensure_index

    def show(change: Change) -> None:
        if change.error:
            typer.echo(f"{change.kind} {change.blob_name}: error: {change.error}", err=True)
        elif change.outcome is None:
            typer.echo(f"{change.kind} {change.blob_name}: nothing to do")
        else:
            reason = f" ({change.outcome.reason})" if change.outcome.reason else ""
            typer.echo(f"{change.kind} {change.blob_name}: {change.outcome.status}{reason}")

    with handle_errors():
        settings = state(ctx).settings
        if container:
            settings = settings.model_copy(update={"images_container": container})
        services = build_services(settings)
        blob_source(settings, service=services.blob_service)  # the container must exist
        ensure_index(settings, services.backend, vectorizer=services.vectorizer)
        watcher = BlobWatcher(
            services, prefix=prefix, index_existing=not skip_existing, on_change=None if as_json else show
        )
        if not as_json:
            typer.echo(
                f"watching {watcher.container}{'/' + prefix if prefix else ''} every {interval:g} s; Ctrl-C stops",
                err=True,
            )
        try:
            summary = watcher.run(interval=interval, once=once, max_seconds=max_seconds)
        except KeyboardInterrupt:
            typer.echo("stopped", err=True)
            return
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    elif any(change.error for change in summary.changes):
        raise fail("some changes could not be handled (see above)", EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add ``backfill``, ``reconcile`` and ``watch`` to the ``imgsearch`` app."""
    app.command("backfill")(backfill_command)
    app.command("reconcile")(reconcile_command)
    app.command("watch")(watch_command)
