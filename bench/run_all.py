"""Run every ``bench/bench_*.py`` script (``make bench``), each in its own process.

A process of its own per benchmark, so one script's threads, loaded models and stand-ins
never disturb the next one's figures, and a crash fails that script alone. Each script's
output streams through as it runs; a summary follows. The exit status is non-zero if any
script failed or ran past ``--timeout``.

Usage: ``python bench/run_all.py [--quick] [--only NAME ...] [--timeout SECONDS]``.
``--quick`` passes ``--quick`` to every script (a smoke run of each). A script whose first
run takes longer than ``--timeout`` says so in its docstring ("run_all timeout: 3600 s"), and
gets that much instead when it is the larger.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# Seconds a script gets to stop cleanly (its stand-ins are stopped in ``finally`` blocks)
# after an interrupt, before it is killed.
GRACE_SECONDS = 30


def discover(directory: Path, only: list[str] | None = None) -> list[Path]:
    """``bench_*.py`` in ``directory``, in the order of the "Benchmark N" their docstring
    names (then by file name), keeping those whose name contains one of ``only``."""
    scripts = [p for p in directory.glob("bench_*.py") if p.is_file()]
    if only:
        scripts = [p for p in scripts if any(part in p.name for part in only)]

    def order(path: Path) -> tuple[int, str]:
        match = re.search(r"Benchmark (\d+)", path.read_text(encoding="utf-8", errors="replace")[:2000])
        return (int(match.group(1)) if match else 1_000, path.name)

    return sorted(scripts, key=order)


def declared_timeout(script: Path) -> float | None:
    """The seconds a script's docstring asks for ("run_all timeout: N s"), if any: benchmark 10
    computes and caches model vectors on its first run, which takes far longer than the next."""
    match = re.search(r"run_all timeout: (\d+) s", script.read_text(encoding="utf-8", errors="replace")[:4000])
    return float(match.group(1)) if match else None


def _hears_interrupts() -> None:
    """In the script's process: SIGINT at its default. A shell starts background jobs (``make
    bench &``, a CI step) with SIGINT ignored, and Python then never raises KeyboardInterrupt,
    so the interrupt below would go unheard, the grace run out and the kill leave the script's
    stand-ins (Azurite) running."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_one(script: Path, *, quick: bool, timeout: float) -> tuple[int | None, float]:
    """Run one script with this Python; return (exit code or None if it timed out, seconds)."""
    command = [sys.executable, str(script)] + (["--quick"] if quick else [])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=str(script.parent.parent), env=env, preexec_fn=_hears_interrupts)
    try:
        code: int | None = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"\n!! {script.name} ran past {timeout:g} s; interrupting it", flush=True)
        process.send_signal(signal.SIGINT)  # lets it stop its stand-ins (Azurite) by pid
        try:
            process.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        code = None
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
        raise
    return code, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script (a smoke run)")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only scripts whose file name contains NAME (repeatable)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200.0,
        help="seconds one script may run before it is stopped and counted as failed (default 1200)",
    )
    parser.add_argument("--bench-dir", type=Path, default=BENCH_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    scripts = discover(args.bench_dir, args.only)
    if not scripts:
        print(
            f"no bench_*.py scripts{' matching ' + ', '.join(args.only) if args.only else ''} in {args.bench_dir}",
            file=sys.stderr,
        )
        return 2
    load = os.getloadavg()
    print(
        f"running {len(scripts)} benchmark(s){' (quick)' if args.quick else ''}: {', '.join(p.name for p in scripts)}"
    )
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores", flush=True)

    results: list[tuple[str, int | None, float]] = []
    total_started = time.monotonic()
    for script in scripts:
        timeout = max(args.timeout, declared_timeout(script) or 0.0)
        code, seconds = run_one(script, quick=args.quick, timeout=timeout)
        results.append((script.name, code, seconds))

    print("\n=== summary ===")
    width = max(len(name) for name, _, _ in results)
    for name, code, seconds in results:
        status = "ok" if code == 0 else ("TIMED OUT" if code is None else f"FAILED (exit {code})")
        print(f"  {name.ljust(width)}  {seconds:7.1f} s  {status}")
    failed = [name for name, code, _ in results if code != 0]
    print(
        f"  total {time.monotonic() - total_started:.1f} s; "
        f"{'all passed' if not failed else f'{len(failed)} failed: ' + ', '.join(failed)}",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
