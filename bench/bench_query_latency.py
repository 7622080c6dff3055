"""Benchmark 3: query latency and memory of the numpy fallback index (``NumpyIndex``).

For each index size (10k, 100k, 1M documents by default) it builds two indexes on disk:

* one pinned to Azure's ``2023-04-15`` schema (1024 dimensions), searched with
  ``indexer.query.search_vector``;
* one pinned to the offline multilingual model's schema (``local-conse-usem3-v1``,
  512 dimensions), searched with ``indexer.query.search_text`` through the real
  ``OfflineVectorizer`` (so the figure includes the text encoder, whose cost is also
  printed on its own).

and prints p50 / p99 latency, the resident memory the loaded index adds per document (RSS
delta / N from /proc/self/status, split into anonymous memory and mapped file pages), and
the ratio of ``search_vector`` to the bare numpy baseline: one matrix-vector product plus
``argpartition`` over the very same vector array the index holds. Goal: ratio <= 1.5.

How it keeps the comparison fair:

* each index is built by a child process, then measured by a fresh child process, so the
  RSS delta is the index's own and not the builder's left-overs;
* both sides run in the same process with the same BLAS thread count (``--threads``,
  default 1: the machine has 2 cores shared with other work, and one memory-bound
  matrix-vector product gains little from a second thread); queries alternate which side
  runs first, so load from other processes falls on both alike;
* every timed query of the index is checked to return the same top-k as the baseline.

The stored vectors are random (uniform, then L2-normalised by the index) and the queries are
stored vectors plus noise; the text queries are the strings of samples/queries.json. With
random vectors the text rankings mean nothing: only the cost is measured.

Run: ``python bench/bench_query_latency.py`` (about 6-9 minutes on 2 cores, ~10 GB of RAM
at peak while the 1M index is built, ~7 GB of temporary disk), or ``--quick`` (seconds).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO_ROOT as ROOT  # noqa: E402
from common import Report, percentile, print_header

VECTOR_MODEL = "2023-04-15"  # Azure's multilingual schema: 1024 dimensions
TEXT_MODEL = "local-conse-usem3-v1"  # the offline stand-in's schema: 512 dimensions
INDEX_NAME = "bench"
GOAL_RATIO = 1.5
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 20_000)
_RESULT_MARK = "@@RESULT "


# --------------------------------------------------------------------------- small helpers


def memory_status() -> dict[str, int]:
    """This process's resident memory in bytes: total, anonymous, file-backed (mapped files)."""
    fields = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}
    found: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in fields:
                found[fields[name]] = int(rest.split()[0]) * 1024
    except OSError:  # pragma: no cover - not on Linux: the peak is the best we have
        import resource

        found["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return found


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.environ.get("OPENBLAS_NUM_THREADS", "?") + " (from OPENBLAS_NUM_THREADS)"
    pools = [
        f"{p.get('internal_api')}={p.get('num_threads')}" for p in threadpool_info() if p.get("user_api") == "blas"
    ]
    return ", ".join(pools) or "no BLAS found"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def per_doc(value: float) -> str:
    return f"{value:,.0f} B"


# --------------------------------------------------------------------------- building


def _fields(i: int, model_version: str) -> dict:
    """Metadata like what the pipeline stores for a blob (so memory per document is honest)."""
    return {
        "source": f"https://photos.blob.core.windows.net/images/2024/album-{i // 1000:04d}/IMG_{i:07d}.jpg",
        "container": "images",
        "blob_path": f"2024/album-{i // 1000:04d}/IMG_{i:07d}.jpg",
        "file_name": f"IMG_{i:07d}.jpg",
        "content_type": "image/jpeg",
        "size_bytes": 2_000_000 + i,
        "width": 4000,
        "height": 3000,
        "content_hash": f"{i * 2654435761 % 2**64:064x}",
        "model_version": model_version,
    }


def build_index(directory: Path, model_version: str, n: int, *, seed: int) -> dict:
    """Create ``directory/bench`` with ``n`` random documents in ONE upsert (one segment:
    the layout a compacted index has, and the same array the baseline reads)."""
    import numpy as np

    from indexer.backends.numpy_index import NumpyIndex
    from indexer.documents import Document, Embedding
    from indexer.schema import load_schema

    schema = load_schema(model_version)
    dims = schema.pin.dimensions
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    vectors = np.empty((n, dims), dtype=np.float32)
    for start in range(0, n, 65_536):  # in chunks: no float64 temporaries of the whole matrix
        block = vectors[start : start + 65_536]
        rng.random(block.shape, dtype=np.float32, out=block)
        block -= 0.5
    documents = [
        Document(f"doc-{i:08d}", Embedding(vectors[i], model_version), _fields(i, model_version)) for i in range(n)
    ]
    generated = time.perf_counter()
    index = NumpyIndex(directory, INDEX_NAME)
    index.ensure_index(schema)
    result = index.upsert(documents)
    written = time.perf_counter()
    if result.failed or index.count() != n:
        raise RuntimeError(f"building the {n:,}-document index failed: {list(result.failed.items())[:3]}")
    disk = sum(p.stat().st_size for p in (directory / INDEX_NAME).rglob("*") if p.is_file())
    return {
        "model_version": model_version,
        "n": n,
        "dims": dims,
        "generate_s": generated - started,
        "upsert_s": written - generated,
        "disk_bytes": disk,
    }


# --------------------------------------------------------------------------- measuring


def _bare_top_k(matrix, query, k: int):
    """The baseline: what any numpy user writes for exact cosine top-k over unit rows."""
    import numpy as np

    scores = matrix @ query
    n = scores.shape[0]
    if k >= n:
        return np.argsort(-scores)
    top = np.argpartition(scores, n - k)[n - k :]
    return top[np.argsort(-scores[top])]


def _open_and_load(directory: Path, first_query):
    """Open the index and run the first query (which loads it); RSS before and after."""
    from indexer.backends.numpy_index import NumpyIndex

    gc.collect()
    before = memory_status()
    started = time.perf_counter()
    index = NumpyIndex(directory, INDEX_NAME)
    first_query(index)
    load_s = time.perf_counter() - started
    gc.collect()
    after = memory_status()
    state = index._current()  # the loaded state, to hand the baseline the very same array
    if len(state.segments) != 1:
        raise RuntimeError(f"expected one segment, found {len(state.segments)}")
    return index, state.segments[0], before, after, load_s


def _memory_figures(before: dict, after: dict, n: int) -> dict:
    return {f"{kind}_per_doc": (after.get(kind, 0) - before.get(kind, 0)) / n for kind in ("rss", "anon", "file")}


def measure_vectors(directory: Path, n: int, *, queries: int, k: int, seed: int) -> dict:
    """search_vector through NumpyIndex against the bare baseline over the same array."""
    import numpy as np

    from indexer.documents import Embedding
    from indexer.query import search_vector

    rng = np.random.default_rng(seed + 1)

    def first(index):
        search_vector(Embedding(rng.random(1024, dtype=np.float32) - 0.5, VECTOR_MODEL), backend=index, k=k)

    index, segment, before, after, load_s = _open_and_load(directory, first)
    matrix = segment.vectors
    dims = matrix.shape[1]
    # Queries near stored documents, so each has a real best match (as an image query would).
    rows = rng.integers(0, n, size=queries + 3)
    noise = (rng.standard_normal((queries + 3, dims)) * 0.02).astype(np.float32)
    query_vectors = np.asarray(matrix[rows], dtype=np.float32) + noise
    query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
    index_times, bare_times, mismatches = [], [], 0
    for i, query in enumerate(query_vectors):
        embedding = Embedding(query, VECTOR_MODEL)
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for side in order:
            started = time.perf_counter()
            if side == 0:
                hits = search_vector(embedding, backend=index, k=k)
            else:
                top = _bare_top_k(matrix, query, k)
            elapsed = time.perf_counter() - started
            if i >= 3:  # the first three of each side warm caches and code paths
                (index_times if side == 0 else bare_times).append(elapsed)
        if [h.key for h in hits] != [segment.keys[j] for j in top]:
            mismatches += 1
    return {
        "n": n,
        "dims": dims,
        "load_s": load_s,
        "queries": len(index_times),
        "blas_threads": blas_threads(),
        "search_p50": percentile(index_times, 50),
        "search_p99": percentile(index_times, 99),
        "bare_p50": percentile(bare_times, 50),
        "bare_p99": percentile(bare_times, 99),
        "mismatches": mismatches,
        **_memory_figures(before, after, n),
    }


def measure_text(directory: Path, n: int, *, queries: int, k: int) -> dict:
    """search_text with the real offline vectorizer (text encoder included), its encoder
    alone, and the bare baseline over the same 512-d array."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from indexer.query import search_text
    from indexer.vectorizers.offline import get_offline_vectorizer

    texts = [q["text"] for q in json.loads((ROOT / "samples" / "queries.json").read_text("utf-8"))]
    load_started = time.perf_counter()
    vectorizer = get_offline_vectorizer(TEXT_MODEL)
    vectorizer_load_s = time.perf_counter() - load_started
    vectorizer.vectorize_text("warm up the encoder")

    index, segment, before, after, load_s = _open_and_load(
        directory, lambda index: search_text("a first query", vectorizer=vectorizer, backend=index, k=k)
    )
    matrix = segment.vectors
    text_times, encode_times, bare_times = [], [], []
    for i in range(queries + 3):
        text = texts[i % len(texts)]
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for side in order:
            if side == 0:
                started = time.perf_counter()
                search_text(text, vectorizer=vectorizer, backend=index, k=k)
                elapsed = (time.perf_counter() - started,)
            else:
                started = time.perf_counter()
                vector = vectorizer.vectorize_text(text).vector
                encoded = time.perf_counter()
                _bare_top_k(matrix, vector, k)
                elapsed = (encoded - started, time.perf_counter() - encoded)
            if i >= 3:
                if side == 0:
                    text_times.append(elapsed[0])
                else:
                    encode_times.append(elapsed[0])
                    bare_times.append(elapsed[1])
    combined = [a + b for a, b in zip(encode_times, bare_times, strict=False)]
    return {
        "n": n,
        "dims": matrix.shape[1],
        "load_s": load_s,
        "vectorizer_load_s": vectorizer_load_s,
        "queries": len(text_times),
        "blas_threads": blas_threads(),
        "text_p50": percentile(text_times, 50),
        "text_p99": percentile(text_times, 99),
        "encode_p50": percentile(encode_times, 50),
        "encode_p99": percentile(encode_times, 99),
        "bare_p50": percentile(bare_times, 50),
        "encode_bare_p50": percentile(combined, 50),
        **_memory_figures(before, after, n),
    }


# --------------------------------------------------------------------------- orchestration


def _run_worker(args: list[str], *, threads: int) -> dict:
    """Run this script as a child process (fresh memory) and return its JSON result."""
    env = dict(os.environ)  # OPENBLAS_CORETYPE and the rest pass through untouched
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    env.setdefault("HF_HUB_OFFLINE", "1")
    completed = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", *args],
        env=env,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    for line in completed.stdout.splitlines():
        if line.startswith(_RESULT_MARK):
            return json.loads(line[len(_RESULT_MARK) :])
    raise RuntimeError(f"worker {args[0]} printed no result:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")


def _worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_query_latency --worker")
    parser.add_argument("task", choices=("build", "vectors", "text"))
    parser.add_argument("directory", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("--model-version", default=VECTOR_MODEL)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.task == "build":
        result = build_index(args.directory, args.model_version, args.n, seed=args.seed)
    elif args.task == "vectors":
        result = measure_vectors(args.directory, args.n, queries=args.queries, k=args.k, seed=args.seed)
    else:
        result = measure_text(args.directory, args.n, queries=args.queries, k=args.k)
    print(_RESULT_MARK + json.dumps(result), flush=True)
    return 0


def _queries_for(n: int, quick: bool) -> int:
    if quick:
        return 20
    return 400 if n <= 10_000 else 150 if n <= 100_000 else 50


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return _worker(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2k and 20k documents, 20 queries each")
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        help="comma-separated document counts (default 10000,100000,1000000)",
    )
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for both sides (default 1)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--no-text", action="store_true", help="skip search_text (no offline model needed)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the indexes (default: temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)

    print_header(
        "Benchmark 3: query latency of the numpy fallback (NumpyIndex)",
        f"p50/p99 of search_vector ({VECTOR_MODEL} schema, 1024-d) and search_text ({TEXT_MODEL} schema, "
        f"512-d, real OfflineVectorizer{', skipped' if args.no_text else ''}) at "
        f"{', '.join(f'{n:,}' for n in sizes)} documents, RSS per document, and the ratio to a bare numpy "
        f"matrix-vector product + argpartition over the same array; BLAS threads {args.threads} on both "
        f"sides, k={args.k}",
    )
    started = time.perf_counter()
    results: list[dict] = []
    base = Path(tempfile.mkdtemp(prefix="bench-query-", dir=args.workdir))
    try:
        for n in sizes:
            queries = _queries_for(n, args.quick)
            row: dict = {"n": n}
            vec_dir = base / f"v{n}"
            row["build_vectors"] = _run_worker(
                ["build", str(vec_dir), str(n), "--model-version", VECTOR_MODEL], threads=args.threads
            )
            row["vectors"] = _run_worker(
                ["vectors", str(vec_dir), str(n), "--queries", str(queries), "--k", str(args.k)], threads=args.threads
            )
            shutil.rmtree(vec_dir, ignore_errors=True)
            _print_vector_row(row)
            if not args.no_text:
                text_dir = base / f"t{n}"
                row["build_text"] = _run_worker(
                    ["build", str(text_dir), str(n), "--model-version", TEXT_MODEL, "--seed", "1"], threads=args.threads
                )
                row["text"] = _run_worker(
                    ["text", str(text_dir), str(n), "--queries", str(min(queries, 100)), "--k", str(args.k)],
                    threads=args.threads,
                )
                shutil.rmtree(text_dir, ignore_errors=True)
                _print_text_row(row)
            results.append(row)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    _print_summary(results, args)
    print(f"  total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "results": results}, indent=1))
    return 0


def _print_vector_row(row: dict) -> None:
    v, b = row["vectors"], row["build_vectors"]
    print(
        f"\n-- {row['n']:,} documents, {v['dims']}-d (built in {b['generate_s'] + b['upsert_s']:.1f} s: "
        f"one upsert {b['upsert_s']:.1f} s; {b['disk_bytes'] / row['n']:,.0f} B/doc on disk; "
        f"open + first query {v['load_s']:.2f} s; BLAS {v['blas_threads']})"
    )
    print(
        f"   search_vector  p50 {ms(v['search_p50'])} ms  p99 {ms(v['search_p99'])} ms   "
        f"bare numpy p50 {ms(v['bare_p50'])} ms  p99 {ms(v['bare_p99'])} ms   "
        f"ratio p50 {v['search_p50'] / v['bare_p50']:.2f}  ({v['queries']} queries, "
        f"{v['mismatches']} top-k mismatches)"
    )
    print(
        f"   RSS per document {per_doc(v['rss_per_doc'])} (anonymous {per_doc(v['anon_per_doc'])}, "
        f"mapped vector file {per_doc(v['file_per_doc'])}; the vector alone is {v['dims'] * 4:,} B)"
    )


def _print_text_row(row: dict) -> None:
    t = row["text"]
    print(
        f"   search_text ({t['dims']}-d) p50 {ms(t['text_p50'])} ms  p99 {ms(t['text_p99'])} ms   "
        f"of which encoder p50 {ms(t['encode_p50'])} ms (p99 {ms(t['encode_p99'])})   "
        f"encoder + bare numpy p50 {ms(t['encode_bare_p50'])} ms   ratio p50 "
        f"{t['text_p50'] / t['encode_bare_p50']:.2f}  ({t['queries']} queries; RSS/doc "
        f"{per_doc(t['rss_per_doc'])})"
    )


def _print_summary(results: list[dict], args) -> None:
    report = Report("Benchmark 3 figures (ms; ratio = NumpyIndex p50 / bare numpy p50 over the same array)")
    for row in results:
        v, n = row["vectors"], row["n"]
        ratio = v["search_p50"] / v["bare_p50"]
        is_goal = n == results[-1]["n"]
        report.add(f"{n:,} docs: search_vector p50 / p99", f"{ms(v['search_p50'])} / {ms(v['search_p99'])}")
        report.add(f"{n:,} docs: bare numpy p50 / p99", f"{ms(v['bare_p50'])} / {ms(v['bare_p99'])}")
        report.add(
            f"{n:,} docs: ratio p50",
            f"{ratio:.2f}",
            f"<= {GOAL_RATIO}" if is_goal else "",
            ratio <= GOAL_RATIO if is_goal else None,
        )
        report.add(
            f"{n:,} docs: RSS per document (1024-d)",
            f"{per_doc(v['rss_per_doc'])} (anon {per_doc(v['anon_per_doc'])}, file {per_doc(v['file_per_doc'])})",
        )
        if "text" in row:
            t = row["text"]
            report.add(f"{n:,} docs: search_text p50 / p99 (512-d)", f"{ms(t['text_p50'])} / {ms(t['text_p99'])}")
            report.add(f"{n:,} docs: text encoder alone p50 / p99", f"{ms(t['encode_p50'])} / {ms(t['encode_p99'])}")
            report.add(f"{n:,} docs: search_text / (encoder + bare) p50", f"{t['text_p50'] / t['encode_bare_p50']:.2f}")
        mismatches = v["mismatches"]
        if mismatches:
            report.note(f"{n:,} docs: {mismatches} queries where NumpyIndex and the baseline disagreed on the top-k")
    report.note("the goal applies to the largest size; smaller sizes are shown for the trend")
    report.note(
        "stored vectors are random, queries are stored vectors plus noise (search_vector) or the strings "
        "of samples/queries.json (search_text)"
    )
    report.print()
    largest = results[-1]
    ratio = largest["vectors"]["search_p50"] / largest["vectors"]["bare_p50"]
    print(
        f"GOAL search_vector / bare numpy at {largest['n']:,} documents: p50 ratio {ratio:.2f} "
        f"(goal <= {GOAL_RATIO}): {'PASS' if ratio <= GOAL_RATIO else 'FAIL'}"
    )


if __name__ == "__main__":
    sys.exit(main())
