"""Benchmark 1: backfill throughput against a Vision rate limit.

Set-up, all over real HTTP: N small distinct JPEGs in Azurite; the local vectorizer server
refusing more than R calls a second (429 with ``Retry-After``, as Azure does) and adding
100 ms to every call (like a remote service); the Azure AI Search double. ``backfill`` runs
with the real ``VisionClient`` (paced by a ``RateLimiter`` at R) and ``AzureSearchBackend``.

Printed:
- achieved Vision call rate / R (goal >= 0.9): successful vectorizeImage calls per second of
  the whole backfill (listing and the last upsert included);
- lost documents (blobs missing from the index) and duplicated documents (keys the double
  accepted more than one upload for, counted on the wire by ``IndexingRecorder``): goal 0 both;
  plus documents whose stored content hash differs from the blob's bytes;
- 429 answers the server gave;
- speed-up over a sequential loop (one blob at a time: download, vectorize, upsert one
  document), run on the first M blobs into an index of its own; per-blob rates compared.

The offline model runs one forward pass at a time; if it cannot keep up with R on this
machine, the achieved rate would measure the model, not the pacing. So the model's own
speed is measured first, and R is lowered (and the reason printed) when it cannot sustain R.

Run: ``python bench/bench_backfill_rate.py`` (about 2 minutes) or ``--quick`` (a smoke run).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Report,
    Stopwatch,
    azurite,
    fmt_rate,
    load_offline_model,
    print_header,
    quiet_logs,
    ratio,
    say,
    search_double,
    tiny_jpeg,
    upload_blobs,
    vision_server,
)

# How much of the offline model's measured speed the server may be asked to deliver: the
# same process also answers HTTP, serialises vectors and runs the client and the search
# double, so the model must have headroom over R.
MODEL_HEADROOM = 0.8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with a few blobs (seconds, not minutes)")
    parser.add_argument("--blobs", type=int, default=1000, help="blobs to backfill (default 1000)")
    parser.add_argument(
        "--sequential", type=int, default=100, help="blobs for the sequential baseline, a subset (default 100)"
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="R: Vision calls a second the server allows (default 20, Azure S1)"
    )
    parser.add_argument(
        "--force-rate", action="store_true", help="keep R even if the offline model measured slower than R allows"
    )
    parser.add_argument("--latency-ms", type=float, default=100.0, help="added to every Vision call (default 100)")
    parser.add_argument("--concurrency", type=int, default=8, help="backfill worker threads (default 8)")
    parser.add_argument("--batch-size", type=int, default=100, help="documents per upsert (default 100)")
    args = parser.parse_args(argv)
    if args.quick:
        args.blobs, args.sequential = min(args.blobs, 40), min(args.sequential, 8)
    if args.blobs < 1 or args.sequential < 1 or args.rate <= 0:
        parser.error("--blobs and --sequential must be at least 1 and --rate positive")
    args.sequential = min(args.sequential, args.blobs)
    return args


def model_speed(model, images: list[bytes]) -> float:
    """Images a second of the offline model alone, one at a time (as the server runs it)."""
    model.vectorize_image(images[0])  # warm-up
    with Stopwatch() as sw:
        for image in images:
            model.vectorize_image(image)
    return len(images) / sw.seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs()
    print_header(
        "Benchmark 1: backfill throughput against a rate limit",
        f"{args.blobs} blobs, Azurite -> VisionClient (local server: rate limit R, "
        f"+{args.latency_ms:g} ms a call) -> AzureSearchBackend (search double)",
    )

    from azure.core.credentials import AzureKeyCredential
    from azure.storage.blob import BlobServiceClient

    from indexer.indexing.bulk import RunOptions
    from indexer.indexing.checkpoint import Checkpoint
    from indexer.indexing.pipeline import content_hash, prepare
    from indexer.indexing.run import index_source
    from indexer.keys import blob_identity, document_key
    from indexer.model_versions import OFFLINE_MULTILINGUAL
    from indexer.ratelimit import RateLimiter
    from indexer.schema import load_schema
    from indexer.sources.blob import BlobSource
    from indexer.vectorizers.vision import VisionClient

    report = Report("Benchmark 1 figures")
    blobs = {f"bench/img-{i:05d}.jpg": tiny_jpeg(i) for i in range(args.blobs)}
    say(f"generated {len(blobs)} JPEGs of {min(map(len, blobs.values()))}-{max(map(len, blobs.values()))} bytes")

    model = load_offline_model(OFFLINE_MULTILINGUAL)
    sample = list(blobs.values())[: 10 if args.quick else 40]
    speed = model_speed(model, sample)
    rate = args.rate
    sustainable = math.floor(MODEL_HEADROOM * speed)
    report.add("offline model alone", fmt_rate(speed, " images/s"), "")
    if rate > sustainable and not args.force_rate:
        lowered = max(1, sustainable)
        report.note(
            f"the offline model does {speed:.1f} images/s here (one forward pass at a time); "
            f"R={rate:g}/s would measure the model, not the pacing, so R was lowered to {lowered}/s "
            f"({MODEL_HEADROOM:.0%} of the model's speed). --force-rate keeps R."
        )
        rate = float(lowered)
    say(f"offline model: {speed:.1f} images/s; R = {rate:g} calls/s")

    with (
        azurite() as storage,
        vision_server(rate_limit_per_second=rate, latency_ms=args.latency_ms) as vision,
        search_double(tally=True) as search,
        tempfile.TemporaryDirectory() as work,
    ):
        service = BlobServiceClient.from_connection_string(storage.connection_string)
        container = service.create_container("backfill-bench")
        with Stopwatch() as sw:
            upload_blobs(container, blobs)
        say(f"uploaded {len(blobs)} blobs to Azurite in {sw.seconds:.1f}s")
        source = BlobSource(container)
        schema = load_schema(OFFLINE_MULTILINGUAL)
        credential = AzureKeyCredential(vision.key)

        # --- the baseline: one blob at a time, each written on its own -----------------
        sequential_backend = search.backend("sequential-bench")
        sequential_backend.ensure_index(schema)
        with VisionClient(
            vision.url, credential, model_version=OFFLINE_MULTILINGUAL, rate_limiter=RateLimiter(rate)
        ) as client:
            pin = sequential_backend.get_pin()
            items = [item for _, item in zip(range(args.sequential), source.list_items(), strict=False)]
            with Stopwatch() as sequential:
                for item in items:
                    prepared = prepare(item, client, pin)  # download, hash, vectorize
                    if prepared.document is None:
                        raise RuntimeError(f"sequential baseline: {item.source}: {prepared.outcome.reason}")
                    result = sequential_backend.upsert([prepared.document])
                    if not result.ok:
                        raise RuntimeError(f"sequential baseline: the index refused {item.key}: {result.failed}")
        sequential_rate = len(items) / sequential.seconds
        say(f"sequential baseline: {len(items)} blobs in {sequential.seconds:.1f}s ({sequential_rate:.2f}/s)")
        calls_before = vision.image_calls(200)
        refused_before = vision.image_calls(429)

        # --- the backfill -----------------------------------------------------------------
        backend = search.backend("backfill-bench")
        backend.ensure_index(schema)
        with VisionClient(
            vision.url, credential, model_version=OFFLINE_MULTILINGUAL, rate_limiter=RateLimiter(rate)
        ) as client:
            # Paced once, by the client's limiter (which also backs off for everyone on a
            # 429); giving backfill a rate_limiter too would take two tokens per call.
            say(f"backfilling {len(blobs)} blobs at R={rate:g}/s, concurrency {args.concurrency} ...")
            summary = index_source(
                source,
                vectorizer=client,
                backend=backend,
                checkpoint=Checkpoint(Path(work) / "checkpoint.json"),
                options=RunOptions(concurrency=args.concurrency, batch_size=args.batch_size),
            )
        elapsed = summary.elapsed_seconds
        calls = vision.image_calls(200) - calls_before
        refused = vision.image_calls(429) - refused_before
        say(f"backfill: indexed {summary.indexed}, failed {len(summary.failed)} in {elapsed:.1f}s")

        # --- what the index holds ---------------------------------------------------------
        expected = {
            document_key(blob_identity(container.get_blob_client(name).url)): content_hash(data)
            for name, data in blobs.items()
        }
        stored = backend.keys_with_hashes()
        count = backend.count()
        lost = sorted(set(expected) - set(stored))
        extra = sorted(set(stored) - set(expected))
        wrong = sorted(k for k in set(expected) & set(stored) if stored[k] != expected[k])
        uploads = search.tally.uploads_per_key("backfill-bench") if search.tally else {}
        duplicated = sorted(k for k, n in uploads.items() if n > 1)
        never_uploaded = sorted(set(expected) - set(uploads))

    achieved = calls / elapsed
    per_blob = len(blobs) / elapsed
    report.add("R (server's limit = client's pace)", fmt_rate(rate, " calls/s"))
    report.add("backfill wall time", f"{elapsed:.1f} s ({len(blobs)} blobs)")
    report.add("achieved Vision call rate", fmt_rate(achieved, " calls/s"))
    report.add("achieved / R", f"{achieved / rate:.3f}", ">= 0.9", achieved / rate >= 0.9)
    report.add("lost documents", f"{len(lost)} (index count {count}, blobs {len(blobs)})", "0", not lost)
    report.add(
        "duplicated documents", f"{len(duplicated)} (uploads accepted {sum(uploads.values())})", "0", not duplicated
    )
    report.add(
        "documents with a wrong hash / unknown key", f"{len(wrong)} / {len(extra)}", "0 / 0", not wrong and not extra
    )
    report.add("429 answers from the server", str(refused))
    report.add("failed items reported by backfill", str(len(summary.failed)), "0", not summary.failed)
    report.add(
        f"sequential loop ({len(items)} blobs)", f"{fmt_rate(sequential_rate, ' blobs/s')} ({sequential.seconds:.1f} s)"
    )
    report.add("backfill", fmt_rate(per_blob, " blobs/s"))
    report.add("speed-up over sequential", f"{ratio(per_blob, sequential_rate):.1f}x")
    report.note(
        f"the sequential baseline ran on the first {len(items)} of the {len(blobs)} blobs; "
        f"the speed-up compares per-blob rates (blobs/s), not totals"
    )
    report.note(
        f"each blob: download from Azurite, one vectorizeImage call (+{args.latency_ms:g} ms), "
        f"upsert; backfill batches {args.batch_size} documents per upsert"
    )
    if never_uploaded and not lost:
        report.note(f"{len(never_uploaded)} documents were in the index but not seen on the wire (tally gap)")
    for key in (lost + duplicated)[:5]:
        report.note(f"example problem key: {key}")
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
