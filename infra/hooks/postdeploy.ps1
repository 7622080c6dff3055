# azd postdeploy hook (Windows): subscribe the Function to the blob events of the images container.
#   BlobCreated -> index_image, the blob trigger with source EventGrid (blobs extension webhook)
#   BlobDeleted -> remove_image, an Event Grid trigger (eventgrid extension webhook)
# Same steps as postdeploy.sh: wait for the host's extension system keys, then create (or replace)
# the two subscriptions. The keys go to the az CLI as arguments and are never printed.
$HookName = 'postdeploy'
. (Join-Path $PSScriptRoot 'lib.ps1')

Assert-Command 'az' "install the Azure CLI and sign in with 'az login'"
Import-AzdEnvIfMissing 'AZURE_FUNCTION_NAME'
$hint = "it is an output of infra/main.bicep; run 'azd provision' first"
foreach ($name in 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_NAME', 'AZURE_EVENTGRID_SYSTEM_TOPIC_NAME', 'AZURE_IMAGES_CONTAINER') {
    Assert-Variable $name $hint
}

$rg = $env:AZURE_RESOURCE_GROUP
$app = $env:AZURE_FUNCTION_NAME
$topic = $env:AZURE_EVENTGRID_SYSTEM_TOPIC_NAME
# New apps may get a unique default host name, so never build it from the app name.
$hostName = $env:AZURE_FUNCTION_HOSTNAME
if (-not $hostName) {
    $hostName = az functionapp show --resource-group $rg --name $app --query defaultHostName --output tsv
}
if (-not $hostName) { Stop-Hook "could not read the default host name of Function app $app" }
# Trailing slash: the container 'images' only, not 'images2'.
$subject = "/blobServices/default/containers/$($env:AZURE_IMAGES_CONTAINER)/"

$attempts = if ($env:IMGSEARCH_HOOK_ATTEMPTS) { [int]$env:IMGSEARCH_HOOK_ATTEMPTS } else { 20 }
$delay = if ($env:IMGSEARCH_HOOK_RETRY_SECONDS) { [int]$env:IMGSEARCH_HOOK_RETRY_SECONDS } else { 15 }

function Get-SystemKey([string]$Name) {
    $key = az functionapp keys list --resource-group $rg --name $app --query "systemKeys.$Name" --output tsv 2>$null
    if ($LASTEXITCODE -ne 0 -or $key -eq 'None') { return '' }
    return "$key".Trim()
}

# The extension keys are created when the host first indexes the deployed functions; a request
# starts a host that Flex Consumption scaled to zero.
for ($attempt = 1; ; $attempt++) {
    try { Invoke-WebRequest -Uri "https://$hostName/" -Method Get -TimeoutSec 30 -SkipHttpErrorCheck | Out-Null } catch { }
    $blobsKey = Get-SystemKey 'blobs_extension'
    $eventGridKey = Get-SystemKey 'eventgrid_extension'
    if ($blobsKey -and $eventGridKey) { break }
    if ($attempt -ge $attempts) {
        Stop-Hook "the host of $app has no blobs_extension/eventgrid_extension system key after $attempts checks; check that index_image (blob trigger, source EventGrid) and remove_image (Event Grid trigger) were deployed and that the host starts, then run 'azd hooks run postdeploy'"
    }
    Write-HookMessage "waiting for the Function host to register its extension keys ($attempt/$attempts)"
    Start-Sleep -Seconds $delay
}

# Event Grid validates the webhook while creating the subscription, which fails while the host is
# still starting; retry a few times.
function New-Subscription([string]$Name, [string]$EventType, [string]$Endpoint) {
    # az is a .cmd script on Windows: quote the URL so cmd.exe does not split it at '&'.
    $quoted = '"' + $Endpoint + '"'
    for ($try = 1; ; $try++) {
        az eventgrid system-topic event-subscription create `
            --name $Name `
            --resource-group $rg `
            --system-topic-name $topic `
            --endpoint-type webhook `
            --endpoint $quoted `
            --included-event-types $EventType `
            --subject-begins-with $subject `
            --output none
        if ($LASTEXITCODE -eq 0) {
            Write-HookMessage "subscription $($Name): $EventType under $subject -> $app"
            return
        }
        if ($try -ge 3) {
            Stop-Hook "could not create the Event Grid subscription $Name on $topic; see the az error above"
        }
        Write-HookMessage "creating subscription $Name failed; retrying in $($delay)s"
        Start-Sleep -Seconds $delay
    }
}

New-Subscription 'index-image-on-blob-created' 'Microsoft.Storage.BlobCreated' `
    "https://$hostName/runtime/webhooks/blobs?functionName=Host.Functions.index_image&code=$blobsKey"
New-Subscription 'remove-image-on-blob-deleted' 'Microsoft.Storage.BlobDeleted' `
    "https://$hostName/runtime/webhooks/eventgrid?functionName=remove_image&code=$eventGridKey"
