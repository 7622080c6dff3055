"""The azd post-provision hook creates the search index with the indexer's own code.

The hook script runs for real (POSIX sh, the installed ``imgsearch`` console script) against
the Azure AI Search double, with the azd output names a deployment provides. Only the Vision
endpoint is a placeholder: ``ensure-index`` never calls Vision.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from azure.search.documents.indexes import SearchIndexClient

from indexer.schema import VECTOR_FIELD, parse_pin

ROOT = Path(__file__).resolve().parent.parent
HOOK = ROOT / "infra" / "hooks" / "postprovision.sh"
CLI = Path(sys.executable).with_name("imgsearch")


def run_hook(search_double, index_name: str, model_version: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEARCH_", "VISION_", "AZURE_"))}
    env.update({
        "AZURE_SEARCH_ENDPOINT": search_double.endpoint,
        "AZURE_SEARCH_INDEX_NAME": index_name,
        "AZURE_VISION_MODEL_VERSION": model_version,
        "AZURE_VISION_ENDPOINT": "https://vision.invalid",
        # The double takes keys; the real services take Entra ID only.
        "SEARCH_KEY": search_double.api_key,
        "IMGSEARCH_HOOK_KEEP_KEYS": "1",
        "IMGSEARCH_CLI": str(CLI),
        "IMGSEARCH_HOOK_ATTEMPTS": "1",
        "IMGSEARCH_DATA_DIR": str(tmp_path / "data"),
    })
    return subprocess.run(["sh", str(HOOK)], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def index_definition(search_double, index_name: str):
    with SearchIndexClient(search_double.endpoint, search_double.credential) as client:
        return client.get_index(index_name)


def test_the_hook_creates_the_pinned_index_and_refuses_another_pin(search_double, search_index_name, tmp_path):
    created = run_hook(search_double, search_index_name, "2023-04-15", tmp_path)
    assert created.returncode == 0, created.stderr + created.stdout

    index = index_definition(search_double, search_index_name)
    pin = parse_pin(index.description)
    assert (pin.model_version, pin.dimensions) == ("2023-04-15", 1024)
    vector = next(f for f in index.fields if f.name == VECTOR_FIELD)
    assert vector.vector_search_dimensions == 1024

    # Running it again is a no-op that succeeds.
    again = run_hook(search_double, search_index_name, "2023-04-15", tmp_path)
    assert again.returncode == 0, again.stderr + again.stdout

    # Another model version on the same index fails at once and names both versions.
    conflict = run_hook(search_double, search_index_name, "2022-04-11", tmp_path)
    assert conflict.returncode != 0
    output = conflict.stderr + conflict.stdout
    assert "2022-04-11" in output and "2023-04-15" in output
    assert parse_pin(index_definition(search_double, search_index_name).description).model_version == "2023-04-15"
