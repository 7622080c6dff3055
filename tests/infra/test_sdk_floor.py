"""The azure-search-documents range the code needs is the one both installs ask for.

The code builds ``SearchIndex`` and the indexer models from dicts and relies on the service API
2026-04-01 (the native soft-delete policy of pull mode); both arrived with the 12.x line, and
under 11.6 ``SearchIndex(dict)`` raises ``TypeError``. The development install (pyproject.toml)
and the Function's deployment (functions/requirements.txt, maybe a generated lock with an exact
pin) must both stay inside 12.x.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
SUPPORTED = SpecifierSet(">=12,<13")
TOO_OLD_OR_NEW = ("11.6.0", "11.5.3", "13.0.0")


def _pyproject_requirement() -> Requirement:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    return next(r for r in map(Requirement, dependencies) if r.name == "azure-search-documents")


def _function_requirement() -> Requirement:
    for line in (ROOT / "functions" / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = re.split(r"\s#|\\", line)[0].strip()
        if line.lower().startswith("azure-search-documents"):
            return Requirement(line)
    raise AssertionError("functions/requirements.txt does not name azure-search-documents")


@pytest.mark.parametrize("read", [_pyproject_requirement, _function_requirement], ids=["pyproject", "functions"])
def test_each_install_stays_on_the_sdk_line_the_code_needs(read):
    requirement = read()
    for old_or_new in TOO_OLD_OR_NEW:
        assert old_or_new not in requirement.specifier, f"{requirement} admits {old_or_new}"
    assert any(v in requirement.specifier for v in ("12.0.0", "12.0.1", "12.1.0")), f"{requirement} admits no 12.x"


def test_the_installed_sdk_is_on_that_line():
    assert version("azure-search-documents") in SUPPORTED
