# azd postprovision hook (Windows): create the search index from schemas/ (pinned to the Vision
# model version) or verify that the existing index carries the same pin, with the indexer's own
# code: `imgsearch ensure-index`, run as the deploying principal. Same steps as postprovision.sh:
# exit codes 2 (configuration), 3 (pinned to another model version) and 130 (interrupted) stop at
# once, others are retried because new role assignments take minutes to apply.
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

# The deployment outputs, under the names indexer.settings.Settings reads.
$env:SEARCH_ENDPOINT = $env:AZURE_SEARCH_ENDPOINT
$env:SEARCH_INDEX_NAME = $env:AZURE_SEARCH_INDEX_NAME
$env:VISION_MODEL_VERSION = $env:AZURE_VISION_MODEL_VERSION
$env:VISION_ENDPOINT = $env:AZURE_VISION_ENDPOINT
$env:VISION_API_VERSION = if ($env:AZURE_VISION_API_VERSION) { $env:AZURE_VISION_API_VERSION } else { '2024-02-01' }
# Both services refuse API keys; a key left in the shell must not be sent instead of the token.
# IMGSEARCH_HOOK_KEEP_KEYS=1 keeps them, for key-based stand-ins only.
if ($env:IMGSEARCH_HOOK_KEEP_KEYS -ne '1') {
    Remove-Item Env:SEARCH_KEY, Env:VISION_KEY -ErrorAction SilentlyContinue
}

$cli = $env:IMGSEARCH_CLI
if (-not $cli) {
    $onPath = Get-Command imgsearch -ErrorAction SilentlyContinue
    if ($onPath) {
        $cli = $onPath.Source
    } else {
        $cli = @(
            (Join-Path $root '.venv' 'Scripts' 'imgsearch.exe'),
            (Join-Path $root '.venv' 'bin' 'imgsearch')
        ) | Where-Object { Test-Path $_ } | Select-Object -First 1
    }
    if (-not $cli) {
        Stop-Hook "the imgsearch CLI is not installed; run 'pip install -e .' in $root, then 'azd hooks run postprovision'"
    }
}

$attempts = if ($env:IMGSEARCH_HOOK_ATTEMPTS) { [int]$env:IMGSEARCH_HOOK_ATTEMPTS } else { 6 }
$delay = if ($env:IMGSEARCH_HOOK_RETRY_SECONDS) { [int]$env:IMGSEARCH_HOOK_RETRY_SECONDS } else { 20 }
for ($attempt = 1; ; $attempt++) {
    Write-HookMessage "ensure-index '$($env:SEARCH_INDEX_NAME)' on $($env:SEARCH_ENDPOINT), pinned to model version $($env:VISION_MODEL_VERSION) (attempt $attempt of $attempts)"
    & $cli ensure-index
    $status = $LASTEXITCODE
    if ($status -eq 0) {
        Write-HookMessage "index '$($env:SEARCH_INDEX_NAME)' is ready"
        exit 0
    }
    if ($status -in 2, 3, 130) {
        Stop-Hook "imgsearch ensure-index failed (exit $status); its message above says what to change"
    }
    if ($attempt -ge $attempts) {
        Stop-Hook "imgsearch ensure-index still fails after $attempts attempts (last exit $status). New role assignments can take several minutes to apply; rerun with 'azd hooks run postprovision'."
    }
    Write-HookMessage "ensure-index failed (exit $status); retrying in $($delay)s, as new role assignments take time to apply"
    Start-Sleep -Seconds $delay
}
