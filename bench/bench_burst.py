"""Benchmark 9: a burst of uploads through the Function path, against one Vision resource at R.

N images land in the container at once; a simulated Functions host
(``standins.functions_host.SimulatedHost``: W workers for the fleet's instances x their
concurrency, the blob trigger's retries and poison rule, the queue trigger on a real Azurite
queue) runs the Function's own handlers (``index_blob``, ``index_deferred``) with the services
``build_services`` makes from the Function's settings (production defaults: 5 client retries,
no pacing across instances). Vision is ``imgsearch serve-vision --rate-limit R`` in a process
of its own, counting as Azure's gateway does; the index is the Azure AI Search double.

Printed: the time until every image is indexed with its own bytes (and the host is idle)
against N / R, the least time any design could take; blobs poisoned (goal 0); deferrals,
429 answers and Vision calls per image.

Run: ``python bench/bench_burst.py`` (2,000 images at R = 20, about 3 minutes) or ``--quick``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backfill_cli import MODEL, VisionProcess, capacity  # noqa: E402
from common import Report, print_header, quiet_logs, say, search_double, tiny_jpeg, upload_blobs  # noqa: E402

HEADROOM = 0.8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 120 images, 12 workers")
    parser.add_argument("--blobs", type=int, default=2000, help="images uploaded at once (default 2000)")
    parser.add_argument("--rate", type=float, default=20.0, help="R, the resource's calls a second (default 20)")
    parser.add_argument("--workers", type=int, default=40, help="W: instances x concurrency (default 10 x 4)")
    parser.add_argument("--force-rate", action="store_true", help="keep R even above the measured capacity")
    args = parser.parse_args(argv)
    if args.quick:
        args.blobs, args.workers = min(args.blobs, 120), min(args.workers, 12)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs()
    logging.getLogger("standins").setLevel(logging.ERROR)
    print_header(
        "Benchmark 9: a burst of uploads through the Function path",
        f"{args.blobs} images at once -> simulated host ({args.workers} workers, blob trigger + deferred queue) -> "
        f"`imgsearch serve-vision --rate-limit R` -> search double",
    )
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy

    from indexer.entrypoints import blob_events as handlers
    from indexer.indexing.deferrals import DEFERRED_QUEUE
    from indexer.indexing.pipeline import content_hash
    from indexer.keys import blob_identity, document_key
    from indexer.schema import load_schema
    from indexer.services import build_services
    from indexer.settings import Settings
    from standins.azurite import connection_string, start_azurite_blob, start_azurite_queue
    from standins.functions_host import SimulatedHost

    report = Report("Benchmark 9 figures")
    images = {f"burst/img-{i:05d}.jpg": tiny_jpeg(200_000 + i) for i in range(args.blobs)}
    blob_server, queue_server = start_azurite_blob(), start_azurite_queue()
    try:
        with search_double(tally=True) as search, tempfile.TemporaryDirectory() as work_dir:
            work = Path(work_dir)
            connection = connection_string(blob_server.blob_endpoint, queue_server.endpoint)
            container = BlobServiceClient.from_connection_string(connection).create_container("burst")
            upload_blobs(container, images)
            say(f"uploaded {len(images)} JPEGs")

            measured = capacity(work, 1, list(images.values())[:64], 3.0 if args.quick else 5.0)
            rate = args.rate
            fits = math.floor(HEADROOM * measured)
            if rate > fits and not args.force_rate:
                report.note(
                    f"the stand-in computes {measured:.1f} calls/s here, so R was lowered from {args.rate:g} to "
                    f"{max(1, fits)} ({HEADROOM:.0%} of it; --force-rate keeps R)"
                )
                rate = float(max(1, fits))
            report.add("stand-in capacity, unlimited", f"{measured:.1f} calls/s")

            vision = VisionProcess(work, "--rate-limit", f"{rate:g}", "--log-level", "info")
            try:
                vision.wait_ready()
                backend = search.backend("burst")
                backend.ensure_index(load_schema("local-conse-usem3-v1"))
                settings = Settings(
                    IMAGES_STORAGE=connection,
                    IMAGES_CONTAINER=container.container_name,
                    VISION_ENDPOINT=vision.url,
                    VISION_KEY=vision.key,
                    VISION_MODEL_VERSION=MODEL,
                    SEARCH_ENDPOINT=search.endpoint,
                    SEARCH_KEY=search.api_key,
                    SEARCH_INDEX_NAME="burst",
                    IMGSEARCH_DATA_DIR=str(work / "data"),
                )
                services = build_services(settings)
                queue = QueueClient.from_connection_string(
                    connection, DEFERRED_QUEUE, message_decode_policy=TextBase64DecodePolicy()
                )
                host = SimulatedHost(
                    workers=args.workers,
                    blob_trigger=lambda path: handlers.index_blob(path, services),
                    queue_trigger=lambda text: handlers.index_deferred(text, services),
                    queue=queue,
                    duplicate_rate=0.05,
                )
                wanted = {
                    document_key(blob_identity(container.get_blob_client(name).url)): content_hash(data)
                    for name, data in images.items()
                }
                calls_before = vision.image_answers(200)
                say(f"delivering {len(images)} events at once to {args.workers} workers; R = {rate:g}/s")
                started = time.monotonic()
                host.start()
                for name in images:
                    host.deliver(f"{container.container_name}/{name}")
                last_report = started
                while True:
                    count = backend.count()
                    if count >= len(images) and host.idle():
                        break
                    if time.monotonic() - started > 40 * len(images) / rate + 300:
                        say("giving up: the burst is not indexed after 40 x N / R")
                        break
                    if time.monotonic() - last_report > 15:
                        say(f"  {count} indexed after {time.monotonic() - started:.0f} s")
                        last_report = time.monotonic()
                    time.sleep(0.5)
                elapsed = time.monotonic() - started
                host.stop()
                stored = backend.keys_with_hashes()
                backend.close()
                ok = vision.image_answers(200) - calls_before
                refused = vision.image_answers(429)
            finally:
                vision.stop()
    finally:
        blob_server.stop()
        queue_server.stop()

    lost = len(set(wanted) - set(stored))
    wrong = sum(1 for k in set(wanted) & set(stored) if stored[k] != wanted[k])
    floor = len(images) / rate
    poisoned = len(host.stats.poisoned) + len(host.stats.poisoned_messages)
    report.add("images N / R (the least time possible)", f"{len(images)} / {rate:g}/s = {floor:.0f} s")
    report.add(
        "time to fully indexed", f"{elapsed:.0f} s = {elapsed / floor:.2f} x N/R ({len(images) / elapsed:.1f}/s)"
    )
    report.add("lost / wrong hash", f"{lost} / {wrong}", "0 / 0", lost == 0 and wrong == 0)
    report.add(
        "poisoned (blob trigger / deferred queue)",
        f"{len(host.stats.poisoned)} / {len(host.stats.poisoned_messages)}",
        "0",
        poisoned == 0,
    )
    report.add("blob-trigger runs / deferred runs", f"{host.stats.blob_runs} / {host.stats.queue_runs}")
    report.add("Vision answers: 200 / 429", f"{ok} / {refused} ({(ok + refused) / len(images):.1f} calls per image)")
    report.print()
    return 0 if lost == 0 and wrong == 0 and poisoned == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
