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
