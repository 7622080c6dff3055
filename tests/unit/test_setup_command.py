"""``make setup``'s install command, as make would run it (``make -n``, nothing run): torch
from PyTorch's CPU index on Linux with a fallback where it cannot be reached, PyPI elsewhere,
and no setuptools notice. The CPU index itself cannot be reached from the test machines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def setup_commands(tmp_path: Path, system: str) -> str:
    """What ``make setup`` would run for a fresh virtualenv on ``system`` (uname -s)."""
    done = subprocess.run(
        ["make", "-n", f"VENV={tmp_path / 'venv'}", f"UNAME_S={system}", "setup"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_on_linux_torch_comes_from_the_cpu_index_when_it_answers(tmp_path):
    commands = setup_commands(tmp_path, "Linux")
    assert f'torch_index="--extra-index-url {CPU_INDEX}"' in commands
    install = [line for line in commands.splitlines() if "pip install" in line and "-e " in line]
    assert install and all("$torch_index" in line for line in install), install


def test_where_the_cpu_index_cannot_be_reached_pips_own_index_is_used(tmp_path):
    commands = setup_commands(tmp_path, "Linux")
    probe = next(line for line in commands.splitlines() if "urlopen" in line)
    assert CPU_INDEX in probe and 'torch_index=""' in commands and "cannot be reached" in commands


@pytest.mark.parametrize("system", ["Darwin", "Windows_NT"])
def test_elsewhere_pypis_wheels_are_used_they_are_cpu_builds(tmp_path, system):
    assert CPU_INDEX not in setup_commands(tmp_path, system).split("urlopen", 1)[0]
    assert 'torch_index=""' in setup_commands(tmp_path, system)


def test_the_editable_install_does_not_print_setuptools_notice(tmp_path):
    install = [line for line in setup_commands(tmp_path, "Linux").splitlines() if "pip install" in line]
    editable = [line for line in install if "-e " in line and not line.lstrip().startswith("echo")]
    assert editable and all(" -qq " in line for line in editable), editable
