#Requires -Version 7.0
# azd postdeploy hook (Windows): subscribe the Function to the blob events of the images container.
#   BlobCreated -> index_image, the blob trigger with source EventGrid (blobs extension webhook)
#   BlobDeleted -> remove_image, an Event Grid trigger (eventgrid extension webhook)
# Same steps as postdeploy.sh, which explains each: check once that az is signed in and can use
# azd's subscription, pass --subscription to every az call, wait for the host's extension keys
# (counting them, never reading them), then deploy infra/app/eventsubscriptions.bicep, which reads
# the keys inside Azure Resource Manager. No key reaches this machine or any command line. This
# twin is kept in step with the sh hook by reading; no test machine runs PowerShell.
$HookName = 'postdeploy'
. (Join-Path $PSScriptRoot 'lib.ps1')

Assert-Command 'az' "install the Azure CLI (https://aka.ms/installazurecli) and sign in with 'az login'"
Import-AzdEnvIfMissing 'AZURE_FUNCTION_NAME'
$hint = "it is an output of infra/main.bicep; run 'azd provision' first"
foreach ($name in 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_NAME', 'AZURE_EVENTGRID_SYSTEM_TOPIC_NAME', 'AZURE_STORAGE_ACCOUNT_NAME', 'AZURE_IMAGES_CONTAINER', 'AZURE_EVENTGRID_DEADLETTER_CONTAINER') {
    Assert-Variable $name $hint
}
Assert-AzLogin

# Pull mode: no Event Grid subscriptions; the push functions are disabled (see postdeploy.sh).
if ($env:AZURE_INGESTION_MODE -eq 'pull') {
    Write-HookMessage "pull mode: no Event Grid subscriptions (index_image and remove_image are disabled); create the indexer with 'imgsearch ensure-indexer' (README, `"Pull mode`")"
    exit 0
}

$sub = $env:AZURE_SUBSCRIPTION_ID
$rg = $env:AZURE_RESOURCE_GROUP
$app = $env:AZURE_FUNCTION_NAME
$template = Join-Path $PSScriptRoot '..' 'app' 'eventsubscriptions.bicep'
if (-not (Test-Path $template)) { Stop-Hook "$template is missing; run the hook from a full checkout" }

$attempts = if ($env:IMGSEARCH_HOOK_ATTEMPTS) { [int]$env:IMGSEARCH_HOOK_ATTEMPTS } else { 20 }
$delay = if ($env:IMGSEARCH_HOOK_RETRY_SECONDS) { [int]$env:IMGSEARCH_HOOK_RETRY_SECONDS } else { 15 }

# New apps may get a unique default host name, so never build it from the app name.
$hostName = $env:AZURE_FUNCTION_HOSTNAME
if (-not $hostName) {
    $hostName = az functionapp show --subscription $sub --resource-group $rg --name $app --query defaultHostName --output tsv
    if ($LASTEXITCODE -ne 0) { Stop-Hook "could not read the default host name of Function app $app; the az error is above" }
}
if (-not $hostName) { Stop-Hook "could not read the default host name of Function app $app" }

# Errors no wait can fix: stop at once with az's own words.
function Test-PermanentError([string]$Message) {
    foreach ($pattern in '*AuthorizationFailed*', '*ResourceNotFound*', '*ResourceGroupNotFound*', '*SubscriptionNotFound*', '*az login*', '*not found. Check the spelling*') {
        if ($Message -like $pattern) { return $true }
    }
    return $false
}

$errors = New-TemporaryFile
try {
    # The extension keys are created when the host first indexes the deployed functions; a request
    # starts a host that Flex Consumption scaled to zero. The query counts the two keys; their
    # values never leave az. (The query holds spaces, so PowerShell quotes it for az.cmd.)
    for ($attempt = 1; ; $attempt++) {
        try { Invoke-WebRequest -Uri "https://$hostName/" -Method Get -TimeoutSec 30 -SkipHttpErrorCheck | Out-Null } catch { }
        $count = az functionapp keys list --subscription $sub --resource-group $rg --name $app `
            --query '[systemKeys.blobs_extension, systemKeys.eventgrid_extension] | length([?@])' `
            --output tsv 2> $errors.FullName
        if ($LASTEXITCODE -eq 0) {
            if ("$count".Trim() -eq '2') { break }
            $last = "the host has registered $("$count".Trim()) of its 2 extension keys"
        } else {
            $last = Get-LastLine (Get-Content $errors.FullName)
            if (Test-PermanentError $last) { Stop-Hook "az functionapp keys list failed: $last" }
        }
        if ($attempt -ge $attempts) {
            Stop-Hook "the host of $app has no blobs_extension/eventgrid_extension system key after $attempts checks (last: $last); check that index_image (blob trigger, source EventGrid) and remove_image (Event Grid trigger) were deployed and that the host starts, then run 'azd hooks run postdeploy'"
        }
        Write-HookMessage "waiting for the Function host to register its extension keys ($attempt/$attempts): $last"
        Start-Sleep -Seconds $delay
    }

    # Event Grid validates each webhook while creating its subscription, which fails while the
    # host is still starting; retry a few times.
    for ($try = 1; ; $try++) {
        az deployment group create --subscription $sub --resource-group $rg `
            --name imgsearch-event-subscriptions `
            --template-file $template `
            --parameters "systemTopicName=$($env:AZURE_EVENTGRID_SYSTEM_TOPIC_NAME)" `
                "functionAppName=$app" `
                "storageAccountName=$($env:AZURE_STORAGE_ACCOUNT_NAME)" `
                "imagesContainerName=$($env:AZURE_IMAGES_CONTAINER)" `
                "deadLetterContainerName=$($env:AZURE_EVENTGRID_DEADLETTER_CONTAINER)" `
            --output none 2> $errors.FullName
        if ($LASTEXITCODE -eq 0) { break }
        $lines = Get-Content $errors.FullName
        if ($lines) { $lines | ForEach-Object { [Console]::Error.WriteLine($_) } }
        $last = Get-LastLine $lines
        if (Test-PermanentError $last) { Stop-Hook "deploying the Event Grid subscriptions failed: $last" }
        if ($try -ge 3) {
            Stop-Hook "could not deploy the Event Grid subscriptions to $($env:AZURE_EVENTGRID_SYSTEM_TOPIC_NAME) after $try tries (last: $last); rerun 'azd hooks run postdeploy'"
        }
        Write-HookMessage "deploying the subscriptions failed ($last); retrying in $($delay)s"
        Start-Sleep -Seconds $delay
    }
} finally {
    Remove-Item $errors.FullName -ErrorAction SilentlyContinue
}

$prefix = "/blobServices/default/containers/$($env:AZURE_IMAGES_CONTAINER)/"
Write-HookMessage "subscription index-image-on-blob-created: Microsoft.Storage.BlobCreated under $prefix -> $app (index_image)"
Write-HookMessage "subscription remove-image-on-blob-deleted: Microsoft.Storage.BlobDeleted under $prefix -> $app (remove_image)"
Write-HookMessage "undeliverable events are retried up to 30 times over 24 hours, then dead-lettered to container $($env:AZURE_EVENTGRID_DEADLETTER_CONTAINER) of $($env:AZURE_STORAGE_ACCOUNT_NAME)"
