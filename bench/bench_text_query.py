"""Benchmark 7: a cold text query from the CLI, against importing torch.

What a person waits for when they type ``imgsearch search "a cat"`` once, in a fresh
process, with the embedded offline model and the numpy index (the README's quickstart
after ``make demo``): interpreter start, imports, the text encoder's load, the query, the
output. The baseline, measured in the same run and alternated with it, is
``python -c "import torch"``: a text query needs only the text encoder, so it should cost
less than loading the image model's framework would. Goal: the median query takes at most
0.8 of the median torch import.

Both sides run ``--runs`` times, alternating, after one unmeasured run of each (the OS page
cache and the model cache under IMGSEARCH_MODEL_CACHE are warm, as for any query after the
first). The query also reports whether torch was imported (it must not be).

Run: ``python bench/bench_text_query.py`` (about a minute) or ``--quick``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO_ROOT, Report, print_header, say  # noqa: E402

GOAL = 0.8
IMGSEARCH = Path(sys.executable).with_name("imgsearch")
# Tells whether the CLI process imported torch, without changing what it does: a sitecustomize
# that reports sys.modules at exit.
PROBE = (
    "import atexit, sys\natexit.register(lambda: sys.stderr.write('torch-imported=%s\\n' % ('torch' in sys.modules)))\n"
)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO_ROOT)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 runs each")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    print_header("Benchmark 7: cold CLI text query vs import torch", __doc__.split("\n\n")[1])

    with tempfile.TemporaryDirectory(prefix="bench-text-query-") as scratch:
        data_dir = Path(scratch) / "data"
        probe_dir = Path(scratch) / "probe"
        probe_dir.mkdir()
        (probe_dir / "sitecustomize.py").write_text(PROBE)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VISION_", "SEARCH_", "IMAGES_"))}
        env.update(IMGSEARCH_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        say("indexing samples/ once (not measured)")
        timed([str(IMGSEARCH), "index", "samples"], env)
        query = [str(IMGSEARCH), "search", "a cat", "-k", "3"]
        torch = [sys.executable, "-c", "import torch"]
        probe_env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(probe_dir), env.get("PYTHONPATH")]))}
        _, first = timed(query, probe_env)
        imported_torch = "torch-imported=True" in first.stderr
        timed(torch, env)  # warm its files too
        query_times, torch_times = [], []
        for run in range(runs):
            say(f"run {run + 1} of {runs}")
            query_times.append(timed(query, env)[0])
            torch_times.append(timed(torch, env)[0])
        top_hit = first.stdout.splitlines()[0] if first.stdout else ""

    query_s, torch_s = statistics.median(query_times), statistics.median(torch_times)
    ratio = query_s / torch_s
    report = Report("cold CLI text query (embedded offline model, numpy index)")
    report.add('median `imgsearch search "a cat"`', f"{query_s:.2f} s ({min(query_times):.2f}-{max(query_times):.2f})")
    report.add('median `python -c "import torch"`', f"{torch_s:.2f} s ({min(torch_times):.2f}-{max(torch_times):.2f})")
    report.add("query / torch import", f"{ratio:.2f}", f"<= {GOAL}", ratio <= GOAL)
    report.add("torch imported by the query", str(imported_torch), "False", not imported_torch)
    report.note(f"first hit: {top_hit.strip()}")
    report.print()
    met = ratio <= GOAL and not imported_torch
    print(f"GOAL a text query costs at most {GOAL} of importing torch, and imports none: {'PASS' if met else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
