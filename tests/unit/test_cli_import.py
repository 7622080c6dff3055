"""Starting ``imgsearch`` costs little: building the command line loads no service SDK and no
model. (A text query then loads only what it uses; bench/bench_text_query.py times it.)"""

from __future__ import annotations

import json
import subprocess
import sys

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
    assert not {"serve-vision", "serve-search-double", "dev"} & set(names)
