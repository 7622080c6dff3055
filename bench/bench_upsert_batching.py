"""Benchmark 2: documents a second into the index, batched versus one document per request.

Documents are pinned to Azure's multilingual model (schema ``2023-04-15``, 1024 dimensions):
random unit vectors tagged ``model_version=2023-04-15`` with the metadata a blob gives. They
go into the Azure AI Search double through ``AzureSearchBackend`` (the real SDK pipeline over
HTTP): one ``upsert`` of N documents per call versus one ``upsert`` per document. Goal:
batched >= 10x the single-document rate. The numpy ``NumpyIndex`` is measured the same way,
for reference (each of its writes is a committed, fsynced segment).

Each mode writes into a fresh index of its own, and each index's document count is checked
afterwards, so a fast mode that dropped documents cannot pass unnoticed. Every round runs
every mode once and the median of three rounds is printed, so load from other work on a
shared machine falls on all modes alike.

The goal is judged on loopback HTTP, where a request costs the client and the double only
a millisecond or two. A second double adds a 10 ms round trip to every request
(``--rtt-ms``), what any real network hop to Azure AI Search costs; it is printed beside
the loopback figures, not instead of them. The printed split of a single-document write into
"one request" and "one document" shows the ceiling of batching: (request + document) /
document.

Run: ``python bench/bench_upsert_batching.py`` (about half a minute) or ``--quick``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import Report, Stopwatch, fmt_rate, print_header, quiet_logs, ratio, say, search_double  # noqa: E402

MODEL_VERSION = "2023-04-15"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with few documents")
    parser.add_argument(
        "--docs", type=int, default=2000, help="documents written in each batched mode, per round (default 2000)"
    )
    parser.add_argument(
        "--single",
        type=int,
        default=200,
        help="documents written one per request, per round (default 200; rates are per document)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median rate is reported (default 3)")
    parser.add_argument(
        "--batch-sizes",
        default="100,1000",
        help="comma-separated N of the batched modes (default 100,1000: the bulk "
        "indexer's batch and the service's maximum)",
    )
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=10.0,
        help="also measure the search double with this round trip added to every request "
        "(default 10, a client near the service; 0 skips it)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.docs, args.single, args.rounds = min(args.docs, 200), min(args.single, 20), 1
    try:
        args.batch_sizes = [int(n) for n in args.batch_sizes.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--batch-sizes must be whole numbers separated by commas, got {args.batch_sizes!r}")
    if (
        not args.batch_sizes
        or min(args.batch_sizes) < 1
        or args.docs < 1
        or args.single < 1
        or args.rounds < 1
        or args.rtt_ms < 0
    ):
        parser.error("--docs, --single, --rounds and every batch size must be at least 1, --rtt-ms not negative")
    return args


def make_documents(count: int, dimensions: int, *, prefix: str, seed: int) -> list:
    """``count`` documents with random unit vectors and the metadata fields a blob gives."""
    from indexer.documents import Document, Embedding
    from indexer.keys import blob_identity, document_key

    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, dimensions)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    documents = []
    for i in range(count):
        name = f"{prefix}/photo-{i:06d}.jpg"
        fields = {
            "source": f"https://account.blob.core.windows.net/images/{name}",
            "container": "images",
            "blob_path": name,
            "file_name": name.rsplit("/", 1)[-1],
            "tags": ["bench", f"group-{i % 10}"],
            "content_type": "image/jpeg",
            "size_bytes": int(rng.integers(50_000, 5_000_000)),
            "width": 1024,
            "height": 768,
            "last_modified": "2024-05-01T12:00:00.000Z",
            "content_hash": f"sha256:{i:064x}",
            "model_version": MODEL_VERSION,
            "indexed_at": "2024-05-01T12:00:01.000Z",
        }
        documents.append(
            Document(
                document_key(blob_identity(f"https://bench.blob.core.windows.net/images/{name}")),
                Embedding(vectors[i], MODEL_VERSION),
                fields,
            )
        )
    return documents


def write(backend, documents: list, batch_size: int) -> float:
    """Seconds to upsert ``documents`` in calls of ``batch_size``; every document must land."""
    with Stopwatch() as sw:
        for start in range(0, len(documents), batch_size):
            result = backend.upsert(documents[start : start + batch_size])
            if not result.ok:
                raise RuntimeError(
                    f"{backend!r} refused {len(result.failed)} documents, e.g. {next(iter(result.failed.items()))}"
                )
    return sw.seconds


def measure_round(make_backend, label: str, round_number: int, args: argparse.Namespace, schema) -> dict[int, float]:
    """docs/s of the single mode (key 1) and of each batch size, each into a fresh index."""
    rates: dict[int, float] = {}
    plan = [(1, args.single)] + [(n, args.docs) for n in args.batch_sizes]
    for mode, (batch_size, count) in enumerate(plan):
        name = re.sub(r"[^a-z0-9]+", "-", f"bench-{label.lower()}-{batch_size}-r{round_number}")
        backend = make_backend(name)
        backend.ensure_index(schema)
        backend.get_pin()  # the definition read and the connection open happen before timing
        documents = make_documents(count, schema.pin.dimensions, prefix=f"{label}-{batch_size}", seed=mode)
        seconds = write(backend, documents, batch_size)
        stored = backend.count()
        if stored != count:
            raise RuntimeError(f"{label} batch {batch_size}: wrote {count} documents, the index holds {stored}")
        rates[batch_size] = count / seconds
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    return rates


def measure(targets: list[tuple[str, object]], args: argparse.Namespace, schema) -> dict[str, dict[int, float]]:
    """Median docs/s per target and mode over ``args.rounds`` rounds. Every round runs every
    target and mode once, so load from other work on the machine falls on all of them alike."""
    samples: dict[str, dict[int, list[float]]] = {label: {} for label, _ in targets}
    for round_number in range(args.rounds):
        for label, make_backend in targets:
            for size, rate in measure_round(make_backend, label, round_number, args, schema).items():
                samples[label].setdefault(size, []).append(rate)
        say(
            f"round {round_number + 1} of {args.rounds}: "
            + "; ".join(
                f"{label} " + " ".join(f"{'single' if n == 1 else n}={rates[-1]:.0f}/s" for n, rates in by_size.items())
                for label, by_size in samples.items()
            )
        )
    return {
        label: {size: statistics.median(rates) for size, rates in by_size.items()} for label, by_size in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs()
    print_header(
        "Benchmark 2: upsert batching",
        f"documents/s, {MODEL_VERSION} schema (1024-d): batches of {args.batch_sizes} versus one "
        f"document per request; AzureSearchBackend -> search double, and NumpyIndex (numpy); "
        f"median of {args.rounds} rounds",
    )
    from indexer.backends.numpy_index import NumpyIndex
    from indexer.schema import load_schema

    schema = load_schema(MODEL_VERSION)
    report = Report("Benchmark 2 figures")
    with contextlib.ExitStack() as stack:
        loopback = stack.enter_context(search_double())
        targets: list[tuple[str, object]] = [("Azure", loopback.backend)]
        if args.rtt_ms > 0:
            remote_double = stack.enter_context(search_double(latency_ms=args.rtt_ms))
            targets.append((f"Azure+{args.rtt_ms:g}ms", remote_double.backend))
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        targets.append(("Local", lambda name: NumpyIndex(directory, name)))
        medians = measure(targets, args, schema)
    azure = medians["Azure"]
    remote = medians.get(f"Azure+{args.rtt_ms:g}ms", {})
    local = medians["Local"]

    first = args.batch_sizes[0]
    rows = [
        ("AzureSearchBackend -> search double (loopback)", azure, True),
        (f"same, +{args.rtt_ms:g} ms round trip a request", remote, False),
        ("NumpyIndex (numpy, on disk)", local, False),
    ]
    for label, rates, is_goal in rows:
        if not rates:
            continue
        report.add(f"{label}: one document per request", fmt_rate(rates[1], " docs/s"))
        for n in args.batch_sizes:
            speedup = ratio(rates[n], rates[1])
            report.add(
                f"{label}: batches of {n}",
                f"{fmt_rate(rates[n], ' docs/s')} = {speedup:.1f}x single",
                ">= 10x" if is_goal else "",
                speedup >= 10 if is_goal else None,
            )
    # Where a single-document write's time goes (loopback): t1 = request + document, and in
    # batches of N a document costs document + request / N. Solved for the two parts.
    t1, tn = 1 / azure[1], 1 / azure[first]
    request = (t1 - tn) / (1 - 1 / first) if first > 1 else float("nan")
    report.add(
        "loopback: cost of one request / of one document", f"{request * 1000:.2f} ms / {(t1 - request) * 1000:.2f} ms"
    )
    report.note(
        f"per round: single mode {args.single} documents, batched modes {args.docs} each, every mode into "
        f"a fresh index; rates are per document (medians of {args.rounds} rounds)"
    )
    report.note(
        "the goal is judged on loopback, where a request costs only a few ms; batching cannot beat "
        "(request + document) / document. Most of a document's cost is client-side: turning 1024 "
        "float32s into JSON text (AzureSearchBackend._upload_action) and parsing them again in the double)"
    )
    if remote:
        report.note(
            f"the +{args.rtt_ms:g} ms run shows the same code against a service a network hop away, "
            f"where Azure AI Search always is"
        )
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
