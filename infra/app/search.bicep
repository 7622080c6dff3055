// Azure AI Search with API keys disabled: every call carries a Microsoft Entra token and is
// authorized by role assignments (rbac.bicep). The index itself is created from schemas/ by the
// post-provision hook, not here, because its definition is pinned to the Vision model version.

param name string
param location string = resourceGroup().location
param tags object = {}

// Basic or higher: the system-assigned identity below needs it (search-howto-managed-identities-
// data-sources, Prerequisites), so the free tier cannot deploy this service.
@allowed([
  'basic'
  'standard'
  'standard2'
  'standard3'
  'storage_optimized_l1'
  'storage_optimized_l2'
])
param sku string = 'basic'

@minValue(1)
@maxValue(12)
param replicaCount int = 1

@description('Enabled: reachable from the internet (still Entra-only). Disabled: private endpoint only.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('Log Analytics workspace that receives the service\'s operation logs and metrics.')
param logAnalyticsWorkspaceId string

resource search 'Microsoft.Search/searchServices@2023-11-01' = {
  // checkov:skip=CKV_AZURE_208: three replicas (the index update SLA) triple the cost of the largest fixed charge here; searchReplicaCount sets them when the SLA is worth it
  // checkov:skip=CKV_AZURE_209: two replicas (the query SLA) double it; same parameter
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
  }
  // Its own identity: pull mode's data source reads the images container as it
  // (ResourceId=...; connection) and a vectorizer or skill with authResourceId gets its tokens.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    replicaCount: replicaCount
    partitionCount: 1
    hostingMode: 'default'
    // This API version spells the values in lower case.
    publicNetworkAccess: toLower(publicNetworkAccess)
    // Role-based access only; authOptions must stay unset when local auth is disabled.
    disableLocalAuth: true
  }
}

// Indexing, queries and indexer runs, with their status ("Supported logs for
// Microsoft.Search/searchServices": the one category, OperationLogs).
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'search-to-log-analytics'
  scope: search
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'OperationLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output id string = search.id
output name string = search.name
output endpoint string = 'https://${search.name}.search.windows.net'
output principalId string = search.identity.principalId
