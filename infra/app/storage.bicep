// A storage account reachable only with Microsoft Entra ID: shared keys (and so account SAS and
// connection strings) are disabled, TLS 1.2 is the minimum and no container can be made public.
// In private network mode (publicNetworkAccess 'Disabled') it also takes no traffic from the
// internet: the Function reaches it through private endpoints (app/network.bicep), and Event Grid,
// a trusted Azure service, through the bypass with its managed identity.

@minLength(3)
@maxLength(24)
param name string
param location string = resourceGroup().location
param tags object = {}

@description('Replication; main.bicep chooses it per account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string

@description('Enabled: reachable from the internet (still Entra-only). Disabled: private endpoints only.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('Private blob containers to create.')
param containerNames array = []

@minValue(0)
@maxValue(365)
@description('Days deleted blobs are kept (native blob soft delete); 0: off.')
param blobSoftDeleteDays int = 0

@minValue(0)
@maxValue(365)
@description('Days deleted containers are kept (container soft delete); 0: off.')
param containerSoftDeleteDays int = 0

@description('Log Analytics workspace that receives the blob service\'s resource logs and metrics; empty: none.')
param logAnalyticsWorkspaceId string = ''

// checkov: the three skips inside the resource are decided by the caller, per account.
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_206: replication is a parameter; main.bicep gives the images account geo-redundant Standard_GRS (the photos) and the host account Standard_LRS (host state and a package azd uploads again), and tests/test_infra_graph.py holds it to that
  // checkov:skip=CKV_AZURE_35: the default network rule is Deny in private network mode (vnetEnabled) and Allow in the default public mode, where the deploying user uploads photos and a Function without a virtual network reads them; every request still needs an Entra token (shared keys are off)
  // checkov:skip=CKV_AZURE_59: public network access is Disabled in private network mode (vnetEnabled) and Enabled in the default public mode, for the same reason; tests/test_infra_graph.py checks both modes
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      // Event Grid (events, dead-lettering) reaches the account as a trusted Azure service.
      bypass: 'AzureServices'
      defaultAction: publicNetworkAccess == 'Disabled' ? 'Deny' : 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    // Pull mode's indexer deletes a document when it sees its blob soft-deleted; blob versioning
    // must stay off for that ("Change and delete detection using indexers for Azure Storage").
    deleteRetentionPolicy: blobSoftDeleteDays > 0 ? {
      enabled: true
      days: blobSoftDeleteDays
    } : {
      enabled: false
    }
    containerDeleteRetentionPolicy: containerSoftDeleteDays > 0 ? {
      enabled: true
      days: containerSoftDeleteDays
    } : {
      enabled: false
    }
    isVersioningEnabled: false
  }
}

// Who read, wrote or deleted which blob ("Monitoring Azure Blob Storage data reference": the
// StorageRead, StorageWrite and StorageDelete categories of blobServices).
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'blob-to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for containerName in containerNames: {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
