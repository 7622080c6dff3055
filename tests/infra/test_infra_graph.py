"""The resource graph of infra/: what is deployed, with which API versions, which roles, which
settings, and what never leaves it (no secret in any output or app setting).

The facts these tests hold the Bicep to were looked up, not guessed; each table names its source.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from indexer.indexing.failures import FAILURES_CONTAINER
from indexer.model_versions import DEFAULT_MODEL_VERSION, MODEL_VERSIONS
from indexer.schema import schema_path
from indexer.settings import Settings, load_settings, pinned_model_version
from tests.infra import bicep_graph
from tests.infra.bicep_graph import BicepFile, Expr

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"

# Stable API versions published for each resource type the templates use. Source of every list:
# the Bicep type index Azure/bicep-types-az, generated/<dir>/<namespace>/<version>/types.md
# ("## Resource <type>@<version>"), which is generated from Azure/azure-rest-api-specs. The
# versions the templates pin were also found in azure-rest-api-specs itself, at the path noted.
PUBLISHED_API_VERSIONS: dict[str, set[str]] = {
    # specification/resources/resource-manager/Microsoft.Resources/stable/2024-03-01/resources.json
    "Microsoft.Resources/resourceGroups": {
        "2015-11-01",
        "2016-02-01",
        "2016-07-01",
        "2016-09-01",
        "2017-05-10",
        "2018-02-01",
        "2018-05-01",
        "2019-03-01",
        "2019-05-01",
        "2019-05-10",
        "2019-07-01",
        "2019-08-01",
        "2019-10-01",
        "2020-06-01",
        "2020-08-01",
        "2020-10-01",
        "2021-01-01",
        "2021-04-01",
        "2022-09-01",
        "2023-07-01",
        "2024-03-01",
        "2024-07-01",
        "2024-11-01",
        "2025-03-01",
        "2025-04-01",
    },
    # specification/msi/resource-manager/Microsoft.ManagedIdentity/stable/2023-01-31/ManagedIdentity.json
    "Microsoft.ManagedIdentity/userAssignedIdentities": {"2018-11-30", "2023-01-31", "2024-11-30"},
    # specification/storage/resource-manager/Microsoft.Storage/stable/2023-05-01/ (storage + blob)
    "Microsoft.Storage/storageAccounts": {
        "2015-06-15",
        "2016-01-01",
        "2016-05-01",
        "2016-12-01",
        "2017-06-01",
        "2017-10-01",
        "2018-02-01",
        "2018-07-01",
        "2018-11-01",
        "2019-04-01",
        "2019-06-01",
        "2021-01-01",
        "2021-02-01",
        "2021-04-01",
        "2021-06-01",
        "2021-08-01",
        "2021-09-01",
        "2022-05-01",
        "2022-09-01",
        "2023-01-01",
        "2023-04-01",
        "2023-05-01",
        "2024-01-01",
        "2025-01-01",
        "2025-06-01",
        "2025-08-01",
        "2026-04-01",
    },
    "Microsoft.Storage/storageAccounts/blobServices": {
        "2018-07-01",
        "2018-11-01",
        "2019-04-01",
        "2019-06-01",
        "2021-01-01",
        "2021-02-01",
        "2021-04-01",
        "2021-06-01",
        "2021-08-01",
        "2021-09-01",
        "2022-05-01",
        "2022-09-01",
        "2023-01-01",
        "2023-04-01",
        "2023-05-01",
        "2024-01-01",
        "2025-01-01",
        "2025-06-01",
        "2025-08-01",
        "2026-04-01",
    },
    "Microsoft.Storage/storageAccounts/blobServices/containers": {
        "2018-02-01",
        "2018-07-01",
        "2018-11-01",
        "2019-04-01",
        "2019-06-01",
        "2021-01-01",
        "2021-02-01",
        "2021-04-01",
        "2021-06-01",
        "2021-08-01",
        "2021-09-01",
        "2022-05-01",
        "2022-09-01",
        "2023-01-01",
        "2023-04-01",
        "2023-05-01",
        "2024-01-01",
        "2025-01-01",
        "2025-06-01",
        "2025-08-01",
        "2026-04-01",
    },
    # specification/web/resource-manager/Microsoft.Web/stable/2024-04-01/ (AppServicePlans.json,
    # WebApps.json; examples/CreateOrUpdateFunctionAppFlexConsumptionWithDetails.json)
    "Microsoft.Web/serverfarms": {
        "2015-08-01",
        "2016-09-01",
        "2018-02-01",
        "2019-08-01",
        "2020-06-01",
        "2020-09-01",
        "2020-10-01",
        "2020-12-01",
        "2021-01-01",
        "2021-01-15",
        "2021-02-01",
        "2021-03-01",
        "2022-03-01",
        "2022-09-01",
        "2023-01-01",
        "2023-12-01",
        "2024-04-01",
        "2024-11-01",
        "2025-03-01",
    },
    "Microsoft.Web/sites": {
        "2015-08-01",
        "2016-08-01",
        "2018-02-01",
        "2018-11-01",
        "2019-08-01",
        "2020-06-01",
        "2020-09-01",
        "2020-10-01",
        "2020-12-01",
        "2021-01-01",
        "2021-01-15",
        "2021-02-01",
        "2021-03-01",
        "2022-03-01",
        "2022-09-01",
        "2023-01-01",
        "2023-12-01",
        "2024-04-01",
        "2024-11-01",
        "2025-03-01",
    },
    "Microsoft.Web/sites/config": {
        "2015-08-01",
        "2016-08-01",
        "2018-02-01",
        "2018-11-01",
        "2019-08-01",
        "2020-06-01",
        "2020-09-01",
        "2020-10-01",
        "2020-12-01",
        "2021-01-01",
        "2021-01-15",
        "2021-02-01",
        "2021-03-01",
        "2022-03-01",
        "2022-09-01",
        "2023-01-01",
        "2023-12-01",
        "2024-04-01",
        "2024-11-01",
        "2025-03-01",
    },
    # specification/search/resource-manager/Microsoft.Search/stable/2023-11-01/search.json
    "Microsoft.Search/searchServices": {
        "2015-02-28",
        "2015-08-19",
        "2020-03-13",
        "2020-08-01",
        "2022-09-01",
        "2023-11-01",
        "2025-05-01",
    },
    # specification/cognitiveservices/resource-manager/Microsoft.CognitiveServices/stable/2024-10-01/
    #   cognitiveservices.json
    "Microsoft.CognitiveServices/accounts": {
        "2017-04-18",
        "2021-04-30",
        "2021-10-01",
        "2022-03-01",
        "2022-10-01",
        "2022-12-01",
        "2023-05-01",
        "2024-10-01",
        "2025-06-01",
        "2025-09-01",
        "2025-12-01",
        "2026-03-01",
        "2026-05-01",
        "2026-07-01",
    },
    # specification/operationalinsights/resource-manager/Microsoft.OperationalInsights/stable/2023-09-01/Workspaces.json
    "Microsoft.OperationalInsights/workspaces": {
        "2020-08-01",
        "2020-10-01",
        "2021-06-01",
        "2022-10-01",
        "2023-09-01",
        "2025-02-01",
        "2025-07-01",
        "2026-03-01",
    },
    # specification/applicationinsights/resource-manager/Microsoft.Insights/stable/2020-02-02/components_API.json
    "Microsoft.Insights/components": {"2015-05-01", "2020-02-02"},
    # specification/monitor/resource-manager/Microsoft.Insights/preview/2021-05-01-preview/
    #   diagnosticsSettings_API.json: diagnostic settings have preview versions only, and this is
    #   the latest (also what Azure Service Operator's insights/v1api20210501preview generates from)
    "Microsoft.Insights/diagnosticSettings": {"2017-05-01-preview", "2021-05-01-preview"},
    # specification/eventgrid/resource-manager/Microsoft.EventGrid/stable/2022-06-15/EventGrid.json
    "Microsoft.EventGrid/systemTopics": {"2021-12-01", "2022-06-15", "2025-02-15"},
    # specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/
    #   authorization-RoleAssignmentsCalls.json
    "Microsoft.Authorization/roleAssignments": {"2015-07-01", "2022-04-01"},
    # bicep-types-az generated/eventgrid/microsoft.eventgrid/2022-06-15/types.md
    # ("## Resource Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15"); the stable
    # folders that hold the type are 2021-12-01, 2022-06-15 and 2025-02-15.
    "Microsoft.EventGrid/systemTopics/eventSubscriptions": {"2021-12-01", "2022-06-15", "2025-02-15"},
    # Only the versions this project checked: bicep-types-az generated/web/microsoft.web/2024-04-01
    # (WebApps.json's basicPublishingCredentialsPolicies/{ftp,scm}), also used in public Bicep.
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": {"2024-04-01"},
    # bicep-types-az generated/network/microsoft.network/2024-05-01 (the checked version only).
    "Microsoft.Network/virtualNetworks": {"2024-05-01"},
    "Microsoft.Network/privateEndpoints": {"2024-05-01"},
    "Microsoft.Network/privateEndpoints/privateDnsZoneGroups": {"2024-05-01"},
    # bicep-types-az generated/privatedns/microsoft.network/{2018-09-01,2020-01-01,2020-06-01,2024-06-01}
    "Microsoft.Network/privateDnsZones": {"2018-09-01", "2020-01-01", "2020-06-01", "2024-06-01"},
    "Microsoft.Network/privateDnsZones/virtualNetworkLinks": {"2018-09-01", "2020-01-01", "2020-06-01", "2024-06-01"},
}

# Built-in role definition ids, from the "Azure built-in roles" table on Microsoft Learn
# (MicrosoftDocs/azure-docs, articles/role-based-access-control/built-in-roles.md).
BUILT_IN_ROLES = {
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Search Index Data Contributor": "8ebe5a00-799e-43f5-93ac-243d3dce84a7",
    "Search Index Data Reader": "1407120a-92aa-4202-b7e9-c0e197c71c8f",
    "Search Service Contributor": "7ca78c08-252a-4471-8644-bb5ff32d4ba0",
    "Cognitive Services User": "a97b65f3-24c7-4388-baec-2e87135dc908",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}

# Regions with the multimodal embeddings APIs: the "Multimodal embeddings" column of the region
# table in "What is Image Analysis?" (MicrosoftDocs/azure-ai-docs,
# articles/ai-services/computer-vision/overview-image-analysis.md, ms.date 09/16/2025), checked
# again for this list. Display name -> region code.
MULTIMODAL_EMBEDDINGS_REGION_NAMES = {
    "East US": "eastus",
    "West US": "westus",
    "West US 2": "westus2",
    "France Central": "francecentral",
    "North Europe": "northeurope",
    "West Europe": "westeurope",
    "Sweden Central": "swedencentral",
    "Switzerland North": "switzerlandnorth",
    "Australia East": "australiaeast",
    "Southeast Asia": "southeastasia",
    "Korea Central": "koreacentral",
    "Japan East": "japaneast",
}
MULTIMODAL_EMBEDDINGS_REGIONS = set(MULTIMODAL_EMBEDDINGS_REGION_NAMES.values())

# What the product needs: the resource types that must be declared (not merely referenced).
REQUIRED_RESOURCE_TYPES = {
    "Microsoft.Resources/resourceGroups",
    "Microsoft.ManagedIdentity/userAssignedIdentities",
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Storage/storageAccounts/blobServices/containers",
    "Microsoft.Web/serverfarms",
    "Microsoft.Web/sites",
    "Microsoft.Search/searchServices",
    "Microsoft.CognitiveServices/accounts",
    "Microsoft.OperationalInsights/workspaces",
    "Microsoft.Insights/components",
    "Microsoft.EventGrid/systemTopics",
    "Microsoft.EventGrid/systemTopics/eventSubscriptions",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies",
    "Microsoft.Authorization/roleAssignments",
}


@cache
def bicep(relative: str) -> BicepFile:
    return bicep_graph.load(INFRA / relative)


def all_files() -> list[BicepFile]:
    return [bicep(p.relative_to(INFRA).as_posix()) for p in sorted(INFRA.rglob("*.bicep"))]


def all_resources():
    for parsed in all_files():
        for resource in parsed.resources:
            yield parsed, resource


def module_target(module: bicep_graph.Module) -> BicepFile:
    return bicep(Path(module.path).as_posix())


def modules_of(path: str) -> list[bicep_graph.Module]:
    return [m for m in bicep("main.bicep").modules if m.path == path]


# ---- shape of the deployment ----


def test_main_deploys_at_subscription_scope_into_its_own_resource_group():
    main = bicep("main.bicep")
    assert main.target_scope == "subscription"
    [group] = main.resources_of_type("Microsoft.Resources/resourceGroups")
    assert not group.existing
    assert main.modules, "main.bicep deploys no modules"
    for module in main.modules:
        assert str(module.body.get("scope")) == group.symbol, f"module {module.symbol} is not scoped to the group"


def test_every_required_resource_type_is_declared():
    declared = {r.type for _, r in all_resources() if not r.existing}
    missing = REQUIRED_RESOURCE_TYPES - declared
    assert not missing, f"not declared anywhere under infra/: {sorted(missing)}"


def api_version_problems(resources) -> list[str]:
    problems = []
    for where, resource in resources:
        known = PUBLISHED_API_VERSIONS.get(resource.type)
        if known is None:
            problems.append(f"{where}: {resource.symbol}: no verified API versions for type {resource.type}")
        elif resource.api_version not in known:
            problems.append(
                f"{where}: {resource.symbol}: {resource.type}@{resource.api_version} is not a published version"
            )
    return problems


def test_every_resource_uses_a_published_stable_api_version():
    resources = [(parsed.path.name, r) for parsed, r in all_resources()]
    assert resources
    assert api_version_problems(resources) == []


def test_the_api_version_check_rejects_unpublished_versions_and_unknown_types():
    parsed = bicep_graph.read("""
resource a 'Microsoft.Web/sites@2024-13-01' = { name: 'x' }
resource b 'Microsoft.Search/searchServices@2024-06-01-preview' = { name: 'y' }
resource c 'Microsoft.Contoso/widgets@2024-01-01' = { name: 'z' }
resource d 'Microsoft.Storage/storageAccounts@2023-05-01' = { name: 'ok' }
""")
    problems = api_version_problems([("snippet", r) for r in parsed.resources])
    assert len(problems) == 3, problems
    assert not any(" d:" in p for p in problems)


# ---- Azure AI Vision ----


def test_the_vision_location_is_restricted_to_the_multimodal_embeddings_regions():
    main = bicep("main.bicep")
    param = main.params["visionLocation"]
    assert set(param.allowed) == MULTIMODAL_EMBEDDINGS_REGIONS
    assert len(param.allowed) == len(MULTIMODAL_EMBEDDINGS_REGIONS)
    # the default picks the primary location only when it is one of the same regions
    default = param.default
    assert isinstance(default, Expr) and default.kind == "ternary_expression"
    assert set(re.findall(r"'([a-z0-9]+)'", default.text.split("?")[0])) == MULTIMODAL_EMBEDDINGS_REGIONS
    assert default.text.rstrip().endswith(": 'eastus'")
    # the module repeats the restriction and receives the parameter, not the primary location
    vision = bicep("app/vision.bicep")
    assert set(vision.params["location"].allowed) == MULTIMODAL_EMBEDDINGS_REGIONS
    [module] = modules_of("app/vision.bicep")
    assert str(module.params["location"]) == "visionLocation"


def test_the_readme_lists_the_same_vision_regions_as_the_bicep():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Using a real Azure AI Vision resource", 1)[1].split("```", 1)[0]
    listed = re.search(r"multimodal embeddings \(([^;)]+)", " ".join(section.split()))
    assert listed, "the README no longer lists the regions where it tells users to create the resource"
    names = [n.strip() for n in re.split(r",\s*(?:and\s+)?|\s+and\s+", listed.group(1))]
    assert sorted(names) == sorted(MULTIMODAL_EMBEDDINGS_REGION_NAMES)


def test_the_vision_account_is_computer_vision_with_entra_only_access():
    vision = bicep("app/vision.bicep")
    accounts = vision.resources_of_type("Microsoft.CognitiveServices/accounts")
    assert [a.symbol for a in accounts] == ["vision", "additional"]  # the first, and accounts 2..N
    sku = vision.params["sku"]
    assert set(sku.allowed) == {"F0", "S1"}
    for account in accounts:
        assert account.get("kind") == "ComputerVision"
        assert account.get("properties", "disableLocalAuth") is True
        subdomain = account.get("properties", "customSubDomainName")
        assert subdomain not in (None, ""), "Entra ID auth needs the custom subdomain endpoint"
        assert str(account.get("sku", "name")) == "sku"
        assert str(account.get("properties", "publicNetworkAccess")) == "publicNetworkAccess"
    assert accounts[1].loop == "for (region, i) in additionalLocations"
    assert str(accounts[1].get("location")) == "region"


def test_n_vision_accounts_of_one_model_version_in_the_multimodal_embeddings_regions():
    main = bicep("main.bicep")
    count = main.params["visionCount"]
    assert count.default == 1  # one account unless asked
    extra = main.params["visionAdditionalLocations"]
    assert set(extra.allowed) == MULTIMODAL_EMBEDDINGS_REGIONS and extra.default == []
    vision = bicep("app/vision.bicep")
    assert set(vision.params["additionalLocations"].allowed) == MULTIMODAL_EMBEDDINGS_REGIONS
    [module] = modules_of("app/vision.bicep")
    assert str(module.params["additionalLocations"]) == "visionAdditionalRegions"
    assert "range(0, visionCount - 1)" in str(main.variables["visionAdditionalRegions"])
    # The Function and the outputs get every endpoint, comma-separated (VISION_ENDPOINT).
    [function] = modules_of("app/function.bicep")
    assert str(function.params["visionEndpoint"]) == "vision.outputs.endpoints"
    assert str(main.outputs["AZURE_VISION_ENDPOINT"].value) == "vision.outputs.endpoints"
    assert "join(concat([firstEndpoint], others), ',')" in str(vision.outputs["endpoints"].value)


def test_the_vision_model_version_choices_are_the_azure_models_with_a_schema_each():
    param = bicep("main.bicep").params["visionModelVersion"]
    azure_models = {m.name for m in MODEL_VERSIONS.values() if m.provider == "azure"}
    assert set(param.allowed) == azure_models
    assert param.default == DEFAULT_MODEL_VERSION
    for version in param.allowed:
        assert schema_path(version).is_file(), f"no index schema for {version}"
    assert bicep("main.bicep").params["visionApiVersion"].default == Settings.model_fields["vision_api_version"].default


# ---- Azure AI Search ----


def test_search_accepts_only_role_based_access_and_takes_its_sku_from_a_parameter():
    search = bicep("app/search.bicep")
    [service] = search.resources_of_type("Microsoft.Search/searchServices")
    assert service.get("properties", "disableLocalAuth") is True
    assert service.get("properties", "authOptions") is None, "authOptions cannot be set with local auth disabled"
    assert str(service.get("sku", "name")) == "sku"
    allowed = set(search.params["sku"].allowed)
    assert {"basic", "standard"} <= allowed
    # The service always has a system-assigned identity, which the free tier cannot have.
    assert service.get("identity", "type") == "SystemAssigned"
    assert "free" not in allowed
    assert set(bicep("main.bicep").params["searchSku"].allowed) == allowed
    [module] = modules_of("app/search.bicep")
    assert str(module.params["sku"]) == "searchSku"


# ---- storage ----


def test_every_storage_account_refuses_shared_keys_old_tls_and_public_blobs():
    accounts = [(p, r) for p, r in all_resources() if r.type == "Microsoft.Storage/storageAccounts" and not r.existing]
    assert accounts
    for parsed, account in accounts:
        properties = account.get("properties")
        assert properties["allowSharedKeyAccess"] is False, parsed.path
        assert properties["minimumTlsVersion"] == "TLS1_2", parsed.path
        assert properties["allowBlobPublicAccess"] is False, parsed.path
    containers = [
        r
        for _, r in all_resources()
        if r.type == "Microsoft.Storage/storageAccounts/blobServices/containers" and not r.existing
    ]
    assert containers and all(c.get("properties", "publicAccess") == "None" for c in containers)


def test_images_and_host_storage_are_separate_accounts_with_their_containers():
    main = bicep("main.bicep")
    assert main.variables["imagesContainerName"] == "images"
    # the Function records permanent failures in this container (indexer.indexing.failures)
    assert main.variables["failuresContainerName"] == FAILURES_CONTAINER
    storage_modules = {m.symbol: m for m in modules_of("app/storage.bicep")}
    assert set(storage_modules) == {"hostStorage", "imagesStorage"}
    images = storage_modules["imagesStorage"].params
    host = storage_modules["hostStorage"].params
    assert [str(c) for c in images["containerNames"]] == [
        "imagesContainerName",
        "failuresContainerName",
        "deadLetterContainerName",
    ]
    assert [str(c) for c in host["containerNames"]] == ["deploymentContainerName"]
    assert str(images["name"]) != str(host["name"])


GEO_REDUNDANT = {"Standard_GRS", "Standard_RAGRS", "Standard_GZRS", "Standard_RAGZRS"}


def test_the_photos_are_geo_redundant_and_the_host_account_is_not_billed_for_it():
    # checkov CKV_AZURE_206 is skipped inside storage.bicep because replication is chosen here,
    # per account; this test is what holds the choice.
    storage = bicep("app/storage.bicep")
    [account] = storage.resources_of_type("Microsoft.Storage/storageAccounts")
    assert str(account.get("sku", "name")) == "skuName"
    assert not storage.params["skuName"].has_default, "each caller must choose"
    modules = {m.symbol: m for m in modules_of("app/storage.bicep")}
    assert modules["hostStorage"].params["skuName"] == "Standard_LRS"
    images_sku = modules["imagesStorage"].params["skuName"]
    assert str(images_sku) == "imagesStorageSku"
    param = bicep("main.bicep").params["imagesStorageSku"]
    assert param.default in GEO_REDUNDANT
    assert set(param.allowed) == set(storage.params["skuName"].allowed)


# ---- the Function ----


def test_the_function_runs_python_3_11_on_flex_consumption_as_the_user_assigned_identity():
    function = bicep("app/function.bicep")
    [plan] = function.resources_of_type("Microsoft.Web/serverfarms")
    assert plan.get("sku") == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan.get("properties", "reserved") is True
    [site] = function.resources_of_type("Microsoft.Web/sites")
    assert site.get("kind") == "functionapp,linux"
    assert str(site.get("properties", "serverFarmId")) == f"{plan.symbol}.id"
    config = site.get("properties", "functionAppConfig")
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    identity = site.get("identity")
    [identity_resource] = function.resources_of_type("Microsoft.ManagedIdentity/userAssignedIdentities")
    assert identity["type"] == "UserAssigned"
    assert list(identity["userAssignedIdentities"]) == [f"'${{{identity_resource.symbol}.id}}'"]
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": Expr(f"{identity_resource.symbol}.id", "member_expression"),
    }
    assert "deploymentContainerName" in str(storage["value"])
    assert site.get("properties", "httpsOnly") is True


def test_azd_finds_the_function_through_its_service_name_tag():
    config = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    [service] = [name for name, s in config["services"].items() if s["host"] == "function"]
    [site] = bicep("app/function.bicep").resources_of_type("Microsoft.Web/sites")
    assert f"'azd-service-name': '{service}'" in str(site.get("tags"))


def app_settings(parsed: BicepFile) -> dict[str, Any]:
    """The app settings a file gives a Function/Web app (sites/config 'appsettings' resources and
    inline siteConfig.appSettings), with variable references followed."""
    settings: dict[str, Any] = {}
    for resource in parsed.resources:
        if resource.type == "Microsoft.Web/sites/config" and resource.get("name") == "appsettings":
            properties = parsed.resolve(resource.get("properties"))
            assert isinstance(properties, dict), f"{parsed.path}: app settings must be a literal object"
            settings.update(properties)
        if resource.type == "Microsoft.Web/sites":
            for entry in resource.get("properties", "siteConfig", "appSettings", default=[]) or []:
                settings[entry["name"]] = entry["value"]
    return settings


def function_settings() -> dict[str, Any]:
    return app_settings(bicep("app/function.bicep"))


# Settings fields the Function needs on Azure. The others are local-only (data_dir), secrets
# that must not exist on Azure (keys, connection string) or tuning with safe defaults.
FIELDS_SET_ON_AZURE = [
    "vision_endpoint",
    "vision_model_version",
    "vision_api_version",
    "vision_requests_per_second",
    "search_endpoint",
    "search_index_name",
    "storage_blob_service_uri",
    "images_container",
    "azure_client_id",
    "search_vectorizer_uri",
    "ingestion_mode",
]
SECRET_FIELDS = ["vision_key", "search_key", "storage_connection_string"]


def setting_names(field_name: str) -> list[str]:
    alias = Settings.model_fields[field_name].validation_alias
    choices = getattr(alias, "choices", None)
    return [alias] if isinstance(alias, str) else list(choices)


def test_every_setting_the_function_reads_on_azure_is_set():
    settings = function_settings()
    for field_name in FIELDS_SET_ON_AZURE:
        names = setting_names(field_name)
        assert any(n in settings for n in names), f"app settings lack {names} (Settings.{field_name})"


def test_no_key_or_connection_string_setting_of_the_indexer_is_set():
    settings = function_settings()
    for field_name in SECRET_FIELDS:
        for name in setting_names(field_name):
            assert name not in settings, f"{name} must not be an app setting: Entra ID only"


def deployed_value(value: Any) -> Any:
    """The literal an app setting gets with main.bicep's defaults, when one is known: a
    function.bicep parameter, fed by main.bicep with a literal, a variable or a parameter default."""
    if not (isinstance(value, Expr) and value.kind == "identifier"):
        return value
    [module] = modules_of("app/function.bicep")
    passed = module.params.get(value.text)
    main = bicep("main.bicep")
    if isinstance(passed, Expr) and passed.kind == "identifier":
        if passed.text in main.variables:
            return main.variables[passed.text]
        if passed.text in main.params and main.params[passed.text].has_default:
            return main.params[passed.text].default
    return passed if passed is not None else value


def test_the_settings_object_built_from_the_app_settings_targets_azure(monkeypatch):
    # Load indexer.settings exactly as the Function will: every app setting becomes an
    # environment variable. Values known only at deployment get a stand-in of the right shape.
    stand_ins = {
        "VISION_ENDPOINT": "https://cv-example.cognitiveservices.azure.com",
        "SEARCH_ENDPOINT": "https://srch-example.search.windows.net",
        "IMAGES_STORAGE__blobServiceUri": "https://stimgexample.blob.core.windows.net/",
        "VISION_REQUESTS_PER_SECOND": "20",
    }
    for field_name in Settings.model_fields:
        for name in setting_names(field_name):
            monkeypatch.delenv(name, raising=False)
    for name, value in function_settings().items():
        value = deployed_value(value)
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.setenv(name, stand_ins.get(name, f"stand-in-for-{value}"))
    settings = load_settings()
    assert not settings.uses_offline_model, "the Function would fall back to the offline model"
    assert not settings.uses_numpy_index, "the Function would fall back to the local numpy index"
    assert settings.storage_blob_service_uri and not settings.storage_connection_string
    assert settings.vision_key == "" and settings.search_key == ""
    assert (settings.images_container, settings.search_index_name) == ("images", "images")
    assert settings.vision_model_version == DEFAULT_MODEL_VERSION
    assert pinned_model_version(settings) == DEFAULT_MODEL_VERSION  # an Azure pin, not a local model
    assert settings.vision_api_version == "2024-02-01"


@pytest.mark.parametrize(
    "connection, storage_symbol",
    [
        ("AzureWebJobsStorage", "hostStorage"),
        ("IMAGES_STORAGE", None),
    ],
)
def test_storage_connections_are_identity_based(connection, storage_symbol):
    settings = function_settings()
    function = bicep("app/function.bicep")
    [identity] = function.resources_of_type("Microsoft.ManagedIdentity/userAssignedIdentities")
    assert settings[f"{connection}__credential"] == "managedidentity"
    assert str(settings[f"{connection}__clientId"]) == f"{identity.symbol}.properties.clientId"
    assert connection not in settings, f"{connection} alone would be a connection string"
    for service in ("blob", "queue"):
        uri = str(settings[f"{connection}__{service}ServiceUri"])
        if storage_symbol:
            assert uri == f"{storage_symbol}.properties.primaryEndpoints.{service}"
        else:
            assert uri == f"images{service.capitalize()}ServiceUri"
    assert str(settings["AZURE_CLIENT_ID"]) == f"{identity.symbol}.properties.clientId"


def test_the_images_connection_points_at_the_images_account():
    [module] = modules_of("app/function.bicep")
    assert str(module.params["imagesBlobServiceUri"]) == "imagesStorage.outputs.blobEndpoint"
    assert str(module.params["imagesQueueServiceUri"]) == "imagesStorage.outputs.queueEndpoint"
    assert str(module.params["imagesContainerName"]) == "imagesContainerName"
    storage = bicep("app/storage.bicep")
    assert str(storage.outputs["blobEndpoint"].value) == "account.properties.primaryEndpoints.blob"
    assert str(storage.outputs["queueEndpoint"].value) == "account.properties.primaryEndpoints.queue"


def test_no_setting_flex_consumption_deprecates_is_set():
    # Functions app settings reference, "Flex Consumption plan deprecations": the runtime lives in
    # functionAppConfig and there is no content share or Kudu build.
    deprecated = {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "ENABLE_ORYX_BUILD",
    }
    assert not deprecated & set(function_settings())


def test_the_vision_pace_follows_the_pricing_tier():
    main = bicep("main.bicep")
    pace = main.variables["visionRequestsPerSecond"]
    assert "visionSku == 'F0'" in str(pace) and "'0.33'" in str(pace) and "'20'" in str(pace)
    [module] = modules_of("app/function.bicep")
    assert str(module.params["visionRequestsPerSecond"]) == "visionRequestsPerSecond"


# ---- no secrets ----

SECRET_PATTERNS = [
    (re.compile(r"\blist\w*Keys?\s*\(", re.I), "a list*Keys() call"),
    (re.compile(r"\blistConnectionStrings?\s*\(", re.I), "a listConnectionStrings() call"),
    (re.compile(r"\blistSecrets?\s*\(", re.I), "a listSecrets() call"),
    (re.compile(r"AccountKey=", re.I), "a storage account key"),
    (re.compile(r"SharedAccess(Key|Signature)", re.I), "a shared access key"),
    (re.compile(r"\.(primary|secondary)\w*Key\b", re.I), "a primary/secondary key"),
    (re.compile(r"\.key[s12]?\b", re.I), "a .key property"),
    (re.compile(r"connection_?string", re.I), "a connection string"),
    (re.compile(r"InstrumentationKey", re.I), "an instrumentation key"),
    (re.compile(r"password|secret", re.I), "a password or secret"),
]
SECRET_NAME = re.compile(r"(^|_)(KEY|SECRET|PASSWORD)(_|$)|key$|secret|password|connection_?string", re.I)
APP_INSIGHTS_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"


def _leaks(text: str) -> list[str]:
    return [label for pattern, label in SECRET_PATTERNS if pattern.search(text)]


def _app_insights_exception_holds(
    value: Any, files: list[BicepFile], settings: dict[str, Any], owner: BicepFile
) -> bool:
    """The one allowed connection string: Application Insights', read straight from a component
    whose local (key) auth is disabled, with Entra authentication configured for the host.

    Why allowed: its instrumentation key is an identifier, not a security key ("Connection
    strings in Application Insights", Microsoft Learn), and with DisableLocalAuth the ingestion
    endpoint accepts only Entra-signed telemetry; APPLICATIONINSIGHTS_CONNECTION_STRING is the
    setting the Functions host needs to find the resource."""
    match = re.fullmatch(r"(\w+)\.properties\.ConnectionString", str(value))
    if not (isinstance(value, Expr) and match):
        return False
    try:
        component = owner.resource(match.group(1))
    except KeyError:
        return False
    if component.type != "Microsoft.Insights/components":
        return False
    declarations = [
        r for f in files for r in f.resources if r.type == "Microsoft.Insights/components" and not r.existing
    ]
    if not declarations or not all(r.get("properties", "DisableLocalAuth") is True for r in declarations):
        return False
    auth = str(settings.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""))
    return "Authorization=AAD" in auth and "ClientId=" in auth


HOST_KEYS_FILE = "eventsubscriptions.bicep"


def host_key_webhook_problems(parsed: BicepFile) -> list[str]:
    """Why a file's key listing is not the one allowed exception, or [] when it is.

    The exception: app/eventsubscriptions.bicep reads the Functions host's system keys with
    listKeys('<site id>/host/default', ...) inside Azure Resource Manager and puts them into the
    webhook URLs of its Event Grid subscriptions, the only way Event Grid can call the blob and
    Event Grid extensions. The keys never reach the machine that deploys it. Nothing else may
    touch them: no output, no app setting, no module parameter, no other property."""
    if parsed.path is None or parsed.path.name != HOST_KEYS_FILE:
        return ["not the event subscriptions template"]
    code = re.sub(r"//.*", "", parsed.source)
    calls = re.findall(r"\blist\w*\s*\([^)]*\)", code)
    problems = []
    if calls != ["listKeys('${site.id}/host/default', '2024-04-01')"]:
        problems.append(f"key listings other than the host's system keys: {calls}")
    site = parsed.resource("site")
    if not (site.type == "Microsoft.Web/sites" and site.existing):
        problems.append("listKeys is not called on an existing Function app")
    holders = [name for name, value in parsed.variables.items() if "listKeys(" in str(value)]
    if holders != ["hostKeys"]:
        problems.append(f"the keys are held by {holders}, not one variable hostKeys")
    lines = parsed.source.splitlines()
    for name, line in bicep_graph.identifier_references(parsed.source):
        if name == "hostKeys" and not lines[line - 1].strip().startswith("endpointUrl:"):
            problems.append(f"line {line} uses the host keys outside a webhook endpointUrl")
    for output in parsed.outputs.values():
        if re.search(r"hostKeys|endpointUrl|listKeys", str(output.value)):
            problems.append(f"output {output.name} exposes the webhook keys")
    return problems


def secret_findings(files: list[BicepFile]) -> list[str]:
    """Every place a secret, key or connection string could leave the deployment: outputs (of
    every file, modules included: their outputs sit in the deployment history), app settings, and
    parameters passed to modules; plus any key-listing call anywhere but the one exception that
    host_key_webhook_problems holds to its narrow shape."""
    findings = []
    for parsed in files:
        where = parsed.path.name if parsed.path else "<source>"
        for label in _leaks(re.sub(r"//.*", "", parsed.source)):
            if label.endswith("call"):
                if label == "a list*Keys() call" and not host_key_webhook_problems(parsed):
                    continue
                findings.append(f"{where}: {label}")
        for output in parsed.outputs.values():
            if "secure" in output.decorators:
                findings.append(f"{where}: output {output.name} is @secure()")
            if SECRET_NAME.search(output.name):
                findings.append(f"{where}: output {output.name} is named like a secret")
            findings += [f"{where}: output {output.name} exposes {label}" for label in _leaks(str(output.value))]
        for module in parsed.modules:
            for name, value in module.params.items():
                findings += [
                    f"{where}: module {module.symbol} receives {label} in {name}" for label in _leaks(str(value))
                ]
        settings = app_settings(parsed)
        for name, value in settings.items():
            if name == APP_INSIGHTS_SETTING:
                if not _app_insights_exception_holds(value, files, settings, parsed):
                    findings.append(f"{where}: {name} is not the Entra-only Application Insights connection string")
                continue
            if SECRET_NAME.search(name):
                findings.append(f"{where}: app setting {name} is named like a secret")
            findings += [f"{where}: app setting {name} holds {label}" for label in _leaks(str(value))]
    return findings


def test_no_secret_key_or_connection_string_leaves_the_deployment():
    assert secret_findings(all_files()) == []


def test_the_function_gets_the_app_insights_connection_string_with_entra_authentication():
    settings = function_settings()
    assert str(settings[APP_INSIGHTS_SETTING]) == "appInsights.properties.ConnectionString"
    assert str(settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]) == (
        "'Authorization=AAD;ClientId=${identity.properties.clientId}'"
    )
    [component] = bicep("app/monitoring.bicep").resources_of_type("Microsoft.Insights/components")
    assert component.get("properties", "DisableLocalAuth") is True
    assert "logAnalytics.id" in str(component.get("properties", "WorkspaceResourceId"))
    assert "APPLICATIONINSIGHTS" not in " ".join(bicep("main.bicep").outputs)


LEAKY_SNIPPETS = {
    "storage key in an output": """
resource st 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: 'x' }
output storageKey string = st.listKeys().keys[0].value
""",
    "connection string output": """
resource ai 'Microsoft.Insights/components@2020-02-02' existing = { name: 'x' }
output APPLICATIONINSIGHTS_CONNECTION_STRING string = ai.properties.ConnectionString
""",
    "account key in an app setting": """
resource site 'Microsoft.Web/sites@2024-04-01' existing = { name: 'x' }
resource cfg 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    AzureWebJobsStorage: 'DefaultEndpointsProtocol=https;AccountName=x;AccountKey=${key}'
  }
}
""",
    "search key setting": """
resource site 'Microsoft.Web/sites@2024-04-01' existing = { name: 'x' }
resource cfg 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    SEARCH_KEY: search.listAdminKeys().primaryKey
  }
}
""",
    "app insights with local auth on": """
resource ai 'Microsoft.Insights/components@2020-02-02' = {
  name: 'x'
  kind: 'web'
  properties: {
    Application_Type: 'web'
    DisableLocalAuth: false
  }
}
resource site 'Microsoft.Web/sites@2024-04-01' existing = { name: 'x' }
resource cfg 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    APPLICATIONINSIGHTS_CONNECTION_STRING: ai.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=x'
  }
}
""",
    "vision key passed to a module": """
resource cv 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = { name: 'x' }
module fn 'app/function.bicep' = {
  name: 'fn'
  params: {
    visionEndpoint: cv.listKeys().key1
  }
}
""",
}


@pytest.mark.parametrize("snippet", LEAKY_SNIPPETS.values(), ids=list(LEAKY_SNIPPETS))
def test_the_secret_check_catches_leaks(snippet):
    assert secret_findings([bicep_graph.read(snippet)]) != []


def _host_keys_variant(old: str, new: str) -> BicepFile:
    source = bicep("app/eventsubscriptions.bicep").source
    assert old in source
    return bicep_graph.read(source.replace(old, new, 1), path=INFRA / "app" / HOST_KEYS_FILE)


HOST_KEY_LEAKS = {
    "in an output": (
        "output subscriptionNames array",
        "output leak string = hostKeys.systemKeys.blobs_extension\noutput subscriptionNames array",
    ),
    "in another property": ("eventDeliverySchema: 'EventGridSchema'", "eventDeliverySchema: hostKeys.masterKey"),
    "the master key listed too": (
        "var webhookBase",
        "var other = listKeys('${site.id}/host/default', '2024-04-01').masterKey\nvar webhookBase",
    ),
    "a second holder": (
        "var webhookBase",
        "var copy = '${listKeys('${site.id}/host/default', '2024-04-01')}'\nvar webhookBase",
    ),
}


def test_the_host_keys_are_read_by_resource_manager_only_into_the_webhook_urls():
    parsed = bicep("app/eventsubscriptions.bicep")
    assert host_key_webhook_problems(parsed) == []
    # the same listing anywhere else is a finding
    elsewhere = bicep_graph.read(parsed.source, path=INFRA / "app" / "elsewhere.bicep")
    assert secret_findings([elsewhere]) == ["elsewhere.bicep: a list*Keys() call"]


@pytest.mark.parametrize("old, new", HOST_KEY_LEAKS.values(), ids=list(HOST_KEY_LEAKS))
def test_the_host_key_exception_is_narrow(old, new):
    leaky = _host_keys_variant(old, new)
    assert host_key_webhook_problems(leaky) != []
    assert secret_findings([leaky]) != []


# ---- Event Grid ----


def test_the_system_topic_watches_the_images_account():
    eventgrid = bicep("app/eventgrid.bicep")
    [topic] = eventgrid.resources_of_type("Microsoft.EventGrid/systemTopics")
    assert topic.get("properties", "topicType") == "Microsoft.Storage.StorageAccounts"
    source = str(topic.get("properties", "source"))
    storage = eventgrid.resource(source.removesuffix(".id"))
    assert storage.type == "Microsoft.Storage/storageAccounts" and storage.existing
    assert str(storage.get("name")) == "storageAccountName"
    [module] = modules_of("app/eventgrid.bicep")
    assert str(module.params["storageAccountName"]) == "imagesStorage.outputs.name"
    # the topic must share the storage account's region
    assert str(module.params["location"]) == "location"
    [images] = [m for m in modules_of("app/storage.bicep") if m.symbol == "imagesStorage"]
    assert str(images.params["location"]) == "location"


# ---- role assignments ----


@dataclass(frozen=True)
class Assignment:
    principal: str  # "function" or "user"
    role: str
    scope: str  # what the scope resource is, e.g. "images container"


SCOPE_NAMES = {
    ("Microsoft.Storage/storageAccounts", "hostStorageName"): "host storage account",
    ("Microsoft.Storage/storageAccounts", "imagesStorageName"): "images storage account",
    ("Microsoft.Storage/storageAccounts/blobServices/containers", "imagesContainerName"): "images container",
    ("Microsoft.Storage/storageAccounts/blobServices/containers", "failuresContainerName"): "failures container",
    ("Microsoft.Storage/storageAccounts/blobServices/containers", "deadLetterContainerName"): "dead-letter container",
    ("Microsoft.Search/searchServices", "searchServiceName"): "search service",
    ("Microsoft.CognitiveServices/accounts", "visionAccountName"): "vision account",
    ("Microsoft.CognitiveServices/accounts", "accountName"): "additional vision accounts",
    ("Microsoft.Insights/components", "appInsightsName"): "application insights",
}
PRINCIPALS = {
    "functionPrincipalId": "function",
    "userPrincipalId": "user",
    "eventGridPrincipalId": "eventgrid",
    "searchPrincipalId": "search",
}

# Least privilege, as decided and justified in infra/app/rbac.bicep.
EXPECTED_ASSIGNMENTS = {
    Assignment("function", "Storage Blob Data Owner", "host storage account"),
    Assignment("function", "Storage Queue Data Contributor", "host storage account"),
    Assignment("function", "Storage Blob Data Reader", "images container"),
    Assignment("function", "Storage Blob Data Contributor", "failures container"),
    Assignment("function", "Storage Queue Data Contributor", "images storage account"),
    Assignment("function", "Search Index Data Contributor", "search service"),
    Assignment("function", "Reader", "search service"),
    Assignment("function", "Cognitive Services User", "vision account"),
    Assignment("function", "Cognitive Services User", "additional vision accounts"),
    Assignment("function", "Monitoring Metrics Publisher", "application insights"),
    Assignment("eventgrid", "Storage Blob Data Contributor", "dead-letter container"),
    # pull mode only: the indexer's data source reads the photos as the search service
    Assignment("search", "Storage Blob Data Reader", "images container"),
    Assignment("user", "Storage Blob Data Contributor", "images container"),
    Assignment("user", "Storage Blob Data Reader", "failures container"),
    Assignment("user", "Search Service Contributor", "search service"),
    Assignment("user", "Search Index Data Contributor", "search service"),
    Assignment("user", "Cognitive Services User", "vision account"),
    Assignment("user", "Cognitive Services User", "additional vision accounts"),
}


def _role_table(parsed: BicepFile) -> dict[str, str]:
    table = parsed.variables["roles"]
    assert isinstance(table, dict)
    return table


def _role_name(key: str) -> str:
    """'storageBlobDataOwner' -> 'Storage Blob Data Owner' (as in the built-in roles table)."""
    for name in BUILT_IN_ROLES:
        if name.replace(" ", "").lower() == key.lower():
            return name
    raise AssertionError(f"role key {key!r} matches no verified built-in role")


def _scope_name(parsed: BicepFile, symbol: str) -> str:
    resource = parsed.resource(symbol.split("[", 1)[0])  # additionalVision[i]: one of a loop
    name = str(resource.get("name"))
    label = SCOPE_NAMES.get((resource.type, name))
    assert label, f"role assignment scoped to unexpected {resource.type} named {name}"
    if label.endswith("container"):  # parent chain: container -> blob service -> images account
        service = parsed.resource(str(resource.get("parent")))
        account = parsed.resource(str(service.get("parent")))
        assert str(account.get("name")) == "imagesStorageName"
    return label


def role_assignments(parsed: BicepFile) -> dict[Assignment, bicep_graph.Resource]:
    table = _role_table(parsed)
    result = {}
    for resource in parsed.resources_of_type("Microsoft.Authorization/roleAssignments"):
        definition = str(resource.get("properties", "roleDefinitionId"))
        match = re.fullmatch(
            r"subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions', roles\.(\w+)\)", definition
        )
        assert match, f"{resource.symbol}: role definition not taken from the role table: {definition}"
        role = _role_name(match.group(1))
        assert table[match.group(1)] == BUILT_IN_ROLES[role]
        principal = PRINCIPALS[str(resource.get("properties", "principalId"))]
        assignment = Assignment(principal, role, _scope_name(parsed, str(resource.get("scope"))))
        assert assignment not in result, f"{assignment} is assigned twice"
        result[assignment] = resource
    return result


def test_the_role_table_holds_the_verified_built_in_role_ids():
    table = _role_table(bicep("app/rbac.bicep"))
    for key, guid in table.items():
        assert guid == BUILT_IN_ROLES[_role_name(key)], key


def test_role_assignments_are_exactly_the_least_privilege_set():
    assert set(role_assignments(bicep("app/rbac.bicep"))) == EXPECTED_ASSIGNMENTS


def test_no_role_is_assigned_outside_the_rbac_module():
    for parsed, resource in all_resources():
        if resource.type == "Microsoft.Authorization/roleAssignments":
            assert parsed.path.name == "rbac.bicep", f"{parsed.path}: {resource.symbol}"


def test_each_assignment_is_named_after_scope_principal_and_role_and_typed():
    rbac = bicep("app/rbac.bicep")
    names = set()
    assert str(rbac.variables["assignUser"]) == "!empty(userPrincipalId)"
    assert str(rbac.variables["assignSearch"]) == "!empty(searchPrincipalId)"
    for assignment, resource in role_assignments(rbac).items():
        principal_param = next(p for p, who in PRINCIPALS.items() if who == assignment.principal)
        scope = str(resource.get("scope"))
        role_key = re.search(r"roles\.(\w+)", str(resource.get("properties", "roleDefinitionId"))).group(1)
        assert str(resource.get("name")) == f"guid({scope}.id, {principal_param}, roles.{role_key})"
        names.add(str(resource.get("name")))
        if assignment.principal in ("function", "eventgrid"):
            assert resource.condition is None
            assert resource.get("properties", "principalType") == "ServicePrincipal"
        elif assignment.principal == "search":
            assert resource.condition == "(assignSearch)"
            assert resource.get("properties", "principalType") == "ServicePrincipal"
        else:
            assert resource.condition == "(assignUser)"
            assert str(resource.get("properties", "principalType")) == "userPrincipalType"
    assert len(names) == len(EXPECTED_ASSIGNMENTS)


def test_main_wires_the_rbac_module_to_the_right_resources():
    [module] = modules_of("app/rbac.bicep")
    params = {k: str(v) for k, v in module.params.items()}
    assert params == {
        "functionPrincipalId": "identity.outputs.principalId",
        "userPrincipalId": "principalId",
        "userPrincipalType": "principalType",
        "hostStorageName": "hostStorage.outputs.name",
        "imagesStorageName": "imagesStorage.outputs.name",
        "imagesContainerName": "imagesContainerName",
        "failuresContainerName": "failuresContainerName",
        "deadLetterContainerName": "deadLetterContainerName",
        "eventGridPrincipalId": "eventGrid.outputs.principalId",
        "searchServiceName": "search.outputs.name",
        "visionAccountName": "vision.outputs.name",
        "additionalVisionAccountNames": "vision.outputs.additionalNames",
        "appInsightsName": "monitoring.outputs.appInsightsName",
        # the search service reads the photos in pull mode only
        "searchPrincipalId": "ingestionMode == 'pull' ? search.outputs.principalId : ''",
    }
    [function] = modules_of("app/function.bicep")
    assert str(function.params["identityName"]) == "identity.outputs.name"
    assert str(function.params["hostStorageName"]) == "hostStorage.outputs.name"
    # the host starts only after its identity can reach host storage
    assert [str(d) for d in function.body.get("dependsOn", [])] == ["rbac"]


# ---- outputs ----


def test_main_outputs_what_azd_and_the_hooks_need():
    outputs = bicep("main.bicep").outputs
    needed = {
        "AZURE_RESOURCE_GROUP",
        "AZURE_FUNCTION_NAME",
        "AZURE_FUNCTION_HOSTNAME",
        "AZURE_EVENTGRID_SYSTEM_TOPIC_NAME",
        "AZURE_IMAGES_CONTAINER",
        "AZURE_SEARCH_ENDPOINT",
        "AZURE_SEARCH_INDEX_NAME",
        "AZURE_VISION_ENDPOINT",
        "AZURE_VISION_MODEL_VERSION",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_BLOB_ENDPOINT",
    }
    assert needed <= set(outputs), needed - set(outputs)
    assert str(outputs["AZURE_FUNCTION_HOSTNAME"].value) == "functionApp.outputs.defaultHostName"
    assert str(bicep("app/function.bicep").outputs["defaultHostName"].value) == "site.properties.defaultHostName"


# ---- Flex Consumption bounds ----

# Flex Consumption accepts a maximum instance count of 40 to 1000 (Azure Functions
# "Event-driven scaling", "Limit scale-out": "The lowest maximum instance count value is 40, and
# the highest supported maximum instance count value is 1,000") and instances of 512, 2048 or
# 4096 MB ("Flex Consumption plan hosting", "Instance memory").
FLEX_INSTANCE_COUNT = (40, 1000)
FLEX_INSTANCE_MEMORY_MB = {512, 2048, 4096}


@pytest.mark.parametrize(
    "path, count, memory",
    [
        ("main.bicep", "functionMaximumInstanceCount", "functionInstanceMemoryMB"),
        ("app/function.bicep", "maximumInstanceCount", "instanceMemoryMB"),
    ],
)
def test_the_flex_consumption_bounds_are_enforced_by_the_parameters(path, count, memory):
    params = bicep(path).params
    assert params[count].decorators["minValue"] == [FLEX_INSTANCE_COUNT[0]]
    assert params[count].decorators["maxValue"] == [FLEX_INSTANCE_COUNT[1]]
    assert FLEX_INSTANCE_COUNT[0] <= params[count].default <= FLEX_INSTANCE_COUNT[1]
    assert set(params[memory].allowed) == FLEX_INSTANCE_MEMORY_MB
    assert params[memory].default in FLEX_INSTANCE_MEMORY_MB


def test_the_instance_count_is_not_offered_as_a_vision_rate_limit():
    # Pacing belongs to the Vision client and host.json; scale-out bounds are not a rate limiter.
    description = " ".join(bicep("main.bicep").params["functionMaximumInstanceCount"].decorators["description"])
    assert "rate" not in description.lower() and "vision" not in description.lower()
    [module] = modules_of("app/function.bicep")
    assert str(module.params["maximumInstanceCount"]) == "functionMaximumInstanceCount"
    assert str(module.params["instanceMemoryMB"]) == "functionInstanceMemoryMB"


# ---- hardening ----


def test_the_log_analytics_workspace_refuses_shared_key_access():
    [workspace] = bicep("app/monitoring.bicep").resources_of_type("Microsoft.OperationalInsights/workspaces")
    assert workspace.get("properties", "features", "disableLocalAuth") is True


def test_basic_publishing_credentials_are_off_for_ftp_and_scm():
    function = bicep("app/function.bicep")
    [site] = function.resources_of_type("Microsoft.Web/sites")
    policies = function.resources_of_type("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {p.get("name") for p in policies} == {"ftp", "scm"}
    for policy in policies:
        assert str(policy.get("parent")) == site.symbol
        assert policy.get("properties") == {"allow": False}
        assert policy.condition is None


def test_search_replicas_come_from_a_parameter():
    search = bicep("app/search.bicep")
    [service] = search.resources_of_type("Microsoft.Search/searchServices")
    assert str(service.get("properties", "replicaCount")) == "replicaCount"
    main_param = bicep("main.bicep").params["searchReplicaCount"]
    assert main_param.default == 1 and main_param.decorators["minValue"] == [1]
    [module] = modules_of("app/search.bicep")
    assert str(module.params["replicaCount"]) == "searchReplicaCount"


# ---- Event Grid delivery: retry policy and dead-lettering ----

# "Event Grid message delivery and retry": 1 to 30 delivery attempts, a time to live of 1 to
# 1440 minutes. Event types and webhook paths: the Functions blob trigger (source EventGrid) and
# Event Grid trigger docs; functions/function_app.py declares index_image and remove_image.
SUBSCRIPTIONS = {
    "index-image-on-blob-created": (
        "Microsoft.Storage.BlobCreated",
        "/blobs?functionName=Host.Functions.index_image&code=${hostKeys.systemKeys.blobs_extension}",
    ),
    "remove-image-on-blob-deleted": (
        "Microsoft.Storage.BlobDeleted",
        "/eventgrid?functionName=remove_image&code=${hostKeys.systemKeys.eventgrid_extension}",
    ),
}


def test_the_system_topic_has_an_identity_with_a_role_on_the_dead_letter_container_only():
    eventgrid = bicep("app/eventgrid.bicep")
    [topic] = eventgrid.resources_of_type("Microsoft.EventGrid/systemTopics")
    # only a system-assigned identity passes a storage firewall as a trusted service
    assert topic.get("identity") == {"type": "SystemAssigned"}
    assert str(eventgrid.outputs["principalId"].value) == f"{topic.symbol}.identity.principalId"
    grants = {a for a in role_assignments(bicep("app/rbac.bicep")) if a.principal == "eventgrid"}
    assert grants == {Assignment("eventgrid", "Storage Blob Data Contributor", "dead-letter container")}
    main = bicep("main.bicep")
    assert main.variables["deadLetterContainerName"] not in (
        main.variables["imagesContainerName"],
        main.variables["failuresContainerName"],
    )
    assert str(main.outputs["AZURE_EVENTGRID_DEADLETTER_CONTAINER"].value) == "deadLetterContainerName"


def _subscriptions() -> dict[str, bicep_graph.Resource]:
    parsed = bicep("app/eventsubscriptions.bicep")
    return {r.get("name"): r for r in parsed.resources_of_type("Microsoft.EventGrid/systemTopics/eventSubscriptions")}


def test_the_event_subscriptions_feed_the_two_functions_from_the_images_container():
    parsed = bicep("app/eventsubscriptions.bicep")
    subscriptions = _subscriptions()
    assert set(subscriptions) == set(SUBSCRIPTIONS)
    topic = parsed.resource("topic")
    assert topic.existing and topic.type == "Microsoft.EventGrid/systemTopics"
    assert str(topic.get("name")) == "systemTopicName"
    webhook_base = str(parsed.variables["webhookBase"])
    assert webhook_base == "'https://${site.properties.defaultHostName}/runtime/webhooks'"
    # trailing slash: the images container only, not a container whose name starts with it
    assert str(parsed.variables["subjectBeginsWith"]) == "'/blobServices/default/containers/${imagesContainerName}/'"
    for name, (event_type, path) in SUBSCRIPTIONS.items():
        subscription = subscriptions[name]
        assert str(subscription.get("parent")) == topic.symbol
        assert subscription.get("properties", "eventDeliverySchema") == "EventGridSchema"
        assert subscription.get("properties", "filter", "includedEventTypes") == [event_type]
        assert str(subscription.get("properties", "filter", "subjectBeginsWith")) == "subjectBeginsWith"
        destination = subscription.get("properties", "destination")
        assert destination["endpointType"] == "WebHook"
        assert str(destination["properties"]["endpointUrl"]) == f"'${{webhookBase}}{path}'"


def test_every_subscription_has_an_explicit_retry_policy_and_an_identity_based_dead_letter():
    parsed = bicep("app/eventsubscriptions.bicep")
    retry = parsed.variables["retryPolicy"]
    attempts = parsed.params[str(retry["maxDeliveryAttempts"])]
    ttl = parsed.params[str(retry["eventTimeToLiveInMinutes"])]
    assert 1 <= attempts.default <= 30 and attempts.decorators["maxValue"] == [30]
    assert 1 <= ttl.default <= 1440 and ttl.decorators["maxValue"] == [1440]
    dead_letter = parsed.variables["deadLetter"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    destination = dead_letter["deadLetterDestination"]
    assert destination["endpointType"] == "StorageBlob"
    storage = parsed.resource(str(destination["properties"]["resourceId"]).removesuffix(".id"))
    assert storage.type == "Microsoft.Storage/storageAccounts" and storage.existing
    assert str(storage.get("name")) == "storageAccountName"
    assert str(destination["properties"]["blobContainerName"]) == "deadLetterContainerName"
    for subscription in _subscriptions().values():
        properties = subscription.get("properties")
        assert str(properties["retryPolicy"]) == "retryPolicy"
        assert str(properties["deadLetterWithResourceIdentity"]) == "deadLetter"
        assert "deadLetterDestination" not in properties, "dead-lettering must use the topic's identity"


# ---- private network mode ----


def evaluate(expression: Any, scope: dict[str, Any]) -> Any:
    """The value of a small Bicep expression (literals, names in scope, ==, !, ?:, toLower, empty)."""
    if not isinstance(expression, Expr):
        return expression
    tree = bicep_graph.parse(f"var x = {expression.text}\n")
    node = tree.root_node.named_children[0].named_children[-1]

    def value(n):
        kind = n.type
        named = [c for c in n.named_children if c.type != "comment"]
        if kind in ("string", "number", "boolean", "null", "object", "array"):
            return bicep_graph._value(n)
        if kind == "identifier":
            return scope[n.text.decode()]
        if kind == "parenthesized_expression":
            return value(named[0])
        if kind == "ternary_expression":
            return value(named[1]) if value(named[0]) else value(named[2])
        if kind == "binary_expression":
            operator = n.children[1].type
            left, right = value(named[0]), value(named[-1])
            return {"==": left == right, "!=": left != right}[operator]
        if kind == "unary_expression":
            return not value(named[-1])
        if kind == "call_expression":
            function = named[0].text.decode()
            args = [value(a) for a in named[-1].named_children]
            return {"toLower": lambda v: v.lower(), "empty": lambda v: not v}[function](*args)
        raise AssertionError(f"cannot evaluate {kind}: {n.text.decode()}")

    return value(node)


def test_the_expression_evaluator_reads_what_the_private_mode_tests_rely_on():
    scope = {"flag": True, "text": "Disabled", "blank": ""}
    assert evaluate(Expr("flag ? 'a' : 'b'", "ternary_expression"), scope) == "a"
    assert evaluate(Expr("text == 'Disabled' ? 'Deny' : 'Allow'", "ternary_expression"), scope) == "Deny"
    assert evaluate(Expr("toLower(text)", "call_expression"), scope) == "disabled"
    assert evaluate(Expr("empty(blank) ? null : blank", "ternary_expression"), scope) is None
    assert evaluate(Expr("!flag", "unary_expression"), scope) is False


@pytest.mark.parametrize(
    "vnet_enabled, access, default_action", [(False, "Enabled", "Allow"), (True, "Disabled", "Deny")]
)
def test_private_mode_disables_public_network_access_on_storage_search_and_vision(vnet_enabled, access, default_action):
    main = bicep("main.bicep")
    assert main.params["vnetEnabled"].default is False, "private network mode is off by default"
    access_in_main = evaluate(main.variables["publicNetworkAccess"], {"vnetEnabled": vnet_enabled})
    assert access_in_main == access
    wired = {m.symbol: m for m in main.modules}
    for symbol in ("hostStorage", "imagesStorage", "search", "vision"):
        assert str(wired[symbol].params["publicNetworkAccess"]) == "publicNetworkAccess", symbol
    [account] = bicep("app/storage.bicep").resources_of_type("Microsoft.Storage/storageAccounts")
    scope = {"publicNetworkAccess": access_in_main}
    assert evaluate(account.get("properties", "publicNetworkAccess"), scope) == access
    assert evaluate(account.get("properties", "networkAcls", "defaultAction"), scope) == default_action
    # Event Grid (events, dead letters) reaches the account as a trusted service in both modes
    assert account.get("properties", "networkAcls", "bypass") == "AzureServices"
    [service] = bicep("app/search.bicep").resources_of_type("Microsoft.Search/searchServices")
    assert evaluate(service.get("properties", "publicNetworkAccess"), scope) == access.lower()
    for vision in bicep("app/vision.bicep").resources_of_type("Microsoft.CognitiveServices/accounts"):
        assert evaluate(vision.get("properties", "publicNetworkAccess"), scope) == access


# The private link group ids and private DNS zones ("Azure Private Endpoint private DNS zone
# values": blob, queue, searchService, account).
PRIVATE_ENDPOINTS = {
    ("hostStorage", "blob"),
    ("hostStorage", "queue"),
    ("imagesStorage", "blob"),
    ("imagesStorage", "queue"),
    ("search", "searchService"),
    ("vision", "account"),
}
PRIVATE_DNS_ZONES = {
    "blob": "'privatelink.blob.${environment().suffixes.storage}'",
    "queue": "'privatelink.queue.${environment().suffixes.storage}'",
    "searchService": "privatelink.search.windows.net",
    "account": "privatelink.cognitiveservices.azure.com",
}


def test_private_mode_puts_blob_queue_search_and_vision_behind_private_endpoints():
    network = bicep("app/network.bicep")
    [module] = modules_of("app/network.bicep")
    assert module.condition == "(vnetEnabled)"
    zones = [str(z) if isinstance(z, Expr) else z for z in network.variables["zoneNames"]]
    seen = set()
    assert str(network.variables["endpoints"]) == "concat(baseEndpoints, additionalVisionEndpoints)"
    for endpoint in network.variables["baseEndpoints"]:
        target = network.resource(str(endpoint["target"]).removesuffix(".id"))
        assert target.existing
        seen.add((target.symbol, endpoint["groupId"]))
        assert zones[endpoint["zone"]] == PRIVATE_DNS_ZONES[endpoint["groupId"]], endpoint
    assert seen == PRIVATE_ENDPOINTS
    # Vision accounts 2..N: one private endpoint each, in the Vision zone, by resource id
    more = network.variables["additionalVisionEndpoints"]
    assert "for accountName in additionalVisionAccountNames" in str(more)
    assert "resourceId('Microsoft.CognitiveServices/accounts', accountName)" in str(more)
    assert "groupId: 'account'" in str(more) and "zone: 3" in str(more)
    assert str(module.params["additionalVisionAccountNames"]) == "vision.outputs.additionalNames"
    # the existing resources are the deployment's own accounts and services
    names = {r.symbol: str(r.get("name")) for r in network.resources if r.existing}
    for symbol, param in [
        ("hostStorage", "hostStorageName"),
        ("imagesStorage", "imagesStorageName"),
        ("search", "searchServiceName"),
        ("vision", "visionAccountName"),
    ]:
        assert names[symbol] == param
    assert {k: str(v) for k, v in module.params.items() if k.endswith("Name")} == {
        "vnetName": "names.vnet",
        "hostStorageName": "hostStorage.outputs.name",
        "imagesStorageName": "imagesStorage.outputs.name",
        "searchServiceName": "search.outputs.name",
        "visionAccountName": "vision.outputs.name",
    }
    endpoints = network.resource("privateEndpoints")
    assert endpoints.loop == "for endpoint in endpoints"
    assert str(endpoints.get("properties", "subnet", "id")) == "vnet.properties.subnets[0].id"
    groups = network.resource("zoneGroups")
    assert str(groups.get("parent")) == "privateEndpoints[i]"
    [config] = groups.get("properties", "privateDnsZoneConfigs")
    assert str(config["properties"]["privateDnsZoneId"]) == "zones[endpoint.zone].id"
    links = network.resource("zoneLinks")
    assert str(links.get("parent")) == "zones[i]" and links.get("properties", "registrationEnabled") is False


def test_private_mode_integrates_the_function_into_a_delegated_subnet():
    network = bicep("app/network.bicep")
    [vnet] = network.resources_of_type("Microsoft.Network/virtualNetworks")
    subnets = vnet.get("properties", "subnets")
    assert [s["name"] for s in subnets] == ["private-endpoints", "app"]
    [delegation] = subnets[1]["properties"]["delegations"]
    # Flex Consumption's virtual network integration needs this delegation
    assert delegation["properties"]["serviceName"] == "Microsoft.App/environments"
    assert str(network.outputs["appSubnetId"].value) == "vnet.properties.subnets[1].id"
    [module] = modules_of("app/function.bicep")
    subnet = module.params["virtualNetworkSubnetId"]
    assert evaluate(subnet, {"vnetEnabled": False, "network": None}) == ""
    assert str(subnet) == "vnetEnabled ? network.outputs.appSubnetId : ''"
    [site] = bicep("app/function.bicep").resources_of_type("Microsoft.Web/sites")
    setting = site.get("properties", "virtualNetworkSubnetId")
    assert evaluate(setting, {"virtualNetworkSubnetId": ""}) is None
    assert (
        evaluate(setting, {"virtualNetworkSubnetId": "/subscriptions/x/subnets/app"}) == "/subscriptions/x/subnets/app"
    )
    assert str(bicep("main.bicep").outputs["AZURE_VNET_ENABLED"].value) == "vnetEnabled"


# ---- ingestion mode: push (default) or pull ----


def test_ingestion_mode_is_push_by_default_and_set_by_azd():
    main = bicep("main.bicep")
    assert main.params["ingestionMode"].default == "push"
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["ingestionMode"]["value"] == "${INGESTION_MODE=push}"
    [function] = modules_of("app/function.bicep")
    assert str(function.params["ingestionMode"]) == "ingestionMode"
    outputs = main.outputs
    assert str(outputs["AZURE_INGESTION_MODE"].value) == "ingestionMode"
    assert "functionApp.outputs.defaultHostName" in str(outputs["AZURE_SEARCH_VECTORIZER_URI"].value)
    assert str(outputs["AZURE_SEARCH_VECTORIZER_URI"].value).endswith("/api/vectorize'")
    assert str(outputs["AZURE_STORAGE_ACCOUNT_ID"].value) == "imagesStorage.outputs.id"


def test_the_function_knows_its_vectorize_url_and_turns_its_push_functions_off_in_pull_mode():
    settings = function_settings()
    assert "site.properties.defaultHostName" in str(settings["SEARCH_VECTORIZER_URI"])
    assert str(settings["SEARCH_VECTORIZER_URI"]).endswith("/api/vectorize'")
    assert str(settings["INGESTION_MODE"]) == "ingestionMode"
    # "How to disable functions": AzureWebJobs.<name>.Disabled, for the two push functions only.
    for name in ("index_image", "remove_image"):
        assert str(settings[f"AzureWebJobs.{name}.Disabled"]) == "ingestionMode == 'pull' ? 'true' : 'false'"
    assert not [n for n in settings if n.startswith("AzureWebJobs.") and n.split(".")[1] in ("search", "vectorize")]


@pytest.mark.parametrize("mode", ["push", "pull"])
def test_the_photos_can_be_restored_in_both_modes_and_pull_mode_sees_deletions(mode):
    # The images are the team's only copy: blob and container soft delete, whatever the mode.
    # Pull mode's native soft-delete detection needs blob soft delete with versioning off.
    [images] = [m for m in modules_of("app/storage.bicep") if m.symbol == "imagesStorage"]
    scope = {"ingestionMode": mode}
    blob_days = evaluate(images.params["blobSoftDeleteDays"], scope)
    container_days = evaluate(images.params["containerSoftDeleteDays"], scope)
    assert blob_days >= 7 and container_days >= 7, (blob_days, container_days)
    [host] = [m for m in modules_of("app/storage.bicep") if m.symbol == "hostStorage"]
    assert "blobSoftDeleteDays" not in host.params and "containerSoftDeleteDays" not in host.params
    storage = bicep("app/storage.bicep")
    [service] = storage.resources_of_type("Microsoft.Storage/storageAccounts/blobServices")
    policies = (
        ("deleteRetentionPolicy", "blobSoftDeleteDays"),
        ("containerDeleteRetentionPolicy", "containerSoftDeleteDays"),
    )
    for policy, days in policies:
        text = str(service.get("properties", policy))
        assert text.startswith(f"{days} > 0 ?") and "enabled: true" in text and f"days: {days}" in text, policy
    # Native soft delete detection is not supported with blob versioning.
    assert service.get("properties", "isVersioningEnabled") is False


def test_pull_mode_gives_the_search_service_an_identity():
    search = bicep("app/search.bicep")
    [service] = search.resources_of_type("Microsoft.Search/searchServices")
    assert service.get("identity", "type") == "SystemAssigned"
    assert str(search.outputs["principalId"].value) == "search.identity.principalId"


# Each service's resource-log categories (Azure Monitor, "Supported logs for <type>").
DIAGNOSTIC_LOGS = {
    "app/storage.bicep": ("blobService", {"StorageRead", "StorageWrite", "StorageDelete"}),
    "app/search.bicep": ("search", {"OperationLogs"}),
    "app/vision.bicep": ("vision", {"Audit", "RequestResponse"}),
    "app/eventgrid.bicep": ("topic", {"DeliveryFailures"}),
}


@pytest.mark.parametrize("path", sorted(DIAGNOSTIC_LOGS))
def test_storage_search_vision_and_event_grid_send_their_logs_to_log_analytics(path):
    parsed = bicep(path)
    scope, categories = DIAGNOSTIC_LOGS[path]
    settings = parsed.resources_of_type("Microsoft.Insights/diagnosticSettings")
    [setting] = [d for d in settings if str(d.get("scope")) == scope]
    assert str(setting.get("properties", "workspaceId")) == "logAnalyticsWorkspaceId"
    logs = setting.get("properties", "logs")
    if isinstance(logs, Expr):  # a variable shared by every account of the file
        logs = parsed.variables[str(logs)]
    assert {entry["category"] for entry in logs if entry["enabled"] is True} == categories
    # main.bicep hands every module the workspace the Function's Application Insights uses
    for module in modules_of(path):
        if module.symbol == "hostStorage":
            continue  # the host's lease traffic stays out of the workspace
        assert str(module.params["logAnalyticsWorkspaceId"]) == "monitoring.outputs.logAnalyticsId", module.symbol
    assert str(bicep("app/monitoring.bicep").outputs["logAnalyticsId"].value) == "logAnalytics.id"


def test_every_additional_vision_account_logs_like_the_first():
    vision = bicep("app/vision.bicep")
    [extra] = [d for d in vision.resources_of_type("Microsoft.Insights/diagnosticSettings") if d.loop]
    assert extra.loop == "for (region, i) in additionalLocations"
    assert str(extra.get("scope")) == "additional[i]"
    assert str(extra.get("properties", "logs")) == "visionLogs"
