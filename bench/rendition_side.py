"""How far a rendition's vector drifts from the original's, by the rendition's long side: the
evidence for ``indexer.renditions.RENDITION_LONG_SIDE``.

For each of the first ``--samples`` images of ``samples/``, a camera-sized original (4,032 px on
its long side, JPEG quality 95: Vision reads it as it is) is vectorized with the offline model,
then JPEG renditions of it (``indexer.renditions.render``) at each long side; the script prints
the cosine of each rendition's vector to the original's (mean and worst) and the rendition's
mean size in bytes. The samples are at most 640 px, so the originals are enlarged: they hold no
detail finer than the samples', which flatters small renditions; read the figures as an upper
bound of the drift of a real photo at the same size.

    .venv/bin/python bench/rendition_side.py --samples 8
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from indexer.pixel_budget import read_header  # noqa: E402
from indexer.renditions import render  # noqa: E402
from indexer.vectorizers.offline.vectorizer import OfflineVectorizer  # noqa: E402

CAMERA_LONG_SIDE = 4032
SIDES = (256, 512, 1024, 2048)


def camera_original(path: Path) -> bytes:
    """The sample enlarged to a phone camera's long side, as a JPEG Vision reads as it is."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    scale = CAMERA_LONG_SIDE / max(rgb.size)
    big = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=95)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=8, help="how many images of samples/ (default 8)")
    args = parser.parse_args()
    vectorizer = OfflineVectorizer()
    paths = sorted(p for p in (REPO_ROOT / "samples").iterdir() if p.suffix in (".jpg", ".png"))[: args.samples]
    cosines: dict[int, list[float]] = {side: [] for side in SIDES}
    sizes: dict[int, list[int]] = {side: [] for side in SIDES}
    original_bytes = []
    for path in paths:
        original = camera_original(path)
        original_bytes.append(len(original))
        reference = np.asarray(vectorizer.vectorize_image(original).vector, dtype=np.float64)
        for side in SIDES:
            rendition, _, _ = render(original, read_header(original), budget=50_000_000, long_side=side)
            vector = np.asarray(vectorizer.vectorize_image(rendition).vector, dtype=np.float64)
            cosines[side].append(float(vector @ reference / np.linalg.norm(vector) / np.linalg.norm(reference)))
            sizes[side].append(len(rendition))
    print(f"{len(paths)} samples, originals {CAMERA_LONG_SIDE} px long side, mean {np.mean(original_bytes):,.0f} bytes")
    print(f"{'long side':>9}  {'mean cosine':>11}  {'worst':>7}  {'mean bytes':>10}")
    for side in SIDES:
        print(f"{side:>9}  {np.mean(cosines[side]):>11.4f}  {min(cosines[side]):>7.4f}  {np.mean(sizes[side]):>10,.0f}")


if __name__ == "__main__":
    main()
