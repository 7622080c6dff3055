"""The live tier (tests/live): `make test` leaves it out, `make test-live` runs it, and with no
deployment every live test is skipped with a reason that says how to get one. Each live test is
named in the standins/FIDELITY.md row whose rule it settles on Azure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIVE = ROOT / "tests" / "live"


def _live_tests() -> list[str]:
    """Each live test as ``tests/live/<file>::<name>``, as FIDELITY.md names it."""
    return [
        f"tests/live/{path.name}::{name}"
        for path in sorted(LIVE.glob("test_*.py"))
        for name in re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), flags=re.M)
    ]


def _pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """pytest over tests/live in a subprocess, as ``make test`` or ``make test-live`` runs it."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args, str(LIVE)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


def _live_ids() -> list[str]:
    """The node ids pytest collects in tests/live with ``-m live`` (a parametrized test, each case)."""
    result = _pytest("-m", "live", "--collect-only", "-q")
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_the_live_marker_is_registered_and_left_out_by_default():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert any(marker.startswith("live:") for marker in options["markers"])
    assert "-m 'not live'" in options["addopts"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    target = re.search(r"^test-live:.*\n\t(.+)$", makefile, flags=re.M)
    assert target and "-m live" in target.group(1) and "tests/live" in target.group(1)


def test_without_a_deployment_every_live_test_is_skipped_saying_how_to_get_one(tmp_path):
    # No azd on PATH and no AZURE_* values: what a machine without a deployment has.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + "/usr/bin:/bin"
    result = _pytest("-m", "live", "-rs", "-q", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tests = _live_ids()
    assert len(tests) >= len(_live_tests()) >= 5
    assert f"{len(tests)} skipped" in result.stdout
    reasons = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert sum(int(re.match(r"SKIPPED \[(\d+)\]", line).group(1)) for line in reasons) == len(tests)
    assert all("azd up" in line and "azd env get-values" in line for line in reasons), reasons


def test_make_test_collects_no_live_test():
    result = _pytest("--collect-only", "-q")
    assert f"{len(_live_ids())} deselected" in result.stdout, result.stdout[-2000:]


def test_each_live_test_is_named_in_a_fidelity_row():
    table = (ROOT / "standins" / "FIDELITY.md").read_text(encoding="utf-8")
    for test in _live_tests():
        assert test in table, f"{test} is in no row of FIDELITY.md"
