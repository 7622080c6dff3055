#!/bin/sh
# azd postprovision hook: create the search index from schemas/ (pinned to the Vision model
# version) or verify that the existing index carries the same pin, with the indexer's own code:
# `imgsearch ensure-index`. It runs as the deploying principal (azd/az sign-in through
# DefaultAzureCredential), which main.bicep gives Search Service Contributor for this purpose.
#
# Exit codes of ensure-index that waiting cannot fix stop the hook at once: 2 (configuration or
# usage error), 3 (the existing index is pinned to another model version) and 130 (interrupted).
# Anything else (1: a service failure such as a 403) is retried a few times, because role
# assignments made by the provisioning can take minutes to take effect.
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

# The deployment outputs, under the names indexer.settings.Settings reads.
export SEARCH_ENDPOINT="$AZURE_SEARCH_ENDPOINT"
export SEARCH_INDEX_NAME="$AZURE_SEARCH_INDEX_NAME"
export VISION_MODEL_VERSION="$AZURE_VISION_MODEL_VERSION"
export VISION_ENDPOINT="$AZURE_VISION_ENDPOINT"
export VISION_API_VERSION="${AZURE_VISION_API_VERSION:-2024-02-01}"
# Both services refuse API keys (disableLocalAuth); a key left in the shell must not be sent in
# place of the Entra token. IMGSEARCH_HOOK_KEEP_KEYS=1 keeps them, for key-based stand-ins only.
if [ "${IMGSEARCH_HOOK_KEEP_KEYS:-0}" != 1 ]; then
    unset SEARCH_KEY VISION_KEY
fi

cli=${IMGSEARCH_CLI:-}
if [ -z "$cli" ]; then
    if command -v imgsearch >/dev/null 2>&1; then
        cli=imgsearch
    elif [ -x "$root/.venv/bin/imgsearch" ]; then
        cli="$root/.venv/bin/imgsearch"
    else
        die "the imgsearch CLI is not installed; run 'pip install -e .' in $root, then 'azd hooks run postprovision'"
    fi
fi

attempts=${IMGSEARCH_HOOK_ATTEMPTS:-6}
delay=${IMGSEARCH_HOOK_RETRY_SECONDS:-20}
attempt=1
while :; do
    say "ensure-index '$SEARCH_INDEX_NAME' on $SEARCH_ENDPOINT, pinned to model version $VISION_MODEL_VERSION (attempt $attempt of $attempts)"
    status=0
    "$cli" ensure-index || status=$?
    if [ "$status" -eq 0 ]; then
        say "index '$SEARCH_INDEX_NAME' is ready"
        exit 0
    fi
    case "$status" in
        2 | 3 | 130) die "imgsearch ensure-index failed (exit $status); its message above says what to change" ;;
    esac
    if [ "$attempt" -ge "$attempts" ]; then
        die "imgsearch ensure-index still fails after $attempts attempts (last exit $status). New role assignments can take several minutes to apply; rerun with 'azd hooks run postprovision'."
    fi
    say "ensure-index failed (exit $status); retrying in ${delay}s, as new role assignments take time to apply"
    sleep "$delay"
    attempt=$((attempt + 1))
done
