#!/bin/sh
# azd postdeploy hook: subscribe the Function to the blob events of the images container.
#   BlobCreated -> index_image, the blob trigger with source EventGrid (blobs extension webhook)
#   BlobDeleted -> remove_image, an Event Grid trigger (eventgrid extension webhook)
# Both webhooks are authorized by a system key of the Function host, which exists only once the
# deployed code has started; hence a post-deploy hook rather than Bicep. The keys go to the az
# CLI as arguments (as in the Functions Event Grid quickstarts) and are never printed.
# `event-subscription create` replaces an existing subscription of the same name, so re-running
# the hook (every `azd deploy`) converges to the same two subscriptions.
set -eu
HOOK_NAME=postdeploy
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

require_cmd az "install the Azure CLI and sign in with 'az login'"
load_azd_env_if_missing AZURE_FUNCTION_NAME
hint="it is an output of infra/main.bicep; run 'azd provision' first"
require_var AZURE_RESOURCE_GROUP "$hint"
require_var AZURE_FUNCTION_NAME "$hint"
require_var AZURE_EVENTGRID_SYSTEM_TOPIC_NAME "$hint"
require_var AZURE_IMAGES_CONTAINER "$hint"

rg=$AZURE_RESOURCE_GROUP
app=$AZURE_FUNCTION_NAME
topic=$AZURE_EVENTGRID_SYSTEM_TOPIC_NAME
# New apps may get a unique default host name, so never build it from the app name.
host=${AZURE_FUNCTION_HOSTNAME:-}
if [ -z "$host" ]; then
    host=$(az functionapp show --resource-group "$rg" --name "$app" --query defaultHostName --output tsv)
fi
[ -n "$host" ] || die "could not read the default host name of Function app $app"
# Trailing slash: the container 'images' only, not 'images2'.
subject="/blobServices/default/containers/$AZURE_IMAGES_CONTAINER/"

attempts=${IMGSEARCH_HOOK_ATTEMPTS:-20}
delay=${IMGSEARCH_HOOK_RETRY_SECONDS:-15}

system_key() {
    _key=$(az functionapp keys list --resource-group "$rg" --name "$app" --query "systemKeys.$1" --output tsv 2>/dev/null) || _key=
    [ "$_key" = None ] && _key=
    printf '%s' "$_key"
}

# The extension keys are created when the host first indexes the deployed functions. A Flex app
# may be scaled to zero after the deployment: a request to it starts the host.
attempt=1
while :; do
    if command -v curl >/dev/null 2>&1; then
        curl --silent --output /dev/null --max-time 30 "https://$host/" || true
    fi
    blobs_key=$(system_key blobs_extension)
    eventgrid_key=$(system_key eventgrid_extension)
    if [ -n "$blobs_key" ] && [ -n "$eventgrid_key" ]; then
        break
    fi
    if [ "$attempt" -ge "$attempts" ]; then
        die "the host of $app has no blobs_extension/eventgrid_extension system key after $attempts checks; check that index_image (blob trigger, source EventGrid) and remove_image (Event Grid trigger) were deployed and that the host starts, then run 'azd hooks run postdeploy'"
    fi
    say "waiting for the Function host to register its extension keys ($attempt/$attempts)"
    sleep "$delay"
    attempt=$((attempt + 1))
done

# subscribe NAME EVENT_TYPE ENDPOINT: Event Grid validates the webhook while creating the
# subscription, which fails while the host is still starting; retry a few times.
subscribe() {
    _try=1
    while :; do
        if az eventgrid system-topic event-subscription create \
            --name "$1" \
            --resource-group "$rg" \
            --system-topic-name "$topic" \
            --endpoint-type webhook \
            --endpoint "$3" \
            --included-event-types "$2" \
            --subject-begins-with "$subject" \
            --output none; then
            say "subscription $1: $2 under $subject -> $app"
            return 0
        fi
        if [ "$_try" -ge 3 ]; then
            die "could not create the Event Grid subscription $1 on $topic; see the az error above"
        fi
        say "creating subscription $1 failed; retrying in ${delay}s"
        sleep "$delay"
        _try=$((_try + 1))
    done
}

subscribe index-image-on-blob-created Microsoft.Storage.BlobCreated \
    "https://$host/runtime/webhooks/blobs?functionName=Host.Functions.index_image&code=$blobs_key"
subscribe remove-image-on-blob-deleted Microsoft.Storage.BlobDeleted \
    "https://$host/runtime/webhooks/eventgrid?functionName=remove_image&code=$eventgrid_key"
