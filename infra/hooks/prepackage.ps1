#Requires -Version 7.0
# azd prepackage hook of service `api` (Windows): make functions/ a self-contained deployment
# package. function_app.py imports the `indexer` package, and indexer reads the index definitions
# from schemas/ next to it; both live at the repository root, outside the service directory that
# azd zips. Copy fresh copies of both into functions/ (git ignores functions/indexer and
# functions/schemas), dropping byte-code caches. Same steps as prepackage.sh.
$HookName = 'prepackage'
. (Join-Path $PSScriptRoot 'lib.ps1')

$root = (Resolve-Path (Join-Path $PSScriptRoot '..' '..')).Path
$app = Join-Path $root 'functions'
if (-not (Test-Path $app -PathType Container)) {
    Stop-Hook "$app is missing; the Function app lives in functions/"
}

foreach ($pkg in 'indexer', 'schemas') {
    $source = Join-Path $root $pkg
    $target = Join-Path $app $pkg
    if (-not (Test-Path $source -PathType Container)) {
        Stop-Hook "$source is missing; run the hook from a full checkout"
    }
    if (Test-Path $target) { Remove-Item $target -Recurse -Force }
    Copy-Item $source $target -Recurse
    Get-ChildItem $target -Recurse -Directory -Filter '__pycache__' | Remove-Item -Recurse -Force
    Get-ChildItem $target -Recurse -File -Include '*.pyc', '*.pyo' | Remove-Item -Force
    Write-HookMessage "copied $pkg/ into functions/$pkg/"
}
