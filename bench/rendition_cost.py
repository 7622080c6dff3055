"""What a rendition costs: time and peak memory to normalise (``indexer.renditions.for_vision``)
a 12-megapixel HEIC and a 24 MB PNG, against decoding the same image with Pillow alone, and the
bytes sent to Vision before (the original, which Vision refuses) and after (the rendition).

Each measurement runs in a fresh process: peak memory is the growth of its peak resident set
(``VmHWM`` in ``/proc/self/status``; Linux only. ``ru_maxrss`` would carry the parent's peak
across ``exec``) past what it held once the image's bytes were read, so Pillow's and libheif's
C allocations count too (``tracemalloc`` sees only Python's). Times are the best of ``--repeat``.

    .venv/bin/python bench/rendition_cost.py
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from indexer.pixel_budget import pillow_heif  # noqa: E402, F401 (registers the HEIF writer)

# Run in the child: read the file, note the peak so far, run one operation, report.
_CHILD = """
import io, json, sys, time
from PIL import Image
from indexer.renditions import for_vision
def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
path, operation, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(path, "rb").read()
before = peak_kib()
best, sent = float("inf"), len(data)
for _ in range(repeat):
    start = time.perf_counter()
    if operation == "normalise":
        sent = len(for_vision(data).data)
    else:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    best = min(best, time.perf_counter() - start)
peak = peak_kib() - before
print(json.dumps({"seconds": best, "peak_kib": peak, "sent": sent}))
"""


def photo(width: int, height: int) -> Image.Image:
    with Image.open(REPO_ROOT / "samples" / "penguin.jpg") as sample:
        return sample.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)


def inputs(folder: Path) -> dict[str, Path]:
    """A 4,032 x 3,024 HEIC (an iPhone's 12 MP) and a PNG scan of ~24 MB (noise does not compress)."""
    heic, scan = folder / "iphone.heic", folder / "scan.png"
    photo(4_032, 3_024).save(heic, "HEIF", quality=80)
    base = np.asarray(photo(3_000, 2_800), dtype=np.uint8)
    noise = np.random.default_rng(1).integers(0, 128, size=base.shape, dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(base // 2 + noise).save(out, "PNG", compress_level=1)
    scan.write_bytes(out.getvalue())
    return {"12 MP HEIC": heic, "24 MB PNG": scan}


def measure(path: Path, operation: str, repeat: int) -> dict[str, float]:
    answer = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), operation, str(repeat)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    return json.loads(answer.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each operation; the best counts (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print(f"{'image':<11} {'operation':<17} {'seconds':>8} {'peak MiB':>9} {'bytes sent':>12}")
        for name, path in inputs(Path(folder)).items():
            size = path.stat().st_size
            for operation, label in (("decode", "Pillow decode"), ("normalise", "normalise")):
                figures = measure(path, operation, args.repeat)
                sent = f"{size:,}->{figures['sent']:,}" if operation == "normalise" else ""
                print(
                    f"{name:<11} {label:<17} {figures['seconds']:>8.3f} {figures['peak_kib'] / 1024:>9.1f} {sent:>12}"
                )


if __name__ == "__main__":
    main()
