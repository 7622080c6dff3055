#!/bin/sh
# azd postprovision hook: create the search index from schemas/ (pinned to the Vision model
# version) or verify that the existing index carries the same pin, with the indexer's own code:
# `imgsearch ensure-index`, run as the deploying principal, which main.bicep gives Search Service
# Contributor for this purpose.
#
# 1. The imgsearch CLI. Nothing else in `azd up` installs it, so the hook sets itself up, as
#    azure-search-openai-demo's hooks do: it reuses the project's virtual environment (.venv, or
#    IMGSEARCH_HOOK_VENV) when imgsearch is there, else creates it and installs the package from
#    this checkout with its base dependencies only (no torch, no offline models). IMGSEARCH_CLI
#    names another imgsearch program instead.
# 2. The credential. DefaultAzureCredential is told to use azd's own sign-in
#    (AZURE_TOKEN_CREDENTIALS=AzureDeveloperCliCredential, azure-identity 1.24 or newer), so an
#    Azure CLI signed in to another account or tenant cannot be picked up by mistake.
# 3. Waiting for roles. Role assignments made by the provisioning take minutes to apply: 5 to 10
#    for Azure AI Search ("Enable or disable role-based access control in Azure AI Search"), up to
#    30 in general. A failure that waiting can fix (exit 1, e.g. a 403) is retried with backoff
#    (10 s doubling to 60 s between attempts) until IMGSEARCH_HOOK_WAIT_SECONDS (default 900: 15
#    minutes) of waiting have passed, printing the last error each time. Exit codes that waiting
#    cannot fix stop at once: 2 (configuration or usage), 3 (the existing index is pinned to
#    another model version), 130 (interrupted).
set -eu
HOOK_NAME=postprovision
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
root=$(cd "$here/../.." && pwd)

load_azd_env_if_missing AZURE_SEARCH_ENDPOINT
hint="it is an output of infra/main.bicep; run 'azd provision' first"
require_var AZURE_SEARCH_ENDPOINT "$hint"
require_var AZURE_SEARCH_INDEX_NAME "$hint"
require_var AZURE_VISION_MODEL_VERSION "$hint"
# Required, not optional: without a Vision endpoint the indexer pins the index to its offline
# model instead of the Azure model version.
require_var AZURE_VISION_ENDPOINT "$hint"

# The deployed Function uses the deployment's index name and model version. A different value
# under the settings name (left in a shell, or set in the azd environment by hand) would be
# ignored silently; say so. To switch, set the AZURE_* value azd maps to the Bicep parameter.
if [ -n "${SEARCH_INDEX_NAME:-}" ] && [ "$SEARCH_INDEX_NAME" != "$AZURE_SEARCH_INDEX_NAME" ]; then
    warn "SEARCH_INDEX_NAME is '$SEARCH_INDEX_NAME' here, but the deployment uses '$AZURE_SEARCH_INDEX_NAME'. This hook prepares '$AZURE_SEARCH_INDEX_NAME'. To switch the Function to another index: azd env set AZURE_SEARCH_INDEX_NAME <name>, then azd provision"
fi
if [ -n "${VISION_MODEL_VERSION:-}" ] && [ "$VISION_MODEL_VERSION" != "$AZURE_VISION_MODEL_VERSION" ]; then
    warn "VISION_MODEL_VERSION is '$VISION_MODEL_VERSION' here, but the deployment uses '$AZURE_VISION_MODEL_VERSION'. To switch: azd env set AZURE_VISION_MODEL_VERSION <version> (with a new AZURE_SEARCH_INDEX_NAME), then azd provision"
fi

export_deployment_settings
# The index's Web API vectorizer points at the Function's /api/vectorize (apps send text to the
# search service; pull mode's skill calls it too). Its function key exists only once the code is
# deployed: the postdeploy hook adds it, so the service's calls are answered 401 until then.
if [ -n "${AZURE_SEARCH_VECTORIZER_URI:-}" ]; then
    export SEARCH_VECTORIZER_URI="$AZURE_SEARCH_VECTORIZER_URI"
fi
# Both services refuse API keys (disableLocalAuth); a key left in the shell must not be sent in
# place of the Entra token. IMGSEARCH_HOOK_KEEP_KEYS=1 keeps them, for key-based stand-ins only.
if [ "${IMGSEARCH_HOOK_KEEP_KEYS:-0}" != 1 ]; then
    unset SEARCH_KEY VISION_KEY
fi

cli=${IMGSEARCH_CLI:-}
if [ -z "$cli" ]; then
    venv=${IMGSEARCH_HOOK_VENV:-$root/.venv}
    ensure_python_env "$venv" "$root"
    cli="$venv/bin/imgsearch"
    python="$venv/bin/python"
else
    python=$(find_python) || python=
fi

# Private network mode: the search service takes traffic only through its private endpoint, so
# this machine must resolve its host name to a private address (inside the virtual network, or
# connected to it). Say so at once rather than retrying 403s for fifteen minutes.
if [ "${AZURE_VNET_ENABLED:-false}" = true ] && [ -n "$python" ]; then
    search_host=${SEARCH_ENDPOINT#*://}
    search_host=${search_host%%/*}
    search_host=${search_host%%:*}
    if ! "$python" -c 'import ipaddress, socket, sys; sys.exit(0 if ipaddress.ip_address(socket.gethostbyname(sys.argv[1])).is_private else 1)' "$search_host" 2>/dev/null; then
        die "private network mode (VNET_ENABLED=true): $search_host does not resolve to a private address from this machine, so the search service will refuse it. Run 'azd hooks run postprovision' from a machine inside the virtual network (or connected to it by VPN or peering), then 'azd deploy'"
    fi
fi

wait_budget=${IMGSEARCH_HOOK_WAIT_SECONDS:-900}
delay=${IMGSEARCH_HOOK_RETRY_SECONDS:-10}
[ "$delay" -ge 1 ] || delay=1
max_delay=60
max_attempts=${IMGSEARCH_HOOK_ATTEMPTS:-0}
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
waited=0
attempt=1
while :; do
    say "ensure-index '$SEARCH_INDEX_NAME' on $SEARCH_ENDPOINT, pinned to model version $VISION_MODEL_VERSION (attempt $attempt)"
    status=0
    "$cli" ensure-index 2>"$errors" || status=$?
    # Show what imgsearch said (its errors name what to change), then decide.
    cat "$errors" >&2
    if [ "$status" -eq 0 ]; then
        say "index '$SEARCH_INDEX_NAME' is ready"
        exit 0
    fi
    last_error=$(last_line "$errors")
    case "$status" in
        2 | 3 | 130) die "imgsearch ensure-index failed (exit $status): ${last_error:-no message}. Waiting cannot fix this; change what it names, then 'azd hooks run postprovision'" ;;
    esac
    if [ "$waited" -ge "$wait_budget" ] || { [ "$max_attempts" -gt 0 ] && [ "$attempt" -ge "$max_attempts" ]; }; then
        die "imgsearch ensure-index still fails after $attempt attempts over ${waited}s (last exit $status): ${last_error:-no message}. If it is a 403, the deploying principal's roles have not applied yet or are missing (Search Service Contributor on the search service, rbac.bicep); rerun 'azd hooks run postprovision' later"
    fi
    say "ensure-index failed (exit $status): ${last_error:-no message}"
    say "new role assignments take 5 to 10 minutes to apply to Azure AI Search; retrying in ${delay}s (waited ${waited}s of up to ${wait_budget}s)"
    sleep "$delay"
    waited=$((waited + delay))
    delay=$((delay * 2))
    [ "$delay" -le "$max_delay" ] || delay=$max_delay
    attempt=$((attempt + 1))
done
