"""The stand-ins' commands, added to ``imgsearch`` only where the stand-ins are installed
(declared in the ``imgsearch.commands`` entry-point group): ``serve-vision`` (the Vision
stand-in), ``serve-search-double`` (the Azure AI Search double), ``serve-azurite`` (Blob Storage),
``watch`` (the Functions host and Event Grid) and ``dev`` (all of the local Azure path at once)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import typer

from indexer.entrypoints.cli.common import fail, handle_errors, runnable_command, state
from indexer.errors import EXIT_FAILED, EXIT_USAGE

# What a stand-in without keys says: it accepts any key, but a client with no key at all tries
# Microsoft Entra ID, whose tokens are never sent over plain http.
_ANY_KEY = "none (any key is accepted; set {setting} to any value, e.g. {setting}=local)"


def _keys_from(keys: list[str], env_name: str) -> list[str]:
    """Keys given as options, else a comma-separated environment variable."""
    if keys:
        return list(keys)
    return [k.strip() for k in os.environ.get(env_name, "").split(",") if k.strip()]


def serve_vision_command(
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Address to listen on."),
    port: int = typer.Option(5000, "--port", min=0, max=65535, help="Port to listen on."),
    keys: list[str] = typer.Option(
        [],
        "--key",
        metavar="KEY",
        help="Accepted Ocp-Apim-Subscription-Key; repeatable (env VISION_SERVER_KEYS, comma-separated). "
        "With no key and no token every caller is accepted.",
    ),
    bearer_tokens: list[str] = typer.Option(
        [],
        "--bearer-token",
        metavar="TOKEN",
        help="Accepted 'Authorization: Bearer' token; repeatable (env VISION_SERVER_TOKENS).",
    ),
    fault_rate: float = typer.Option(
        0.0, "--fault-rate", min=0.0, max=1.0, help="Share of requests that fail on purpose (0..1)."
    ),
    fault_statuses: list[int] = typer.Option(
        [],
        "--fault-status",
        metavar="STATUS",
        help="Status of an injected fault (408, 429 or 5xx); repeatable (default 429, 500, 503).",
    ),
    fault_retry_after: float | None = typer.Option(
        1.0, "--fault-retry-after", min=0.0, help="Retry-After seconds sent with injected 429/503 answers."
    ),
    fault_first: int = typer.Option(0, "--fault-first", min=0, help="Always fail the first N requests."),
    fault_seed: int | None = typer.Option(0, "--fault-seed", help="Seed of the fault draw (replayable runs)."),
    drop_connection: bool = typer.Option(False, "--drop-connection", help="Also inject dropped connections."),
    slow_seconds: float = typer.Option(
        0.0, "--slow-seconds", min=0.0, help="Also inject answers delayed this long (to trip client timeouts)."
    ),
    rate_limit: float | None = typer.Option(
        None, "--rate-limit", min=0.0, help="Answer 429 above this many requests a second (S1: 20, F0: 0.33)."
    ),
    rate_limit_burst: int | None = typer.Option(
        None,
        "--rate-limit-burst",
        min=1,
        help="Count with a token bucket of this many requests at once instead (1: no burst at all, the strictest "
        "limiter). Default: Azure's fixed-window count, the rate's allowance in each interval.",
    ),
    rate_limit_window: float | None = typer.Option(
        None,
        "--rate-limit-window",
        min=0.001,
        help="Seconds of one counting interval (default 1, or 60 for rates below 1/s such as F0's 20 a minute).",
    ),
    latency_ms: float = typer.Option(
        0.0, "--latency-ms", min=0.0, help="Added to every answer, like a remote service."
    ),
    serve_retired_preview: bool = typer.Option(
        False,
        "--serve-retired-preview",
        help="Answer api-version 2023-02-01-preview as the retired preview did, for old samples "
        "(default: 410 Gone, as Azure answers it today).",
    ),
    allow_private_urls: bool = typer.Option(
        False,
        "--allow-private-urls",
        envvar="IMGSEARCH_ALLOW_PRIVATE_URLS",
        help="Fetch image URLs on loopback and private networks (Azurite, a local web server) for local "
        "development (default: refused, as Azure fetches only publicly reachable URLs).",
    ),
    max_decode_megapixels: float = typer.Option(
        100.0,
        "--max-decode-megapixels",
        min=1.0,
        help="Largest non-JPEG image the stand-in decodes at full size; larger ones get a 503 that names "
        "the stand-in (Azure itself accepts up to 15,999 x 15,999 pixels).",
    ),
    inference_threads: int = typer.Option(2, "--inference-threads", min=1, help="Model calls running at once."),
    pad_to: int | None = typer.Option(
        None,
        "--pad-to",
        min=2,
        max=4096,
        help="Answer vectors of this length (1024: Azure's), zero-padded: cosines are unchanged and the model "
        "version still names the offline model.",
    ),
    log_level: str = typer.Option("info", "--log-level", metavar="LEVEL", help="uvicorn log level."),
) -> None:
    """Serve the Vision stand-in (offline models).

    The Vision multimodal-embeddings REST API, answered by the offline models."""
    with handle_errors():
        from standins.vision.server import ServerConfig, run_server

        try:
            config = ServerConfig(
                keys=_keys_from(keys, "VISION_SERVER_KEYS"),
                bearer_tokens=_keys_from(bearer_tokens, "VISION_SERVER_TOKENS"),
                fault_rate=fault_rate,
                fault_statuses=tuple(fault_statuses) or ServerConfig.fault_statuses,
                fault_retry_after=fault_retry_after,
                fault_first=fault_first,
                fault_seed=fault_seed,
                drop_connection=drop_connection,
                slow_seconds=slow_seconds,
                rate_limit_per_second=rate_limit or None,
                rate_limit_burst=rate_limit_burst,
                rate_limit_window=rate_limit_window,
                latency_ms=latency_ms,
                serve_retired_preview=serve_retired_preview,
                allow_private_urls=allow_private_urls,
                max_decode_pixels=int(max_decode_megapixels * 1_000_000),
                inference_threads=inference_threads,
                pad_to=pad_to,
            )
        except ValueError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        auth = (f"{len(config.keys)} key(s)" if config.keys else "") + (
            f"{' and ' if config.keys else ''}{len(config.bearer_tokens)} token(s)" if config.bearer_tokens else ""
        )
        typer.echo(
            f"local Vision stand-in on http://{host}:{port}; set VISION_ENDPOINT to that URL; "
            f"auth: {auth or _ANY_KEY.format(setting='VISION_KEY')}",
            err=True,
        )
        from indexer.entrypoints.local_host import bind

        bind(host, port).close()  # a busy port is a configuration error (exit 2), named
        run_server(config, host, port, log_level=log_level)


def serve_search_double_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Address to listen on."),
    port: int = typer.Option(8090, "--port", min=0, max=65535, help="Port to listen on."),
    keys: list[str] = typer.Option(
        [],
        "--key",
        metavar="KEY",
        help="Accepted admin api-key; repeatable (env SEARCH_DOUBLE_KEYS, comma-separated). "
        "With no key every caller is accepted.",
    ),
    persist_dir: Path | None = typer.Option(
        None,
        "--persist-dir",
        metavar="PATH",
        show_default=False,
        help="Keep the indexes in this folder across restarts (default: search-double under IMGSEARCH_DATA_DIR, "
        ".imgsearch/search-double).",
    ),
    in_memory: bool = typer.Option(
        False, "--in-memory", help="Keep the indexes in memory only: a restart forgets them."
    ),
    visibility_delay: float = typer.Option(
        0.0,
        "--visibility-delay",
        min=0.0,
        max=3599.0,
        help="Seconds before a write is visible to searches, lookups and counts (Azure: 'a few seconds').",
    ),
) -> None:
    """Serve the Azure AI Search double.

    The requests imgsearch sends, for local end-to-end runs; anything else is answered 400."""
    with handle_errors():
        if in_memory and persist_dir:
            raise fail("--in-memory and --persist-dir exclude each other", EXIT_USAGE)
        if not in_memory and persist_dir is None:
            persist_dir = state(ctx).settings.data_dir / "search-double"
        try:
            from standins.search.service import SearchDoubleConfig, run_server
        except ModuleNotFoundError as exc:
            raise fail(f"the Azure AI Search stand-in is not available ({exc.name} is missing)") from None
        config = SearchDoubleConfig(
            admin_keys=tuple(_keys_from(keys, "SEARCH_DOUBLE_KEYS")),
            data_dir=persist_dir,
            visibility_delay_seconds=visibility_delay,
        )
        auth = f"{len(config.admin_keys)} admin key(s)" if config.admin_keys else _ANY_KEY.format(setting="SEARCH_KEY")
        kept = f"indexes kept in {persist_dir}" if persist_dir else "indexes in memory only (--in-memory)"
        typer.echo(
            f"Azure AI Search stand-in on http://{host}:{port}; set SEARCH_ENDPOINT to that URL; auth: {auth}; {kept}",
            err=True,
        )
        from indexer.entrypoints.local_host import bind

        bind(host, port).close()
        run_server(config, host, port)


def serve_azurite_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Address to listen on."),
    port: int = typer.Option(10000, "--port", min=0, max=65535, help="Blob service port (Azurite's default)."),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        metavar="PATH",
        show_default=False,
        help="Azurite's blobs (default: azurite under IMGSEARCH_DATA_DIR, .imgsearch/azurite).",
    ),
) -> None:
    """Serve Blob Storage: Azurite's blob service, with the images container.

    Azurite (installed by `make setup` from npm) in a process of its own, with the containers
    IMAGES_CONTAINER and imgsearch-failures created. Prints the IMAGES_STORAGE to set;
    Ctrl-C stops it."""
    from standins.azurite import start_azurite_blob
    from standins.dev import stopped_by_kill_and_hangup

    with handle_errors():
        settings = state(ctx).settings
        folder = (data_dir or settings.data_dir / "azurite").resolve()  # Azurite runs in that folder
        from indexer.entrypoints.local_host import bind

        bind(host, port).close()  # a busy port is a configuration error (exit 2), named
        with stopped_by_kill_and_hangup(), start_azurite_blob(data_dir=folder, host=host, port=port) as azurite:
            try:
                created = _create_containers(
                    azurite.connection_string, [settings.images_container, "imgsearch-failures"]
                )
                default = (
                    " (or IMAGES_STORAGE=UseDevelopmentStorage=true)" if (host, port) == ("127.0.0.1", 10000) else ""
                )
                typer.echo(
                    f"Azurite blob service on {azurite.blob_endpoint}, blobs in {folder}, containers: {created}; "
                    f"set{default}:\n  export IMAGES_STORAGE={shlex.quote(azurite.connection_string)}\n"
                    f"log {azurite.log_path}; Ctrl-C stops",
                    err=True,
                )
                azurite.process.wait()
                raise fail(f"Azurite exited with {azurite.process.returncode}; see {azurite.log_path}")
            except KeyboardInterrupt:
                typer.echo("stopped", err=True)


def _create_containers(connection_string: str, names: list[str]) -> str:
    """Create each container that is missing; their names, comma-separated."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(connection_string)
    for name in names:
        if not service.get_container_client(name).exists():
            service.create_container(name)
    return ", ".join(names)


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
    from standins.watch import BlobWatcher, Change, ready_services

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
        watcher = BlobWatcher(
            ready_services(settings),
            prefix=prefix,
            index_existing=not skip_existing,
            on_change=None if as_json else show,
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


def dev_command(
    blob_port: int = typer.Option(10000, "--blob-port", metavar="PORT", help="Azurite's blob port."),
    vision_port: int = typer.Option(5000, "--vision-port", metavar="PORT", help="The Vision stand-in's port."),
    search_port: int = typer.Option(8090, "--search-port", metavar="PORT", help="The search double's port."),
    api_port: int = typer.Option(7071, "--api-port", metavar="PORT", help="The Function app's endpoints (serve)."),
    data_dir: Path = typer.Option(
        Path(".imgsearch/dev"), "--data-dir", metavar="PATH", help="Blobs, indexes, logs and dev.env live here."
    ),
    pull: bool = typer.Option(
        False,
        "--pull",
        help="Pull mode (also INGESTION_MODE=pull): the search double's indexer reads the container every 5 "
        "minutes or on `imgsearch indexer run`, instead of the watch runner.",
    ),
) -> None:
    """Run the whole Azure path here: storage, Vision, Search, the Function.

    Starts Azurite (with the images container), the Vision stand-in, the Azure AI Search
    double, serve and, in push mode, the watch runner (in pull mode, the double's indexer), each
    logging to its own file, and prints the settings for a second terminal. Ctrl-C stops
    everything it started."""
    from indexer.model_versions import DEFAULT_MODEL_VERSION
    from standins.dev import DevPorts, start, stopped_by_kill_and_hangup, supervise

    def say(text: str) -> None:
        typer.echo(text, err=True)

    with handle_errors():
        model_version = os.environ.get("VISION_MODEL_VERSION") or DEFAULT_MODEL_VERSION
        configured_mode = os.environ.get("INGESTION_MODE", "").strip().lower()
        if configured_mode not in ("", "push", "pull"):
            # Settings refuses it too; dev reads it before any Settings exist, so it says so here.
            raise fail(f"INGESTION_MODE must be 'push' or 'pull', not {configured_mode!r}", EXIT_USAGE)
        pull = pull or configured_mode == "pull"
        ports = DevPorts(blob=blob_port, vision=vision_port, search=search_port, api=api_port)
        mode = "pull" if pull else "push"
        say(f"starting the local Azure path in {data_dir} (VISION_MODEL_VERSION={model_version}, {mode} mode)")
        with stopped_by_kill_and_hangup():  # kill or a closed terminal stops everything too
            env = start(data_dir, ports, model_version=model_version, say=say, pull=pull)
            say(f"\nsettings for another terminal or an app (or: source {env.env_file()}):")
            for name, value in env.settings.items():
                say(f"  export {name}={shlex.quote(value)}")
            say(try_lines(runnable_command(), api_port, pull))
            code = supervise(env, say)
        raise typer.Exit(code)


def try_lines(imgsearch: str, api_port: int, pull: bool) -> str:
    """What dev suggests trying next, each line a command that works as copied (``imgsearch``
    as this shell runs it: ``runnable_command``)."""
    return (
        f"\ntry:  {imgsearch} upload samples/cat.jpg\n"
        + (f"      {imgsearch} indexer run   # or wait for its 5-minute schedule\n" if pull else "")
        + f'      curl "http://127.0.0.1:{api_port}/api/search?text=a+cat&k=3"\n'
        f"      http://127.0.0.1:{api_port}/ in a browser: the search page\n"
        f'      {imgsearch} search --in-service "a cat"   # the text sent to the search service\n'
        f"Ctrl-C stops everything."
    )


def register(app: typer.Typer) -> None:
    """Add the stand-ins' commands (see the module doc) to the ``imgsearch`` app."""
    app.command("serve-vision")(serve_vision_command)
    app.command("serve-search-double")(serve_search_double_command)
    app.command("serve-azurite")(serve_azurite_command)
    app.command("watch")(watch_command)
    app.command("dev")(dev_command)
