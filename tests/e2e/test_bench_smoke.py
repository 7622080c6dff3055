"""The benchmarks run: each of benchmarks 1, 2 and 6 in a smoke run (``--quick``), the runner
``bench/run_all.py`` reports a failing script, and the wire counter that bench 1 relies on
to find duplicated documents counts what it should.

No timing is asserted anywhere (figures depend on the machine); only that the scripts finish,
print their figures, and that what they check for correctness (no lost or duplicated
documents, every upload found) holds.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH = REPO_ROOT / "bench"


def run_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def figure(output: str, name: str) -> str:
    """The value column of the figures-table row named ``name``."""
    match = re.search(rf"^  {re.escape(name)}\s{{2,}}(.+?)(?:\s{{2,}}|$)", output, re.MULTILINE)
    assert match, f"no figure {name!r} in:\n{output}"
    return match.group(1)


def test_backfill_benchmark_smoke_run_loses_and_duplicates_nothing():
    result = run_script(str(BENCH / "bench_backfill_rate.py"), "--quick", "--blobs", "20", "--sequential", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert figure(out, "lost documents").startswith("0 (index count 20, blobs 20)")
    assert figure(out, "duplicated documents").startswith("0 (uploads accepted 20)")
    assert figure(out, "documents with a wrong hash / unknown key") == "0 / 0"
    for name in ("achieved / R", "429 answers from the server", "speed-up over sequential"):
        figure(out, name)


def test_upsert_batching_benchmark_smoke_run():
    result = run_script(
        str(BENCH / "bench_upsert_batching.py"),
        "--quick",
        "--docs",
        "30",
        "--single",
        "5",
        "--batch-sizes",
        "10",
        "--rtt-ms",
        "0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"x single", figure(out, "AzureSearchBackend -> search double (loopback): batches of 10"))
    assert re.search(r"x single", figure(out, "NumpyIndex (numpy, on disk): batches of 10"))


def test_blob_to_searchable_benchmark_smoke_run_finds_every_upload():
    result = run_script(str(BENCH / "bench_blob_to_searchable.py"), "--quick", "--uploads", "3", "--interval", "0.2")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert figure(out, "uploads measured (watched / direct)") == "3 / 3"
    assert figure(out, "watcher poll interval") == "0.2 s"
    figure(out, "upload -> searchable via watcher: p50 / p95")


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    (tmp_path / "bench_passes.py").write_text('"""Benchmark 2: passes."""\nimport sys\nprint("argv", sys.argv[1:])\n')
    (tmp_path / "bench_fails.py").write_text('"""Benchmark 1: fails."""\nraise SystemExit(3)\n')
    (tmp_path / "helper.py").write_text("raise SystemExit('not a benchmark: must not run')\n")
    return tmp_path


def test_run_all_runs_each_script_in_benchmark_order_and_fails_if_one_fails(bench_dir: Path):
    result = run_script(str(BENCH / "run_all.py"), "--bench-dir", str(bench_dir), "--quick")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "argv ['--quick']" in result.stdout
    assert re.search(r"bench_fails\.py\s+\S+ s\s+FAILED \(exit 3\)", result.stdout)
    assert re.search(r"bench_passes\.py\s+\S+ s\s+ok", result.stdout)
    assert result.stdout.index("bench_fails.py  ") < result.stdout.index("bench_passes.py  ")
    assert "helper.py" not in result.stdout


def test_run_all_succeeds_when_every_selected_script_passes(bench_dir: Path):
    result = run_script(str(BENCH / "run_all.py"), "--bench-dir", str(bench_dir), "--only", "passes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "argv []" in result.stdout and "all passed" in result.stdout


def test_run_all_stops_a_script_past_its_timeout(tmp_path: Path):
    (tmp_path / "bench_hangs.py").write_text(
        "import time\n"
        "try:\n"
        "    time.sleep(60)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted: stopping my stand-ins', flush=True)\n"
        "    raise SystemExit(130)\n"
    )
    result = run_script(str(BENCH / "run_all.py"), "--bench-dir", str(tmp_path), "--timeout", "1", timeout=60)
    assert result.returncode == 1
    assert "TIMED OUT" in result.stdout
    # The script heard the interrupt (and could stop its stand-ins), even when this test run
    # was started in the background, where a shell hands SIGINT down ignored.
    assert "interrupted: stopping my stand-ins" in result.stdout


def test_run_all_gives_a_script_the_longer_timeout_its_docstring_declares(tmp_path: Path):
    (tmp_path / "bench_slow_first_run.py").write_text('"""run_all timeout: 30 s"""\nimport time\ntime.sleep(2)\n')
    result = run_script(str(BENCH / "run_all.py"), "--bench-dir", str(tmp_path), "--timeout", "1", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"bench_slow_first_run\.py\s+\S+ s\s+ok", result.stdout)


def test_indexing_tally_counts_every_accepted_upload_per_key():
    """Bench 1 finds duplicated documents with this counter; it must see a key written twice."""
    sys.path.insert(0, str(BENCH))
    try:
        from common import search_double
    finally:
        sys.path.remove(str(BENCH))
    from indexer.documents import Document, Embedding
    from indexer.schema import load_schema

    schema = load_schema("2023-04-15")
    vector = np.zeros(1024, dtype=np.float32)
    vector[0] = 1.0

    def document(key: str) -> Document:
        return Document(key, Embedding(vector, "2023-04-15"), {"model_version": "2023-04-15"})

    with search_double(tally=True) as search:
        backend = search.backend("tally-check")
        backend.ensure_index(schema)
        backend.upsert([document("a"), document("b")])
        backend.upsert([document("a")])
        backend.delete(["b"])
        counts = search.tally.uploads_per_key("tally-check")
        backend.close()
    assert counts == {"a": 2, "b": 1}
