"""Commands and addresses printed for a person to copy work as copied: ``imgsearch`` as this
shell runs it (the console script is in ``.venv/bin``, often not on ``PATH``), and the
search page's address rather than an API route that answers 400 in a browser."""

from __future__ import annotations

import os
import sys

from indexer.entrypoints.cli.common import runnable_command
from indexer.entrypoints.local_host import page_url
from standins.cli import try_lines

SCRIPT = os.path.join(os.path.dirname(sys.executable), "imgsearch")


def test_the_script_is_named_by_its_path_when_path_does_not_find_it(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    project = os.path.dirname(os.path.dirname(os.path.dirname(SCRIPT)))
    assert runnable_command(cwd=project) == os.path.relpath(SCRIPT, project)  # .venv/bin/imgsearch
    assert runnable_command(cwd="/") in (SCRIPT, os.path.relpath(SCRIPT, "/"))
    elsewhere = runnable_command(cwd="/proc/self")
    assert os.path.isabs(elsewhere) and os.access(elsewhere, os.X_OK)


def test_the_bare_name_when_path_finds_this_script(monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(SCRIPT) + os.pathsep + "/usr/bin")
    assert runnable_command() == "imgsearch"


def test_devs_suggestions_use_the_runnable_command():
    lines = try_lines(".venv/bin/imgsearch", 7071, pull=True)
    commands = [line.removeprefix("try:").strip() for line in lines.splitlines() if "imgsearch" in line]
    assert len(commands) == 3 and all(c.startswith(".venv/bin/imgsearch ") for c in commands)
    assert "http://127.0.0.1:7071/ in a browser" in lines


def test_serve_announces_the_page_a_browser_can_open():
    assert page_url("127.0.0.1", 7071) == "http://127.0.0.1:7071/"
    assert page_url("0.0.0.0", 8080) == "http://127.0.0.1:8080/"
    assert page_url("::1", 7071) == "http://[::1]:7071/"
