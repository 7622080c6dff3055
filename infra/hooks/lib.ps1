# Helpers shared by the azd hooks (PowerShell 7). Dot-sourced by the hook scripts, never run
# alone. Each hook sets $HookName before dot-sourcing this file.
$ErrorActionPreference = 'Stop'
# Native commands report failure through $LASTEXITCODE; the hooks check it themselves.
$PSNativeCommandUseErrorActionPreference = $false

function Write-HookMessage([string]$Message) {
    Write-Host "$($HookName): $Message"
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
