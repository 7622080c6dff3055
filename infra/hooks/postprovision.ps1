#Requires -Version 7.0
# azd postprovision hook (Windows): create the search index from schemas/ (pinned to the Vision
# model version) or verify that the existing index carries the same pin, with the indexer's own
# code: `imgsearch ensure-index`, run as the deploying principal. Same steps as postprovision.sh,
# which explains each: set up imgsearch in a virtual environment (base dependencies only), use
# azd's sign-in (AZURE_TOKEN_CREDENTIALS=AzureDeveloperCliCredential), retry with backoff for up
# to IMGSEARCH_HOOK_WAIT_SECONDS while role assignments apply, stop at once on exit codes 2, 3 and
# 130. This twin is kept in step with the sh hook by reading; no test machine runs PowerShell.
$HookName = 'postprovision'
. (Join-Path $PSScriptRoot 'lib.ps1')
$root = (Resolve-Path (Join-Path $PSScriptRoot '..' '..')).Path

Import-AzdEnvIfMissing 'AZURE_SEARCH_ENDPOINT'
$hint = "it is an output of infra/main.bicep; run 'azd provision' first"
# AZURE_VISION_ENDPOINT is required: without a Vision endpoint the indexer pins the index to its
# offline model instead of the Azure model version.
foreach ($name in 'AZURE_SEARCH_ENDPOINT', 'AZURE_SEARCH_INDEX_NAME', 'AZURE_VISION_MODEL_VERSION', 'AZURE_VISION_ENDPOINT') {
    Assert-Variable $name $hint
}

# The deployed Function uses the deployment's index name and model version; say so when the
# settings names hold something else, rather than ignoring it silently.
if ($env:SEARCH_INDEX_NAME -and $env:SEARCH_INDEX_NAME -ne $env:AZURE_SEARCH_INDEX_NAME) {
    Write-HookWarning "SEARCH_INDEX_NAME is '$($env:SEARCH_INDEX_NAME)' here, but the deployment uses '$($env:AZURE_SEARCH_INDEX_NAME)'. This hook prepares '$($env:AZURE_SEARCH_INDEX_NAME)'. To switch the Function to another index: azd env set AZURE_SEARCH_INDEX_NAME <name>, then azd provision"
}
if ($env:VISION_MODEL_VERSION -and $env:VISION_MODEL_VERSION -ne $env:AZURE_VISION_MODEL_VERSION) {
    Write-HookWarning "VISION_MODEL_VERSION is '$($env:VISION_MODEL_VERSION)' here, but the deployment uses '$($env:AZURE_VISION_MODEL_VERSION)'. To switch: azd env set AZURE_VISION_MODEL_VERSION <version> (with a new AZURE_SEARCH_INDEX_NAME), then azd provision"
}

Set-DeploymentSettings
# The index's Web API vectorizer points at the Function's /api/vectorize (see postprovision.sh).
if ($env:AZURE_SEARCH_VECTORIZER_URI) { $env:SEARCH_VECTORIZER_URI = $env:AZURE_SEARCH_VECTORIZER_URI }
# Both services refuse API keys; a key left in the shell must not be sent instead of the token.
# IMGSEARCH_HOOK_KEEP_KEYS=1 keeps them, for key-based stand-ins only.
if ($env:IMGSEARCH_HOOK_KEEP_KEYS -ne '1') {
    Remove-Item Env:SEARCH_KEY, Env:VISION_KEY -ErrorAction SilentlyContinue
}

$cli = $env:IMGSEARCH_CLI
$python = $null
if (-not $cli) {
    $venv = if ($env:IMGSEARCH_HOOK_VENV) { $env:IMGSEARCH_HOOK_VENV } else { Join-Path $root '.venv' }
    Initialize-PythonEnvironment $venv $root
    $cli = Get-VenvProgram $venv 'imgsearch'
    $python = @(Get-VenvProgram $venv 'python')
} else {
    $python = Find-Python
}

# Private network mode: this machine must resolve the search service to a private address.
if ($env:AZURE_VNET_ENABLED -eq 'true' -and $python) {
    $searchHost = ([Uri]$env:SEARCH_ENDPOINT).Host
    $arguments = @($python | Select-Object -Skip 1)
    & $python[0] @arguments -c 'import ipaddress, socket, sys; sys.exit(0 if ipaddress.ip_address(socket.gethostbyname(sys.argv[1])).is_private else 1)' $searchHost *> $null
    if ($LASTEXITCODE -ne 0) {
        Stop-Hook "private network mode (VNET_ENABLED=true): $searchHost does not resolve to a private address from this machine, so the search service will refuse it. Run 'azd hooks run postprovision' from a machine inside the virtual network (or connected to it by VPN or peering), then 'azd deploy'"
    }
}

$waitBudget = if ($env:IMGSEARCH_HOOK_WAIT_SECONDS) { [int]$env:IMGSEARCH_HOOK_WAIT_SECONDS } else { 900 }
$delay = if ($env:IMGSEARCH_HOOK_RETRY_SECONDS) { [int]$env:IMGSEARCH_HOOK_RETRY_SECONDS } else { 10 }
if ($delay -lt 1) { $delay = 1 }
$maxDelay = 60
$maxAttempts = if ($env:IMGSEARCH_HOOK_ATTEMPTS) { [int]$env:IMGSEARCH_HOOK_ATTEMPTS } else { 0 }
$errors = New-TemporaryFile
$waited = 0
try {
    for ($attempt = 1; ; $attempt++) {
        Write-HookMessage "ensure-index '$($env:SEARCH_INDEX_NAME)' on $($env:SEARCH_ENDPOINT), pinned to model version $($env:VISION_MODEL_VERSION) (attempt $attempt)"
        & $cli ensure-index 2> $errors.FullName
        $status = $LASTEXITCODE
        # Show what imgsearch said (its errors name what to change), then decide.
        $lines = Get-Content $errors.FullName
        if ($lines) { $lines | ForEach-Object { [Console]::Error.WriteLine($_) } }
        if ($status -eq 0) {
            Write-HookMessage "index '$($env:SEARCH_INDEX_NAME)' is ready"
            exit 0
        }
        $lastError = Get-LastLine $lines
        if (-not $lastError) { $lastError = 'no message' }
        if ($status -in 2, 3, 130) {
            Stop-Hook "imgsearch ensure-index failed (exit $status): $lastError. Waiting cannot fix this; change what it names, then 'azd hooks run postprovision'"
        }
        if ($waited -ge $waitBudget -or ($maxAttempts -gt 0 -and $attempt -ge $maxAttempts)) {
            Stop-Hook "imgsearch ensure-index still fails after $attempt attempts over $($waited)s (last exit $status): $lastError. If it is a 403, the deploying principal's roles have not applied yet or are missing (Search Service Contributor on the search service, rbac.bicep); rerun 'azd hooks run postprovision' later"
        }
        Write-HookMessage "ensure-index failed (exit $status): $lastError"
        Write-HookMessage "new role assignments take 5 to 10 minutes to apply to Azure AI Search; retrying in $($delay)s (waited $($waited)s of up to $($waitBudget)s)"
        Start-Sleep -Seconds $delay
        $waited += $delay
        $delay = [Math]::Min($delay * 2, $maxDelay)
    }
} finally {
    Remove-Item $errors.FullName -ErrorAction SilentlyContinue
}
