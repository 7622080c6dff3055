#Requires -Version 7.0
# azd postdeploy hook (Windows): make the deployment whole once the Function's code runs. Same
# steps as postdeploy.sh, which explains each: check once that az is signed in and can use azd's
# subscription, pass --subscription to every az call; in push mode wait for the host's extension
# keys (counting them, never reading them) and deploy infra/app/eventsubscriptions.bicep, which
# reads them inside Azure Resource Manager; in both modes read (or create) the function key
# azure_search of vectorize alone and hand it to `imgsearch ensure-index` (push) or
# `imgsearch ensure-indexer` (pull) in SEARCH_VECTORIZER_KEY, never on a command line; then, unless
# IMGSEARCH_VERIFY_AFTER_DEPLOY is false, run `imgsearch verify` with the default key of the
# search function in IMGSEARCH_FUNCTION_KEY, retrying while new roles apply. This twin
# is kept in step with the sh hook by reading; no test machine runs PowerShell.
$HookName = 'postdeploy'
. (Join-Path $PSScriptRoot 'lib.ps1')
$root = (Resolve-Path (Join-Path $PSScriptRoot '..' '..')).Path

Assert-Command 'az' "install the Azure CLI (https://aka.ms/installazurecli) and sign in with 'az login'"
Import-AzdEnvIfMissing 'AZURE_FUNCTION_NAME'
$hint = "it is an output of infra/main.bicep; run 'azd provision' first"
foreach ($name in 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_NAME', 'AZURE_EVENTGRID_SYSTEM_TOPIC_NAME', 'AZURE_STORAGE_ACCOUNT_NAME', 'AZURE_IMAGES_CONTAINER', 'AZURE_EVENTGRID_DEADLETTER_CONTAINER', 'AZURE_SEARCH_ENDPOINT', 'AZURE_SEARCH_INDEX_NAME', 'AZURE_SEARCH_VECTORIZER_URI', 'AZURE_VISION_MODEL_VERSION', 'AZURE_VISION_ENDPOINT') {
    Assert-Variable $name $hint
}
Assert-AzLogin

$mode = if ($env:AZURE_INGESTION_MODE) { $env:AZURE_INGESTION_MODE } else { 'push' }

$sub = $env:AZURE_SUBSCRIPTION_ID
$rg = $env:AZURE_RESOURCE_GROUP
$app = $env:AZURE_FUNCTION_NAME
$template = Join-Path $PSScriptRoot '..' 'app' 'eventsubscriptions.bicep'
if (-not (Test-Path $template)) { Stop-Hook "$template is missing; run the hook from a full checkout" }

$attempts = if ($env:IMGSEARCH_HOOK_ATTEMPTS) { [int]$env:IMGSEARCH_HOOK_ATTEMPTS } else { 20 }
$delay = if ($env:IMGSEARCH_HOOK_RETRY_SECONDS) { [int]$env:IMGSEARCH_HOOK_RETRY_SECONDS } else { 15 }
$searchAttempts = if ($env:IMGSEARCH_HOOK_SEARCH_ATTEMPTS) { [int]$env:IMGSEARCH_HOOK_SEARCH_ATTEMPTS } else { 3 }

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
    if ($mode -eq 'pull') {
        # The indexer reads the container and the push functions are disabled (infra/app/function.bicep).
        Write-HookMessage 'pull mode: no Event Grid subscriptions (index_image and remove_image are disabled); the indexer reads the container'
    } else {
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
        $prefix = "/blobServices/default/containers/$($env:AZURE_IMAGES_CONTAINER)/"
        Write-HookMessage "subscription index-image-on-blob-created: Microsoft.Storage.BlobCreated under $prefix -> $app (index_image)"
        Write-HookMessage "subscription remove-image-on-blob-deleted: Microsoft.Storage.BlobDeleted under $prefix -> $app (remove_image)"
        Write-HookMessage "undeliverable events are retried up to 30 times over 24 hours, then dead-lettered to container $($env:AZURE_EVENTGRID_DEADLETTER_CONTAINER) of $($env:AZURE_STORAGE_ACCOUNT_NAME)"
    }

    # The function key azure_search of vectorize: read it, or create it the first time. Not
    # ResourceNotFound: the host answers so until it has indexed the new function.
    $vectorizeKey = $null
    for ($attempt = 1; ; $attempt++) {
        try { Invoke-WebRequest -Uri "https://$hostName/" -Method Get -TimeoutSec 30 -SkipHttpErrorCheck | Out-Null } catch { }
        $vectorizeKey = az functionapp function keys list --subscription $sub --resource-group $rg `
            --name $app --function-name vectorize --query azure_search --output tsv 2> $errors.FullName
        if ($LASTEXITCODE -eq 0) {
            if (-not "$vectorizeKey".Trim()) {
                $vectorizeKey = az functionapp function keys set --subscription $sub --resource-group $rg `
                    --name $app --function-name vectorize --key-name azure_search `
                    --query value --output tsv 2> $errors.FullName
                if ($LASTEXITCODE -ne 0) { $vectorizeKey = $null }
                elseif ("$vectorizeKey".Trim()) { Write-HookMessage 'created the function key azure_search of vectorize, for the search service' }
            }
            if ("$vectorizeKey".Trim()) { break }
            $last = Get-LastLine (Get-Content $errors.FullName)
            if (-not $last) { $last = 'no key came back' }
        } else {
            $last = Get-LastLine (Get-Content $errors.FullName)
        }
        foreach ($pattern in '*AuthorizationFailed*', '*ResourceGroupNotFound*', '*SubscriptionNotFound*', '*az login*') {
            if ($last -like $pattern) { Stop-Hook "reading the function keys of vectorize failed: $last" }
        }
        if ($attempt -ge $attempts) {
            Stop-Hook "could not read or create the function key of vectorize on $app after $attempts tries (last: $last); check that the vectorize function was deployed and the host starts, then run 'azd hooks run postdeploy'"
        }
        Write-HookMessage "waiting for the Function host to list the keys of vectorize ($attempt/$attempts): $last"
        Start-Sleep -Seconds $delay
    }

    # The index's vectorizer (and in pull mode the data source, skillset and indexer), with the
    # key, through the indexer's own code; the settings as in the postprovision hook.
    Set-DeploymentSettings
    $env:SEARCH_VECTORIZER_URI = $env:AZURE_SEARCH_VECTORIZER_URI
    $env:SEARCH_VECTORIZER_KEY = "$vectorizeKey".Trim()
    if ($env:IMGSEARCH_HOOK_KEEP_KEYS -ne '1') {
        Remove-Item Env:SEARCH_KEY, Env:VISION_KEY, Env:IMAGES_STORAGE -ErrorAction SilentlyContinue
    }
    $command = 'ensure-index'
    if ($mode -eq 'pull') {
        $command = 'ensure-indexer'
        Assert-Variable 'AZURE_STORAGE_ACCOUNT_ID' $hint
        $env:IMAGES_STORAGE_RESOURCE_ID = $env:AZURE_STORAGE_ACCOUNT_ID
        $env:IMAGES_CONTAINER = $env:AZURE_IMAGES_CONTAINER
    }
    $cli = $env:IMGSEARCH_CLI
    if (-not $cli) {
        $venv = if ($env:IMGSEARCH_HOOK_VENV) { $env:IMGSEARCH_HOOK_VENV } else { Join-Path $root '.venv' }
        Initialize-PythonEnvironment $venv $root
        $cli = Get-VenvProgram $venv 'imgsearch'
    }
    for ($try = 1; ; $try++) {
        Write-HookMessage "$command '$($env:SEARCH_INDEX_NAME)' on $($env:SEARCH_ENDPOINT): the search service calls $($env:SEARCH_VECTORIZER_URI) with the function key azure_search (attempt $try)"
        & $cli $command 2> $errors.FullName
        $status = $LASTEXITCODE
        $lines = Get-Content $errors.FullName
        if ($lines) { $lines | ForEach-Object { [Console]::Error.WriteLine($_) } }
        if ($status -eq 0) { break }
        $last = Get-LastLine $lines
        if ($status -in 2, 3, 130) {
            Stop-Hook "imgsearch $command failed (exit $status): $last. Waiting cannot fix this; change what it names, then 'azd hooks run postdeploy'"
        }
        if ($try -ge $searchAttempts) {
            Stop-Hook "imgsearch $command still fails after $try tries (last exit $status): $last; rerun 'azd hooks run postdeploy'"
        }
        Write-HookMessage "imgsearch $command failed (exit $status): $last; retrying in $($delay)s"
        Start-Sleep -Seconds $delay
    }

    if ($mode -eq 'pull') {
        Write-HookMessage "pull mode is set up: the indexer of '$($env:AZURE_SEARCH_INDEX_NAME)' reads $($env:AZURE_IMAGES_CONTAINER) every 5 minutes and calls vectorize with its key"
    } else {
        Write-HookMessage "the index '$($env:AZURE_SEARCH_INDEX_NAME)' vectorizes text queries through vectorize, with its key"
    }

    # The end-to-end proof (see postdeploy.sh, verify_deployment).
    $verifySetting = if ($env:IMGSEARCH_VERIFY_AFTER_DEPLOY) { $env:IMGSEARCH_VERIFY_AFTER_DEPLOY.ToLowerInvariant() } else { 'true' }
    if ($verifySetting -in 'false', '0', 'no', 'off') {
        Write-HookMessage "IMGSEARCH_VERIFY_AFTER_DEPLOY=$($env:IMGSEARCH_VERIFY_AFTER_DEPLOY): not verifying the deployment (run 'imgsearch verify' later)"
    } else {
        Assert-Variable 'AZURE_STORAGE_BLOB_ENDPOINT' $hint
        $searchKey = az functionapp function keys list --subscription $sub --resource-group $rg `
            --name $app --function-name search --query default --output tsv 2> $errors.FullName
        if ($LASTEXITCODE -ne 0) { Stop-Hook "could not read the function key of search on $($app): $(Get-LastLine (Get-Content $errors.FullName))" }
        if (-not "$searchKey".Trim()) { Stop-Hook "the search function of $app has no default key; check that it was deployed, then run 'azd hooks run postdeploy'" }
        $env:IMGSEARCH_FUNCTION_URL = "https://$hostName"
        $env:IMGSEARCH_FUNCTION_KEY = "$searchKey".Trim()
        $env:IMAGES_STORAGE__blobServiceUri = $env:AZURE_STORAGE_BLOB_ENDPOINT
        $env:IMAGES_CONTAINER = $env:AZURE_IMAGES_CONTAINER
        $env:INGESTION_MODE = $mode
        $verifyAttempts = if ($env:IMGSEARCH_HOOK_VERIFY_ATTEMPTS) { [int]$env:IMGSEARCH_HOOK_VERIFY_ATTEMPTS } else { 4 }
        $verifyDelay = if ($env:IMGSEARCH_HOOK_VERIFY_RETRY_SECONDS) { [int]$env:IMGSEARCH_HOOK_VERIFY_RETRY_SECONDS } else { 60 }
        $verifyTimeout = if ($env:IMGSEARCH_HOOK_VERIFY_TIMEOUT) { $env:IMGSEARCH_HOOK_VERIFY_TIMEOUT } else { '120' }
        for ($try = 1; ; $try++) {
            Write-HookMessage "imgsearch verify: a probe image through the whole $mode path (attempt $try)"
            & $cli verify --timeout $verifyTimeout 2> $errors.FullName
            $status = $LASTEXITCODE
            $lines = Get-Content $errors.FullName
            if ($lines) { $lines | ForEach-Object { [Console]::Error.WriteLine($_) } }
            if ($status -eq 0) { break }
            $last = Get-LastLine $lines
            if ($status -in 3, 130) { Stop-Hook "imgsearch verify failed (exit $status): $last" }
            if ($try -ge $verifyAttempts) {
                Stop-Hook "the deployment is in place but imgsearch verify still fails after $try tries (exit $status): $last. Fix what it names and run 'azd hooks run postdeploy' (IMGSEARCH_VERIFY_AFTER_DEPLOY=false skips this check)"
            }
            Write-HookMessage "imgsearch verify failed (exit $status): $last; new roles can take minutes to apply, retrying in $($verifyDelay)s"
            Start-Sleep -Seconds $verifyDelay
        }
    }
} finally {
    Remove-Item $errors.FullName -ErrorAction SilentlyContinue
}
