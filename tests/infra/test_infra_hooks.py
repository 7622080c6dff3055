"""The azd hook scripts, run for real with POSIX sh, as azd runs them.

Each hook runs from a copy of infra/hooks (and the template postdeploy deploys) in a temporary
tree, so it cannot touch the working copy. The programs the hooks drive cannot run here: `az`
needs Azure, and `imgsearch ensure-index` needs a search service (its runs against the search
double are in tests/infra/test_provision_hook.py). So small stand-ins on PATH record how they were
called and answer like the real ones (`az` evaluates the hooks' --query expressions with
jmespath, as az does); `sleep` records the waits and returns at once, so retry schedules are
asserted without waiting. That is the only mocking, and it stops at the process boundary.

The PowerShell twins cannot run here (no pwsh on the test machines, none installable from the
package registries): tests read them and keep them in step with the sh hooks instead, which is
weaker than running them.
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
from tests.infra import bicep_graph

ROOT = Path(__file__).resolve().parents[2]
STORAGE_ACCOUNT_ID = "/subscriptions/x/resourceGroups/rg-dev/providers/Microsoft.Storage/storageAccounts/stimgabc"
HOOKS = ROOT / "infra" / "hooks"
SH_HOOKS = sorted(p for p in HOOKS.glob("*.sh") if p.name != "lib.sh")

# azd's own environment values, set by azd itself rather than by a deployment output.
AZD_BUILTINS = {
    "AZURE_ENV_NAME",
    "AZURE_LOCATION",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_PRINCIPAL_ID",
    "AZURE_PRINCIPAL_TYPE",
}


@pytest.fixture
def tree(tmp_path):
    """A repository skeleton holding a copy of the hooks; returns its root."""
    shutil.copytree(HOOKS, tmp_path / "infra" / "hooks")
    (tmp_path / "infra" / "app").mkdir()
    shutil.copy(ROOT / "infra" / "app" / "eventsubscriptions.bicep", tmp_path / "infra" / "app")
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
    return subprocess.run(
        ["sh", str(tree / "infra" / "hooks" / name)],
        env={**base, **env},
        cwd=cwd or tree,
        capture_output=True,
        text=True,
        timeout=60,
    )


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


# ---- stand-ins for the programs the hooks drive ----

SUBSCRIPTION = "0b1c2d3e-aaaa-4bbb-8ccc-123456789abc"
OTHER_SUBSCRIPTION = "99999999-aaaa-4bbb-8ccc-000000000000"

# `sleep` that records how long the hook asked to wait, and returns at once: the retry schedule
# is asserted from these numbers, and no test waits for real.
FAKE_SLEEP = """
import os, sys
with open(os.environ["FAKE_LOG"] + ".sleep", "a") as f:
    f.write(sys.argv[1] + "\\n")
"""


def slept(log: Path) -> list[int]:
    path = Path(str(log) + ".sleep")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@pytest.fixture
def sleep(tree):
    make_program(tree / "bin", "sleep", FAKE_SLEEP)


# ---- postprovision: the index, through `imgsearch ensure-index` ----

FAKE_IMGSEARCH = """
import json, os, sys
log = os.environ["FAKE_LOG"]
watched = ["SEARCH_ENDPOINT", "SEARCH_INDEX_NAME", "VISION_MODEL_VERSION", "VISION_ENDPOINT",
           "VISION_API_VERSION", "SEARCH_KEY", "VISION_KEY", "AZURE_TOKEN_CREDENTIALS"]
with open(log, "a") as f:
    f.write(json.dumps([sys.argv[1:], {k: os.environ.get(k) for k in watched}]) + "\\n")
codes = os.environ.get("FAKE_EXIT_CODES", "0").split(",")
attempt = sum(1 for _ in open(log)) - 1
code = int(codes[min(attempt, len(codes) - 1)])
if code:
    print("Retrying the request (attempt %d)" % (attempt + 1), file=sys.stderr)
    print("error: 403 Forbidden from the search service (attempt %d)" % (attempt + 1), file=sys.stderr)
sys.exit(code)
"""

OUTPUTS = {
    "AZURE_SEARCH_ENDPOINT": "https://srch-abc.search.windows.net",
    "AZURE_SEARCH_INDEX_NAME": "images",
    "AZURE_VISION_MODEL_VERSION": "2023-04-15",
    "AZURE_VISION_ENDPOINT": "https://cv-abc.cognitiveservices.azure.com",
    "AZURE_VISION_API_VERSION": "2024-02-01",
}


@pytest.fixture
def imgsearch(tree, sleep):
    make_program(tree / "bin", "imgsearch", FAKE_IMGSEARCH)
    return tree / "imgsearch.log"


def _provision_env(log: Path, **extra: str) -> dict[str, str]:
    cli = str(log.parent / "bin" / "imgsearch")
    return {**OUTPUTS, "FAKE_LOG": str(log), "IMGSEARCH_CLI": cli, **extra}


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
        # DefaultAzureCredential uses azd's sign-in, not whatever az is signed in to
        "AZURE_TOKEN_CREDENTIALS": "AzureDeveloperCliCredential",
    }
    assert "index 'images' is ready" in result.stdout


def test_only_an_explicit_hook_setting_names_another_credential(tree, imgsearch):
    # Deploying without azd there is no azd sign-in; the hook's own knob, not a stray
    # AZURE_TOKEN_CREDENTIALS in the shell, selects the Azure CLI's instead.
    stray = run_hook(tree, "postprovision.sh", _provision_env(imgsearch, AZURE_TOKEN_CREDENTIALS="dev"))
    assert stray.returncode == 0, stray.stderr
    chosen = run_hook(
        tree, "postprovision.sh", _provision_env(imgsearch, IMGSEARCH_HOOK_TOKEN_CREDENTIALS="AzureCliCredential")
    )
    assert chosen.returncode == 0, chosen.stderr
    assert [seen["AZURE_TOKEN_CREDENTIALS"] for _, seen in calls(imgsearch)] == [
        "AzureDeveloperCliCredential",
        "AzureCliCredential",
    ]


def test_the_credential_the_hook_selects_is_azds_alone_in_the_installed_azure_identity(monkeypatch):
    # azure-identity 1.24 added single-credential values of AZURE_TOKEN_CREDENTIALS; an older one
    # rejects the value. The base dependencies require 1.24, and this is the chain it builds.
    from azure.identity import AzureDeveloperCliCredential, DefaultAzureCredential

    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "AzureDeveloperCliCredential")
    credential = DefaultAzureCredential()
    assert [type(c) for c in credential.credentials] == [AzureDeveloperCliCredential]


def test_postprovision_keeps_keys_only_when_asked_for_a_key_based_stand_in(tree, imgsearch):
    env = _provision_env(imgsearch, SEARCH_KEY="stand-in-key", IMGSEARCH_HOOK_KEEP_KEYS="1")
    result = run_hook(tree, "postprovision.sh", env)
    assert result.returncode == 0, result.stderr
    [(_, seen)] = calls(imgsearch)
    assert seen["SEARCH_KEY"] == "stand-in-key"


def test_postprovision_maps_to_the_names_the_settings_object_reads():
    # the names the hook exports must be the ones indexer.settings reads
    script = (HOOKS / "postprovision.sh").read_text(encoding="utf-8")
    assert re.search(r"^export_deployment_settings$", script, re.M)  # lib.sh's exports, called here
    script += (HOOKS / "lib.sh").read_text(encoding="utf-8")
    exported = set(re.findall(r"^\s*export (\w+)=", script, re.M))
    aliases = {
        Settings.model_fields[f].validation_alias
        for f in (
            "search_endpoint",
            "search_index_name",
            "vision_model_version",
            "vision_endpoint",
            "vision_api_version",
            "search_vector_compression",
        )
    }
    assert aliases <= exported


def test_postprovision_retries_while_new_role_assignments_propagate(tree, imgsearch):
    result = run_hook(tree, "postprovision.sh", _provision_env(imgsearch, FAKE_EXIT_CODES="1,1,0"))
    assert result.returncode == 0, result.stderr
    assert len(calls(imgsearch)) == 3
    assert slept(imgsearch) == [10, 20]


def test_postprovision_waits_at_least_ten_minutes_with_backoff_and_names_the_last_error(tree, imgsearch):
    # Microsoft documents 5 to 10 minutes for Search role assignments to apply (30 in general).
    result = run_hook(tree, "postprovision.sh", _provision_env(imgsearch, FAKE_EXIT_CODES="1"))
    assert result.returncode != 0
    waits = slept(imgsearch)
    assert sum(waits) >= 600
    assert waits == sorted(waits) and waits[0] < waits[-1] and max(waits) <= 60  # backs off, capped
    assert len(calls(imgsearch)) == len(waits) + 1
    # each retry names the error of that attempt; the final message names the last one
    for attempt in range(1, len(waits) + 1):
        assert f"403 Forbidden from the search service (attempt {attempt})" in result.stdout
    assert f"(attempt {len(waits) + 1})" in result.stderr.splitlines()[-1]
    assert "azd hooks run postprovision" in result.stderr


@pytest.mark.parametrize("code", [2, 3, 130])
def test_postprovision_stops_at_once_when_waiting_cannot_help(tree, imgsearch, code):
    # imgsearch exit codes (indexer/cli_support.py): 2 configuration or usage error, 3 the
    # existing index is pinned to another model version, 130 interrupted
    result = run_hook(tree, "postprovision.sh", _provision_env(imgsearch, FAKE_EXIT_CODES=str(code)))
    assert result.returncode != 0
    assert len(calls(imgsearch)) == 1 and slept(imgsearch) == []
    assert f"exit {code}" in result.stderr and "403 Forbidden" in result.stderr


def test_postprovision_gives_up_after_the_configured_attempts(tree, imgsearch):
    env = _provision_env(imgsearch, FAKE_EXIT_CODES="1", IMGSEARCH_HOOK_ATTEMPTS="3")
    result = run_hook(tree, "postprovision.sh", env)
    assert result.returncode != 0
    assert len(calls(imgsearch)) == 3
    assert "after 3 attempts" in result.stderr and "azd hooks run postprovision" in result.stderr


@pytest.mark.parametrize(
    "output",
    ["AZURE_SEARCH_ENDPOINT", "AZURE_SEARCH_INDEX_NAME", "AZURE_VISION_MODEL_VERSION", "AZURE_VISION_ENDPOINT"],
)
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
        if value is not None and name != "AZURE_TOKEN_CREDENTIALS":
            monkeypatch.setenv(name, value)
    settings = load_settings()
    assert not settings.uses_numpy_index and not settings.uses_offline_model
    assert pinned_model_version(settings) == OUTPUTS["AZURE_VISION_MODEL_VERSION"]


def test_a_hook_run_by_hand_loads_the_azd_environment_without_overriding_the_caller(tree, imgsearch):
    # azd exports its environment to hooks; `azd hooks run` by hand from another shell may not,
    # so the hook asks `azd env get-values` (KEY="value" lines) for what is missing.
    values = "\n".join(f'{k}="{v}"' for k, v in OUTPUTS.items())
    make_program(
        tree / "bin",
        "azd",
        f"""
import sys
assert sys.argv[1:] == ["env", "get-values"], sys.argv
print({values!r})
""",
    )
    env = {
        "FAKE_LOG": str(imgsearch),
        "IMGSEARCH_CLI": str(tree / "bin" / "imgsearch"),
        "AZURE_SEARCH_INDEX_NAME": "chosen-by-caller",
    }
    result = run_hook(tree, "postprovision.sh", env)
    assert result.returncode == 0, result.stderr
    [(_, seen)] = calls(imgsearch)
    assert seen["SEARCH_ENDPOINT"] == OUTPUTS["AZURE_SEARCH_ENDPOINT"]
    assert seen["VISION_MODEL_VERSION"] == "2023-04-15"
    assert seen["SEARCH_INDEX_NAME"] == "chosen-by-caller"


def test_postprovision_says_when_a_settings_name_disagrees_with_the_deployment(tree, imgsearch):
    # The model switch sets AZURE_SEARCH_INDEX_NAME (mapped to the Bicep parameter); a different
    # SEARCH_INDEX_NAME left in a shell is not silently overridden: the hook says what it does.
    env = _provision_env(imgsearch, SEARCH_INDEX_NAME="images-v2", VISION_MODEL_VERSION="2022-04-11")
    result = run_hook(tree, "postprovision.sh", env)
    assert result.returncode == 0, result.stderr
    [(_, seen)] = calls(imgsearch)
    assert (seen["SEARCH_INDEX_NAME"], seen["VISION_MODEL_VERSION"]) == ("images", "2023-04-15")
    assert "SEARCH_INDEX_NAME is 'images-v2' here, but the deployment uses 'images'" in result.stderr
    assert "azd env set AZURE_SEARCH_INDEX_NAME" in result.stderr
    assert "azd env set AZURE_VISION_MODEL_VERSION" in result.stderr


def test_postprovision_reuses_a_ready_virtual_environment_without_installing(tree, imgsearch):
    # A ready environment (make setup's .venv, or an earlier run): the hook uses it as it is.
    # A virtual environment that shares the test environment's packages (indexer, azure-identity
    # >= 1.24) but whose imgsearch is the stand-in.
    venv = tree / "venv"
    (venv / "bin").mkdir(parents=True)
    shutil.copy(Path(sys.prefix) / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / "lib").symlink_to(Path(sys.prefix) / "lib")
    (venv / "bin" / "python").symlink_to(sys.executable)
    shutil.copy(tree / "bin" / "imgsearch", venv / "bin" / "imgsearch")
    env = _provision_env(imgsearch, IMGSEARCH_HOOK_VENV=str(venv))
    del env["IMGSEARCH_CLI"]
    result = run_hook(tree, "postprovision.sh", env)
    assert result.returncode == 0, result.stderr
    assert f"using the Python environment {venv}" in result.stdout
    assert "installing" not in result.stdout
    assert len(calls(imgsearch)) == 1


SYSTEM_TOOLS = ["sh", "dirname", "cat", "grep", "tail", "tr", "mktemp", "rm", "env", "printf"]


def _path_without_python(tree: Path) -> str:
    """A PATH with the tools the hooks use but no Python at all (and the stand-ins of bin/)."""
    system = tree / "sysbin"
    system.mkdir(exist_ok=True)
    for tool in SYSTEM_TOOLS:
        found = shutil.which(tool, path="/usr/bin:/bin")
        if found:
            (system / tool).symlink_to(found)
    return f"{tree / 'bin'}:{system}"


def test_postprovision_says_how_to_get_python_when_there_is_none(tree, imgsearch):
    env = _provision_env(imgsearch, IMGSEARCH_HOOK_VENV=str(tree / "new-venv"), PATH=_path_without_python(tree))
    del env["IMGSEARCH_CLI"]
    result = run_hook(tree, "postprovision.sh", env)
    assert result.returncode != 0
    assert "no Python 3.11 or newer" in result.stderr and "python.org" in result.stderr
    assert calls(imgsearch) == [] and not (tree / "new-venv").exists()


def test_postprovision_in_private_mode_stops_at_once_outside_the_network(tree, imgsearch):
    # The search service takes traffic only through its private endpoint; from a machine that
    # resolves its name to a public address every call would be refused. 8.8.8.8 is public.
    env = _provision_env(imgsearch, AZURE_VNET_ENABLED="true", AZURE_SEARCH_ENDPOINT="https://8.8.8.8")
    result = run_hook(tree, "postprovision.sh", env)
    assert result.returncode != 0
    assert "private network mode" in result.stderr and "inside the virtual network" in result.stderr
    assert calls(imgsearch) == []
    # from inside (a private address) it goes ahead
    inside = run_hook(
        tree,
        "postprovision.sh",
        _provision_env(imgsearch, AZURE_VNET_ENABLED="true", AZURE_SEARCH_ENDPOINT="https://10.0.1.4"),
    )
    assert inside.returncode == 0, inside.stderr
    assert len(calls(imgsearch)) == 1


# ---- the Azure CLI stand-in ----

# Records every call, and answers like az: a sign-in state and the subscriptions the account can
# use; `--query` expressions are evaluated with jmespath (the library az uses) over documents
# shaped like az's answers, so the hooks' queries are tested, not assumed.
FAKE_AZ = """
import json, os, sys
import jmespath

args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")

def option(name, default=None):
    return args[args.index(name) + 1] if name in args else default

def count(name):
    path = os.environ["FAKE_LOG"] + "." + name
    n = int(open(path).read()) if os.path.exists(path) else 0
    open(path, "w").write(str(n + 1))
    return n

def fail(message, code=1):
    print("ERROR: " + message, file=sys.stderr)
    sys.exit(code)

def answer(document):
    query = option("--query")
    result = jmespath.search(query, document) if query else document
    if option("--output") == "tsv":
        rows = result if isinstance(result, list) else [result]
        print("\\n".join("" if r is None else str(r) for r in rows))
    elif option("--output") != "none":
        print(json.dumps(result))

if os.environ.get("FAKE_AZ_LOGGED_IN", "1") != "1":
    fail("Please run 'az login' to setup account.")
subscriptions = os.environ.get("FAKE_AZ_SUBSCRIPTIONS", "").split(",")
default = subscriptions[0]
subscription = option("--subscription", default)
if subscription not in subscriptions:
    fail(f"Subscription '{subscription}' not found. Check the spelling and casing and try again.")
if subscription != os.environ.get("FAKE_AZ_EXPECTED_SUBSCRIPTION", subscription):
    fail(f"(ResourceGroupNotFound) Resource group 'rg-dev' could not be found in {subscription}.", 3)

if args[:2] == ["account", "show"]:
    answer({"id": subscription, "tenantId": "tenant-1", "user": {"name": "dev@contoso.example", "type": "user"}})
elif args[:3] == ["functionapp", "keys", "list"]:
    error = os.environ.get("FAKE_KEYS_ERROR")
    if error and count("keys-error") < int(os.environ.get("FAKE_KEYS_ERROR_TIMES", "99")):
        fail(error)
    ready = count("keys") >= int(os.environ.get("FAKE_KEYS_AFTER", "0"))
    keys = {"blobs_extension": "blobs-secret-key", "eventgrid_extension": "eg-secret-key"} if ready else {}
    answer({"masterKey": "master-secret-key", "functionKeys": {"default": "fn-secret-key"}, "systemKeys": keys})
elif args[:4] == ["functionapp", "function", "keys", "list"] and option("--function-name") == "search":
    answer({"default": "search-default-secret"})  # the host makes a default key for every function
elif args[:4] == ["functionapp", "function", "keys", "list"]:
    if option("--function-name") != "vectorize":
        fail("unexpected function " + str(option("--function-name")), 2)
    error = os.environ.get("FAKE_FUNCTION_KEYS_ERROR")
    if error and count("function-keys-error") < int(os.environ.get("FAKE_FUNCTION_KEYS_ERROR_TIMES", "99")):
        fail(error)
    stored = os.environ["FAKE_LOG"] + ".vectorize-key"
    keys = {"default": "vectorize-default-secret"}  # the function's own default key
    if os.environ.get("FAKE_VECTORIZE_KEY"):
        keys["azure_search"] = os.environ["FAKE_VECTORIZE_KEY"]
    elif os.path.exists(stored):
        keys["azure_search"] = open(stored).read()
    answer(keys)
elif args[:4] == ["functionapp", "function", "keys", "set"]:
    value = option("--key-value") or "vectorize-created-secret"
    open(os.environ["FAKE_LOG"] + ".vectorize-key", "w").write(value)
    answer({"name": option("--key-name"), "value": value})
elif args[:2] == ["functionapp", "show"]:
    answer({"defaultHostName": os.environ.get("FAKE_HOSTNAME", "")})
elif args[:3] == ["deployment", "group", "create"]:
    if count("create") < int(os.environ.get("FAKE_CREATE_FAILURES", "0")):
        fail("{'code': 'Url validation', 'message': 'Webhook validation handshake failed for https://func-abc/runtime/webhooks/blobs.'}")
elif args[:3] == ["role", "assignment", "list"]:
    if os.environ.get("FAKE_ROLES_ERROR"):
        fail(os.environ["FAKE_ROLES_ERROR"])
    roles = [r for r in os.environ.get("FAKE_ROLES", "Owner").split(",") if r]
    answer([{"roleDefinitionName": r, "principalName": option("--assignee")} for r in roles])
elif args[:2] == ["functionapp", "list-flexconsumption-locations"]:
    if os.environ.get("FAKE_FLEX_ERROR"):
        fail(os.environ["FAKE_FLEX_ERROR"])
    regions = os.environ.get("FAKE_FLEX_LOCATIONS", "eastus,northeurope,westus2,israelcentral").split(",")
    answer([{"name": r} for r in regions])
elif args[:2] == ["account", "list-locations"]:
    # metadata.pairedRegion as az shows it: a list, empty for a region without a pair
    pairs = dict(p.split("=") for p in os.environ.get("FAKE_PAIRS", "eastus=westus,northeurope=westeurope").split(","))
    regions = ["eastus", "westus", "northeurope", "westeurope", "westus2", "israelcentral"]
    answer([
        {"name": r, "metadata": {"pairedRegion": [{"name": pairs[r], "id": "/x/" + pairs[r]}] if r in pairs else []}}
        for r in regions
    ])
elif args[:3] == ["cognitiveservices", "account", "list"]:
    kinds = [k for k in os.environ.get("FAKE_ACCOUNT_KINDS", "ComputerVision").split(",") if k]
    answer([{"name": f"acct{i}", "kind": k} for i, k in enumerate(kinds)])
else:
    fail("unexpected az call: " + " ".join(args), 2)
"""

FAKE_CURL = """
import os, sys
with open(os.environ["FAKE_LOG"] + ".curl", "a") as f:
    f.write(sys.argv[-1] + "\\n")
"""

SECRETS = (
    "blobs-secret-key",
    "eg-secret-key",
    "master-secret-key",
    "fn-secret-key",
    "vectorize-default-secret",
    "vectorize-created-secret",
    "vectorize-kept-secret",
    "search-default-secret",
)


# `imgsearch` for the postdeploy hook: its own log (the az log holds az calls only), and the
# settings the hook hands over, the vectorizer key among them.
FAKE_DEPLOY_IMGSEARCH = FAKE_IMGSEARCH.replace('os.environ["FAKE_LOG"]', 'os.environ["FAKE_IMGSEARCH_LOG"]').replace(
    '"AZURE_TOKEN_CREDENTIALS"]',
    '"AZURE_TOKEN_CREDENTIALS", "SEARCH_VECTORIZER_URI", "SEARCH_VECTORIZER_KEY", "IMAGES_STORAGE_RESOURCE_ID", '
    '"IMAGES_CONTAINER", "IMAGES_STORAGE", "IMGSEARCH_FUNCTION_URL", "IMGSEARCH_FUNCTION_KEY", '
    '"IMAGES_STORAGE__blobServiceUri", "INGESTION_MODE"]',
)


@pytest.fixture
def az(tree, sleep):
    make_program(tree / "bin", "az", FAKE_AZ)
    make_program(tree / "bin", "curl", FAKE_CURL)
    make_program(tree / "bin", "imgsearch", FAKE_DEPLOY_IMGSEARCH)
    return tree / "az.log"


def _az_env(log: Path, **extra: str) -> dict[str, str]:
    return {
        "FAKE_LOG": str(log),
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "FAKE_AZ_SUBSCRIPTIONS": f"{SUBSCRIPTION},{OTHER_SUBSCRIPTION}",
        "FAKE_AZ_EXPECTED_SUBSCRIPTION": SUBSCRIPTION,
        **extra,
    }


def _option(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


def assert_every_az_call_is_pinned(log: Path) -> None:
    made = calls(log)
    assert made, "no az call was made"
    for call in made:
        assert "--subscription" in call and _option(call, "--subscription") == SUBSCRIPTION, call


def assert_no_secret_anywhere(result: subprocess.CompletedProcess, log: Path) -> None:
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
        assert not any(secret in arg for call in calls(log) for arg in call), f"{secret} was on an az command line"


# ---- postdeploy: the Event Grid subscriptions ----

HOSTNAME = "func-abc-h4shd4b5c6.eastus-01.azurewebsites.net"
DEPLOY_OUTPUTS = {
    "AZURE_RESOURCE_GROUP": "rg-dev",
    "AZURE_FUNCTION_NAME": "func-abc",
    "AZURE_FUNCTION_HOSTNAME": HOSTNAME,
    "AZURE_EVENTGRID_SYSTEM_TOPIC_NAME": "evgt-img-abc",
    "AZURE_STORAGE_ACCOUNT_NAME": "stimgabc",
    "AZURE_IMAGES_CONTAINER": "images",
    "AZURE_EVENTGRID_DEADLETTER_CONTAINER": "imgsearch-deadletter",
}


VECTORIZE_URI = f"https://{HOSTNAME}/api/vectorize"


def _deploy_env(log: Path, **extra: str) -> dict[str, str]:
    return {
        **DEPLOY_OUTPUTS,
        **OUTPUTS,
        "AZURE_SEARCH_VECTORIZER_URI": VECTORIZE_URI,
        "AZURE_STORAGE_ACCOUNT_ID": STORAGE_ACCOUNT_ID,
        **_az_env(log),
        "FAKE_IMGSEARCH_LOG": str(log.parent / "imgsearch.log"),
        "IMGSEARCH_CLI": str(log.parent / "bin" / "imgsearch"),
        # Each test of the hook's other steps counts one imgsearch run; the verify step has its own.
        "IMGSEARCH_VERIFY_AFTER_DEPLOY": "false",
        **extra,
    }


def _imgsearch_runs(log: Path) -> list[list]:
    return calls(log.parent / "imgsearch.log")


def _deployments(log: Path) -> list[list[str]]:
    return [c for c in calls(log) if c[:3] == ["deployment", "group", "create"]]


def _parameters(call: list[str]) -> dict[str, str]:
    start = call.index("--parameters") + 1
    values = {}
    for word in call[start:]:
        if word.startswith("--"):
            break
        name, _, value = word.partition("=")
        values[name] = value
    return values


def test_postdeploy_deploys_the_event_subscriptions_template_with_the_deployment_outputs(tree, az):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az))
    assert result.returncode == 0, result.stderr
    [deployment] = _deployments(az)
    assert _option(deployment, "--resource-group") == "rg-dev"
    template = Path(_option(deployment, "--template-file")).resolve()
    assert template == (tree / "infra" / "app" / "eventsubscriptions.bicep").resolve()
    passed = _parameters(deployment)
    assert passed == {
        "systemTopicName": "evgt-img-abc",
        "functionAppName": "func-abc",
        "storageAccountName": "stimgabc",
        "imagesContainerName": "images",
        "deadLetterContainerName": "imgsearch-deadletter",
    }
    # every parameter the template requires, and nothing it does not declare
    declared = bicep_graph.load(ROOT / "infra" / "app" / "eventsubscriptions.bicep").params
    assert set(passed) <= set(declared)
    assert {n for n, p in declared.items() if not p.has_default} <= set(passed)
    assert "index-image-on-blob-created" in result.stdout and "remove-image-on-blob-deleted" in result.stdout
    assert "dead-lettered to container imgsearch-deadletter" in result.stdout


def test_postdeploy_in_pull_mode_subscribes_nothing_and_creates_the_indexer(tree, az):
    # INGESTION_MODE=pull: the indexer reads the container and the push functions are disabled.
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, AZURE_INGESTION_MODE="pull"))
    assert result.returncode == 0, result.stderr
    assert _deployments(az) == []
    [(args, seen)] = _imgsearch_runs(az)
    assert args == ["ensure-indexer"]
    assert seen["IMAGES_STORAGE_RESOURCE_ID"] == _deploy_env(az)["AZURE_STORAGE_ACCOUNT_ID"]
    assert seen["IMAGES_CONTAINER"] == "images"
    assert seen["SEARCH_VECTORIZER_KEY"] == "vectorize-created-secret"
    assert "pull mode is set up" in result.stdout
    assert_every_az_call_is_pinned(az)


@pytest.mark.parametrize("mode, command", [("push", "ensure-index"), ("pull", "ensure-indexer")])
def test_postdeploy_gives_the_search_service_a_key_of_vectorize_alone(tree, az, mode, command):
    # The key is created once as a function key of vectorize (never the host's default key, which
    # opens every function), and handed over in the environment, never on a command line.
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, AZURE_INGESTION_MODE=mode))
    assert result.returncode == 0, result.stderr
    [(args, seen)] = _imgsearch_runs(az)
    assert args == [command]
    assert seen["SEARCH_VECTORIZER_KEY"] == "vectorize-created-secret"
    assert seen["SEARCH_VECTORIZER_URI"] == VECTORIZE_URI
    assert (seen["SEARCH_ENDPOINT"], seen["SEARCH_INDEX_NAME"]) == (OUTPUTS["AZURE_SEARCH_ENDPOINT"], "images")
    assert seen["AZURE_TOKEN_CREDENTIALS"] == "AzureDeveloperCliCredential"
    [created] = [c for c in calls(az) if c[:4] == ["functionapp", "function", "keys", "set"]]
    assert _option(created, "--function-name") == "vectorize" and _option(created, "--key-name") == "azure_search"
    assert "--key-value" not in created, "the key is generated by the host, never passed on a command line"
    assert_no_secret_anywhere(result, az)
    assert "fn-secret-key" not in json.dumps(_imgsearch_runs(az))

    # The next deployment reads the same key back and creates none.
    again = run_hook(tree, "postdeploy.sh", _deploy_env(az, AZURE_INGESTION_MODE=mode))
    assert again.returncode == 0, again.stderr
    assert len([c for c in calls(az) if c[:4] == ["functionapp", "function", "keys", "set"]]) == 1
    assert _imgsearch_runs(az)[-1][1]["SEARCH_VECTORIZER_KEY"] == "vectorize-created-secret"


def test_postdeploy_uses_a_key_of_vectorize_that_exists(tree, az):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, FAKE_VECTORIZE_KEY="vectorize-kept-secret"))
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls(az) if c[:4] == ["functionapp", "function", "keys", "set"]]
    assert _imgsearch_runs(az)[0][1]["SEARCH_VECTORIZER_KEY"] == "vectorize-kept-secret"
    assert_no_secret_anywhere(result, az)


def test_postdeploy_waits_while_the_host_cannot_list_the_keys_of_vectorize_yet(tree, az):
    env = _deploy_env(
        az,
        AZURE_INGESTION_MODE="pull",
        FAKE_FUNCTION_KEYS_ERROR="(NotFound) Error retrieving function keys: host has not indexed vectorize",
        FAKE_FUNCTION_KEYS_ERROR_TIMES="2",
    )
    result = run_hook(tree, "postdeploy.sh", env)
    assert result.returncode == 0, result.stderr
    assert "waiting for the Function host to list the keys of vectorize" in result.stdout
    assert slept(az) == [15, 15]
    assert _imgsearch_runs(az)[0][1]["SEARCH_VECTORIZER_KEY"] == "vectorize-created-secret"


def test_postdeploy_leaves_no_local_key_or_connection_string_for_the_search_service(tree, az):
    env = _deploy_env(az, AZURE_INGESTION_MODE="pull", SEARCH_KEY="local", IMAGES_STORAGE="UseDevelopmentStorage=true")
    result = run_hook(tree, "postdeploy.sh", env)
    assert result.returncode == 0, result.stderr
    seen = _imgsearch_runs(az)[0][1]
    assert seen["SEARCH_KEY"] is None and seen["IMAGES_STORAGE"] is None


@pytest.mark.parametrize("code, retried", [(1, True), (3, False)])
def test_postdeploy_retries_a_passing_search_failure_and_stops_on_a_lasting_one(tree, az, code, retried):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, FAKE_EXIT_CODES=f"{code},0"))
    assert (result.returncode == 0) is retried, result.stderr
    assert len(_imgsearch_runs(az)) == (2 if retried else 1)
    if not retried:
        assert "Waiting cannot fix this" in result.stderr


BLOB_ENDPOINT = "https://stimgabc.blob.core.windows.net/"


@pytest.mark.parametrize("mode, command", [("push", "ensure-index"), ("pull", "ensure-indexer")])
def test_postdeploy_ends_by_verifying_the_deployment_unless_turned_off(tree, az, mode, command):
    env = _deploy_env(az, AZURE_INGESTION_MODE=mode, AZURE_STORAGE_BLOB_ENDPOINT=BLOB_ENDPOINT)
    del env["IMGSEARCH_VERIFY_AFTER_DEPLOY"]  # on unless turned off
    result = run_hook(tree, "postdeploy.sh", env)
    assert result.returncode == 0, result.stderr
    [(first, _), (args, seen)] = _imgsearch_runs(az)
    assert first == [command] and args[0] == "verify"
    # the whole path of this deployment: its Function, with a key of search alone, its images
    # account through Entra ID, its search service, in its mode
    assert seen["IMGSEARCH_FUNCTION_URL"] == f"https://{HOSTNAME}"
    assert seen["IMGSEARCH_FUNCTION_KEY"] == "search-default-secret"
    assert seen["IMAGES_STORAGE__blobServiceUri"] == BLOB_ENDPOINT and seen["IMAGES_STORAGE"] is None
    assert (seen["IMAGES_CONTAINER"], seen["INGESTION_MODE"]) == ("images", mode)
    assert seen["SEARCH_ENDPOINT"] == OUTPUTS["AZURE_SEARCH_ENDPOINT"]
    assert_no_secret_anywhere(result, az)
    assert not [c for c in calls(az) if "search" in c and c[:4] == ["functionapp", "function", "keys", "set"]]

    off = _deploy_env(az, AZURE_INGESTION_MODE=mode, IMGSEARCH_VERIFY_AFTER_DEPLOY="False")
    again = run_hook(tree, "postdeploy.sh", off)
    assert again.returncode == 0, again.stderr
    assert [args for args, _ in _imgsearch_runs(az)][2:] == [[command]]  # no verify
    assert "not verifying the deployment" in again.stdout


def test_postdeploy_retries_a_failed_verification_then_fails_naming_it(tree, az):
    env = _deploy_env(
        az, AZURE_STORAGE_BLOB_ENDPOINT=BLOB_ENDPOINT, FAKE_EXIT_CODES="0,2,1,1", IMGSEARCH_HOOK_VERIFY_ATTEMPTS="3"
    )
    del env["IMGSEARCH_VERIFY_AFTER_DEPLOY"]
    result = run_hook(tree, "postdeploy.sh", env)
    assert result.returncode == 1
    assert [args[0] for args, _ in _imgsearch_runs(az)] == ["ensure-index", "verify", "verify", "verify"]
    assert slept(az)[-2:] == [60, 60]  # new roles take minutes to apply
    assert "imgsearch verify still fails after 3 tries" in result.stderr
    assert "IMGSEARCH_VERIFY_AFTER_DEPLOY=false" in result.stderr


def test_postprovision_points_the_index_vectorizer_at_the_function(tree, imgsearch):
    vectorize = "https://func-abc.azurewebsites.net/api/vectorize"
    script = tree / "bin" / "imgsearch"
    script.write_text(
        script.read_text().replace('"AZURE_TOKEN_CREDENTIALS"]', '"AZURE_TOKEN_CREDENTIALS", "SEARCH_VECTORIZER_URI"]')
    )
    result = run_hook(tree, "postprovision.sh", _provision_env(imgsearch, AZURE_SEARCH_VECTORIZER_URI=vectorize))
    assert result.returncode == 0, result.stderr
    [(args, seen)] = calls(imgsearch)
    assert args == ["ensure-index"] and seen["SEARCH_VECTORIZER_URI"] == vectorize


def test_every_az_call_of_postdeploy_is_pinned_to_azds_subscription(tree, az):
    # az keeps its own default subscription (the stand-in's default is OTHER_SUBSCRIPTION's
    # sibling, and resource calls on any other subscription fail): every call must say which.
    env = _deploy_env(az, FAKE_AZ_SUBSCRIPTIONS=f"{OTHER_SUBSCRIPTION},{SUBSCRIPTION}", FAKE_KEYS_AFTER="1")
    del env["AZURE_FUNCTION_HOSTNAME"]
    env["FAKE_HOSTNAME"] = HOSTNAME
    result = run_hook(tree, "postdeploy.sh", env)
    assert result.returncode == 0, result.stderr
    assert {tuple(c[:2]) for c in calls(az)} >= {
        ("account", "show"),
        ("functionapp", "show"),
        ("functionapp", "keys"),
        ("deployment", "group"),
    }
    assert_every_az_call_is_pinned(az)


def test_postdeploy_never_puts_a_system_key_on_a_command_line_or_in_its_output(tree, az):
    # The template reads the keys with listKeys() inside Resource Manager. The hook only counts
    # them: the stand-in evaluates the hook's real --query over keys with values, and what it
    # prints (the count) is all the hook sees.
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, FAKE_KEYS_AFTER="1"))
    assert result.returncode == 0, result.stderr
    assert_no_secret_anywhere(result, az)
    [query] = {_option(c, "--query") for c in calls(az) if c[:3] == ["functionapp", "keys", "list"]}
    import jmespath

    document = {
        "systemKeys": {"blobs_extension": "blobs-secret-key", "eventgrid_extension": "eg-secret-key"},
        "masterKey": "master-secret-key",
    }
    assert jmespath.search(query, document) == 2
    assert jmespath.search(query, {"systemKeys": {"blobs_extension": "k"}}) == 1
    assert jmespath.search(query, {"systemKeys": None}) == 0
    assert not re.search(r"code=|\$blobs_key|\$eventgrid_key", (HOOKS / "postdeploy.sh").read_text())


def test_postdeploy_fails_fast_and_clearly_when_az_is_not_signed_in(tree, az):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, FAKE_AZ_LOGGED_IN="0"))
    assert result.returncode != 0
    assert "the Azure CLI is not signed in" in result.stderr and "az login" in result.stderr
    assert "Please run 'az login' to setup account." in result.stderr  # az's own words, not hidden
    assert [c[:2] for c in calls(az)] == [["account", "show"]]
    assert slept(az) == [] and not Path(str(az) + ".curl").exists()


def test_postdeploy_fails_fast_and_clearly_when_az_cannot_use_azds_subscription(tree, az):
    # az is signed in, but to an account (or tenant) that does not see azd's subscription.
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, FAKE_AZ_SUBSCRIPTIONS=OTHER_SUBSCRIPTION))
    assert result.returncode != 0
    assert f"cannot use subscription {SUBSCRIPTION}, the one azd deploys to" in result.stderr
    assert "not found. Check the spelling" in result.stderr
    assert f"az account set --subscription {SUBSCRIPTION}" in result.stderr
    assert [c[:2] for c in calls(az)] == [["account", "show"]]
    assert slept(az) == []


def test_postdeploy_reads_the_host_name_from_azure_when_the_output_is_absent(tree, az):
    env = _deploy_env(az, FAKE_HOSTNAME="func-abc-zz99.westeurope-01.azurewebsites.net")
    del env["AZURE_FUNCTION_HOSTNAME"]
    result = run_hook(tree, "postdeploy.sh", env)
    assert result.returncode == 0, result.stderr
    assert any(c[:2] == ["functionapp", "show"] for c in calls(az))
    woken = Path(str(az) + ".curl").read_text().split()
    assert set(woken) == {"https://func-abc-zz99.westeurope-01.azurewebsites.net/"}


def test_postdeploy_wakes_the_host_and_waits_for_its_extension_keys(tree, az):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, FAKE_KEYS_AFTER="2"))
    assert result.returncode == 0, result.stderr
    assert "waiting for the Function host to register its extension keys" in result.stdout
    assert "has registered 0 of its 2 extension keys" in result.stdout
    assert len(_deployments(az)) == 1
    woken = Path(str(az) + ".curl").read_text().split()
    # three while waiting for the extension keys, one before reading the key of vectorize
    assert len(woken) == 4 and set(woken) == {f"https://{HOSTNAME}/"}
    assert slept(az) == [15, 15]


def test_postdeploy_shows_a_passing_keys_error_while_it_waits(tree, az):
    # While a scaled-to-zero host starts, listing its keys can fail; the error is shown, not hidden.
    env = _deploy_env(
        az,
        FAKE_KEYS_ERROR="Operation returned an invalid status 'Bad Request' (host not running)",
        FAKE_KEYS_ERROR_TIMES="1",
    )
    result = run_hook(tree, "postdeploy.sh", env)
    assert result.returncode == 0, result.stderr
    assert "invalid status 'Bad Request' (host not running)" in result.stdout
    assert len(_deployments(az)) == 1


def test_postdeploy_stops_at_once_on_an_error_waiting_cannot_fix(tree, az):
    env = _deploy_env(
        az,
        FAKE_KEYS_ERROR="(AuthorizationFailed) The client 'dev@contoso.example' does not have authorization "
        "to perform action 'Microsoft.Web/sites/host/listkeys/action'",
    )
    result = run_hook(tree, "postdeploy.sh", env)
    assert result.returncode != 0
    assert "AuthorizationFailed" in result.stderr and "listkeys" in result.stderr
    assert slept(az) == [] and _deployments(az) == []


def test_postdeploy_fails_clearly_when_the_keys_never_appear(tree, az):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, FAKE_KEYS_AFTER="99", IMGSEARCH_HOOK_ATTEMPTS="3"))
    assert result.returncode != 0
    assert "blobs_extension/eventgrid_extension" in result.stderr and "index_image" in result.stderr
    assert _deployments(az) == []


def test_postdeploy_retries_a_deployment_the_webhook_handshake_rejected(tree, az):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(az, FAKE_CREATE_FAILURES="1"))
    assert result.returncode == 0, result.stderr
    assert len(_deployments(az)) == 2
    assert "Webhook validation handshake failed" in result.stderr  # az's error is shown
    assert_every_az_call_is_pinned(az)


def test_postdeploy_needs_the_az_cli(tree):
    result = run_hook(tree, "postdeploy.sh", _deploy_env(tree / "az.log"))
    assert result.returncode != 0
    assert "'az' is not installed" in result.stderr


def test_postdeploy_needs_azds_subscription(tree, az):
    env = _deploy_env(az)
    del env["AZURE_SUBSCRIPTION_ID"]
    result = run_hook(tree, "postdeploy.sh", env)
    assert result.returncode != 0
    assert "AZURE_SUBSCRIPTION_ID is not set" in result.stderr
    assert calls(az) == []


# ---- preprovision: the prerequisites, checked before anything is created ----


def _preprovision_env(log: Path, **extra: str) -> dict[str, str]:
    return {
        **_az_env(log),
        "AZURE_PRINCIPAL_ID": "11111111-2222-3333-4444-555555555555",
        "AZURE_LOCATION": "eastus",
        **extra,
    }


def test_preprovision_passes_when_every_prerequisite_holds(tree, az):
    result = run_hook(tree, "preprovision.sh", _preprovision_env(az))
    assert result.returncode == 0, result.stderr
    assert "Python:" in result.stdout and f"subscription {SUBSCRIPTION}" in result.stdout
    assert "can create role assignments" in result.stdout
    assert "Responsible AI terms were accepted" in result.stdout
    assert result.stderr == ""
    assert_every_az_call_is_pinned(az)
    [roles] = [c for c in calls(az) if c[:3] == ["role", "assignment", "list"]]
    assert _option(roles, "--assignee") == "11111111-2222-3333-4444-555555555555"
    assert {"--include-inherited", "--include-groups"} <= set(roles)
    assert _option(roles, "--scope") == f"/subscriptions/{SUBSCRIPTION}"


@pytest.mark.parametrize("role", ["Owner", "User Access Administrator", "Role Based Access Control Administrator"])
def test_preprovision_accepts_each_role_that_can_create_role_assignments(tree, az, role):
    result = run_hook(tree, "preprovision.sh", _preprovision_env(az, FAKE_ROLES=f"Reader,{role}"))
    assert result.returncode == 0, result.stderr


def test_preprovision_stops_when_the_deployer_cannot_create_role_assignments(tree, az):
    # Contributor and Storage Blob Data Owner contain "Owner"-like words but cannot assign roles.
    result = run_hook(tree, "preprovision.sh", _preprovision_env(az, FAKE_ROLES="Contributor,Storage Blob Data Owner"))
    assert result.returncode != 0
    for role in ("Owner", "User Access Administrator", "Role Based Access Control Administrator"):
        assert role in result.stderr
    assert "IMGSEARCH_SKIP_ROLE_CHECK=1" in result.stderr
    skipped = run_hook(
        tree, "preprovision.sh", _preprovision_env(az, FAKE_ROLES="Contributor", IMGSEARCH_SKIP_ROLE_CHECK="1")
    )
    assert skipped.returncode == 0, skipped.stderr


def test_preprovision_warns_when_it_cannot_list_the_roles(tree, az):
    result = run_hook(
        tree,
        "preprovision.sh",
        _preprovision_env(az, FAKE_ROLES_ERROR="Insufficient privileges to complete the operation."),
    )
    assert result.returncode == 0, result.stderr
    assert "warning: could not list the role assignments" in result.stderr
    assert "Insufficient privileges" in result.stderr


@pytest.mark.parametrize("count", ["2", "8"])
def test_preprovision_refuses_a_free_vision_tier_for_more_than_one_account(tree, az, count):
    # One free account per Cognitive Services kind and subscription: the second F0 account would
    # fail mid-deployment with CanNotCreateMultipleFreeAccounts.
    result = run_hook(tree, "preprovision.sh", _preprovision_env(az, AZURE_VISION_SKU="F0", AZURE_VISION_COUNT=count))
    assert result.returncode != 0
    assert f"AZURE_VISION_SKU=F0 with AZURE_VISION_COUNT={count}" in result.stderr
    assert "azd env set AZURE_VISION_COUNT 1" in result.stderr and "azd env set AZURE_VISION_SKU S1" in result.stderr
    assert calls(az) == [], "a configuration error is reported before any az call"


@pytest.mark.parametrize("sku, count", [("F0", "1"), ("S1", "8"), ("", "")])
def test_preprovision_accepts_a_free_vision_tier_with_one_account_and_s1_with_many(tree, az, sku, count):
    env = _preprovision_env(az, AZURE_VISION_SKU=sku, AZURE_VISION_COUNT=count)
    result = run_hook(tree, "preprovision.sh", env)
    assert result.returncode == 0, result.stderr


def test_preprovision_reads_the_vision_choices_azd_passes_to_the_template():
    parameters = json.loads((ROOT / "infra" / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["visionSku"]["value"] == "${AZURE_VISION_SKU=S1}"
    assert parameters["visionCount"]["value"] == "${AZURE_VISION_COUNT=1}"


def test_preprovision_stops_in_a_region_without_flex_consumption_and_names_the_ones_with_it(tree, az):
    result = run_hook(tree, "preprovision.sh", _preprovision_env(az, AZURE_LOCATION="westeurope"))
    assert result.returncode != 0
    assert "region westeurope does not offer the Flex Consumption plan" in result.stderr
    assert "eastus northeurope westus2" in result.stderr and "azd env set AZURE_LOCATION" in result.stderr
    assert_every_az_call_is_pinned(az)


def test_preprovision_compares_regions_as_azure_spells_them_in_any_case(tree, az):
    env = _preprovision_env(az, AZURE_LOCATION="EastUS", FAKE_FLEX_LOCATIONS="EastUS,westus2")
    result = run_hook(tree, "preprovision.sh", env)
    assert result.returncode == 0, result.stderr
    assert "region: eastus offers the Flex Consumption plan" in result.stdout
    assert "to its pair westus" in result.stdout


@pytest.mark.parametrize("sku", ["", "Standard_GRS", "Standard_RAGZRS"])
def test_preprovision_stops_when_geo_redundant_photos_have_no_paired_region(tree, az, sku):
    env = _preprovision_env(az, AZURE_LOCATION="israelcentral", AZURE_IMAGES_STORAGE_SKU=sku)
    result = run_hook(tree, "preprovision.sh", env)
    assert result.returncode != 0
    assert "region israelcentral has no paired region" in result.stderr
    assert "azd env set AZURE_IMAGES_STORAGE_SKU Standard_ZRS" in result.stderr and "Standard_LRS" in result.stderr
    [lookup] = [c for c in calls(az) if c[:2] == ["account", "list-locations"]]
    assert _option(lookup, "--query") == "[?name=='israelcentral'].metadata.pairedRegion[].name"


@pytest.mark.parametrize("sku", ["Standard_ZRS", "Standard_LRS"])
def test_preprovision_accepts_a_region_without_a_pair_for_zone_or_locally_redundant_photos(tree, az, sku):
    env = _preprovision_env(az, AZURE_LOCATION="israelcentral", AZURE_IMAGES_STORAGE_SKU=sku)
    result = run_hook(tree, "preprovision.sh", env)
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls(az) if c[:2] == ["account", "list-locations"]]


def test_preprovision_warns_when_it_cannot_read_the_flex_consumption_regions(tree, az):
    result = run_hook(tree, "preprovision.sh", _preprovision_env(az, FAKE_FLEX_ERROR="The command failed: 503"))
    assert result.returncode == 0, result.stderr
    assert "warning: could not list the Flex Consumption regions (ERROR: The command failed: 503)" in result.stderr


def test_preprovision_reads_the_storage_choice_azd_passes_to_the_template():
    parameters = json.loads((ROOT / "infra" / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["imagesStorageSku"]["value"] == "${AZURE_IMAGES_STORAGE_SKU=Standard_GRS}"


def test_preprovision_checks_the_az_account_when_azd_has_no_principal_yet(tree, az):
    env = _preprovision_env(az)
    del env["AZURE_PRINCIPAL_ID"]
    result = run_hook(tree, "preprovision.sh", env)
    assert result.returncode == 0, result.stderr
    [roles] = [c for c in calls(az) if c[:3] == ["role", "assignment", "list"]]
    assert _option(roles, "--assignee") == "dev@contoso.example"
    assert_every_az_call_is_pinned(az)


def test_preprovision_explains_the_responsible_ai_terms_when_no_vision_account_shows_them(tree, az):
    result = run_hook(tree, "preprovision.sh", _preprovision_env(az, FAKE_ACCOUNT_KINDS="OpenAI,TextAnalytics"))
    assert result.returncode == 0, result.stderr
    assert "ResourceKindRequireAcceptTerms" in result.stderr
    assert "portal.azure.com/#create/Microsoft.CognitiveServicesComputerVision" in result.stderr


def test_preprovision_stops_when_az_is_not_signed_in_to_azds_subscription(tree, az):
    logged_out = run_hook(tree, "preprovision.sh", _preprovision_env(az, FAKE_AZ_LOGGED_IN="0"))
    assert logged_out.returncode != 0 and "not signed in" in logged_out.stderr
    elsewhere = run_hook(tree, "preprovision.sh", _preprovision_env(az, FAKE_AZ_SUBSCRIPTIONS=OTHER_SUBSCRIPTION))
    assert elsewhere.returncode != 0 and f"cannot use subscription {SUBSCRIPTION}" in elsewhere.stderr


def test_preprovision_stops_without_python_3_11(tree, az):
    env = _preprovision_env(az, PATH=_path_without_python(tree))
    result = run_hook(tree, "preprovision.sh", env)
    assert result.returncode != 0
    assert "no Python 3.11 or newer" in result.stderr
    assert calls(az) == []


def test_preprovision_refuses_a_python_older_than_3_11(tree, az):
    make_program(tree / "bin", "python3.10", "import sys; sys.exit(1)\n")
    old = tree / "bin" / "python3.10"
    env = _preprovision_env(az, PATH=_path_without_python(tree), IMGSEARCH_HOOK_PYTHON=str(old))
    # the stand-in fails the version check, as a real 3.10 would
    result = run_hook(tree, "preprovision.sh", env)
    assert result.returncode != 0 and "no Python 3.11 or newer" in result.stderr


# ---- consistency with the deployment outputs and between the twins ----


def _read_vars(script: str) -> set[str]:
    sh = re.findall(r"\$\{?(AZURE_[A-Z_]+)", script)
    quoted = re.findall(r"'(AZURE_[A-Z_]+)'", script)
    pwsh = re.findall(r"\$env:(AZURE_[A-Z_]+)", script)
    required = re.findall(r"require_var (AZURE_[A-Z_]+)", script)  # sh's twin of the quoted list
    return (set(sh) | set(quoted) | set(pwsh) | set(required)) - WRITTEN_FOR_AZURE_IDENTITY


# Set by the hooks for azure-identity, not read from the deployment.
WRITTEN_FOR_AZURE_IDENTITY = {"AZURE_TOKEN_CREDENTIALS"}


@pytest.mark.parametrize(
    "script", sorted(p for p in HOOKS.glob("p*.*") if p.stem != "prepackage"), ids=lambda p: p.name
)
def test_every_azure_value_a_hook_reads_is_a_main_output_or_set_by_azd(script):
    outputs = set(bicep_graph.load(ROOT / "infra" / "main.bicep").outputs)
    used = _read_vars(script.read_text(encoding="utf-8"))
    assert used, f"{script.name} reads no deployment output"
    known = outputs | AZD_BUILTINS | _template_inputs()
    assert used <= known, used - known


def _template_inputs() -> set[str]:
    """The azd environment names main.parameters.json hands to the template (its ${NAME} inputs)."""
    text = (ROOT / "infra" / "main.parameters.json").read_text(encoding="utf-8")
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))


TWIN_FACTS = [
    r"index_image",
    r"remove_image",
    r"Microsoft\.Storage\.BlobCreated",
    r"Microsoft\.Storage\.BlobDeleted",
    r"blobs_extension",
    r"eventgrid_extension",
    r"/blobServices/default/containers/",
    r"index-image-on-blob-created",
    r"remove-image-on-blob-deleted",
    r"ensure-index",
    r"IMGSEARCH_HOOK_ATTEMPTS",
    r"IMGSEARCH_HOOK_RETRY_SECONDS",
    r"IMGSEARCH_HOOK_WAIT_SECONDS",
    r"IMGSEARCH_CLI",
    r"IMGSEARCH_HOOK_KEEP_KEYS",
    r"IMGSEARCH_HOOK_VENV",
    r"IMGSEARCH_SKIP_ROLE_CHECK",
    r"SEARCH_KEY",
    r"VISION_KEY",
    r"__pycache__",
    r"\bindexer\b",
    r"\bschemas\b",
    r"AzureDeveloperCliCredential",
    r"AZURE_TOKEN_CREDENTIALS",
    r"IMGSEARCH_HOOK_TOKEN_CREDENTIALS",
    r"eventsubscriptions\.bicep",
    r"imgsearch-event-subscriptions",
    r"length\(\[\?@\]\)",
    r"--include-groups",
    r"ComputerVision",
    r"ResourceKindRequireAcceptTerms",
    r"CanNotCreateMultipleFreeAccounts",
    r"list-flexconsumption-locations",
    r"function keys list",
    r"function keys set",
    r"--function-name vectorize",
    r"--key-name azure_search",
    r"SEARCH_VECTORIZER_KEY",
    r"IMAGES_STORAGE_RESOURCE_ID",
    r"ensure-indexer",
    r"IMGSEARCH_HOOK_SEARCH_ATTEMPTS",
    r"metadata\.pairedRegion\[\]\.name",
    r"AZURE_IMAGES_STORAGE_SKU Standard_ZRS",
    r"is_private",
    r"--editable",
    r"AuthorizationFailed",
    r"Owner",
    r"User Access Administrator",
    r"Role Based Access Control Administrator",
]


@pytest.mark.parametrize("name", ["prepackage", "preprovision", "postprovision", "postdeploy"])
def test_the_powershell_twin_does_what_the_sh_hook_does(name):
    # The PowerShell twins cannot run here (no pwsh on the test machines); this keeps them in step
    # with the sh hooks, which do run, by the facts and settings both must mention.
    sh = (HOOKS / f"{name}.sh").read_text(encoding="utf-8")
    ps = (HOOKS / f"{name}.ps1").read_text(encoding="utf-8")
    assert ". (Join-Path $PSScriptRoot 'lib.ps1')" in ps
    for fact in TWIN_FACTS:
        assert bool(re.search(fact, sh)) == bool(re.search(fact, ps)), f"{name}: only one twin mentions {fact}"
    assert _read_vars(sh) == _read_vars(ps)
    sh_defaults = re.findall(
        r"IMGSEARCH_HOOK_(VERIFY_ATTEMPTS|VERIFY_RETRY_SECONDS|ATTEMPTS|RETRY_SECONDS|WAIT_SECONDS|SEARCH_ATTEMPTS):-(\d+)",
        sh,
    )
    ps_defaults = re.findall(r"IMGSEARCH_HOOK_(\w+)\) \{ \[int\]\$env:IMGSEARCH_HOOK_\w+ \} else \{ (\d+) \}", ps)
    assert sorted(sh_defaults) == sorted(ps_defaults)
    if name in ("postprovision", "postdeploy"):
        assert {"ATTEMPTS", "RETRY_SECONDS"} <= {k for k, _ in sh_defaults}, sh_defaults


@pytest.mark.parametrize("script", sorted(HOOKS.glob("*.ps1")), ids=lambda p: p.name)
def test_every_powershell_hook_refuses_windows_powershell_5(script):
    # azd falls back to Windows PowerShell 5.1 when pwsh is missing; the hooks use PowerShell 7
    # (three-argument Join-Path, -SkipHttpErrorCheck), so they say so before running a line.
    first = script.read_text(encoding="utf-8").splitlines()[0]
    assert re.fullmatch(r"#Requires -Version 7\.0", first), f"{script.name} starts with {first!r}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("### Prerequisites", 1)[1].split("\n#", 1)[0]
    assert "PowerShell 7" in readme


def test_the_shared_helpers_have_twins():
    sh = (HOOKS / "lib.sh").read_text(encoding="utf-8")
    ps = (HOOKS / "lib.ps1").read_text(encoding="utf-8")
    for fact in (
        "az account show --subscription",
        "Please run|az login",
        "python3.11",
        "READY_CHECK|ReadyCheck",
        r"\(1, 24\)",
        r"sys.version_info < \(3, 11\)",
        "azd env get-values",
        "--editable",
        "AZURE_SEARCH_VECTOR_COMPRESSION",
        "AzureDeveloperCliCredential",
    ):
        assert re.search(fact, sh) and re.search(fact, ps), fact


def _az_commands(script: str) -> list[str]:
    """Each az command of a hook, with its continuation lines (sh \\ or PowerShell `)."""
    lines = script.splitlines()
    commands = []
    i = 0
    while i < len(lines):
        code = lines[i].split("#", 1)[0]
        unquoted = re.sub(r'"[^"]*"|\'[^\']*\'', '""', code)  # not "... the az error ..." in a message
        if re.search(r"(^|[\s($=])az [a-z]", unquoted):
            command = code.rstrip()
            while command.endswith(("\\", "`")) and i + 1 < len(lines):
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].split("#", 1)[0].strip()
            commands.append(command.strip())
        i += 1
    return commands


@pytest.mark.parametrize("script", sorted(HOOKS.glob("*.*")), ids=lambda p: p.name)
def test_every_az_command_in_every_hook_passes_the_subscription(script):
    # Read statically so that the PowerShell twins, which cannot run here, are held to it too.
    text = script.read_text(encoding="utf-8")
    for command in _az_commands(text):
        assert "--subscription" in command, f"{script.name}: {command}"


def test_the_az_command_reader_finds_commands_and_their_continuations():
    assert _az_commands('die "the az error is above"\nrequire_cmd az "hint"\n') == []
    text = (
        'x=$(az functionapp show --resource-group "$rg" \\\n    --subscription "$sub")\n'
        "$k = az group list `\n  --output tsv\n"
    )
    assert _az_commands(text) == [
        'x=$(az functionapp show --resource-group "$rg" --subscription "$sub")',
        "$k = az group list --output tsv",
    ]


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
                        for k in decorator.keywords
                    }
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
