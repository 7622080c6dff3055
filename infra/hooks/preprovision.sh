#!/bin/sh
# azd preprovision hook: check the prerequisites of a first deployment before anything is
# created, and say how to fix what is missing (README, "Deploy to Azure").
#
# Stops when:
# - no Python 3.11 or newer is on PATH (postprovision sets up imgsearch with it);
# - the Azure CLI is missing, not signed in, or cannot use azd's subscription (postdeploy needs it);
# - the deploying principal visibly holds none of the roles that can create role assignments
#   (Owner, User Access Administrator, Role Based Access Control Administrator) on the
#   subscription. IMGSEARCH_SKIP_ROLE_CHECK=1 skips this one, for a custom role that can.
# - AZURE_VISION_SKU=F0 with AZURE_VISION_COUNT above 1: a subscription holds one free account per
#   Cognitive Services kind, and the second fails with CanNotCreateMultipleFreeAccounts
#   (MicrosoftDocs/azure-docs#83566, "Azure subscription limits and quotas").
# - AZURE_LOCATION does not offer the Flex Consumption plan (`az functionapp
#   list-flexconsumption-locations`): the plan's creation would fail mid-deployment;
# - the images account is geo-redundant (AZURE_IMAGES_STORAGE_SKU, Standard_GRS by default) and
#   AZURE_LOCATION has no paired region (`az account list-locations`, metadata.pairedRegion):
#   geo-redundant storage replicates to the pair ("Azure Storage redundancy"), so it cannot deploy;
#   Standard_ZRS or Standard_LRS can.
# Warns, without stopping, when:
# - the role assignments cannot be listed (a check that could not run proves nothing);
# - the subscription has no Computer Vision account yet. A subscription that never created one
#   in the Azure portal has not accepted the Responsible AI terms, and the provisioning then fails
#   with ResourceKindRequireAcceptTerms. No API reports whether the terms were accepted, so an
#   existing account is the only evidence there is.
set -eu
HOOK_NAME=preprovision
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

load_azd_env_if_missing AZURE_SUBSCRIPTION_ID

# The deployment's own choices first: they need no tool and no sign-in.
vision_sku=${AZURE_VISION_SKU:-S1}
vision_count=${AZURE_VISION_COUNT:-1}
case "$vision_count" in '' | *[!0-9]*) die "AZURE_VISION_COUNT is '$vision_count', not a number from 1 to 8" ;; esac
if [ "$vision_sku" = F0 ] && [ "$vision_count" -gt 1 ]; then
    die "AZURE_VISION_SKU=F0 with AZURE_VISION_COUNT=$vision_count: a subscription may hold one free Vision account, so the second fails with CanNotCreateMultipleFreeAccounts. Run 'azd env set AZURE_VISION_COUNT 1' to keep the free tier, or 'azd env set AZURE_VISION_SKU S1' for several accounts"
fi

py=$(find_python) || die "no Python 3.11 or newer on PATH. The postprovision hook installs imgsearch with it to create the search index; $PYTHON_HINT"
say "Python: $(command -v "$py") ($("$py" --version 2>&1))"

check_az_login
sub=$AZURE_SUBSCRIPTION_ID
say "Azure CLI: signed in, subscription $sub"

errors=$(mktemp)
trap 'rm -f "$errors"' EXIT

# Who deploys: azd's principal (AZURE_PRINCIPAL_ID), else the account az is signed in with.
assignee=${AZURE_PRINCIPAL_ID:-}
if [ -z "$assignee" ]; then
    assignee=$(az account show --subscription "$sub" --query user.name --output tsv 2>/dev/null) || assignee=
fi
if [ "${IMGSEARCH_SKIP_ROLE_CHECK:-0}" = 1 ]; then
    say "role check skipped (IMGSEARCH_SKIP_ROLE_CHECK=1)"
elif [ -z "$assignee" ]; then
    warn "could not tell who deploys, so the role check was skipped"
elif roles=$(az role assignment list --subscription "$sub" --assignee "$assignee" \
    --scope "/subscriptions/$sub" --include-inherited --include-groups \
    --query "[].roleDefinitionName" --output tsv 2>"$errors"); then
    case "|$(printf '%s\n' "$roles" | tr '\n' '|')" in
        *"|Owner|"* | *"|User Access Administrator|"* | *"|Role Based Access Control Administrator|"*)
            say "roles: $assignee can create role assignments on subscription $sub" ;;
        *)
            die "$assignee holds none of Owner, User Access Administrator or Role Based Access Control Administrator on subscription $sub, so the deployment cannot create its role assignments (every access here is Entra ID, granted by roles). Ask an owner of the subscription for one of them, or set IMGSEARCH_SKIP_ROLE_CHECK=1 if a custom role grants Microsoft.Authorization/roleAssignments/write" ;;
    esac
else
    warn "could not list the role assignments of $assignee ($(last_line "$errors")); make sure it holds Owner, User Access Administrator or Role Based Access Control Administrator on subscription $sub"
fi

# The region: Flex Consumption, and a pair for geo-redundant photos. A list that cannot be read
# proves nothing, so that is a warning.
location=$(lower "${AZURE_LOCATION:-}")
if [ -z "$location" ]; then
    warn "AZURE_LOCATION is not set, so the region checks were skipped"
elif flex=$(az functionapp list-flexconsumption-locations --subscription "$sub" \
    --query "[].name" --output tsv 2>"$errors"); then
    flex=$(lower "$flex" | tr -d ' ')
    if printf '%s\n' "$flex" | grep -qx "$location"; then
        say "region: $location offers the Flex Consumption plan"
    else
        die "region $location does not offer the Flex Consumption plan the Function runs on. Choose one that does ($(printf '%s\n' "$flex" | tr '\n' ' ' | sed 's/ *$//')): 'azd env set AZURE_LOCATION <region>' (or a new environment, 'azd env new'), then rerun"
    fi
else
    warn "could not list the Flex Consumption regions ($(last_line "$errors")); if provisioning fails creating the plan, choose a region from 'az functionapp list-flexconsumption-locations'"
fi
storage_sku=${AZURE_IMAGES_STORAGE_SKU:-Standard_GRS}
case "$storage_sku" in
    *GRS | *GZRS)
        if [ -z "$location" ]; then
            :
        elif pair=$(az account list-locations --subscription "$sub" \
            --query "[?name=='$location'].metadata.pairedRegion[].name" --output tsv 2>"$errors"); then
            if [ -n "$pair" ]; then
                say "storage: $storage_sku replicates the photos from $location to its pair $(printf '%s' "$pair" | head -n 1)"
            else
                die "region $location has no paired region, so the images account's geo-redundant $storage_sku cannot deploy. Run 'azd env set AZURE_IMAGES_STORAGE_SKU Standard_ZRS' (copies in three zones of the region; Standard_LRS where the region has no zones), or choose a region with a pair"
            fi
        else
            warn "could not look up the paired region of $location ($(last_line "$errors")); $storage_sku needs one, else set AZURE_IMAGES_STORAGE_SKU to Standard_ZRS or Standard_LRS"
        fi ;;
esac

if count=$(az cognitiveservices account list --subscription "$sub" \
    --query "length([?kind=='ComputerVision'])" --output tsv 2>"$errors"); then
    if [ "$count" = 0 ]; then
        warn "subscription $sub has no Computer Vision account yet. If it never had one, the provisioning fails with ResourceKindRequireAcceptTerms: accept the Responsible AI terms once by creating a Computer Vision resource in the Azure portal (https://portal.azure.com/#create/Microsoft.CognitiveServicesComputerVision), delete it, then run azd provision again"
    else
        say "Computer Vision: $count account(s) in the subscription, so its Responsible AI terms were accepted"
    fi
else
    warn "could not list the Cognitive Services accounts ($(last_line "$errors")); if provisioning fails with ResourceKindRequireAcceptTerms, create one Computer Vision resource in the Azure portal to accept the Responsible AI terms"
fi

if [ "${VNET_ENABLED:-false}" = true ]; then
    say "private network mode (VNET_ENABLED=true): the postprovision hook must reach the search service through its private endpoint, so run azd from a machine inside the virtual network or connected to it"
fi
