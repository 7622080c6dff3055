#Requires -Version 7.0
# Helpers shared by the azd hooks (PowerShell 7). Dot-sourced by the hook scripts, never run
# alone. Each hook sets $HookName before dot-sourcing this file. lib.sh is the sh twin; keep the
# two in step (the sh twin runs in the tests, this one cannot run on the test machines).
$ErrorActionPreference = 'Stop'
# Native commands report failure through $LASTEXITCODE; the hooks check it themselves.
$PSNativeCommandUseErrorActionPreference = $false

function Write-HookMessage([string]$Message) {
    Write-Host "$($HookName): $Message"
}

function Write-HookWarning([string]$Message) {
    [Console]::Error.WriteLine("$($HookName): warning: $Message")
}

function Stop-Hook([string]$Message) {
    [Console]::Error.WriteLine("$($HookName): error: $Message")
    exit 1
}

# Stop with $Hint when the command $Name is not on PATH.
function Assert-Command([string]$Name, [string]$Hint) {
    if (-not (Get-Command $Name -ErrorAction SilentlyContinue)) {
        Stop-Hook "'$Name' is not installed or not on PATH; $Hint"
    }
}

# Stop with $Hint when the environment variable $Name is unset or empty.
function Assert-Variable([string]$Name, [string]$Hint) {
    if ([string]::IsNullOrEmpty([Environment]::GetEnvironmentVariable($Name))) {
        Stop-Hook "$Name is not set; $Hint"
    }
}

# The last non-blank line of a command's error output.
function Get-LastLine($Lines) {
    $text = @($Lines | ForEach-Object { "$_" } | Where-Object { $_.Trim() -ne '' })
    if ($text.Count -eq 0) { return '' }
    return $text[-1].Trim()
}

# azd runs hooks with its environment (the deployment outputs) already set. When a hook is run by
# hand, load the same values with `azd env get-values`, without overriding anything already set.
# $Probe names a variable azd would have set; nothing is loaded when it is present.
function Import-AzdEnvIfMissing([string]$Probe) {
    if (-not [string]::IsNullOrEmpty([Environment]::GetEnvironmentVariable($Probe))) { return }
    if (-not (Get-Command azd -ErrorAction SilentlyContinue)) { return }
    $lines = & azd env get-values 2>$null
    if ($LASTEXITCODE -ne 0) { return }
    foreach ($line in $lines) {
        if ($line -match '^([A-Za-z_][A-Za-z0-9_]*)=(.*)$') {
            $key = $Matches[1]
            $value = $Matches[2] -replace '^"|"$', ''
            if ($null -eq [Environment]::GetEnvironmentVariable($key)) {
                [Environment]::SetEnvironmentVariable($key, $value)
            }
        }
    }
}

# Stop, saying what to do, unless the Azure CLI is signed in and can act on AZURE_SUBSCRIPTION_ID,
# the subscription azd deploys to. azd and az keep separate sign-ins, and az otherwise acts on its
# own default subscription; every az call of the hooks therefore passes --subscription, and this
# check runs once, before the first of them.
function Assert-AzLogin {
    Assert-Command 'az' "install the Azure CLI (https://aka.ms/installazurecli) and sign in with 'az login'"
    Assert-Variable 'AZURE_SUBSCRIPTION_ID' "azd sets it to the subscription it deploys to; run the hook through azd (azd hooks run $HookName) or set it"
    $sub = $env:AZURE_SUBSCRIPTION_ID
    $tenant = if ($env:AZURE_TENANT_ID) { " --tenant $($env:AZURE_TENANT_ID)" } else { '' }
    $errors = New-TemporaryFile
    try {
        $id = & az account show --subscription $sub --query id --output tsv 2> $errors.FullName
        $status = $LASTEXITCODE
        $message = Get-LastLine (Get-Content $errors.FullName)
    } finally {
        Remove-Item $errors.FullName -ErrorAction SilentlyContinue
    }
    if ($status -ne 0) {
        if ($message -like '*az login*') {
            Stop-Hook "the Azure CLI is not signed in (az: $message). azd and az sign in separately: run 'az login$tenant' with the account you gave azd, then rerun"
        }
        Stop-Hook "the Azure CLI cannot use subscription $sub, the one azd deploys to (az: $message). Sign az in with an account that can: 'az login$tenant', then 'az account set --subscription $sub'"
    }
    $id = Get-LastLine $id
    if ($id.ToLowerInvariant() -ne $sub.ToLowerInvariant()) {
        Stop-Hook "the Azure CLI answered for subscription '$id' when asked for $sub; run 'az account set --subscription $sub' and rerun"
    }
}

$PythonHint = 'install Python 3.11 or newer (https://www.python.org/downloads/ or your package manager) and put it on PATH, or point IMGSEARCH_HOOK_PYTHON at it'

# The first Python 3.11 or newer on PATH (IMGSEARCH_HOOK_PYTHON first), as a command to run; $null
# when there is none. On Windows the py launcher is tried too.
function Find-Python {
    $candidates = @()
    if ($env:IMGSEARCH_HOOK_PYTHON) { $candidates += , @($env:IMGSEARCH_HOOK_PYTHON) }
    $candidates += , @('py', '-3')
    foreach ($name in 'python3.13', 'python3.12', 'python3.11', 'python3', 'python') { $candidates += , @($name) }
    foreach ($candidate in $candidates) {
        if (-not (Get-Command $candidate[0] -ErrorAction SilentlyContinue)) { continue }
        $arguments = @($candidate | Select-Object -Skip 1)
        & $candidate[0] @arguments -c 'import sys; sys.exit(sys.version_info < (3, 11))' *> $null
        if ($LASTEXITCODE -eq 0) { return , $candidate }
    }
    return $null
}

# What a ready environment has: the indexer importable, and azure-identity 1.24 or newer, the
# first that accepts AZURE_TOKEN_CREDENTIALS=AzureDeveloperCliCredential.
$ReadyCheck = @'
import importlib.metadata as m, sys
import indexer
version = tuple(int(p) for p in m.version("azure-identity").split(".")[:2])
sys.exit(0 if version >= (1, 24) else 1)
'@

# The python and imgsearch programs of a virtual environment (Scripts\ on Windows, bin/ elsewhere).
function Get-VenvProgram([string]$Venv, [string]$Name) {
    $windows = Join-Path $Venv 'Scripts' "$Name.exe"
    if (Test-Path $windows) { return $windows }
    return (Join-Path $Venv 'bin' $Name)
}

# Make $Venv a virtual environment with imgsearch from the checkout $Root and its base
# dependencies only (no torch, no offline models: those are the [local] extra). An environment
# that already has them is reused as it is; a missing one is created; an incomplete one gets the
# package installed.
function Initialize-PythonEnvironment([string]$Venv, [string]$Root) {
    $python = Get-VenvProgram $Venv 'python'
    if (Test-Path $python) {
        & $python -c $ReadyCheck *> $null
        if ($LASTEXITCODE -eq 0) {
            Write-HookMessage "using the Python environment $Venv"
            return
        }
        & $python -c 'import sys; sys.exit(sys.version_info < (3, 11))' *> $null
        if ($LASTEXITCODE -ne 0) {
            Stop-Hook "$Venv was made with a Python older than 3.11; delete it (or point IMGSEARCH_HOOK_VENV elsewhere) and rerun 'azd hooks run $HookName'"
        }
    } else {
        $found = Find-Python
        if (-not $found) { Stop-Hook "no Python 3.11 or newer found to set up imgsearch; $PythonHint" }
        $arguments = @($found | Select-Object -Skip 1)
        Write-HookMessage "creating a Python virtual environment in $Venv with $($found -join ' ')"
        & $found[0] @arguments -m venv $Venv
        if ($LASTEXITCODE -ne 0) { Stop-Hook "could not create a virtual environment in $Venv; see the message above" }
        $python = Get-VenvProgram $Venv 'python'
    }
    Write-HookMessage "installing imgsearch from $Root into $Venv, with its base dependencies only (no torch, no offline models); the first time takes a minute or two"
    & $python -m pip install --quiet --disable-pip-version-check --editable $Root
    if ($LASTEXITCODE -ne 0) { Stop-Hook "pip could not install imgsearch into $Venv; its message is above" }
    & $python -c $ReadyCheck
    if ($LASTEXITCODE -ne 0) { Stop-Hook "imgsearch is installed in $Venv but not usable (it needs azure-identity 1.24 or newer); see the messages above" }
    Write-HookMessage "imgsearch is installed in $Venv"
}

# The deployment outputs, under the names indexer.settings.Settings reads (see lib.sh's
# export_deployment_settings): an empty AZURE_SEARCH_VECTOR_COMPRESSION leaves the index's own.
function Set-DeploymentSettings {
    $env:SEARCH_ENDPOINT = $env:AZURE_SEARCH_ENDPOINT
    $env:SEARCH_INDEX_NAME = $env:AZURE_SEARCH_INDEX_NAME
    $env:VISION_MODEL_VERSION = $env:AZURE_VISION_MODEL_VERSION
    $env:SEARCH_VECTOR_COMPRESSION = "$env:AZURE_SEARCH_VECTOR_COMPRESSION"
    $env:VISION_ENDPOINT = $env:AZURE_VISION_ENDPOINT
    $env:VISION_API_VERSION = if ($env:AZURE_VISION_API_VERSION) { $env:AZURE_VISION_API_VERSION } else { '2024-02-01' }
    $env:AZURE_TOKEN_CREDENTIALS = if ($env:IMGSEARCH_HOOK_TOKEN_CREDENTIALS) { $env:IMGSEARCH_HOOK_TOKEN_CREDENTIALS } else { 'AzureDeveloperCliCredential' }
}
