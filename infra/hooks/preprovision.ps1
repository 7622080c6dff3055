#Requires -Version 7.0
# azd preprovision hook (Windows): check the prerequisites of a first deployment before anything is
# created, and say how to fix what is missing. Same checks as preprovision.sh, which explains
# each: Python 3.11+, the Azure CLI signed in to azd's subscription, a role that can create role
# assignments (IMGSEARCH_SKIP_ROLE_CHECK=1 skips it), and a warning when no Computer Vision account
# shows that the Responsible AI terms were accepted (ResourceKindRequireAcceptTerms). This twin is
# kept in step with the sh hook by reading; no test machine runs PowerShell.
$HookName = 'preprovision'
. (Join-Path $PSScriptRoot 'lib.ps1')

Import-AzdEnvIfMissing 'AZURE_SUBSCRIPTION_ID'

# The deployment's own choices first: they need no tool and no sign-in. One free (F0) account per
# Cognitive Services kind and subscription (CanNotCreateMultipleFreeAccounts; preprovision.sh).
$visionSku = if ($env:AZURE_VISION_SKU) { $env:AZURE_VISION_SKU } else { 'S1' }
$visionCount = if ($env:AZURE_VISION_COUNT) { $env:AZURE_VISION_COUNT } else { '1' }
if ($visionCount -notmatch '^[0-9]+$') { Stop-Hook "AZURE_VISION_COUNT is '$visionCount', not a number from 1 to 8" }
if ($visionSku -eq 'F0' -and [int]$visionCount -gt 1) {
    Stop-Hook "AZURE_VISION_SKU=F0 with AZURE_VISION_COUNT=$($visionCount): a subscription may hold one free Vision account, so the second fails with CanNotCreateMultipleFreeAccounts. Run 'azd env set AZURE_VISION_COUNT 1' to keep the free tier, or 'azd env set AZURE_VISION_SKU S1' for several accounts"
}

$python = Find-Python
if (-not $python) {
    Stop-Hook "no Python 3.11 or newer on PATH. The postprovision hook installs imgsearch with it to create the search index; $PythonHint"
}
Write-HookMessage "Python: $($python -join ' ')"

Assert-AzLogin
$sub = $env:AZURE_SUBSCRIPTION_ID
Write-HookMessage "Azure CLI: signed in, subscription $sub"

$errors = New-TemporaryFile
try {
    # Who deploys: azd's principal (AZURE_PRINCIPAL_ID), else the account az is signed in with.
    $assignee = $env:AZURE_PRINCIPAL_ID
    if (-not $assignee) {
        $assignee = az account show --subscription $sub --query user.name --output tsv 2> $null
        if ($LASTEXITCODE -ne 0) { $assignee = '' }
    }
    if ($env:IMGSEARCH_SKIP_ROLE_CHECK -eq '1') {
        Write-HookMessage 'role check skipped (IMGSEARCH_SKIP_ROLE_CHECK=1)'
    } elseif (-not $assignee) {
        Write-HookWarning 'could not tell who deploys, so the role check was skipped'
    } else {
        $roles = az role assignment list --subscription $sub --assignee $assignee `
            --scope "/subscriptions/$sub" --include-inherited --include-groups `
            --query '[].roleDefinitionName' --output tsv 2> $errors.FullName
        if ($LASTEXITCODE -ne 0) {
            Write-HookWarning "could not list the role assignments of $assignee ($(Get-LastLine (Get-Content $errors.FullName))); make sure it holds Owner, User Access Administrator or Role Based Access Control Administrator on subscription $sub"
        } elseif (@($roles) | Where-Object { $_ -in 'Owner', 'User Access Administrator', 'Role Based Access Control Administrator' }) {
            Write-HookMessage "roles: $assignee can create role assignments on subscription $sub"
        } else {
            Stop-Hook "$assignee holds none of Owner, User Access Administrator or Role Based Access Control Administrator on subscription $sub, so the deployment cannot create its role assignments (every access here is Entra ID, granted by roles). Ask an owner of the subscription for one of them, or set IMGSEARCH_SKIP_ROLE_CHECK=1 if a custom role grants Microsoft.Authorization/roleAssignments/write"
        }
    }

    # The region: Flex Consumption, and a pair for geo-redundant photos (preprovision.sh explains).
    $location = "$env:AZURE_LOCATION".ToLowerInvariant()
    if (-not $location) {
        Write-HookWarning 'AZURE_LOCATION is not set, so the region checks were skipped'
    } else {
        $flex = az functionapp list-flexconsumption-locations --subscription $sub `
            --query '[].name' --output tsv 2> $errors.FullName
        if ($LASTEXITCODE -ne 0) {
            Write-HookWarning "could not list the Flex Consumption regions ($(Get-LastLine (Get-Content $errors.FullName))); if provisioning fails creating the plan, choose a region from 'az functionapp list-flexconsumption-locations'"
        } else {
            $flex = @($flex | ForEach-Object { "$_".Trim().ToLowerInvariant() } | Where-Object { $_ })
            if ($location -in $flex) {
                Write-HookMessage "region: $location offers the Flex Consumption plan"
            } else {
                Stop-Hook "region $location does not offer the Flex Consumption plan the Function runs on. Choose one that does ($($flex -join ' ')): 'azd env set AZURE_LOCATION <region>' (or a new environment, 'azd env new'), then rerun"
            }
        }
        $storageSku = if ($env:AZURE_IMAGES_STORAGE_SKU) { $env:AZURE_IMAGES_STORAGE_SKU } else { 'Standard_GRS' }
        if ($storageSku -match 'GRS$|GZRS$') {
            $pair = az account list-locations --subscription $sub `
                --query "[?name=='$location'].metadata.pairedRegion[].name" --output tsv 2> $errors.FullName
            if ($LASTEXITCODE -ne 0) {
                Write-HookWarning "could not look up the paired region of $location ($(Get-LastLine (Get-Content $errors.FullName))); $storageSku needs one, else set AZURE_IMAGES_STORAGE_SKU to Standard_ZRS or Standard_LRS"
            } elseif (@($pair | Where-Object { "$_".Trim() }).Count -gt 0) {
                Write-HookMessage "storage: $storageSku replicates the photos from $location to its pair $(@($pair)[0])"
            } else {
                Stop-Hook "region $location has no paired region, so the images account's geo-redundant $storageSku cannot deploy. Run 'azd env set AZURE_IMAGES_STORAGE_SKU Standard_ZRS' (copies in three zones of the region; Standard_LRS where the region has no zones), or choose a region with a pair"
            }
        }
    }

    $count = az cognitiveservices account list --subscription $sub `
        --query "length([?kind=='ComputerVision'])" --output tsv 2> $errors.FullName
    if ($LASTEXITCODE -ne 0) {
        Write-HookWarning "could not list the Cognitive Services accounts ($(Get-LastLine (Get-Content $errors.FullName))); if provisioning fails with ResourceKindRequireAcceptTerms, create one Computer Vision resource in the Azure portal to accept the Responsible AI terms"
    } elseif ("$count".Trim() -eq '0') {
        Write-HookWarning "subscription $sub has no Computer Vision account yet. If it never had one, the provisioning fails with ResourceKindRequireAcceptTerms: accept the Responsible AI terms once by creating a Computer Vision resource in the Azure portal (https://portal.azure.com/#create/Microsoft.CognitiveServicesComputerVision), delete it, then run azd provision again"
    } else {
        Write-HookMessage "Computer Vision: $("$count".Trim()) account(s) in the subscription, so its Responsible AI terms were accepted"
    }
} finally {
    Remove-Item $errors.FullName -ErrorAction SilentlyContinue
}

if ($env:VNET_ENABLED -eq 'true') {
    Write-HookMessage 'private network mode (VNET_ENABLED=true): the postprovision hook must reach the search service through its private endpoint, so run azd from a machine inside the virtual network or connected to it'
}
