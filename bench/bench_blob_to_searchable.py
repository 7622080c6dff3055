"""Benchmark 6: seconds from a blob upload to its document answering a query, offline.

The offline end-to-end set-up, every service over real HTTP: Azurite; the ``watch`` runner
(``BlobWatcher``, standing in for Event Grid and the Functions host) calling the Function
handlers; the local vectorizer server (no added latency, no rate limit); the Azure AI Search
double. Services are built from ``Settings`` by ``services.build_services``, as the Function
app builds them.

For each of U uploads (one at a time): upload a distinct JPEG, then poll a vector query
filtered to that blob (``container`` and ``blob_path``) until the document is returned. The
figure is p50 and p95 of upload-to-searchable seconds.

Baseline, in the same run and interleaved with the watched uploads so both see the same
machine load: upload to another container, call ``handlers.index_blob`` directly, search
once. Its latency is the bare cost of indexing one blob; the ratio shows what the watcher's
polling adds (about half a poll interval on average, plus a listing of the container).

Run: ``python bench/bench_blob_to_searchable.py`` (about a minute) or ``--quick``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

from indexer.services import build_services

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Report,
    azurite,
    load_offline_model,
    percentile,
    print_header,
    quiet_logs,
    ratio,
    say,
    search_double,
    tiny_jpeg,
    vision_server,
)

WATCHED = "watched"
DIRECT = "direct"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with a few uploads")
    parser.add_argument("--uploads", type=int, default=100, help="uploads through each path (default 100)")
    parser.add_argument(
        "--interval", type=float, default=0.5, help="the watcher's poll interval in seconds (default 0.5)"
    )
    parser.add_argument(
        "--query-poll",
        type=float,
        default=0.02,
        help="seconds between the queries that look for the new document (default 0.02)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="give up on one upload after this many seconds (counted as missing)"
    )
    parser.add_argument("--image-size", type=int, default=128, help="side of the generated JPEGs in pixels")
    args = parser.parse_args(argv)
    if args.quick:
        args.uploads = min(args.uploads, 5)
    if args.uploads < 1 or args.interval <= 0 or args.query_poll <= 0 or args.image_size <= 10:
        parser.error("--uploads must be at least 1, --interval and --query-poll positive, --image-size over 10")
    return args


def searchable(backend, query, container: str, name: str) -> bool:
    from indexer.filters import Condition
    from indexer.query import search_vector

    hits = search_vector(
        query,
        backend=backend,
        k=1,
        filters=[Condition("container", "eq", container), Condition("blob_path", "eq", name)],
    )
    return bool(hits)


def wait_searchable(backend, query, container: str, name: str, *, poll: float, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not searchable(backend, query, container, name):
        if time.perf_counter() > deadline:
            return False
        time.sleep(poll)
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs()
    print_header(
        "Benchmark 6: blob upload to searchable",
        f"{args.uploads} uploads: Azurite -> BlobWatcher (poll every {args.interval:g}s) -> handlers -> "
        f"local vectorizer server -> search double; baseline: index_blob called directly",
    )

    from azure.storage.blob import BlobServiceClient

    from indexer.entrypoints.blob_events import index_blob
    from indexer.index_setup import ensure_index
    from indexer.model_versions import OFFLINE_MULTILINGUAL
    from indexer.services import close_quietly
    from indexer.settings import Settings
    from standins.watch import BlobWatcher

    report = Report("Benchmark 6 figures")
    load_offline_model(OFFLINE_MULTILINGUAL)
    images = [tiny_jpeg(10_000 + i, size=args.image_size) for i in range(2 * args.uploads)]

    with (
        azurite() as storage,
        vision_server() as vision,
        search_double() as search,
        tempfile.TemporaryDirectory() as data_dir,
    ):
        settings = Settings(
            IMAGES_STORAGE=storage.connection_string,
            IMAGES_CONTAINER=WATCHED,
            VISION_ENDPOINT=vision.url,
            VISION_KEY=vision.key,
            VISION_MODEL_VERSION=OFFLINE_MULTILINGUAL,
            SEARCH_ENDPOINT=search.endpoint,
            SEARCH_KEY=search.api_key,
            SEARCH_INDEX_NAME="blob-to-searchable",
            IMGSEARCH_DATA_DIR=data_dir,
        )
        services = build_services(settings)
        ensure_index(settings, services.backend)
        blob_service = BlobServiceClient.from_connection_string(storage.connection_string)
        watched = blob_service.create_container(WATCHED)
        direct = blob_service.create_container(DIRECT)
        # Any embedding of the index's model serves as the query; the filter picks the blob.
        query = services.vectorizer.vectorize_text("a photo")

        # When the watcher's handler call for each blob returned: splits the watched latency
        # into "until the handler finished" and "until the query saw it".
        handled: dict[str, float] = {}

        def on_change(change) -> None:
            if change.kind == "created" and not change.error:
                handled[change.blob_name] = time.perf_counter()

        watcher = BlobWatcher(services, on_change=on_change)
        stop = threading.Event()
        crashed: list[BaseException] = []

        def run_watcher() -> None:
            try:
                watcher.run(interval=args.interval, stop=stop)
            except BaseException as exc:  # noqa: BLE001 - reported below
                crashed.append(exc)

        thread = threading.Thread(target=run_watcher, name="watch", daemon=True)
        thread.start()
        direct_seconds: list[float] = []
        watched_seconds: list[float] = []
        handler_seconds: list[float] = []
        missing = 0
        rng = random.Random(6)
        try:
            for i in range(args.uploads):
                name = f"uploads/photo-{i:04d}.jpg"
                # Baseline: upload -> index_blob -> search, nothing polling.
                started = time.perf_counter()
                direct.upload_blob(name, images[2 * i])
                outcome = index_blob(f"{DIRECT}/{name}", services)
                if (
                    outcome is None
                    or outcome.status != "indexed"
                    or not searchable(services.backend, query, DIRECT, name)
                ):
                    raise RuntimeError(f"direct indexing of {name} did not make it searchable: {outcome}")
                direct_seconds.append(time.perf_counter() - started)
                # The watched path: upload, then wait for the document to answer a query. A
                # random pause first, so uploads land at random points of the poll cycle, as
                # real ones do (otherwise the loop falls into step with the watcher).
                time.sleep(rng.uniform(0, args.interval))
                started = time.perf_counter()
                watched.upload_blob(name, images[2 * i + 1])
                if wait_searchable(services.backend, query, WATCHED, name, poll=args.query_poll, timeout=args.timeout):
                    found = time.perf_counter()
                    watched_seconds.append(found - started)
                    if name in handled:
                        handler_seconds.append(min(handled[name], found) - started)
                else:
                    missing += 1
                if crashed:
                    raise RuntimeError(f"the watcher died: {crashed[0]!r}")
                if (i + 1) % 25 == 0:
                    say(f"{i + 1} uploads through each path")
        finally:
            stop.set()
            thread.join(timeout=30)
            close_quietly(services.vectorizer, services.backend)

    report.add("watcher poll interval", f"{args.interval:g} s")
    report.add(
        "uploads measured (watched / direct)",
        f"{len(watched_seconds)} / {len(direct_seconds)}",
        f"{args.uploads} / {args.uploads}",
        missing == 0,
    )
    w50, w95 = percentile(watched_seconds, 50), percentile(watched_seconds, 95)
    d50, d95 = percentile(direct_seconds, 50), percentile(direct_seconds, 95)
    report.add("upload -> searchable via watcher: p50 / p95", f"{w50:.3f} s / {w95:.3f} s")
    h50, h95 = percentile(handler_seconds, 50), percentile(handler_seconds, 95)
    report.add("  of which upload -> watcher's handler call returned: p50 / p95", f"{h50:.3f} s / {h95:.3f} s")
    report.add("baseline upload -> index_blob -> search: p50 / p95", f"{d50:.3f} s / {d95:.3f} s")
    report.add("watcher / baseline: p50 / p95", f"{ratio(w50, d50):.1f}x / {ratio(w95, d95):.1f}x")
    report.add("watcher overhead (p50 difference)", f"{w50 - d50:.3f} s")
    report.note(
        f"a poll finds a new blob on average half an interval ({args.interval / 2:g} s) after its upload, "
        f"at worst a whole one; each watched upload starts at a random point of the poll cycle; the query "
        f"is polled every {args.query_poll:g} s"
    )
    report.note(
        f"{args.image_size}x{args.image_size} JPEGs; the vectorizer server adds no latency here, so the "
        f"baseline is the offline model plus loopback HTTP, far below a real Vision call"
    )
    report.print()
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
