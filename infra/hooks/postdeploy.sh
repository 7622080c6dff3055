#!/bin/sh
# azd postdeploy hook: make the deployment whole once the Function's code runs.
# 1. Push mode (the default): subscribe the Function to the blob events of the images container.
#      BlobCreated -> index_image, the blob trigger with source EventGrid (blobs extension webhook)
#      BlobDeleted -> remove_image, an Event Grid trigger (eventgrid extension webhook)
#    Both webhooks are authorized by a system key of the Function host, which exists only once the
#    deployed code has started. The hook deploys infra/app/eventsubscriptions.bicep into the
#    resource group; the template reads the system keys with listKeys() inside Azure Resource
#    Manager, so no system key ever reaches this machine. The same template gives both
#    subscriptions an explicit retry policy and a dead-letter container. Redeploying it (every
#    `azd deploy`) converges to the same two subscriptions.
# 2. Both modes: give the search service a key to /api/vectorize, which the index's Web API
#    vectorizer (and pull mode's skill) calls. The key is a function key of `vectorize` alone,
#    named azure_search (read, or created the first time), never the host's default key, which
#    opens every function. It goes to `imgsearch ensure-index` (push) or `imgsearch
#    ensure-indexer` (pull: the data source, skillset and indexer too) in SEARCH_VECTORIZER_KEY,
#    an environment variable: never on a command line (where `ps` would show it), in a file, or
#    printed. The search service keeps it in the vectorizer's and skill's httpHeaders.
# 3. Both modes, unless IMGSEARCH_VERIFY_AFTER_DEPLOY=false: `imgsearch verify` proves the
#    deployment end to end (a probe image uploaded, found through /api/search and through the
#    search service's vectorizer, deleted, gone from the index; removed whatever happens). It
#    calls /api/search with a function key of `search` alone (its `default` key), handed over in
#    IMGSEARCH_FUNCTION_KEY like the vectorize key. New role assignments (your data role on the
#    images container) can take minutes to apply, so a failure is retried a few times.
#
# Every az call passes --subscription "$AZURE_SUBSCRIPTION_ID" (azd's subscription), after one
# check that az is signed in and can use it (check_az_login in lib.sh).
set -eu
HOOK_NAME=postdeploy
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
root=$(cd "$here/../.." && pwd)

require_cmd az "install the Azure CLI (https://aka.ms/installazurecli) and sign in with 'az login'"
load_azd_env_if_missing AZURE_FUNCTION_NAME
hint="it is an output of infra/main.bicep; run 'azd provision' first"
require_var AZURE_RESOURCE_GROUP "$hint"
require_var AZURE_FUNCTION_NAME "$hint"
require_var AZURE_EVENTGRID_SYSTEM_TOPIC_NAME "$hint"
require_var AZURE_STORAGE_ACCOUNT_NAME "$hint"
require_var AZURE_IMAGES_CONTAINER "$hint"
require_var AZURE_EVENTGRID_DEADLETTER_CONTAINER "$hint"
require_var AZURE_SEARCH_ENDPOINT "$hint"
require_var AZURE_SEARCH_INDEX_NAME "$hint"
require_var AZURE_SEARCH_VECTORIZER_URI "$hint"
require_var AZURE_VISION_MODEL_VERSION "$hint"
require_var AZURE_VISION_ENDPOINT "$hint"
check_az_login
mode=${AZURE_INGESTION_MODE:-push}

sub=$AZURE_SUBSCRIPTION_ID
rg=$AZURE_RESOURCE_GROUP
app=$AZURE_FUNCTION_NAME
template="$here/../app/eventsubscriptions.bicep"
[ -f "$template" ] || die "$template is missing; run the hook from a full checkout"

attempts=${IMGSEARCH_HOOK_ATTEMPTS:-20}
delay=${IMGSEARCH_HOOK_RETRY_SECONDS:-15}
search_attempts=${IMGSEARCH_HOOK_SEARCH_ATTEMPTS:-3}
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT

# New apps may get a unique default host name, so never build it from the app name.
host=${AZURE_FUNCTION_HOSTNAME:-}
if [ -z "$host" ]; then
    host=$(az functionapp show --subscription "$sub" --resource-group "$rg" --name "$app" \
        --query defaultHostName --output tsv) || die "could not read the default host name of Function app $app; the az error is above"
fi
[ -n "$host" ] || die "could not read the default host name of Function app $app"

# Errors no wait can fix: stop at once with az's own words.
permanent_error() {
    case "$1" in
        *AuthorizationFailed* | *ResourceNotFound* | *ResourceGroupNotFound* | *SubscriptionNotFound* | \
            *"az login"* | *"not found. Check the spelling"*) return 0 ;;
    esac
    return 1
}

# Push mode: wait until the host has its extension keys, then subscribe both functions.
subscribe_blob_events() {
    # The extension keys are created when the host first indexes the deployed functions. A Flex app
    # may be scaled to zero after the deployment: a request to it starts the host. The query counts
    # the two keys; their values never leave az.
    attempt=1
    while :; do
        if command -v curl >/dev/null 2>&1; then
            curl --silent --output /dev/null --max-time 30 "https://$host/" || true
        fi
        if count=$(az functionapp keys list --subscription "$sub" --resource-group "$rg" --name "$app" \
            --query "[systemKeys.blobs_extension, systemKeys.eventgrid_extension] | length([?@])" \
            --output tsv 2>"$errors"); then
            [ "$count" = 2 ] && break
            last="the host has registered $count of its 2 extension keys"
        else
            last=$(last_line "$errors")
            permanent_error "$last" && die "az functionapp keys list failed: $last"
        fi
        if [ "$attempt" -ge "$attempts" ]; then
            die "the host of $app has no blobs_extension/eventgrid_extension system key after $attempts checks (last: $last); check that index_image (blob trigger, source EventGrid) and remove_image (Event Grid trigger) were deployed and that the host starts, then run 'azd hooks run postdeploy'"
        fi
        say "waiting for the Function host to register its extension keys ($attempt/$attempts): $last"
        sleep "$delay"
        attempt=$((attempt + 1))
    done

    # Event Grid validates each webhook while creating its subscription, which fails while the host
    # is still starting; retry a few times. az prints its own error.
    try=1
    while :; do
        if az deployment group create --subscription "$sub" --resource-group "$rg" \
            --name imgsearch-event-subscriptions \
            --template-file "$template" \
            --parameters systemTopicName="$AZURE_EVENTGRID_SYSTEM_TOPIC_NAME" \
                functionAppName="$app" \
                storageAccountName="$AZURE_STORAGE_ACCOUNT_NAME" \
                imagesContainerName="$AZURE_IMAGES_CONTAINER" \
                deadLetterContainerName="$AZURE_EVENTGRID_DEADLETTER_CONTAINER" \
            --output none 2>"$errors"; then
            break
        fi
        cat "$errors" >&2
        last=$(last_line "$errors")
        permanent_error "$last" && die "deploying the Event Grid subscriptions failed: $last"
        if [ "$try" -ge 3 ]; then
            die "could not deploy the Event Grid subscriptions to $AZURE_EVENTGRID_SYSTEM_TOPIC_NAME after $try tries (last: $last); rerun 'azd hooks run postdeploy'"
        fi
        say "deploying the subscriptions failed ($last); retrying in ${delay}s"
        sleep "$delay"
        try=$((try + 1))
    done

    prefix="/blobServices/default/containers/$AZURE_IMAGES_CONTAINER/"
    say "subscription index-image-on-blob-created: Microsoft.Storage.BlobCreated under $prefix -> $app (index_image)"
    say "subscription remove-image-on-blob-deleted: Microsoft.Storage.BlobDeleted under $prefix -> $app (remove_image)"
    say "undeliverable events are retried up to 30 times over 24 hours, then dead-lettered to container $AZURE_EVENTGRID_DEADLETTER_CONTAINER of $AZURE_STORAGE_ACCOUNT_NAME"
}

# The function key of `vectorize` the search service sends (see the top): read it, or create it
# the first time. The host lists a function's keys only once it has indexed the function, so
# this waits like the extension keys do. The key stays in this shell.
read_vectorize_key() {
    attempt=1
    while :; do
        if command -v curl >/dev/null 2>&1; then
            curl --silent --output /dev/null --max-time 30 "https://$host/" || true
        fi
        if vectorize_key=$(az functionapp function keys list --subscription "$sub" --resource-group "$rg" \
            --name "$app" --function-name vectorize --query azure_search --output tsv 2>"$errors"); then
            if [ -z "$vectorize_key" ]; then
                vectorize_key=$(az functionapp function keys set --subscription "$sub" --resource-group "$rg" \
                    --name "$app" --function-name vectorize --key-name azure_search \
                    --query value --output tsv 2>"$errors") || vectorize_key=
                [ -n "$vectorize_key" ] && say "created the function key azure_search of vectorize, for the search service"
            fi
            [ -n "$vectorize_key" ] && return 0
            last=$(last_line "$errors")
            last=${last:-no key came back}
        else
            last=$(last_line "$errors")
        fi
        # Not ResourceNotFound: the host answers so until it has indexed the new function.
        case "$last" in
            *AuthorizationFailed* | *ResourceGroupNotFound* | *SubscriptionNotFound* | *"az login"*)
                die "reading the function keys of vectorize failed: $last" ;;
        esac
        if [ "$attempt" -ge "$attempts" ]; then
            die "could not read or create the function key of vectorize on $app after $attempts tries (last: $last); check that the vectorize function was deployed and the host starts, then run 'azd hooks run postdeploy'"
        fi
        say "waiting for the Function host to list the keys of vectorize ($attempt/$attempts): $last"
        sleep "$delay"
        attempt=$((attempt + 1))
    done
}

# The index's vectorizer (and in pull mode the data source, skillset and indexer), with the key,
# through the indexer's own code. The settings are the deployment outputs under the names
# indexer.settings.Settings reads, as in the postprovision hook.
configure_search_service() {
    export_deployment_settings
    export SEARCH_VECTORIZER_URI="$AZURE_SEARCH_VECTORIZER_URI"
    export SEARCH_VECTORIZER_KEY="$vectorize_key"
    # Keys and connection strings left in the shell would be sent (or, for IMAGES_STORAGE, stored in
    # the data source) in place of Entra ID; IMGSEARCH_HOOK_KEEP_KEYS=1 keeps them, for stand-ins only.
    if [ "${IMGSEARCH_HOOK_KEEP_KEYS:-0}" != 1 ]; then
        unset SEARCH_KEY VISION_KEY IMAGES_STORAGE
    fi
    command=ensure-index
    if [ "$mode" = pull ]; then
        command=ensure-indexer
        require_var AZURE_STORAGE_ACCOUNT_ID "$hint"
        export IMAGES_STORAGE_RESOURCE_ID="$AZURE_STORAGE_ACCOUNT_ID"
        export IMAGES_CONTAINER="$AZURE_IMAGES_CONTAINER"
    fi
    cli=${IMGSEARCH_CLI:-}
    if [ -z "$cli" ]; then
        venv=${IMGSEARCH_HOOK_VENV:-$root/.venv}
        ensure_python_env "$venv" "$root"
        cli="$venv/bin/imgsearch"
    fi
    try=1
    while :; do
        say "$command '$SEARCH_INDEX_NAME' on $SEARCH_ENDPOINT: the search service calls $SEARCH_VECTORIZER_URI with the function key azure_search (attempt $try)"
        status=0
        "$cli" "$command" 2>"$errors" || status=$?
        cat "$errors" >&2
        [ "$status" -eq 0 ] && return 0
        last=$(last_line "$errors")
        case "$status" in
            2 | 3 | 130) die "imgsearch $command failed (exit $status): ${last:-no message}. Waiting cannot fix this; change what it names, then 'azd hooks run postdeploy'" ;;
        esac
        if [ "$try" -ge "$search_attempts" ]; then
            die "imgsearch $command still fails after $try tries (last exit $status): ${last:-no message}; rerun 'azd hooks run postdeploy'"
        fi
        say "imgsearch $command failed (exit $status): ${last:-no message}; retrying in ${delay}s"
        sleep "$delay"
        try=$((try + 1))
    done
}

if [ "$mode" = pull ]; then
    # The indexer reads the container and the push functions are disabled (infra/app/function.bicep).
    say "pull mode: no Event Grid subscriptions (index_image and remove_image are disabled); the indexer reads the container"
else
    subscribe_blob_events
fi
read_vectorize_key
configure_search_service
# The end-to-end proof, with the settings configure_search_service exported, plus the Function's
# URL and a function key of `search` (read, never created: the host makes `default` for every
# function) and the images account through Entra ID.
verify_deployment() {
    case "$(lower "${IMGSEARCH_VERIFY_AFTER_DEPLOY:-true}")" in
        false | 0 | no | off)
            say "IMGSEARCH_VERIFY_AFTER_DEPLOY=${IMGSEARCH_VERIFY_AFTER_DEPLOY}: not verifying the deployment (run 'imgsearch verify' later)"
            return 0 ;;
    esac
    require_var AZURE_STORAGE_BLOB_ENDPOINT "$hint"
    search_key=$(az functionapp function keys list --subscription "$sub" --resource-group "$rg" \
        --name "$app" --function-name search --query default --output tsv 2>"$errors") ||
        die "could not read the function key of search on $app: $(last_line "$errors")"
    [ -n "$search_key" ] || die "the search function of $app has no default key; check that it was deployed, then run 'azd hooks run postdeploy'"
    export IMGSEARCH_FUNCTION_URL="https://$host"
    export IMGSEARCH_FUNCTION_KEY="$search_key"
    export IMAGES_STORAGE__blobServiceUri="$AZURE_STORAGE_BLOB_ENDPOINT"
    export IMAGES_CONTAINER="$AZURE_IMAGES_CONTAINER"
    export INGESTION_MODE="$mode"
    verify_attempts=${IMGSEARCH_HOOK_VERIFY_ATTEMPTS:-4}
    verify_delay=${IMGSEARCH_HOOK_VERIFY_RETRY_SECONDS:-60}
    try=1
    while :; do
        say "imgsearch verify: a probe image through the whole $mode path (attempt $try)"
        status=0
        "$cli" verify --timeout "${IMGSEARCH_HOOK_VERIFY_TIMEOUT:-120}" 2>"$errors" || status=$?
        cat "$errors" >&2
        [ "$status" -eq 0 ] && return 0
        last=$(last_line "$errors")
        case "$status" in
            3 | 130) die "imgsearch verify failed (exit $status): ${last:-no message}" ;;
        esac
        if [ "$try" -ge "$verify_attempts" ]; then
            die "the deployment is in place but imgsearch verify still fails after $try tries (exit $status): ${last:-no message}. Fix what it names and run 'azd hooks run postdeploy' (IMGSEARCH_VERIFY_AFTER_DEPLOY=false skips this check)"
        fi
        say "imgsearch verify failed (exit $status): ${last:-no message}; new roles can take minutes to apply, retrying in ${verify_delay}s"
        sleep "$verify_delay"
        try=$((try + 1))
    done
}

if [ "$mode" = pull ]; then
    say "pull mode is set up: the indexer of '$AZURE_SEARCH_INDEX_NAME' reads $AZURE_IMAGES_CONTAINER every 5 minutes and calls vectorize with its key"
else
    say "the index '$AZURE_SEARCH_INDEX_NAME' vectorizes text queries through vectorize, with its key"
fi
verify_deployment
