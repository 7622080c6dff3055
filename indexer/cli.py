"""``imgsearch``: index a folder of images, search it by text or by example image, inspect
the index, and run the local stand-ins.

This is an edge: it parses arguments, builds objects through ``indexer.app`` and formats
output. The logic lives in ``indexer.bulk``, ``indexer.pipeline`` and ``indexer.query``.
Expected failures print one ``error: ...`` line to stderr; exit codes: 0 done (also when
some images were skipped: they are listed), 1 a run or service failure, 2 a configuration
or argument error, 3 the index is pinned to another model version.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from indexer.cli_support import EXIT_CONFIG, CliState, configure_logging, fail, handle_errors, state

app = typer.Typer(
    name="imgsearch",
    help="Search images by meaning: index a folder, search it by text or by example image, inspect "
         "the index, and run the local stand-ins.",
    epilog="Exit codes: 0 done (skipped images are listed), 1 run or service failure, "
           "2 configuration or argument error, 3 index pinned to another model version.",
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks of real bugs must never print local variables: they may hold credentials.
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _main(
    ctx: typer.Context,
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", show_default=False,
        help="Folder of the local index and run records (env IMGSEARCH_DATA_DIR; default .imgsearch)."),
    index_name: Optional[str] = typer.Option(
        None, "--index-name", help="Index to use (env SEARCH_INDEX_NAME; default images).", show_default=False),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="-v: debug messages; -vv: libraries' too."),
) -> None:
    """Search images by meaning with Azure AI Vision multimodal embeddings, or offline."""
    configure_logging(verbose)
    ctx.obj = CliState(overrides={"data_dir": data_dir, "search_index_name": index_name})


# --- index ---------------------------------------------------------------------------------

@app.command("index")
def index_command(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Folder of images; indexed recursively (hidden files skipped)."),
    force: bool = typer.Option(False, "--force", help="Vectorize every image again, even unchanged ones."),
    concurrency: Optional[int] = typer.Option(
        None, "--concurrency", "-c", min=1, help="Images in flight at once (default: VISION_CONCURRENCY, 8)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Index a local folder. A re-run skips unchanged files and removes documents of deleted ones."""
    from tqdm import tqdm

    from indexer.app import LazyVectorizer, build_backend, build_vectorizer, close_quietly
    from indexer.bulk import index_items, remove_missing
    from indexer.pipeline import Outcome
    from indexer.sources.folder import FolderSource

    with handle_errors(), ExitStack() as cleanup:
        settings = state(ctx).settings
        source = FolderSource(path, max_bytes=settings.max_image_bytes)
        backend = build_backend(settings)
        cleanup.callback(close_quietly, backend)
        pin = _ensure_pinned_index(settings, backend)
        # List everything first: the progress bar gets its total, and removal needs to know
        # the listing was complete.
        items = list(source.list_items())
        for problem in source.listing_errors:
            typer.echo(f"warning: cannot list {problem}", err=True)
        stored = backend.keys_with_hashes(source.conditions)
        # The model loads on the first changed image only: a no-op re-run stays fast.
        vectorizer = LazyVectorizer(lambda: build_vectorizer(settings, paced=True))
        cleanup.callback(close_quietly, vectorizer)

        with tqdm(total=len(items), unit="image", desc="indexing", file=sys.stderr, disable=None,
                  dynamic_ncols=True) as bar:
            def report(outcome: Outcome) -> None:
                if outcome.status == "failed":
                    bar.write(f"skipped {outcome.source}: {outcome.reason}", file=sys.stderr)

            with _explained_mismatch(settings):
                summary = index_items(
                    items, vectorizer=vectorizer, backend=backend,
                    concurrency=concurrency or settings.vision_concurrency,
                    stored_hashes=stored, force=force,
                    on_outcome=report, progress=bar)

        removal_note = ""
        if source.listing_errors:
            removal_note = " (removal of deleted files skipped: some folders could not be listed)"
        else:
            summary.removed = remove_missing({item.key for item in items}, backend=backend,
                                             conditions=source.conditions, stored_keys=stored.keys())

    if as_json:
        typer.echo(json.dumps({"folder": str(source.root), "container": source.label,
                               "model_version": pin.model_version, "images": len(items),
                               **summary.to_dict()}, indent=2))
        return
    skipped = len(summary.failed)
    typer.echo(f"{len(items)} images in {source.root}: {summary.indexed} indexed, {summary.unchanged} unchanged, "
               f"{skipped} skipped, {summary.removed} removed{removal_note}")
    if skipped:
        retry = len(summary.transient_failures)
        typer.echo(f"the run completed; {skipped} image(s) were skipped (listed above)"
                   + (f", {retry} of them for a transient error: run again to retry them" if retry else ""))


def _ensure_pinned_index(settings, backend):
    """Create the index for the configured model version, or verify its pin; a mismatch
    names both versions and the settings that decide them."""
    from indexer.app import describe_backend, index_model_version
    from indexer.errors import ImageSearchError, ModelVersionMismatchError
    from indexer.pipeline import ensure_index

    wanted = index_model_version(settings)
    try:
        return ensure_index(backend, wanted)
    except ModelVersionMismatchError as exc:
        try:
            existing = backend.get_pin()
        except ImageSearchError:
            raise exc from None
        origin = (f"VISION_MODEL_VERSION={settings.vision_model_version} with no VISION_ENDPOINT, so the offline "
                  f"model" if settings.uses_local_vectorizer else
                  f"VISION_MODEL_VERSION={settings.vision_model_version} at VISION_ENDPOINT")
        raise ModelVersionMismatchError(
            f"the {describe_backend(settings)} is pinned to model version {existing.model_version!r} "
            f"({existing.dimensions} dimensions), but the settings ask for {wanted!r} ({origin}); nothing was "
            f"changed. Use another index (--index-name / SEARCH_INDEX_NAME) or set VISION_MODEL_VERSION and "
            f"VISION_ENDPOINT to match the index.", expected=existing.model_version, actual=wanted) from None


@contextmanager
def _explained_mismatch(settings) -> Iterator[None]:
    """Add the fix to a mismatch between the vectors a Vision endpoint returns and the pin.

    The usual cause: VISION_ENDPOINT points at the local stand-in, which answers with its
    own model's name, while VISION_MODEL_VERSION still names Azure's version."""
    from indexer.errors import ModelVersionMismatchError
    from indexer.models import MODEL_VERSIONS

    try:
        yield
    except ModelVersionMismatchError as exc:
        reported = MODEL_VERSIONS.get(str(exc.actual))
        if settings.uses_local_vectorizer or reported is None or reported.provider != "local":
            raise
        raise ModelVersionMismatchError(
            f"{exc} (VISION_ENDPOINT {settings.vision_endpoint} answers with the offline model {reported.name}: "
            f"it is the local stand-in, so set VISION_MODEL_VERSION={reported.name} and use an index pinned to it)",
            expected=exc.expected, actual=exc.actual) from None


# --- search --------------------------------------------------------------------------------

@app.command("search")
def search_command(
    ctx: typer.Context,
    text: Optional[str] = typer.Argument(
        None, help="What to look for, 1 to 70 words, in any of the model's languages."),
    image: Optional[str] = typer.Option(
        None, "--image", "-i", help="Search by an example image: a file or an http(s) URL."),
    k: int = typer.Option(10, "-k", "--top", min=1, help="How many results."),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", "-t", help="Only results with a cosine score at or above this (scores rank one "
                                        "query's results; they are not comparable across queries)."),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="Metadata filter such as content_type=image/png or width>=800; repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as a JSON list."),
) -> None:
    """Rank indexed images by similarity to TEXT, or to --image."""
    from indexer.app import build_backend, build_vectorizer, close_quietly
    from indexer.filters import parse_conditions
    from indexer.query import search_image, search_text

    with handle_errors(), ExitStack() as cleanup:
        if (text is None) == (image is None):
            raise fail("give either a TEXT to search for or --image FILE_OR_URL (one of them)", EXIT_CONFIG)
        settings = state(ctx).settings
        conditions = parse_conditions(filters)
        backend = build_backend(settings)
        cleanup.callback(close_quietly, backend)
        _check_filter_fields(backend, conditions)
        query_image: str | Path | None = image
        if image is not None and not image.lower().startswith(("http://", "https://")):
            query_image = Path(image).expanduser()  # a local file, read with a size guard
        vectorizer = build_vectorizer(settings)
        cleanup.callback(close_quietly, vectorizer)
        options: dict[str, Any] = dict(vectorizer=vectorizer, backend=backend, k=k, threshold=threshold,
                                       filters=conditions)
        with _explained_mismatch(settings):
            hits = search_text(text, **options) if query_image is None else search_image(query_image, **options)

    if as_json:
        typer.echo(json.dumps([{"rank": rank, **hit.to_dict()} for rank, hit in enumerate(hits, 1)], indent=2,
                              default=str))
        return
    if not hits:
        typer.echo("no results" + (f" at or above the threshold {threshold}" if threshold is not None else ""))
    for rank, hit in enumerate(hits, 1):
        typer.echo(f"{rank:>3}  {hit.score:.4f}  {hit.source}")


def _check_filter_fields(backend, conditions) -> None:
    """Refuse filters on fields the index cannot filter before any (paid) Vision call."""
    from indexer.backends.schema_rules import check_filter_fields
    from indexer.schema import load_schema

    if conditions:
        # The live index's own definition where the backend offers it, else the pinned schema file.
        schema = getattr(backend, "schema", None) or load_schema(backend.get_pin().model_version)
        check_filter_fields(schema, conditions)


# --- info and ensure-index -----------------------------------------------------------------

@app.command("info")
def info_command(ctx: typer.Context,
                 as_json: bool = typer.Option(False, "--json", help="Print as a JSON object.")) -> None:
    """Show the model version the index is pinned to, its size, and where things live."""
    from indexer.app import build_backend, close_quietly, describe_backend, describe_vectorizer, index_model_version
    from indexer.errors import IndexNotFoundError
    from indexer.models import get_model_version

    with handle_errors(), ExitStack() as cleanup:
        settings = state(ctx).settings
        configured = get_model_version(index_model_version(settings))
        backend = build_backend(settings)
        cleanup.callback(close_quietly, backend)
        try:
            pin = backend.get_pin()
            count: int | None = backend.count()
        except IndexNotFoundError:
            pin, count = None, None
        info = {
            "index_name": settings.search_index_name,
            "backend": "azure" if not settings.uses_local_index else "local",
            "location": settings.search_endpoint or str(settings.data_dir.resolve()),
            "index_exists": pin is not None,
            "model_version": pin.model_version if pin else configured.name,
            "dimensions": pin.dimensions if pin else configured.dimensions,
            "configured_model_version": configured.name,
            "documents": count,
            "vision_endpoint": settings.vision_endpoint or None,
            "vectorizer": describe_vectorizer(settings),
        }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"index:          {describe_backend(settings)}")
    if pin is None:
        typer.echo(f"                not created yet; `imgsearch index PATH` or `imgsearch ensure-index` creates it "
                   f"pinned to {configured.name} ({configured.dimensions} dimensions)")
    else:
        typer.echo(f"model version:  {pin.model_version} (pinned, {pin.dimensions} dimensions)")
        typer.echo(f"documents:      {count}")
        if pin.model_version != configured.name:
            typer.echo(f"warning: the settings use {configured.name}; writes and queries will be refused "
                       f"until they match the pin", err=True)
    typer.echo(f"vectorizer:     {info['vectorizer']}")


@app.command("ensure-index")
def ensure_index_command(ctx: typer.Context) -> None:
    """Create the index from schemas/ for the configured model version, or verify its pin."""
    from indexer.app import build_backend, close_quietly, describe_backend

    with handle_errors(), ExitStack() as cleanup:
        settings = state(ctx).settings
        backend = build_backend(settings)
        cleanup.callback(close_quietly, backend)
        pin = _ensure_pinned_index(settings, backend)
    typer.echo(f"{describe_backend(settings)} is ready, pinned to {pin.model_version} ({pin.dimensions} dimensions)")


# --- the local stand-ins -------------------------------------------------------------------

def _keys_from(keys: list[str], env_name: str) -> list[str]:
    """Keys given as options, else a comma-separated environment variable."""
    if keys:
        return list(keys)
    return [k.strip() for k in os.environ.get(env_name, "").split(",") if k.strip()]


@app.command("serve-vision")
def serve_vision_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(5000, "--port", min=0, max=65535, help="Port to listen on."),
    keys: list[str] = typer.Option(
        [], "--key", help="Accepted Ocp-Apim-Subscription-Key; repeatable (env VISION_SERVER_KEYS, comma-separated). "
                          "With no key and no token every caller is accepted."),
    bearer_tokens: list[str] = typer.Option(
        [], "--bearer-token", help="Accepted 'Authorization: Bearer' token; repeatable (env VISION_SERVER_TOKENS)."),
    fault_rate: float = typer.Option(0.0, "--fault-rate", min=0.0, max=1.0,
                                     help="Share of requests that fail on purpose (0..1)."),
    fault_statuses: list[int] = typer.Option(
        [], "--fault-status", help="Status of an injected fault (429 or 5xx); repeatable (default 429, 500, 503)."),
    fault_retry_after: Optional[float] = typer.Option(
        1.0, "--fault-retry-after", min=0.0, help="Retry-After seconds sent with injected 429/503 answers."),
    fault_first: int = typer.Option(0, "--fault-first", min=0, help="Always fail the first N requests."),
    fault_seed: Optional[int] = typer.Option(0, "--fault-seed", help="Seed of the fault draw (replayable runs)."),
    drop_connection: bool = typer.Option(False, "--drop-connection", help="Also inject dropped connections."),
    slow_seconds: float = typer.Option(0.0, "--slow-seconds", min=0.0,
                                       help="Also inject answers delayed this long (to trip client timeouts)."),
    rate_limit: Optional[float] = typer.Option(
        None, "--rate-limit", min=0.0, help="Answer 429 above this many requests a second (S1: 20, F0: 0.33)."),
    rate_limit_burst: int = typer.Option(1, "--rate-limit-burst", min=1, help="Requests allowed at once."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", min=0.0,
                                     help="Added to every answer, like a remote service."),
    preview_api_gone: bool = typer.Option(
        False, "--preview-api-gone", help="Answer api-version 2023-02-01-preview with 410 Gone, as Azure does today."),
    inference_threads: int = typer.Option(2, "--inference-threads", min=1, help="Model calls running at once."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the Vision multimodal-embeddings REST API with the offline models (the local stand-in)."""
    with handle_errors():
        from indexer.vision.server import ServerConfig, run_server

        try:
            config = ServerConfig(
                keys=_keys_from(keys, "VISION_SERVER_KEYS"),
                bearer_tokens=_keys_from(bearer_tokens, "VISION_SERVER_TOKENS"),
                fault_rate=fault_rate, fault_statuses=tuple(fault_statuses) or ServerConfig.fault_statuses,
                fault_retry_after=fault_retry_after, fault_first=fault_first, fault_seed=fault_seed,
                drop_connection=drop_connection, slow_seconds=slow_seconds,
                rate_limit_per_second=rate_limit or None, rate_limit_burst=rate_limit_burst, latency_ms=latency_ms,
                preview_api_gone=preview_api_gone, inference_threads=inference_threads)
        except ValueError as exc:
            raise fail(str(exc), EXIT_CONFIG) from None
        auth = (f"{len(config.keys)} key(s)" if config.keys else "") + \
               (f"{' and ' if config.keys else ''}{len(config.bearer_tokens)} token(s)" if config.bearer_tokens else "")
        typer.echo(f"local Vision stand-in on http://{host}:{port}; set VISION_ENDPOINT to that URL; "
                   f"auth: {auth or 'none (every caller is accepted)'}", err=True)
        run_server(config, host, port, log_level=log_level)


@app.command("serve-search-double")
def serve_search_double_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8090, "--port", min=0, max=65535, help="Port to listen on."),
    keys: list[str] = typer.Option(
        [], "--key", help="Accepted admin api-key; repeatable (env SEARCH_DOUBLE_KEYS, comma-separated). "
                          "With no key every caller is accepted."),
    query_keys: list[str] = typer.Option([], "--query-key", help="Accepted query (read-only) api-key; repeatable."),
    persist_dir: Optional[Path] = typer.Option(
        None, "--persist-dir", help="Keep the indexes in this folder across restarts (default: in memory)."),
) -> None:
    """Serve the Azure AI Search REST subset this project uses (the stand-in for local end-to-end runs)."""
    with handle_errors():
        try:
            from indexer.standins.search_service import SearchDoubleConfig, run_server
        except ModuleNotFoundError as exc:
            raise fail(f"the Azure AI Search stand-in is not available ({exc.name} is missing)") from None
        config = SearchDoubleConfig(admin_keys=tuple(_keys_from(keys, "SEARCH_DOUBLE_KEYS")),
                                    query_keys=tuple(query_keys), data_dir=persist_dir)
        auth = f"{len(config.admin_keys)} admin and {len(config.query_keys)} query key(s)" \
            if config.requires_auth else "none (every caller is accepted)"
        typer.echo(f"Azure AI Search stand-in on http://{host}:{port}; set SEARCH_ENDPOINT to that URL; "
                   f"auth: {auth}", err=True)
        run_server(config, host, port)


def main() -> None:
    """Console-script entry point (``imgsearch``) and ``python -m indexer``."""
    app(prog_name="imgsearch")


# Commands of other parts of the project register themselves here. Only the absence of that
# module is tolerated; an error inside it must surface.
try:
    _cli_blob = importlib.import_module("indexer.cli_blob")
except ModuleNotFoundError as _exc:
    if _exc.name != "indexer.cli_blob":
        raise
else:
    _cli_blob.register(app)
