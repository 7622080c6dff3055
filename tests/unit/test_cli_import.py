"""Starting ``imgsearch`` costs little: building the command line loads no service SDK and no
model. (A text query then loads only what it uses; bench/bench_text_query.py times it.) Other
packages' commands come in by their ``imgsearch.commands`` entry points, or stay out whole."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest
import typer
import typer.main

from indexer.entrypoints.cli.plugins import COMMANDS_GROUP, register_plugins

HEAVY = ("torch", "azure.storage.blob", "azure.search.documents", "aiohttp", "starlette", "uvicorn", "PIL")


def test_building_the_cli_imports_no_service_sdk_or_model():
    code = (
        "import json, sys, indexer.entrypoints.cli.imgsearch as cli; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == []


def test_without_the_stand_ins_installed_the_cli_works_without_their_commands():
    # A meta-path finder that makes the stand-ins package absent, as on a machine that installed
    # the package without them (the Function deployment leaves them out too).
    code = (
        "import sys\n"
        "class Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'standins' or name.startswith('standins.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Absent())\n"
        "from indexer.entrypoints.cli.imgsearch import app\n"
        "import typer.main\n"
        "names = sorted(typer.main.get_command(app).commands)\n"
        "print(' '.join(names))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    names = done.stdout.split()
    assert "index" in names and "search" in names and "serve" in names
    assert not {"serve-vision", "serve-search-double", "serve-azurite", "watch", "dev"} & set(names)


def test_the_stand_ins_commands_are_registered_by_their_entry_point():
    from indexer.entrypoints.cli.imgsearch import app

    names = set(typer.main.get_command(app).commands)
    assert {"serve-vision", "serve-search-double", "serve-azurite", "watch", "dev"} <= names
    declared = entry_points(group=COMMANDS_GROUP)
    assert [(p.name, p.value) for p in declared] == [("standins", "standins.cli:register")]


def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> EntryPoint:
    """An entry point of ``COMMANDS_GROUP`` whose module ``name`` holds ``source`` and a ``register``."""
    (tmp_path / f"{name}.py").write_text(
        source + "\ndef register(app):\n    app.command('from-" + name + "')(lambda: None)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return EntryPoint(name, f"{name}:register", COMMANDS_GROUP)


def test_a_plugin_whose_dependency_is_not_installed_is_skipped_and_the_others_registered(tmp_path, monkeypatch):
    app = typer.Typer()
    register_plugins(
        app,
        [
            plugin(tmp_path, monkeypatch, "imgsearch_needs_more", "import a_package_nobody_installed\n"),
            plugin(tmp_path, monkeypatch, "imgsearch_complete", ""),
        ],
    )
    assert [command.name for command in app.registered_commands] == ["from-imgsearch_complete"]


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("raise RuntimeError('a bug in the plugin')\n", RuntimeError),
        # an installed package without the module asked for is a broken plugin, not an optional part
        ("import indexer.no_such_module\n", ModuleNotFoundError),
        ("from typer import no_such_name\n", ImportError),
    ],
)
def test_any_other_error_of_a_plugin_surfaces(tmp_path, monkeypatch, source, error):
    with pytest.raises(error):
        register_plugins(typer.Typer(), [plugin(tmp_path, monkeypatch, "imgsearch_broken", source)])
