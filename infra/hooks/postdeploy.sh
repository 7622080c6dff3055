#!/bin/sh
# azd postdeploy hook: subscribe the Function to the blob events of the images container.
#   BlobCreated -> index_image, the blob trigger with source EventGrid (blobs extension webhook)
#   BlobDeleted -> remove_image, an Event Grid trigger (eventgrid extension webhook)
# Both webhooks are authorized by a system key of the Function host, which exists only once the
# deployed code has started; hence a post-deploy step rather than part of main.bicep.
#
# The hook deploys infra/app/eventsubscriptions.bicep into the resource group. The template reads
# the system keys with listKeys() inside Azure Resource Manager, so no key ever reaches this
# machine: none is on a command line (where `ps` would show it), in a file, or printed. The same
# template gives both subscriptions an explicit retry policy and a dead-letter container.
# Redeploying it (every `azd deploy`) converges to the same two subscriptions.
#
# Every az call passes --subscription "$AZURE_SUBSCRIPTION_ID" (azd's subscription), after one
# check that az is signed in and can use it (check_az_login in lib.sh).
set -eu
HOOK_NAME=postdeploy
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

require_cmd az "install the Azure CLI (https://aka.ms/installazurecli) and sign in with 'az login'"
load_azd_env_if_missing AZURE_FUNCTION_NAME
hint="it is an output of infra/main.bicep; run 'azd provision' first"
require_var AZURE_RESOURCE_GROUP "$hint"
require_var AZURE_FUNCTION_NAME "$hint"
require_var AZURE_EVENTGRID_SYSTEM_TOPIC_NAME "$hint"
require_var AZURE_STORAGE_ACCOUNT_NAME "$hint"
require_var AZURE_IMAGES_CONTAINER "$hint"
require_var AZURE_EVENTGRID_DEADLETTER_CONTAINER "$hint"
check_az_login

# Pull mode (INGESTION_MODE=pull): an Azure AI Search indexer reads the container and the push
# functions are disabled (infra/app/function.bicep), so no blob event is subscribed to them. The
# indexer is created by `imgsearch ensure-indexer` with the function key (README, "Pull mode").
if [ "${AZURE_INGESTION_MODE:-push}" = pull ]; then
    say "pull mode: no Event Grid subscriptions (index_image and remove_image are disabled); create the indexer with 'imgsearch ensure-indexer' (README, \"Pull mode\")"
    exit 0
fi

sub=$AZURE_SUBSCRIPTION_ID
rg=$AZURE_RESOURCE_GROUP
app=$AZURE_FUNCTION_NAME
template="$here/../app/eventsubscriptions.bicep"
[ -f "$template" ] || die "$template is missing; run the hook from a full checkout"

attempts=${IMGSEARCH_HOOK_ATTEMPTS:-20}
delay=${IMGSEARCH_HOOK_RETRY_SECONDS:-15}
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
