"""The Bicep files compile as far as a grammar can tell, and the azd wiring around them holds.

No Bicep compiler runs here (it downloads a binary), so the tree-sitter-bicep grammar parses
every file, and the checks a compiler would make that matter most for us are done on the syntax
tree: every symbol used is declared, every module call passes parameters its module declares
(and all it requires), every module path exists. azure.yaml and main.parameters.json are checked
against the files they name.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests import bicep_graph

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


def test_the_infrastructure_has_a_main_template_and_modules():
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert "main.bicep" in names
    assert len(names) > 1, names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_bicep_file_parses_without_error_or_missing_nodes(path):
    problems = bicep_graph.syntax_problems(path.read_text(encoding="utf-8"))
    assert problems == [], f"{path}: " + "; ".join(map(str, problems))


@pytest.mark.parametrize("broken, kind", [
    ("resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n", "ERROR"),
    ("param location string = \nvar x = 1\n", "ERROR"),
    ("output o string = concat('a' 'b')\n", "ERROR"),
    ("var x = {\n  a: 1\n  b: \n}\n", "MISSING"),
])
def test_the_syntax_check_reports_broken_bicep(broken, kind):
    problems = bicep_graph.syntax_problems(broken)
    assert problems, f"the grammar accepted broken Bicep:\n{broken}"
    assert any(p.kind.startswith(kind) for p in problems), problems
    with pytest.raises(ValueError, match="does not parse"):
        bicep_graph.read(broken)


def test_the_extractor_reads_declarations_as_values():
    source = """
targetScope = 'subscription'
@allowed([
  'a'
  'b'
])
param region string = 'a'
var settings = {
  NAME: 'x'
  'quoted-key': true
  COUNT: 3
}
resource st 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: 'acct'
  resource blobs 'blobServices' existing = {
    name: 'default'
  }
}
resource ra 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(region)) {
  name: guid(st.id)
  scope: st
  properties: {
    principalId: 'p'
  }
}
module m 'app/m.bicep' = {
  name: 'm'
  params: {
    endpoint: st.properties.primaryEndpoints.blob
  }
}
output url string = 'https://${st.name}'
"""
    parsed = bicep_graph.read(source)
    assert parsed.target_scope == "subscription"
    assert parsed.params["region"].allowed == ["a", "b"]
    assert parsed.params["region"].default == "a"
    assert parsed.variables["settings"] == {"NAME": "x", "quoted-key": True, "COUNT": 3}
    storage, blobs, assignment = parsed.resources
    assert (storage.type, storage.api_version, storage.existing) == (
        "Microsoft.Storage/storageAccounts", "2023-05-01", True)
    assert (blobs.type, blobs.api_version, blobs.parent_symbol) == (
        "Microsoft.Storage/storageAccounts/blobServices", "2023-05-01", "st")
    assert assignment.condition == "(!empty(region))"
    assert assignment.get("properties", "principalId") == "p"
    assert str(assignment.get("scope")) == "st"
    assert str(parsed.module("m").params["endpoint"]) == "st.properties.primaryEndpoints.blob"
    assert parsed.outputs["url"].value.kind == "interpolated_string"


def _undefined_references(source: str, declared: set[str]) -> list[tuple[str, int]]:
    return [(name, line) for name, line in bicep_graph.identifier_references(source) if name not in declared]


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_symbol_a_file_uses_is_declared_in_it(path):
    parsed = bicep_graph.load(path)
    assert _undefined_references(parsed.source, parsed.symbols()) == []


def test_the_reference_check_catches_a_misspelled_symbol():
    source = """
param location string
module functionApp 'app/function.bicep' = {
  name: 'f'
  params: {
    location: locaton
  }
}
output host string = functon.outputs.defaultHostName
var names = [for n in items: n]
"""
    parsed = bicep_graph.read(source)
    undefined = {name for name, _ in _undefined_references(source, parsed.symbols())}
    assert undefined == {"locaton", "functon", "items"}


def _module_calls():
    for path in BICEP_FILES:
        parsed = bicep_graph.load(path)
        for module in parsed.modules:
            yield path, module


@pytest.mark.parametrize("path, module", list(_module_calls()),
                         ids=lambda v: v.symbol if isinstance(v, bicep_graph.Module) else v.name)
def test_every_module_call_matches_the_parameters_its_module_declares(path, module):
    target = (path.parent / module.path).resolve()
    assert target.is_file(), f"{path.name}: module {module.symbol} points at missing {module.path}"
    declared = bicep_graph.load(target).params
    passed = set(module.params)
    unknown = passed - set(declared)
    required = {name for name, p in declared.items() if not p.has_default}
    assert not unknown, f"{module.symbol} passes parameters {target.name} does not declare: {sorted(unknown)}"
    assert required <= passed, f"{module.symbol} leaves required parameters unset: {sorted(required - passed)}"


def test_every_module_output_main_uses_is_declared_by_the_module():
    main = bicep_graph.load(INFRA / "main.bicep")
    modules = {m.symbol: bicep_graph.load((INFRA / m.path).resolve()) for m in main.modules}
    used = set(re.findall(r"\b(\w+)\.outputs\.(\w+)", main.source))
    assert used, "main.bicep reads no module outputs"
    for symbol, output in used:
        assert output in modules[symbol].outputs, f"main.bicep reads {symbol}.outputs.{output}, not declared"


# ---- azd: main.parameters.json and azure.yaml ----

def _parameters_file() -> dict:
    import json
    return json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]


def test_main_parameters_bind_declared_parameters_to_azd_environment_values():
    main = bicep_graph.load(INFRA / "main.bicep")
    parameters = _parameters_file()
    assert set(parameters) <= set(main.params), set(parameters) - set(main.params)
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert parameters["location"]["value"] == "${AZURE_LOCATION}"
    assert parameters["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
    # every parameter without a Bicep default is filled from the environment
    required = {name for name, p in main.params.items() if not p.has_default}
    assert required <= set(parameters), required - set(parameters)
    for name, entry in parameters.items():
        assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*(=[^}]*)?\}", entry["value"]), (name, entry)


def test_main_bicep_documents_every_placeholder_an_az_cli_deployment_must_override():
    # The az CLI passes "${...}" placeholders through literally; main.bicep's header lists the
    # parameters that need explicit values. Keep that list in step with main.parameters.json.
    main = bicep_graph.load(INFRA / "main.bicep")
    header = main.source.split("targetScope", 1)[0]
    listed = re.search(r"\(later --parameters win\):\n//\s+(.+)\n", header)
    assert listed, "main.bicep's header lost the list of parameters to override without azd"
    documented = {name.strip() for name in listed.group(1).split(",")}
    assert documented == set(_parameters_file())
    assert "az deployment sub create" in header


def _azure_yaml() -> dict:
    return yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))


def test_azure_yaml_declares_the_function_service():
    config = _azure_yaml()
    api = config["services"]["api"]
    assert api["language"] == "python"
    assert api["host"] == "function"
    assert (ROOT / api["project"]).resolve() == ROOT / "functions"
    assert config.get("infra", {}).get("path", "infra") == "infra"
    assert config.get("infra", {}).get("module", "main") == "main"


def _hook_entries():
    config = _azure_yaml()
    for event, hook in config.get("hooks", {}).items():
        yield "project", event, hook, ROOT
    for name, service in config["services"].items():
        for event, hook in service.get("hooks", {}).items():
            # service hook paths are relative to the service project
            yield name, event, hook, (ROOT / service["project"]).resolve()


def test_azure_yaml_runs_the_provision_package_and_deploy_hooks():
    events = {(owner, event) for owner, event, _, _ in _hook_entries()}
    assert {("project", "postprovision"), ("project", "postdeploy"), ("api", "prepackage")} <= events


@pytest.mark.parametrize("owner, event, hook, base", list(_hook_entries()),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_every_hook_azure_yaml_names_exists_for_both_shells(owner, event, hook, base):
    assert set(hook) == {"posix", "windows"}, f"{owner}/{event} must name a sh and a pwsh script"
    posix, windows = hook["posix"], hook["windows"]
    assert posix["shell"] == "sh" and windows["shell"] == "pwsh"
    sh_script = (base / posix["run"]).resolve()
    ps_script = (base / windows["run"]).resolve()
    assert sh_script.is_file(), f"{owner}/{event}: {posix['run']} resolves to missing {sh_script}"
    assert ps_script.is_file(), f"{owner}/{event}: {windows['run']} resolves to missing {ps_script}"
    assert sh_script.suffix == ".sh" and ps_script.suffix == ".ps1"
    assert sh_script.stem == ps_script.stem == event
    assert posix.get("continueOnError", False) is False
    for script in (sh_script, ps_script):
        assert script.stat().st_mode & 0o111, f"{script} is not executable"
    assert sh_script.read_text(encoding="utf-8").startswith("#!/bin/sh\n")


def test_the_function_package_keeps_the_copied_indexer_and_schemas():
    # azd zips functions/ honouring functions/.funcignore (not .gitignore, which lists the copies
    # the prepackage hook makes); an ignore rule for them would ship a Function that cannot import.
    funcignore = ROOT / "functions" / ".funcignore"
    if not funcignore.exists():
        pytest.skip("functions/.funcignore is not written yet")
    import fnmatch
    rules = [line.strip() for line in funcignore.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    for copied in ("indexer", "indexer/settings.py", "schemas", "schemas/2023-04-15.json"):
        excluded = [r for r in rules if not r.startswith("!") and fnmatch.fnmatch(copied, r.strip("/"))]
        assert not excluded, f".funcignore rules {excluded} would drop {copied} from the package"
