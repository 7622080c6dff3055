"""The folder and query commands of ``imgsearch``: ``index``, ``search``, ``info`` and
``ensure-index`` (registered by ``indexer.entrypoints.cli.imgsearch``)."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer

from indexer.entrypoints.cli.common import fail, handle_errors, state
from indexer.errors import EXIT_USAGE

# --- index ---------------------------------------------------------------------------------


def index_command(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Folder of images; indexed recursively (hidden files skipped)."),
    force: bool = typer.Option(False, "--force", help="Vectorize every image again, even unchanged ones."),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        "-c",
        min=1,
        help="Images in flight at once (default: VISION_CONCURRENCY, 8, for each Vision resource).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Index a local folder. A re-run skips unchanged files and removes documents of deleted ones."""
    from indexer.entrypoints.cli.progress import ProgressBar
    from indexer.index_setup import ensure_index
    from indexer.indexing.bulk import RunOptions
    from indexer.indexing.pipeline import Outcome
    from indexer.indexing.run import index_source
    from indexer.services import build_backend, build_vectorizer, close_quietly
    from indexer.sources.folder import FolderSource
    from indexer.vectorizers import LazyVectorizer

    with handle_errors(), ExitStack() as cleanup:
        settings = state(ctx).settings
        source = FolderSource(path, max_bytes=settings.max_image_bytes)
        backend = build_backend(settings)
        cleanup.callback(close_quietly, backend)
        # The model loads on the first changed image only: a no-op re-run stays fast.
        vectorizer = LazyVectorizer(lambda: build_vectorizer(settings, paced=True))
        cleanup.callback(close_quietly, vectorizer)
        pin = ensure_index(settings, backend, vectorizer=vectorizer)

        with ProgressBar("indexing") as bar:

            def report(outcome: Outcome) -> None:
                bar.outcome(outcome)
                if outcome.status == "failed":
                    bar.write(f"skipped {outcome.source}: {outcome.reason}")

            summary = index_source(
                source,
                vectorizer=vectorizer,
                backend=backend,
                remove_gone=True,
                options=RunOptions(
                    concurrency=concurrency or settings.bulk_concurrency,
                    force=force,
                    list_first=True,
                    progress=bar,
                    on_outcome=report,
                ),
            )
        for problem in source.listing_errors:
            typer.echo(f"warning: cannot list {problem}", err=True)
        lookalikes, others = _split_not_images(source.skipped)
        _report_not_images([(str(source.root / path), reason) for path, reason in lookalikes])

    if as_json:
        typer.echo(
            json.dumps(
                {
                    "folder": str(source.root),
                    "container": source.label,
                    "model_version": pin.model_version,
                    "images": summary.listed,
                    "indexed": summary.indexed,
                    "unchanged": summary.unchanged,
                    "removed": summary.removed,
                    "failed": [o.failure_dict() for o in summary.failed],
                    "not_images": [{"path": path, "reason": reason} for path, reason in source.skipped],
                },
                indent=2,
            )
        )
        _exit_if_undone(len(summary.transient_failures), "index")
        return
    # Files named like images that are none (a HEIC, a renamed text file) count as images
    # skipped, so the counts add up: images = indexed + unchanged + skipped.
    skipped = len(summary.failed) + len(lookalikes)
    removal_note = f" (removal of deleted files skipped: {summary.removal_skipped})" if summary.removal_skipped else ""
    other_note = f"; {len(others)} other files are not images (--json lists them)" if others else ""
    images = summary.listed + len(lookalikes)
    typer.echo(
        f"{images} images in {source.root}: {summary.indexed} indexed, {summary.unchanged} unchanged, "
        f"{skipped} skipped, {summary.removed} removed{removal_note}{other_note}"
    )
    if skipped:
        retry = len(summary.transient_failures)
        typer.echo(
            f"the run completed; {skipped} image(s) were skipped (listed above)"
            + (f", {retry} of them for a transient error" if retry else ""),
            err=True,
        )
    _exit_if_undone(len(summary.transient_failures), "index")


# Names a person takes for images: such a file that is no image read here is worth a
# line of its own (a renamed text file, a Photoshop file); a README or a .json is not.
IMAGE_LIKE_SUFFIXES = frozenset(
    ".jpg .jpeg .jpe .png .gif .bmp .webp .ico .tif .tiff .mpo .heic .heif .avif .jp2 .jxl .psd .svg .raw .cr2 "
    ".nef .dng .arw .tga .ppm .pcx .qoi .dds".split()
)


def _split_not_images(skipped: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(files named like images, other files) among those that are not images."""
    lookalikes = [s for s in skipped if Path(s[0]).suffix.lower() in IMAGE_LIKE_SUFFIXES or " is not a format " in s[1]]
    others = [s for s in skipped if s not in lookalikes]
    return lookalikes, others


def _report_not_images(skipped: list[tuple[str, str]], limit: int = 20) -> None:
    """Files that are not images the service reads, with the reason; a long list is cut."""
    for path, reason in skipped[:limit]:
        typer.echo(f"skipped {path}: {reason}", err=True)
    if len(skipped) > limit:
        typer.echo(f"skipped {len(skipped) - limit} more files that are not images (--json lists them all)", err=True)


def _exit_if_undone(transient: int, command: str) -> None:
    """Exit 1 when images were left undone for a reason a later run can fix (throttling, an
    outage): a script must not take the run for complete. Bad images alone exit 0."""
    if transient:
        raise fail(f"{transient} image(s) could not be indexed for a transient reason; run `imgsearch {command}` again")


# --- search --------------------------------------------------------------------------------


def search_command(
    ctx: typer.Context,
    text: str | None = typer.Argument(
        None, metavar="TEXT", help="What to look for, 1 to 70 words, in any of the model's languages."
    ),
    image: str | None = typer.Option(
        None, "--image", "-i", metavar="FILE_OR_URL", help="Search by an example image: a file or an http(s) URL."
    ),
    k: int = typer.Option(10, "-k", "--top", min=1, help="How many results."),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        "-t",
        help="Only results with a cosine score at or above this (scores rank one "
        "query's results; they are not comparable across queries).",
    ),
    filters: list[str] = typer.Option(
        [],
        "--filter",
        "-f",
        metavar="FIELD=VALUE",
        help="Metadata filter such as content_type=image/png or width>=800; repeatable.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results as a JSON list."),
    paths: bool = typer.Option(
        False, "--paths", help="Print only each result's path or URL, one a line (for shell pipelines)."
    ),
    in_service: bool = typer.Option(
        False,
        "--in-service",
        help="Send the TEXT itself to Azure AI Search (VectorizableTextQuery), whose vectorizer calls "
        "/api/vectorize, as any app can; needs an index created with SEARCH_VECTORIZER_URI.",
    ),
) -> None:
    """Rank images by similarity to TEXT or --image."""
    from indexer.filters import parse_conditions
    from indexer.query import search_image, search_text
    from indexer.services import build_backend, build_vectorizer, close_quietly

    with handle_errors(), ExitStack() as cleanup:
        if (text is None) == (image is None):
            raise fail("give either a TEXT to search for or --image FILE_OR_URL (one of them)", EXIT_USAGE)
        settings = state(ctx).settings
        conditions = parse_conditions(filters)
        backend = build_backend(settings)
        cleanup.callback(close_quietly, backend)
        query_image: str | Path | None = image
        if image is not None and not image.lower().startswith(("http://", "https://")):
            query_image = Path(image).expanduser()  # a local file, read with a size guard
        if in_service and image is not None:
            raise fail("--in-service vectorizes a TEXT in the search service; it does not take --image", EXIT_USAGE)
        vectorizer = None if in_service else build_vectorizer(settings)
        cleanup.callback(close_quietly, vectorizer)
        options: dict[str, Any] = dict(
            vectorizer=vectorizer, backend=backend, k=k, threshold=threshold, filters=conditions
        )
        if query_image is not None:
            hits = search_image(query_image, **options)
        else:
            hits = search_text(text or "", vectorize="service" if in_service else "here", **options)

    if as_json:
        typer.echo(
            json.dumps([{"rank": rank, **hit.to_dict()} for rank, hit in enumerate(hits, 1)], indent=2, default=str)
        )
        return
    if not hits:
        typer.echo(
            "no results" + (f" at or above the threshold {threshold}" if threshold is not None else ""), err=True
        )
    for rank, hit in enumerate(hits, 1):
        typer.echo(hit.source if paths else f"{rank:>3}  {hit.score:.4f}  {hit.source}")


# --- info and ensure-index -----------------------------------------------------------------


def info_command(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print as a JSON object.")
) -> None:
    """Show the index's pin, size and location.

    The model version the index is pinned to, its document count, and where the index and the
    vectorizer live (endpoints only, never a key)."""
    from indexer.errors import IndexNotFoundError
    from indexer.index_setup import configured_model, describe_backend, describe_vectorizer
    from indexer.model_versions import answers_for
    from indexer.services import build_backend, close_quietly
    from indexer.vector_compression import describe_compression

    with handle_errors(), ExitStack() as cleanup:
        settings = state(ctx).settings
        configured = configured_model(settings)
        backend = build_backend(settings)
        cleanup.callback(close_quietly, backend)
        try:
            pin = backend.get_pin()
            count: int | None = backend.count()
            compression = backend.schema.compression
        except IndexNotFoundError:
            pin, count, compression = None, None, settings.vector_compression
        info = {
            "index_name": settings.search_index_name,
            "backend": "azure" if not settings.uses_numpy_index else "numpy",
            "location": settings.search_endpoint or str(settings.data_dir.resolve()),
            "index_exists": pin is not None,
            "model_version": pin.model_version if pin else configured.name,
            "dimensions": pin.dimensions if pin else configured.dimensions,
            "configured_model_version": configured.name,
            "vector_compression": compression,
            "documents": count,
            "vision_endpoint": settings.vision_endpoint or None,
            "vectorizer": describe_vectorizer(settings),
        }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"index:          {describe_backend(settings)}")
    if pin is None:
        typer.echo(
            f"                not created yet; `imgsearch index PATH` or `imgsearch ensure-index` creates it, "
            f"pinned to the model version the vectorizer reports for {configured.name}"
        )
    else:
        typer.echo(f"model version:  {pin.model_version} (pinned, {pin.dimensions} dimensions)")
        typer.echo(f"vectors:        {describe_compression(compression)}")
        typer.echo(f"documents:      {count}")
        if not answers_for(pin.model_version, configured.name):
            typer.echo(
                f"warning: the settings ask for {configured.name}; writes and queries will be refused "
                f"until they match the pin",
                err=True,
            )
    typer.echo(f"vectorizer:     {info['vectorizer']}")


def ensure_index_command(
    ctx: typer.Context,
    repin: bool = typer.Option(
        False,
        "--repin",
        help="If the index is pinned to another model version (or compressed otherwise) and holds no documents, "
        "delete it and create it again as these settings say. An index that holds documents is never re-pinned.",
    ),
) -> None:
    """Create the pinned index, or verify its pin and compression.

    The index is created from schemas/ for the configured model version, its vectors
    compressed as SEARCH_VECTOR_COMPRESSION says (default: none).

    With VISION_ENDPOINT set, the vectorizer is asked once which model version it answers
    with: that version is the pin (the local stand-in answers with its offline model's name)."""
    from indexer.index_setup import describe_backend, ensure_index
    from indexer.services import build_backend, close_quietly
    from indexer.vector_compression import describe_compression

    with handle_errors(), ExitStack() as cleanup:
        settings = state(ctx).settings
        backend = build_backend(settings)
        cleanup.callback(close_quietly, backend)
        pin = ensure_index(settings, backend, repin=repin)
        vectors = describe_compression(backend.schema.compression)
    typer.echo(
        f"{describe_backend(settings)} is ready, pinned to {pin.model_version} ({pin.dimensions} dimensions), "
        f"vectors {vectors}"
    )
    _warn_about_an_unauthenticated_vectorizer(settings)


def _warn_about_an_unauthenticated_vectorizer(settings: Any) -> None:
    """A vectorizer that calls a Function without its key is answered 401: say so (loopback,
    where `imgsearch serve` needs no key, is fine)."""
    from urllib.parse import urlsplit

    from indexer.entrypoints.local_host import is_loopback

    uri = settings.search_vectorizer_uri.strip()
    if not uri or settings.search_vectorizer_key or is_loopback(urlsplit(uri).hostname or ""):
        return
    typer.echo(
        f"warning: the index's vectorizer calls {uri} without a function key, so the Function will answer 401 "
        f"to the search service; set SEARCH_VECTORIZER_KEY and run this again (README, 'The vectorize endpoint')",
        err=True,
    )


def read_key_file(path: Path) -> list[str]:
    """The keys in ``path``, one a line; blank lines and ``#`` comments are skipped."""
    from indexer.errors import ConfigurationError

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the key file {path}: {exc}") from None
    keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise ConfigurationError(f"the key file {path} holds no key (one a line)")
    return keys


def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Address to listen on."),
    port: int = typer.Option(7071, "--port", min=0, max=65535, help="Port to listen on (func start's default)."),
    keys: list[str] = typer.Option(
        [],
        "--key",
        envvar="IMGSEARCH_SERVE_KEY",
        show_envvar=True,
        metavar="KEY",
        help="Function key callers must send (x-functions-key header or ?code=), 16 characters or more; "
        "repeatable. Needed off loopback. Prefer the environment variable or --key-file: a command line "
        "is visible to every user of the machine (ps).",
    ),
    key_file: Path | None = typer.Option(
        None, "--key-file", metavar="FILE", help="Read the function keys from FILE, one a line (# comments)."
    ),
    allowed_hosts: list[str] = typer.Option(
        [],
        "--allow-host",
        envvar="IMGSEARCH_SERVE_ALLOWED_HOSTS",
        show_envvar=True,
        metavar="NAME",
        help="A name callers may reach this server by (the Host header) beside 127.0.0.1, localhost, [::1] "
        "and --host; repeatable (the variable: separated by spaces). Other names are refused (DNS rebinding).",
    ),
) -> None:
    """Host the Function app's HTTP endpoints locally.

    The same handlers and routes as the deployed app (/api/search), as `func start` would
    host them; no function key is needed on loopback. A request naming another host (Host) or
    sent by another site's page (Origin) is refused, as is a body over the host's 100 MB."""
    from indexer.entrypoints import local_host
    from indexer.index_setup import describe_backend, describe_vectorizer
    from indexer.services import build_services

    with handle_errors():
        settings = state(ctx).settings
        keys = [*keys, *(read_key_file(key_file) if key_file is not None else [])]
        local_host.check_exposure(host, keys)
        services = build_services(settings, storage=False)
        local_host.bind(host, port).close()  # a busy port fails here, before the server starts
        typer.echo(
            f"serving the search page on {local_host.page_url(host, port)} and the Function app's HTTP endpoints "
            f"(/api/search, /api/vectorize, /api/info) ({describe_backend(settings)}; vectorizer: "
            f"{describe_vectorizer(settings)}); Ctrl-C stops",
            err=True,
        )
        try:
            local_host.run(services, host, port, keys=keys, allowed_hosts=allowed_hosts)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    """Add ``index``, ``search``, ``info``, ``ensure-index`` to the ``imgsearch`` app."""
    app.command("index")(index_command)
    app.command("search")(search_command)
    app.command("info")(info_command)
    app.command("ensure-index")(ensure_index_command)
    app.command("serve")(serve_command)
