"""``make setup``'s install command, read from the Makefile: what it installs and how it talks.
(The commands themselves run on a fresh machine only; here they are read, not run.)"""

from __future__ import annotations

import re
from pathlib import Path

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def recipe(target: str) -> list[str]:
    """The command lines of ``target``'s recipe, comments left out."""
    lines = MAKEFILE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{re.escape(target)}\s*:", line))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        if not line.strip().startswith("#"):
            body.append(line.strip())
    return body


def test_the_editable_install_does_not_print_setuptools_notice():
    install = [line for line in recipe("$(STAMP)") if "pip install" in line and "-e " in line]
    assert install and all(" -qq " in line for line in install), install
