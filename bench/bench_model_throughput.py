"""Benchmark 5: images per second through the offline vectorizer, draft vs full JPEG decode.

``OfflineVectorizer.vectorize_images`` (decode, preprocess, batched EfficientNet-Lite0
forward pass, ConSE mix) runs over two sets:

* samples/ (the photos in samples/manifest.json, a few hundred pixels a side);
* 12-megapixel JPEGs made for the run (4000 x 3000, quality 90: smooth gradients, shapes
  and sensor-like noise, so the decoder has real photo-sized work);

once with Pillow's draft mode (``draft=True``, the default: libjpeg scales by 1/2, 1/4 or
1/8 while decoding) and once with a full decode followed by a resize (``draft=False``).
Rounds alternate between the two, so load from other processes falls on both alike.

Goals: draft at least 2x the images/second of the full decode on the large JPEGs, and the
same ranking on the samples: for every query in samples/queries.json the top-1 image is the
same with either decode. The decode step alone (``decode_image``) is timed as well, to show
where the time goes.

Run: ``python bench/bench_model_throughput.py`` (about 1-2 minutes) or ``--quick``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import REPO_ROOT as ROOT  # noqa: E402
from common import Report, print_header, say

SAMPLES = ROOT / "samples"
GOAL_SPEEDUP = 2.0
LARGE_SIZE = (4000, 3000)
LARGE_QUALITY = 90
NOISE_SIGMA = 8.0  # grey levels: files of ~3 MB, like a 12 MP phone photo at quality 90


def photo_like_jpeg(seed: int, size: tuple[int, int] = LARGE_SIZE, quality: int = LARGE_QUALITY) -> bytes:
    """A camera-sized JPEG with what makes photos costly to decode: smooth gradients, hard
    edges (shapes), and fine noise everywhere."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    width, height = size
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    start, slope_x, slope_y = (rng.uniform(0, 255, 3), rng.uniform(-120, 120, 3), rng.uniform(-120, 120, 3))
    gradient = np.empty((height, width, 3), dtype=np.uint8)
    for channel in range(3):
        gradient[..., channel] = np.clip(start[channel] + slope_x[channel] * x + slope_y[channel] * y, 0, 255)
    image = Image.fromarray(gradient, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 40, width // 4)), int(rng.integers(height // 40, height // 4))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(0, 3)
        if shape == 0:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        elif shape == 1:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour, outline=(0, 0, 0), width=6)
        else:
            draw.polygon([(x0, y0), (x0 + w, y0 + h // 3), (x0 + w // 2, y0 + h)], fill=colour)
    pixels = np.asarray(image)
    noisy = np.empty_like(pixels)
    for channel in range(3):  # sensor-like noise over everything, a channel at a time (memory)
        plane = pixels[..., channel] + rng.normal(0.0, NOISE_SIGMA, size=(height, width)).astype(np.float32)
        noisy[..., channel] = np.clip(plane, 0, 255)
    image = Image.fromarray(noisy, "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def images_per_second(vectorizer, images: list[bytes]) -> float:
    started = time.perf_counter()
    vectorizer.vectorize_images(images)
    return len(images) / (time.perf_counter() - started)


def decode_seconds(images: list[bytes], *, min_side: int, draft: bool) -> float:
    """Mean seconds per image of the decode step alone (as the vectorizer calls it)."""
    from indexer.vectorizers.offline.decode import decode_image

    started = time.perf_counter()
    for data in images:
        decode_image(data, min_side=min_side, draft=draft)
    return (time.perf_counter() - started) / len(images)


def alternate(rounds: int, measure) -> tuple[list[float], list[float]]:
    """``measure(draft)`` for draft=True and False, alternating which goes first."""
    drafted, full = [], []
    for i in range(rounds):
        for draft in (True, False) if i % 2 == 0 else (False, True):
            (drafted if draft else full).append(measure(draft))
    return drafted, full


def rank_samples(vectorizer, images: list[bytes], query_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sample vectors, and every query's cosine score against each sample."""
    matrix = np.stack([e.vector for e in vectorizer.vectorize_images(images)])
    return matrix, query_vectors @ matrix.T


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 large JPEGs, one round")
    parser.add_argument("--large", type=int, default=None, help="how many 12 MP JPEGs (default 12)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each decode mode (default 5)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    large_count = args.large or (2 if args.quick else 12)
    rounds = args.rounds or (1 if args.quick else 5)

    print_header(
        "Benchmark 5: offline model throughput, draft vs full JPEG decode",
        f"images/s through OfflineVectorizer.vectorize_images on samples/ and on {large_count} generated "
        f"{LARGE_SIZE[0]}x{LARGE_SIZE[1]} JPEGs (quality {LARGE_QUALITY}); {rounds} alternating rounds "
        f"per mode, medians; top-1 per query of samples/queries.json compared between the modes",
    )

    from indexer.model_versions import OFFLINE_MULTILINGUAL
    from indexer.vectorizers.offline.label_cache import default_cache_dir
    from indexer.vectorizers.offline.vectorizer import OfflineVectorizer

    say("loading the offline model (local-conse-usem3-v1)")
    load_started = time.perf_counter()
    drafting = OfflineVectorizer(OFFLINE_MULTILINGUAL, cache_dir=default_cache_dir(), draft=True)
    full = OfflineVectorizer(OFFLINE_MULTILINGUAL, cache_dir=default_cache_dir(), draft=False)  # shares the networks
    load_s = time.perf_counter() - load_started
    import torch

    torch_threads = torch.get_num_threads()
    min_side = drafting.classifier.decode_side

    manifest = json.loads((SAMPLES / "manifest.json").read_text("utf-8"))
    names = [entry["file"] for entry in manifest]
    samples = [(SAMPLES / name).read_bytes() for name in names]
    say(f"making {large_count} JPEGs of {LARGE_SIZE[0]}x{LARGE_SIZE[1]}")
    made_started = time.perf_counter()
    large = [photo_like_jpeg(seed) for seed in range(large_count)]
    made_s = time.perf_counter() - made_started
    mean_mb = sum(map(len, large)) / len(large) / 1e6

    by_mode = {True: drafting, False: full}
    say("warming up")
    for vectorizer in by_mode.values():
        vectorizer.vectorize_images(samples[:4] + large[:1])

    say("samples: throughput")
    sample_draft, sample_full = alternate(rounds, lambda draft: images_per_second(by_mode[draft], samples))
    say("large JPEGs: throughput")
    large_draft, large_full = alternate(rounds, lambda draft: images_per_second(by_mode[draft], large))
    say("decode step alone")
    decode_large = alternate(rounds, lambda draft: decode_seconds(large, min_side=min_side, draft=draft))
    decode_samples = alternate(rounds, lambda draft: decode_seconds(samples, min_side=min_side, draft=draft))

    say("ranking: top-1 per query, each decode mode")
    queries = json.loads((SAMPLES / "queries.json").read_text("utf-8"))
    query_vectors = np.stack([drafting.vectorize_text(q["text"]).vector for q in queries])
    vectors_draft, scores_draft = rank_samples(drafting, samples, query_vectors)
    vectors_full, scores_full = rank_samples(full, samples, query_vectors)
    top_draft, top_full = scores_draft.argmax(axis=1), scores_full.argmax(axis=1)
    differing = [i for i in range(len(queries)) if top_draft[i] != top_full[i]]
    right = {
        mode: sum(names[int(top)] == q["expected"] for q, top in zip(queries, tops, strict=False))
        for mode, tops in (("draft", top_draft), ("full", top_full))
    }
    cosine = np.sum(vectors_draft * vectors_full, axis=1)
    changed = [names[i] for i in np.flatnonzero(cosine < 0.999999)]

    med = statistics.median
    speedup_large = med(large_draft) / med(large_full)
    speedup_samples = med(sample_draft) / med(sample_full)
    same_ranking = not differing

    report = Report("Benchmark 5 figures (images/s through vectorize_images, medians)")
    report.add(
        f"samples ({len(samples)} images): draft / full", f"{med(sample_draft):.1f} / {med(sample_full):.1f} img/s"
    )
    report.add("samples: draft / full speed-up", f"{speedup_samples:.2f}x")
    report.add(
        f"12 MP JPEGs ({len(large)}, {mean_mb:.1f} MB each): draft / full",
        f"{med(large_draft):.2f} / {med(large_full):.2f} img/s",
    )
    report.add(
        "12 MP JPEGs: draft / full speed-up",
        f"{speedup_large:.2f}x",
        f">= {GOAL_SPEEDUP:g}x",
        speedup_large >= GOAL_SPEEDUP,
    )
    report.add(
        "decode step alone, 12 MP: draft / full",
        f"{med(decode_large[0]) * 1000:.1f} / {med(decode_large[1]) * 1000:.1f} ms/img",
    )
    report.add(
        "decode step alone, samples: draft / full",
        f"{med(decode_samples[0]) * 1000:.2f} / {med(decode_samples[1]) * 1000:.2f} ms/img",
    )
    report.add(
        f"top-1 per query ({len(queries)} queries): same in both modes",
        f"{len(queries) - len(differing)} / {len(queries)}",
        "all",
        same_ranking,
    )
    report.add("queries whose top-1 is the expected image: draft / full", f"{right['draft']} / {right['full']}")
    report.add(
        "sample vectors changed by draft decode",
        f"{len(changed)} of {len(names)} (lowest cosine draft vs full {float(cosine.min()):.4f})",
    )
    for i in differing:
        a, b = int(top_draft[i]), int(top_full[i])
        report.note(
            f"top-1 differs for [{queries[i]['lang']}] {queries[i]['text']!r} (expected "
            f"{queries[i]['expected']}): draft {names[a]} {scores_draft[i, a]:.4f} vs {names[b]} "
            f"{scores_draft[i, b]:.4f}; full {names[b]} {scores_full[i, b]:.4f} vs {names[a]} "
            f"{scores_full[i, a]:.4f}"
        )
    report.note(
        f"torch threads {torch_threads}; model load {load_s:.1f} s; making the JPEGs took {made_s:.1f} s "
        f"(not measured); decode target: shorter side {min_side} px"
    )
    report.note(
        "draft decode only changes images at least twice the target on both sides; most samples are "
        "smaller, so their vectors are identical by construction: " + (", ".join(changed) or "none changed")
    )
    report.print()
    print(
        f"GOAL draft decode >= {GOAL_SPEEDUP:g}x full decode on 12 MP JPEGs: {speedup_large:.2f}x "
        f"{'PASS' if speedup_large >= GOAL_SPEEDUP else 'FAIL'}"
    )
    print(f"GOAL same top-1 per query on samples with either decode: {'PASS' if same_ranking else 'FAIL'}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "samples_draft_ips": med(sample_draft),
                    "samples_full_ips": med(sample_full),
                    "large_draft_ips": med(large_draft),
                    "large_full_ips": med(large_full),
                    "speedup_large": speedup_large,
                    "decode_large_s": [med(decode_large[0]), med(decode_large[1])],
                    "differing_top1": [queries[i]["text"] for i in differing],
                    "torch_threads": torch_threads,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
