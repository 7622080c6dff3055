"""The azd hook scripts, run for real with POSIX sh.

Each hook runs from a copy of infra/hooks in a temporary tree, so it cannot touch the working
copy. The programs the hooks drive cannot run here: `az` needs Azure, and `imgsearch
ensure-index` needs a search service (its run against the search double is the lead's test). So
small stand-ins on PATH record how they were called and answer like the real ones; that is the
only mocking, and it stops at the process boundary. The PowerShell twins cannot run here (no
pwsh); a test keeps them in step with the sh scripts instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from indexer.settings import Settings
from tests import bicep_graph

ROOT = Path(__file__).resolve().parent.parent
HOOKS = ROOT / "infra" / "hooks"
SH_HOOKS = sorted(p for p in HOOKS.glob("*.sh") if p.name != "lib.sh")

# azd's own environment values, set by azd itself rather than by a deployment output.
AZD_BUILTINS = {"AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_SUBSCRIPTION_ID", "AZURE_PRINCIPAL_ID",
                "AZURE_PRINCIPAL_TYPE"}


@pytest.fixture
def tree(tmp_path):
    """A repository skeleton holding a copy of the hooks; returns its root."""
    shutil.copytree(HOOKS, tmp_path / "infra" / "hooks")
    (tmp_path / "bin").mkdir()
    return tmp_path


def make_program(directory: Path, name: str, body: str) -> Path:
    """A Python stand-in for a command-line program, on the test PATH."""
    path = directory / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body), encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def run_hook(tree: Path, name: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = {"PATH": f"{tree / 'bin'}:/usr/bin:/bin", "HOME": str(tree), "LC_ALL": "C"}
    return subprocess.run(["sh", str(tree / "infra" / "hooks" / name)], env={**base, **env},
                          cwd=cwd or tree, capture_output=True, text=True, timeout=60)


def calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("script", SH_HOOKS + [HOOKS / "lib.sh"], ids=lambda p: p.name)
def test_every_sh_hook_is_valid_posix_sh(script):
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---- prepackage: a self-contained deployment package ----

def _write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_prepackage_copies_indexer_and_schemas_into_functions_without_caches(tree):
    _write(tree / "indexer" / "__init__.py", "VERSION = 2\n")
    _write(tree / "indexer" / "backends" / "azure.py", "x = 1\n")
    _write(tree / "indexer" / "__pycache__" / "settings.cpython-311.pyc", "stale")
    _write(tree / "indexer" / "backends" / "__pycache__" / "azure.cpython-311.pyc", "stale")
    _write(tree / "schemas" / "2023-04-15.json", "{}")
    _write(tree / "functions" / "function_app.py", "import indexer\n")
    _write(tree / "functions" / "indexer" / "removed_module.py", "old copy\n")

    result = run_hook(tree, "prepackage.sh", {}, cwd=tree / "functions")

    assert result.returncode == 0, result.stderr
    app = tree / "functions"
    assert (app / "indexer" / "__init__.py").read_text() == "VERSION = 2\n"
    assert (app / "indexer" / "backends" / "azure.py").is_file()
    assert (app / "schemas" / "2023-04-15.json").is_file()
    assert not (app / "indexer" / "removed_module.py").exists(), "a stale copy survived"
    assert not list(app.rglob("__pycache__")) and not list(app.rglob("*.pyc"))
    assert (tree / "indexer" / "__pycache__").is_dir(), "the hook must not touch the sources"
    assert (app / "function_app.py").read_text() == "import indexer\n"


def test_prepackage_is_repeatable(tree):
    _write(tree / "indexer" / "__init__.py")
    _write(tree / "schemas" / "a.json", "{}")
    (tree / "functions").mkdir()
    assert run_hook(tree, "prepackage.sh", {}).returncode == 0
    second = run_hook(tree, "prepackage.sh", {})
    assert second.returncode == 0, second.stderr
    assert sorted(p.name for p in (tree / "functions").iterdir()) == ["indexer", "schemas"]


def test_prepackage_names_what_is_missing(tree):
    _write(tree / "indexer" / "__init__.py")
    (tree / "functions").mkdir()
    result = run_hook(tree, "prepackage.sh", {})
    assert result.returncode != 0
    assert "schemas is missing" in result.stderr


# ---- postprovision: the index, through `imgsearch ensure-index` ----

FAKE_IMGSEARCH = """
import json, os, sys
log = os.environ["FAKE_LOG"]
watched = ["SEARCH_ENDPOINT", "SEARCH_INDEX_NAME", "VISION_MODEL_VERSION", "VISION_ENDPOINT",
           "VISION_API_VERSION", "SEARCH_KEY", "VISION_KEY"]
with open(log, "a") as f:
    f.write(json.dumps([sys.argv[1:], {k: os.environ.get(k) for k in watched}]) + "\\n")
codes = os.environ.get("FAKE_EXIT_CODES", "0").split(",")
attempt = sum(1 for _ in open(log)) - 1
sys.exit(int(codes[min(attempt, len(codes) - 1)]))
"""

OUTPUTS = {
    "AZURE_SEARCH_ENDPOINT": "https://srch-abc.search.windows.net",
    "AZURE_SEARCH_INDEX_NAME": "images",
    "AZURE_VISION_MODEL_VERSION": "2023-04-15",
    "AZURE_VISION_ENDPOINT": "https://cv-abc.cognitiveservices.azure.com",
    "AZURE_VISION_API_VERSION": "2024-02-01",
}


@pytest.fixture
def imgsearch(tree):
    make_program(tree / "bin", "imgsearch", FAKE_IMGSEARCH)
    return tree / "imgsearch.log"


def _provision_env(log: Path, **extra: str) -> dict[str, str]:
    return {**OUTPUTS, "FAKE_LOG": str(log), "IMGSEARCH_HOOK_RETRY_SECONDS": "0", **extra}


def test_postprovision_runs_ensure_index_with_the_outputs_under_the_settings_names(tree, imgsearch):
    env = _provision_env(imgsearch, SEARCH_KEY="left-over-local-key", VISION_KEY="another")
    result = run_hook(tree, "postprovision.sh", env)
    assert result.returncode == 0, result.stderr
    [(args, seen)] = calls(imgsearch)
    assert args == ["ensure-index"]
    assert seen == {
        "SEARCH_ENDPOINT": OUTPUTS["AZURE_SEARCH_ENDPOINT"],
        "SEARCH_INDEX_NAME": "images",
        "VISION_MODEL_VERSION": "2023-04-15",
        "VISION_ENDPOINT": OUTPUTS["AZURE_VISION_ENDPOINT"],
        "VISION_API_VERSION": "2024-02-01",
        "SEARCH_KEY": None,  # keys never reach a service that accepts Entra tokens only
        "VISION_KEY": None,
    }
    assert "index 'images' is ready" in result.stdout


def test_postprovision_keeps_keys_only_when_asked_for_a_key_based_stand_in(tree, imgsearch):
    env = _provision_env(imgsearch, SEARCH_KEY="stand-in-key", IMGSEARCH_HOOK_KEEP_KEYS="1")
    result = run_hook(tree, "postprovision.sh", env)
    assert result.returncode == 0, result.stderr
    [(_, seen)] = calls(imgsearch)
    assert seen["SEARCH_KEY"] == "stand-in-key"


def test_postprovision_maps_to_the_names_the_settings_object_reads():
    # the names the hook exports must be the ones indexer.settings reads
    script = (HOOKS / "postprovision.sh").read_text(encoding="utf-8")
    exported = set(re.findall(r"^export (\w+)=", script, re.M))
    aliases = {Settings.model_fields[f].validation_alias for f in
               ("search_endpoint", "search_index_name", "vision_model_version", "vision_endpoint",
                "vision_api_version")}
    assert aliases <= exported


def test_postprovision_retries_while_new_role_assignments_propagate(tree, imgsearch):
    result = run_hook(tree, "postprovision.sh", _provision_env(imgsearch, FAKE_EXIT_CODES="1,1,0"))
    assert result.returncode == 0, result.stderr
    assert len(calls(imgsearch)) == 3


@pytest.mark.parametrize("code", [2, 3, 130])
def test_postprovision_stops_at_once_when_waiting_cannot_help(tree, imgsearch, code):
    # imgsearch exit codes (indexer/cli_support.py): 2 configuration or usage error, 3 the
    # existing index is pinned to another model version, 130 interrupted
    result = run_hook(tree, "postprovision.sh", _provision_env(imgsearch, FAKE_EXIT_CODES=str(code)))
    assert result.returncode != 0
    assert len(calls(imgsearch)) == 1
    assert f"exit {code}" in result.stderr


def test_postprovision_gives_up_after_the_configured_attempts(tree, imgsearch):
    env = _provision_env(imgsearch, FAKE_EXIT_CODES="1", IMGSEARCH_HOOK_ATTEMPTS="3")
    result = run_hook(tree, "postprovision.sh", env)
    assert result.returncode != 0
    assert len(calls(imgsearch)) == 3
    assert "after 3 attempts" in result.stderr and "azd hooks run postprovision" in result.stderr


@pytest.mark.parametrize("output", ["AZURE_SEARCH_ENDPOINT", "AZURE_SEARCH_INDEX_NAME",
                                    "AZURE_VISION_MODEL_VERSION", "AZURE_VISION_ENDPOINT"])
def test_postprovision_names_a_missing_output(tree, imgsearch, output):
    # AZURE_VISION_ENDPOINT too: without a Vision endpoint the indexer would pin the index to
    # its offline model rather than the Azure model version.
    env = _provision_env(imgsearch)
    del env[output]
    result = run_hook(tree, "postprovision.sh", env)
    assert result.returncode != 0
    assert f"{output} is not set" in result.stderr
    assert calls(imgsearch) == []


def test_the_environment_the_hook_hands_over_pins_the_index_to_the_azure_model(tree, imgsearch, monkeypatch):
    from indexer.settings import load_settings, pinned_model_version
    assert run_hook(tree, "postprovision.sh", _provision_env(imgsearch)).returncode == 0
    [(_, seen)] = calls(imgsearch)
    for name in list(os.environ):
        if name.startswith(("VISION_", "SEARCH_", "IMAGES_")):
            monkeypatch.delenv(name)
    for name, value in seen.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    settings = load_settings()
    assert not settings.uses_numpy_index and not settings.uses_offline_model
    assert pinned_model_version(settings) == OUTPUTS["AZURE_VISION_MODEL_VERSION"]


def test_a_hook_run_by_hand_loads_the_azd_environment_without_overriding_the_caller(tree, imgsearch):
    # azd exports its environment to hooks; `azd hooks run` by hand from another shell may not,
    # so the hook asks `azd env get-values` (KEY="value" lines) for what is missing.
    values = "\n".join(f'{k}="{v}"' for k, v in OUTPUTS.items())
    make_program(tree / "bin", "azd", f"""
import sys
assert sys.argv[1:] == ["env", "get-values"], sys.argv
print({values!r})
""")
    env = {"FAKE_LOG": str(imgsearch), "IMGSEARCH_HOOK_RETRY_SECONDS": "0",
           "AZURE_SEARCH_INDEX_NAME": "chosen-by-caller"}
    result = run_hook(tree, "postprovision.sh", env)
    assert result.returncode == 0, result.stderr
    [(_, seen)] = calls(imgsearch)
    assert seen["SEARCH_ENDPOINT"] == OUTPUTS["AZURE_SEARCH_ENDPOINT"]
    assert seen["VISION_MODEL_VERSION"] == "2023-04-15"
    assert seen["SEARCH_INDEX_NAME"] == "chosen-by-caller"


def test_postprovision_uses_an_explicit_cli_and_explains_a_missing_one(tree):
    log = tree / "explicit.log"
    explicit = make_program(tree, "my-imgsearch", FAKE_IMGSEARCH)
    result = run_hook(tree, "postprovision.sh", _provision_env(log, IMGSEARCH_CLI=str(explicit)))
    assert result.returncode == 0, result.stderr
    assert len(calls(log)) == 1
    missing = run_hook(tree, "postprovision.sh", _provision_env(log))
    assert missing.returncode != 0
    assert "imgsearch CLI is not installed" in missing.stderr and "pip install -e ." in missing.stderr


# ---- postdeploy: the Event Grid subscriptions ----

FAKE_AZ = """
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")

def count(name):
    path = os.environ["FAKE_LOG"] + "." + name
    n = int(open(path).read()) if os.path.exists(path) else 0
    open(path, "w").write(str(n + 1))
    return n

if args[:3] == ["functionapp", "keys", "list"]:
    query = args[args.index("--query") + 1]
    ready = count(query) >= int(os.environ.get("FAKE_KEYS_AFTER", "0"))
    keys = {"systemKeys.blobs_extension": "blobs-secret-key", "systemKeys.eventgrid_extension": "eg-secret-key"}
    print(keys[query] if ready else "")
elif args[:2] == ["functionapp", "show"]:
    print(os.environ.get("FAKE_HOSTNAME", ""))
elif args[:4] == ["eventgrid", "system-topic", "event-subscription", "create"]:
    if count("create") < int(os.environ.get("FAKE_CREATE_FAILURES", "0")):
        print("ERROR: webhook validation handshake failed", file=sys.stderr)
        sys.exit(1)
else:
    print("unexpected az call: " + " ".join(args), file=sys.stderr)
    sys.exit(2)
"""

FAKE_CURL = """
import os, sys
with open(os.environ["FAKE_LOG"] + ".curl", "a") as f:
    f.write(sys.argv[-1] + "\\n")
"""

HOSTNAME = "func-abc-h4shd4b5c6.eastus-01.azurewebsites.net"
DEPLOY_OUTPUTS = {
    "AZURE_RESOURCE_GROUP": "rg-dev",
    "AZURE_FUNCTION_NAME": "func-abc",
    "AZURE_FUNCTION_HOSTNAME": HOSTNAME,
    "AZURE_EVENTGRID_SYSTEM_TOPIC_NAME": "evgt-img-abc",
    "AZURE_IMAGES_CONTAINER": "images",
}


@pytest.fixture
def az(tree):
    make_program(tree / "bin", "az", FAKE_AZ)
    make_program(tree / "bin", "curl", FAKE_CURL)
    return tree / "az.log"


def _deploy_env(log: Path, **extra: str) -> dict[str, str]:
    return {**DEPLOY_OUTPUTS, "FAKE_LOG": str(log), "IMGSEARCH_HOOK_RETRY_SECONDS": "0", **extra}


def _option(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


def _subscriptions(log: Path) -> list[list[str]]:
    return [c for c in calls(log) if c[:4] == ["eventgrid", "system-topic", "event-subscription", "create"]]


def test_postdeploy_subscribes_the_two_functions_to_the_images_container(tree, az):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az))
    assert result.returncode == 0, result.stderr
    created, deleted = _subscriptions(az)
    prefix = "/blobServices/default/containers/images/"
    for call in (created, deleted):
        assert _option(call, "--resource-group") == "rg-dev"
        assert _option(call, "--system-topic-name") == "evgt-img-abc"
        assert _option(call, "--endpoint-type") == "webhook"
        assert _option(call, "--subject-begins-with") == prefix
    assert _option(created, "--included-event-types") == "Microsoft.Storage.BlobCreated"
    assert _option(created, "--endpoint") == (
        f"https://{HOSTNAME}/runtime/webhooks/blobs?functionName=Host.Functions.index_image&code=blobs-secret-key")
    assert _option(deleted, "--included-event-types") == "Microsoft.Storage.BlobDeleted"
    assert _option(deleted, "--endpoint") == (
        f"https://{HOSTNAME}/runtime/webhooks/eventgrid?functionName=remove_image&code=eg-secret-key")
    assert _option(created, "--name") != _option(deleted, "--name")


def test_postdeploy_never_prints_the_system_keys(tree, az):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az))
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "secret-key" not in output
    assert "subscription index-image-on-blob-created" in output


def test_postdeploy_reads_the_host_name_from_azure_when_the_output_is_absent(tree, az):
    env = _deploy_env(az, FAKE_HOSTNAME="func-abc-zz99.westeurope-01.azurewebsites.net")
    del env["AZURE_FUNCTION_HOSTNAME"]
    result = run_hook(tree, "postdeploy.sh", env)
    assert result.returncode == 0, result.stderr
    assert any(c[:2] == ["functionapp", "show"] for c in calls(az))
    assert all("func-abc-zz99.westeurope-01.azurewebsites.net" in _option(c, "--endpoint")
               for c in _subscriptions(az))


def test_postdeploy_wakes_the_host_and_waits_for_its_extension_keys(tree, az):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, FAKE_KEYS_AFTER="2"))
    assert result.returncode == 0, result.stderr
    assert "waiting for the Function host" in result.stdout
    assert len(_subscriptions(az)) == 2
    woken = Path(str(az) + ".curl").read_text().split()
    assert len(woken) == 3 and set(woken) == {f"https://{HOSTNAME}/"}


def test_postdeploy_fails_clearly_when_the_keys_never_appear(tree, az):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, FAKE_KEYS_AFTER="99", IMGSEARCH_HOOK_ATTEMPTS="3"))
    assert result.returncode != 0
    assert "blobs_extension/eventgrid_extension" in result.stderr and "index_image" in result.stderr
    assert _subscriptions(az) == []


def test_postdeploy_retries_a_subscription_the_webhook_handshake_rejected(tree, az):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, FAKE_CREATE_FAILURES="1"))
    assert result.returncode == 0, result.stderr
    assert len(_subscriptions(az)) == 3  # BlobCreated twice, BlobDeleted once


def test_postdeploy_needs_the_az_cli(tree):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(tree / "az.log"))
    assert result.returncode != 0
    assert "'az' is not installed" in result.stderr


# ---- consistency with the deployment outputs and between the twins ----

def _read_vars(script: str) -> set[str]:
    sh = re.findall(r"\$\{?(AZURE_[A-Z_]+)", script)
    quoted = re.findall(r"'(AZURE_[A-Z_]+)'", script)
    pwsh = re.findall(r"\$env:(AZURE_[A-Z_]+)", script)
    return set(sh) | set(quoted) | set(pwsh)


@pytest.mark.parametrize("script", sorted(HOOKS.glob("post*.*")), ids=lambda p: p.name)
def test_every_azure_value_a_hook_reads_is_a_main_output_or_set_by_azd(script):
    outputs = set(bicep_graph.load(ROOT / "infra" / "main.bicep").outputs)
    used = _read_vars(script.read_text(encoding="utf-8"))
    assert used, f"{script.name} reads no deployment output"
    assert used <= outputs | AZD_BUILTINS, used - outputs - AZD_BUILTINS


TWIN_FACTS = [
    r"index_image", r"remove_image", r"Host\.Functions\.", r"/runtime/webhooks/blobs",
    r"/runtime/webhooks/eventgrid", r"Microsoft\.Storage\.BlobCreated", r"Microsoft\.Storage\.BlobDeleted",
    r"blobs_extension", r"eventgrid_extension", r"/blobServices/default/containers/",
    r"index-image-on-blob-created", r"remove-image-on-blob-deleted", r"ensure-index",
    r"IMGSEARCH_HOOK_ATTEMPTS", r"IMGSEARCH_HOOK_RETRY_SECONDS", r"IMGSEARCH_CLI", r"IMGSEARCH_HOOK_KEEP_KEYS",
    r"SEARCH_KEY", r"VISION_KEY", r"__pycache__", r"\bindexer\b", r"\bschemas\b",
]


@pytest.mark.parametrize("name", ["prepackage", "postprovision", "postdeploy"])
def test_the_powershell_twin_does_what_the_sh_hook_does(name):
    sh = (HOOKS / f"{name}.sh").read_text(encoding="utf-8")
    ps = (HOOKS / f"{name}.ps1").read_text(encoding="utf-8")
    assert ". (Join-Path $PSScriptRoot 'lib.ps1')" in ps
    for fact in TWIN_FACTS:
        assert bool(re.search(fact, sh)) == bool(re.search(fact, ps)), f"{name}: only one twin mentions {fact}"
    assert _read_vars(sh) == _read_vars(ps)
    sh_defaults = re.findall(r"IMGSEARCH_HOOK_(ATTEMPTS|RETRY_SECONDS):-(\d+)", sh)
    ps_defaults = re.findall(r"IMGSEARCH_HOOK_(\w+)\) \{ \[int\]\$env:IMGSEARCH_HOOK_\w+ \} else \{ (\d+) \}", ps)
    assert sorted(sh_defaults) == sorted(ps_defaults)
    if name != "prepackage":
        assert {k for k, _ in sh_defaults} == {"ATTEMPTS", "RETRY_SECONDS"}, sh_defaults


def _decorated_functions(path: Path) -> dict[str, dict[str, dict]]:
    """function name -> {decorator attribute: {keyword: literal or source text}} of a module."""
    import ast
    tree = ast.parse(path.read_text(encoding="utf-8"))
    result: dict[str, dict[str, dict]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            decorators = {}
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute):
                    decorators[decorator.func.attr] = {
                        k.arg: (k.value.value if isinstance(k.value, ast.Constant) else ast.unparse(k.value))
                        for k in decorator.keywords}
            result[node.name] = decorators
    return result


def test_the_subscribed_functions_exist_with_the_triggers_the_webhooks_expect():
    # The postdeploy hook points BlobCreated at the blobs extension of index_image and BlobDeleted
    # at the Event Grid extension of remove_image; functions/function_app.py must declare them so.
    app = ROOT / "functions" / "function_app.py"
    if not app.exists():
        pytest.skip("functions/function_app.py is not written yet")
    functions = _decorated_functions(app)
    blob = functions["index_image"]["blob_trigger"]
    assert blob["connection"] == "IMAGES_STORAGE"
    assert blob["source"].endswith("EVENT_GRID")
    container = blob["path"].split("/", 1)[0]
    assert container in ("images", "%IMAGES_CONTAINER%")
    assert "event_grid_trigger" in functions["remove_image"]
    assert "route" in functions["search"]
