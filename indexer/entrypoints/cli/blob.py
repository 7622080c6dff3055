"""The blob-container commands of ``imgsearch``: ``backfill``, ``reconcile``, ``upload`` and
``failures``.

``indexer.entrypoints.cli`` calls ``register(app)``. These are edges: they read settings, build
objects (``indexer.services``) and print summaries; the work is in ``indexer.indexing.run``.
Permanent failures of ``backfill`` and ``reconcile`` go to ``IMGSEARCH_DATA_DIR/failures.jsonl``;
the Function app (and ``watch``, the stand-ins' host) records them in the ``imgsearch-failures``
container of the same storage account.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from indexer.entrypoints.cli.common import fail, handle_errors, state
from indexer.errors import EXIT_USAGE

FAILURES_FILE = "failures.jsonl"


def _ready_index(settings: Any, vectorizer: Any):
    from indexer.index_setup import ensure_index
    from indexer.services import build_backend

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
    from indexer.entrypoints.cli.progress import ProgressBar

    return ProgressBar(desc, unit="blob")


def backfill_command(
    ctx: typer.Context,
    container: str | None = typer.Option(
        None, "--container", metavar="NAME", help="Container (default: IMAGES_CONTAINER)."
    ),
    prefix: str = typer.Option("", "--prefix", metavar="PREFIX", help="Only blobs whose names start with this."),
    force: bool = typer.Option(False, "--force", help="Vectorize every blob again, even unchanged ones."),
    restart: bool = typer.Option(False, "--restart", help="Ignore the checkpoint of an interrupted run."),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        "-c",
        min=1,
        help="Blobs in flight at once (default: VISION_CONCURRENCY for each Vision resource).",
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
    from indexer.indexing.bulk import RunOptions
    from indexer.indexing.checkpoint import Checkpoint, checkpoint_path
    from indexer.indexing.run import index_source
    from indexer.services import blob_source

    with handle_errors():
        settings = state(ctx).settings
        source = blob_source(settings, container=container, prefix=prefix)
        options = _bulk_options(settings, concurrency)
        backend = _ready_index(settings, options["vectorizer"])
        with _progress("backfill") as bar:
            summary = index_source(
                source,
                vectorizer=options["vectorizer"],
                backend=backend,
                failures=options["failures"],
                checkpoint=Checkpoint(
                    checkpoint_path(settings.data_dir, source, settings.search_index_name), restart=restart
                ),
                options=RunOptions(
                    concurrency=options["concurrency"],
                    batch_size=batch_size,
                    force=force,
                    progress=bar,
                    on_outcome=bar.outcome,
                ),
            )
    if as_json:
        typer.echo(
            json.dumps({"container": source.container_name, "prefix": source.prefix, **summary.to_dict()}, indent=2)
        )
    else:
        scope = f"{source.container_name}/{source.prefix}" if source.prefix else source.container_name
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
        concurrency=concurrency or settings.bulk_concurrency,
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
        None,
        "--concurrency",
        "-c",
        min=1,
        help="Blobs in flight at once (default: VISION_CONCURRENCY for each Vision resource).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Make the index match a container.

    Removes, adds and updates documents.

    Removes documents of deleted blobs and indexes missing or changed blobs. Downloads every
    blob to compare hashes; calls Vision only for new or changed ones."""
    from indexer.indexing.bulk import RunOptions
    from indexer.indexing.run import index_source
    from indexer.services import blob_source

    with handle_errors():
        settings = state(ctx).settings
        source = blob_source(settings, container=container, prefix=prefix)
        options = _bulk_options(settings, concurrency)
        backend = _ready_index(settings, options["vectorizer"])
        with _progress("reconcile") as bar:
            summary = index_source(
                source,
                vectorizer=options["vectorizer"],
                backend=backend,
                failures=options["failures"],
                remove_gone=True,
                options=RunOptions(concurrency=options["concurrency"], progress=bar, on_outcome=bar.outcome),
            )
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


def upload_command(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., metavar="PATH...", help="Image files or folders (recursively)."),
    container: str | None = typer.Option(
        None, "--container", metavar="NAME", help="Container (default: IMAGES_CONTAINER)."
    ),
    prefix: str = typer.Option("", "--prefix", metavar="PREFIX", help="Put the blobs under this name prefix."),
    tags: list[str] = typer.Option(
        [], "--tag", metavar="TAG", help="A tag stored in the blob's metadata (the index's tags field); repeatable."
    ),
) -> None:
    """Upload images to the container (created if missing), as an app or az storage would.

    Each image becomes a blob named after its path under the folder given (or its file name),
    with the content type its bytes show. Files that are not images are skipped and listed.
    The Function app (or `imgsearch watch` offline) then indexes them."""
    from azure.storage.blob import ContentSettings

    from indexer.errors import InputLimitError, InvalidImageError
    from indexer.services import blob_source
    from indexer.sources.folder import FolderSource

    with handle_errors():
        settings = state(ctx).settings
        client = blob_source(settings, container=container, create=True).container_client
        metadata = {"tags": ",".join(tags)} if tags else None
        uploaded, refused, unreadable = 0, 0, 0
        for path in paths:
            folder = FolderSource(path if path.is_dir() else path.parent, max_bytes=settings.max_image_bytes)
            try:
                items = list(folder.list_items()) if path.is_dir() else [folder.get_item(path.name)]
            except InvalidImageError as exc:  # a file named on the command line that is no image
                typer.echo(f"skipped {path}: {exc}", err=True)
                refused += 1
                continue
            for problem, reason in folder.skipped:
                typer.echo(f"skipped {folder.root / problem}: {reason}", err=True)
            for item in items:
                name = prefix + str(item.fields["blob_path"])
                try:
                    data = item.read()
                except (InputLimitError, OSError) as exc:  # too large to read, or gone: the others go on
                    typer.echo(f"skipped {item.source}: {getattr(exc, 'strerror', None) or exc}", err=True)
                    if path.is_dir():
                        unreadable += 1
                    else:
                        refused += 1
                    continue
                client.upload_blob(
                    name,
                    data,
                    overwrite=True,
                    metadata=metadata,
                    content_settings=ContentSettings(content_type=item.fields["content_type"]),
                )
                typer.echo(f"uploaded {item.source} -> {client.container_name}/{name}")
                uploaded += 1
    skipped = f", {unreadable} file(s) that could not be read skipped (listed above)" if unreadable else ""
    typer.echo(f"{uploaded} image(s) uploaded to {client.container_name}{skipped}", err=True)
    if refused:
        raise fail(f"{refused} of the files named are not images; the others were uploaded", EXIT_USAGE)


def failures_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the records as a JSON list."),
) -> None:
    """List the images recorded as impossible to index, and why.

    Both records: the CLI's (backfill and reconcile, IMGSEARCH_DATA_DIR/failures.jsonl) and
    the Function app's (the imgsearch-failures container, where IMAGES_STORAGE is set). An
    image leaves the record once it is indexed or its blob is deleted."""
    from indexer.indexing.failures import FAILURES_CONTAINER, BlobFailureLog, JsonlFailureLog
    from indexer.services import blob_service_client

    with handle_errors():
        settings = state(ctx).settings
        stores: list[tuple[str, Any]] = [
            (str(settings.data_dir / FAILURES_FILE), JsonlFailureLog(settings.data_dir / FAILURES_FILE))
        ]
        if settings.storage_connection_string or settings.storage_blob_service_uri:
            container = blob_service_client(settings).get_container_client(FAILURES_CONTAINER)
            stores.append((container.url, BlobFailureLog(container)))
        rows = [(where, record) for where, store in stores for record in store.records()]
    if as_json:
        typer.echo(json.dumps([{"store": where, **record.to_dict()} for where, record in rows], indent=2))
        return
    if not rows:
        typer.echo("no failures recorded in " + " or ".join(where for where, _ in stores), err=True)
    for _, record in rows:
        typer.echo(f"{record.recorded_at}  {record.source}: {record.reason}")


def register(app: typer.Typer) -> None:
    """Add ``backfill``, ``reconcile``, ``upload`` and ``failures`` to the ``imgsearch`` app."""
    app.command("backfill")(backfill_command)
    app.command("reconcile")(reconcile_command)
    app.command("upload")(upload_command)
    app.command("failures")(failures_command)
