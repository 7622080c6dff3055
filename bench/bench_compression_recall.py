"""Benchmark 10: recall@10 of the vector compressions (SEARCH_VECTOR_COMPRESSION), and their bytes.

For ``none``, ``scalar`` (int8) and ``binary`` (1 bit) the benchmark finds each query's top 10
over the compressed vectors, takes 1x, 2x and 4x that many candidates and rescores them with the
full-precision vectors, and compares the result with exact cosine search (brute-force top 10
over the full-precision vectors): recall@10. The compressions are modelled in numpy as Microsoft
documents them (``bench/quantization.py`` says exactly how); Azure AI Search itself is not
reachable from here. Candidates are found by brute force over the compressed vectors, not by
HNSW, so the figures are the quantization's loss alone; HNSW's own approximation comes on top.

Two corpora:

* the offline model's vectors (``local-conse-usem3-v1``: EfficientNet-Lite0 + ConSE over the
  multilingual sentence encoder, 512 dimensions) of ``--images`` pictures made from the photos in
  samples/ (random crops, flips, colour and brightness jitter, blends of two photos), queried by
  the text queries of samples/queries.json and by ``--queries`` held-out pictures made the same
  way. The pictures go from memory straight into the vectorizer's classifier
  (``classifier.preprocess`` / ``predict``, then ``conse_vectors`` over its
  ``label_embeddings``: what ``vectorize_images`` does after decoding a JPEG), so there is no
  JPEG round trip. Their vectors are cached under ``--cache-dir`` (default
  ``$IMGSEARCH_DATA_DIR/bench-cache``, i.e. ``.imgsearch/bench-cache``), keyed by model version,
  corpus size, query count and generator version: a second run takes seconds.
* random unit vectors of 1,024 dimensions (``--images`` of them, ``--queries`` queries): the
  worst case, with no structure for the quantization to keep.

It prints the recommended default by the rule in ``recommend``. The first run computes
``--images`` + ``--queries`` model vectors at about 30 pictures/s on torch's default one thread:
28 minutes for the default 51,000 on an idle machine, 34 on a busy one (run_all timeout: 4800 s).
Later runs take about a minute. ``--quick`` is a smoke run (1,000 pictures, 50 queries).

Run: ``python bench/bench_compression_recall.py [--images N] [--queries N] [--cache-dir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import REPO_ROOT, Report, Stopwatch, print_header, say  # noqa: E402
from quantization import (  # noqa: E402
    ScalarQuantizer,
    bytes_per_vector,
    recall_at_k,
    rescore,
    signs,
    top_k,
)

SAMPLES = REPO_ROOT / "samples"
K = 10
OVERSAMPLINGS = (1, 2, 4, 10)  # 10x: beyond the rule's reach, to show what binary would need
AZURE_DIMENSIONS = 1024
MODEL_VERSION = "local-conse-usem3-v1"  # the default offline model (stands in for 2023-04-15)
# Bump when the picture generator changes: the cached vectors would no longer be its output.
GENERATOR_VERSION = 1
SOURCE_SIDE = 320  # the photos are decoded once to this shorter side; variations are cut from them
BATCH = 16  # pictures per forward pass, as OfflineVectorizer.vectorize_images
CACHE_BLOCK = 5_000  # pictures per cache file
QUERY_CHUNK = 200  # queries scored at once: a (200, N) float32 block and its argsort
# The recommendation rule (see ``recommend``).
TARGET_RECALL = 0.99
MAX_OVERSAMPLING = 4
# recall (or shortfall) per row label, per query set
Rows = dict[str, dict[str, float]]


# --------------------------------------------------------------------------- pictures


def load_photos() -> list[np.ndarray]:
    """The photos of samples/manifest.json as RGB uint8 arrays, shorter side SOURCE_SIDE."""
    from PIL import Image

    photos = []
    for entry in json.loads((SAMPLES / "manifest.json").read_text(encoding="utf-8")):
        with Image.open(SAMPLES / entry["file"]) as image:
            image = image.convert("RGB")
            scale = SOURCE_SIDE / min(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            photos.append(np.asarray(image.resize(size, Image.Resampling.BICUBIC)))
    return photos


def _random_crop(rng: np.random.Generator, photo: np.ndarray, side: int) -> np.ndarray:
    """A crop of 30-100 % of the photo's area, aspect 3:4 to 4:3, resized to side x side."""
    from PIL import Image

    height, width = photo.shape[:2]
    area = rng.uniform(0.3, 1.0) * width * height
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    crop_w = int(min(width, round(np.sqrt(area * aspect))))
    crop_h = int(min(height, round(np.sqrt(area / aspect))))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    box = (left, top, left + crop_w, top + crop_h)
    return np.asarray(Image.fromarray(photo).resize((side, side), Image.Resampling.BILINEAR, box=box))


def variation(photos: list[np.ndarray], seed: int, side: int) -> np.ndarray:
    """Picture number ``seed``: a random crop of a random photo, flipped half the time, blended
    with a crop of another photo a third of the time, with per-channel colour and overall
    brightness jitter and a little noise. Deterministic in ``seed``."""
    rng = np.random.default_rng([GENERATOR_VERSION, seed])
    first = int(rng.integers(len(photos)))
    picture = _random_crop(rng, photos[first], side).astype(np.float32)
    if rng.random() < 0.5:
        picture = picture[:, ::-1]
    if rng.random() < 1 / 3:
        other = (first + 1 + int(rng.integers(len(photos) - 1))) % len(photos)
        weight = rng.uniform(0.5, 0.8)  # the first photo stays the larger part
        picture = weight * picture + (1 - weight) * _random_crop(rng, photos[other], side)
    picture = picture * rng.uniform(0.8, 1.2, size=3) * rng.uniform(0.7, 1.3)
    picture = picture + rng.normal(0.0, rng.uniform(0.0, 8.0), size=picture.shape)
    return np.clip(picture, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- vectors


def default_cache_dir() -> Path:
    return Path(os.environ.get("IMGSEARCH_DATA_DIR", ".imgsearch")) / "bench-cache"


def picture_vectors(vectorizer, photos: list[np.ndarray], seeds: range, label: str) -> np.ndarray:
    """The offline model's vectors of pictures ``seeds``, made in memory and run through the
    vectorizer's own classifier and ConSE mix in batches; the next batch is made in a second
    thread while the model runs (torch keeps its default of half the cores)."""
    from PIL import Image

    from indexer.vectorizers.offline.conse import conse_vectors

    classifier = vectorizer.classifier
    labels = vectorizer.label_embeddings
    side = classifier.decode_side

    def batch(start: int) -> np.ndarray:
        return np.stack(
            [
                classifier.preprocess(Image.fromarray(variation(photos, seed, side)))
                for seed in seeds[start : start + BATCH]
            ]
        )

    out = np.empty((len(seeds), vectorizer.dimensions), dtype=np.float32)
    started = last_said = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(batch, 0)
        for start in range(0, len(seeds), BATCH):
            arrays = upcoming.result()
            if start + BATCH < len(seeds):
                upcoming = pool.submit(batch, start + BATCH)
            probabilities = classifier.predict(arrays)
            out[start : start + len(arrays)] = conse_vectors(probabilities, labels, top_t=vectorizer.top_t)
            now = time.perf_counter()
            if now - last_said > 30 or start + BATCH >= len(seeds):
                done = min(start + BATCH, len(seeds))
                rate = done / (now - started)
                say(f"{label}: {done:,}/{len(seeds):,} pictures, {rate:.1f}/s, {(len(seeds) - done) / rate:.0f} s left")
                last_said = now
    return out


@dataclass
class OfflineCorpus:
    corpus: np.ndarray
    image_queries: np.ndarray
    text_queries: np.ndarray
    pictures_computed: int  # 0 when every picture vector came from the cache
    model_seconds: float


def cached_picture_vectors(vectorizer, seeds: range, cache_dir: Path, label: str, tally: list[float]) -> np.ndarray:
    """The vectors of pictures ``seeds``, in blocks of CACHE_BLOCK pictures, each block cached in
    its own file (keyed by model version, generator version and its picture numbers): an
    interrupted run resumes at the block it was in, and a larger corpus reuses a smaller one's."""
    blocks = []
    photos: list[np.ndarray] | None = None
    for start in range(seeds.start, seeds.stop, CACHE_BLOCK):
        block = range(start, min(start + CACHE_BLOCK, seeds.stop))
        path = cache_dir / f"{vectorizer.model_version}-gen{GENERATOR_VERSION}-pictures-{block.start}-{block.stop}.npy"
        if path.exists():
            blocks.append(np.load(path))
            continue
        photos = photos or load_photos()
        with Stopwatch() as watch:
            vectors = picture_vectors(vectorizer, photos, block, f"{label} {block.start:,}-{block.stop:,}")
        tally[0] += len(block)
        tally[1] += watch.seconds
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npy")
        np.save(partial, vectors)
        partial.replace(path)  # a crash mid-write leaves no half file under the real name
        blocks.append(vectors)
    return np.concatenate(blocks)


def offline_corpus(images: int, queries: int, cache_dir: Path) -> OfflineCorpus:
    """The offline model's vectors of the corpus (pictures 0 .. ``images - 1``), the held-out
    image queries (the next ``queries`` pictures, never in the corpus) and the text queries."""
    from indexer.vectorizers.offline.label_cache import default_cache_dir as label_cache_dir
    from indexer.vectorizers.offline.vectorizer import OfflineVectorizer

    vectorizer = OfflineVectorizer(MODEL_VERSION, cache_dir=label_cache_dir())
    texts = [entry["text"] for entry in json.loads((SAMPLES / "queries.json").read_text(encoding="utf-8"))]
    text_queries = np.stack([vectorizer.vectorize_text(text).vector for text in texts]).astype(np.float32)
    say(f"picture vectors: cached in {cache_dir} by blocks of {CACHE_BLOCK:,}; missing blocks are computed")
    tally = [0.0, 0.0]  # pictures computed, seconds
    corpus = cached_picture_vectors(vectorizer, range(images), cache_dir, "corpus", tally)
    image_queries = cached_picture_vectors(vectorizer, range(images, images + queries), cache_dir, "queries", tally)
    return OfflineCorpus(corpus, image_queries, text_queries, int(tally[0]), tally[1])


def unit_random(count: int, dimensions: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dimensions), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# --------------------------------------------------------------------------- recall


def ranked(query: np.ndarray, corpus: np.ndarray, depth: int) -> Iterator[np.ndarray]:
    """Each chunk of queries' top ``depth`` corpus rows by dot product, best first."""
    for start in range(0, len(query), QUERY_CHUNK):
        yield top_k(query[start : start + QUERY_CHUNK] @ corpus.T, depth)


def compressed_views(corpus: np.ndarray) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Per compression, a function from vectors to what the compressed index compares, fitted on
    the corpus. The rows marked "not Azure" are diagnostics: a scalar range from plain min and
    max instead of the percentiles, and binary codes of centred vectors."""
    scalar = ScalarQuantizer.fit(corpus)
    scalar_min_max = ScalarQuantizer.fit(corpus, percentile=100.0)
    mean = corpus.mean(axis=0)
    return {
        "scalar": scalar.roundtrip,
        "scalar, min/max range (not Azure)": scalar_min_max.roundtrip,
        "binary": signs,
        "binary, centred (not Azure)": lambda vectors: signs(vectors - mean),
    }


def cosine_shortfall(queries: np.ndarray, corpus: np.ndarray, found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of how much lower the mean cosine of the 10 found is than that of the
    exact 10: near 0 when the misses are near-ties of the exact 10th, not worse matches."""
    exact = np.einsum("qd,qkd->qk", queries, corpus[truth]).mean(axis=1)
    got = np.einsum("qd,qkd->qk", queries, corpus[found]).mean(axis=1)
    return float(np.mean(exact - got))


def measure(corpus: np.ndarray, query_sets: dict[str, np.ndarray]) -> tuple[Rows, Rows]:
    """recall@10 and cosine shortfall per row ("none", "<kind>, no rescoring, 1x",
    "<kind>, rescored, Nx") per query set."""
    deepest = K * max(OVERSAMPLINGS)
    truth = {name: np.concatenate(list(ranked(q, corpus, K))) for name, q in query_sets.items()}
    recall: Rows = {"none (exact)": dict.fromkeys(query_sets, 1.0)}
    shortfall: Rows = {"none (exact)": dict.fromkeys(query_sets, 0.0)}
    for label, view in compressed_views(corpus).items():
        compressed = view(corpus)
        for name, queries in query_sets.items():
            candidates = np.concatenate(list(ranked(view(queries), compressed, deepest)))
            results = {f"{label}, no rescoring, 1x": candidates[:, :K]}
            for factor in OVERSAMPLINGS:
                results[f"{label}, rescored, {factor}x"] = rescore(queries, corpus, candidates[:, : K * factor], K)
            for row, found in results.items():
                recall.setdefault(row, {})[name] = recall_at_k(found, truth[name])
                shortfall.setdefault(row, {})[name] = cosine_shortfall(queries, corpus, found, truth[name])
        del compressed
    return recall, shortfall


def recommend(rows: Rows, offline_sets: list[str], dimensions: int) -> tuple[str, int] | None:
    """The default: of the Azure compressions (scalar, binary) whose rescored recall@10 reaches
    TARGET_RECALL on every offline query set at some oversampling up to MAX_OVERSAMPLING, the
    one with the smallest vectors, at the smallest oversampling that reaches it. None if no
    compression does (then ``none``)."""
    passing = []
    for kind in ("scalar", "binary"):
        for factor in OVERSAMPLINGS:
            row = rows[f"{kind}, rescored, {factor}x"]
            if factor <= MAX_OVERSAMPLING and all(row[name] >= TARGET_RECALL for name in offline_sets):
                passing.append((bytes_per_vector(kind, dimensions), factor, kind))
                break
    if not passing:
        return None
    _, factor, kind = min(passing)
    return kind, factor


# --------------------------------------------------------------------------- report


def print_table(title: str, columns: dict[str, Rows], cell: Callable[[float], str]) -> None:
    names = [(corpus, query_set) for corpus, rows in columns.items() for query_set in next(iter(rows.values()))]
    labels = list(next(iter(columns.values())))
    headers = [title, *[f"{corpus}: {query_set}" for corpus, query_set in names]]
    width = max(len(label) for label in labels)
    widths = [max(width, len(headers[0])), *[max(8, len(h)) for h in headers[1:]]]
    print("\n  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print("  " + "  ".join("-" * w for w in widths))
    for label in labels:
        cells = [cell(columns[corpus][label][query_set]) for corpus, query_set in names]
        print("  " + "  ".join(c.ljust(w) for c, w in zip([label, *cells], widths, strict=True)).rstrip())
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000, help="corpus size of both corpora (default 50000)")
    parser.add_argument(
        "--queries", type=int, default=1_000, help="held-out image queries, and random queries (default 1000)"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the picture vectors are cached")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 pictures, 50 queries")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.queries = min(args.images, 1_000), min(args.queries, 50)
    if args.images < 4 * K * max(OVERSAMPLINGS) or args.queries < 1:
        parser.error(f"--images must be at least {4 * K * max(OVERSAMPLINGS)} and --queries at least 1")
    cache_dir = args.cache_dir or default_cache_dir()

    print_header(
        "Benchmark 10: recall@10 of the vector compressions",
        "exact top 10 vs the top 10 over int8 / binary codes, rescored from 1x, 2x, 4x candidates (numpy model of "
        "Azure AI Search's quantization; brute force, no HNSW)",
    )
    with Stopwatch() as total:
        offline = offline_corpus(args.images, args.queries, cache_dir)
        dimensions = offline.corpus.shape[1]
        offline_sets = {
            f"image queries ({len(offline.image_queries):,})": offline.image_queries,
            f"text queries ({len(offline.text_queries):,})": offline.text_queries,
        }
        say(f"recall over the offline corpus ({len(offline.corpus):,} x {dimensions})")
        with Stopwatch() as offline_watch:
            offline_rows, offline_shortfall = measure(offline.corpus, offline_sets)
        say(f"recall over {args.images:,} random unit vectors of {AZURE_DIMENSIONS:,} dimensions")
        with Stopwatch() as random_watch:
            random_rows, random_shortfall = measure(
                unit_random(args.images, AZURE_DIMENSIONS, seed=1),
                {f"random queries ({args.queries:,})": unit_random(args.queries, AZURE_DIMENSIONS, seed=2)},
            )

    random_name = f"random {AZURE_DIMENSIONS}-d"
    print_table("recall@10", {"offline": offline_rows, random_name: random_rows}, lambda v: f"{v:.4f}")
    print_table(
        "cosine shortfall x 1e-4",
        {"offline": offline_shortfall, random_name: random_shortfall},
        lambda v: f"{v * 1e4:.2f}",
    )
    choice = recommend(offline_rows, list(offline_sets), dimensions)

    report = Report("Benchmark 10 figures")
    for kind in ("none", "scalar", "binary"):
        report.add(
            f"bytes per vector, {kind}",
            f"{bytes_per_vector(kind, dimensions):,} at the offline {dimensions} dimensions, "
            f"{bytes_per_vector(kind, AZURE_DIMENSIONS):,} at Azure's {AZURE_DIMENSIONS:,}",
        )
    if offline.pictures_computed:
        report.add(
            "offline vectors computed",
            f"{offline.pictures_computed:,} pictures in {offline.model_seconds:.0f} s "
            f"({offline.pictures_computed / offline.model_seconds:.1f}/s)",
        )
    else:
        report.add("offline vectors computed", "0 (from the cache)")
    ranks = -np.sort(-(offline.image_queries @ offline.corpus.T), axis=1)[:, [0, 9, 10, 39]].mean(axis=0)
    report.add(
        "offline image queries: mean exact cosine at rank 1 / 10 / 11 / 40",
        " / ".join(f"{value:.4f}" for value in ranks),
        "how close the neighbours crowd: each photo has ~1,300 variations",
    )
    report.add("recall computed in", f"{offline_watch.seconds:.1f} s offline, {random_watch.seconds:.1f} s random")
    report.add("total", f"{total.seconds:.1f} s")
    rule = (
        f"smallest vectors whose rescored recall@10 is >= {TARGET_RECALL} on both offline query sets "
        f"at <= {MAX_OVERSAMPLING}x oversampling, at the smallest such oversampling"
    )
    report.add(
        "recommended default",
        f"{choice[0]}, oversampling {choice[1]}" if choice else "none (no compression meets the rule)",
        rule,
    )
    report.note("rescoring at 1x reorders the same 10 candidates, so its recall@10 equals no rescoring at 1x")
    report.note("cosine shortfall: mean cosine of the exact 10 minus that of the 10 found (0 = as good)")
    report.note("brute force over the compressed vectors: HNSW's own approximation is not in these figures")
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
