// Azure AI Vision (kind ComputerVision) for the multimodal embeddings APIs. Keys are disabled;
// callers authenticate with Microsoft Entra tokens (scope https://cognitiveservices.azure.com/.default),
// which requires the custom subdomain endpoint.

param name string

// Only these regions offer retrieval:vectorizeImage / retrieval:vectorizeText (main.bicep names
// the source; keep the two lists identical).
@allowed([
  'eastus'
  'westus'
  'westus2'
  'francecentral'
  'northeurope'
  'westeurope'
  'swedencentral'
  'switzerlandnorth'
  'australiaeast'
  'southeastasia'
  'koreacentral'
  'japaneast'
])
param location string

// More accounts of the same model version, one per entry, named '<name>-2', '<name>-3', ...: each
// has its own quota (S1: 20 calls a second), so a backfill across N accounts runs N times faster.
@description('Regions of the additional Vision accounts, one entry per account (the same region may repeat).')
@allowed([
  'eastus'
  'westus'
  'westus2'
  'francecentral'
  'northeurope'
  'westeurope'
  'swedencentral'
  'switzerlandnorth'
  'australiaeast'
  'southeastasia'
  'koreacentral'
  'japaneast'
])
param additionalLocations array = []
param tags object = {}

@allowed([
  'F0'
  'S1'
])
param sku string = 'S1'

@description('Enabled: reachable from the internet (still Entra-only). Disabled: private endpoint only.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('Log Analytics workspace that receives every account\'s audit and request logs and metrics.')
param logAnalyticsWorkspaceId string

resource vision 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  // checkov:skip=CKV_AZURE_134: public network access is Disabled in private network mode (vnetEnabled); the default public mode accepts Entra tokens only (local auth off) and serves the backfill from a laptop
  name: name
  location: location
  tags: tags
  kind: 'ComputerVision'
  sku: {
    name: sku
  }
  // The account calls nothing itself today; a system identity costs nothing and is what any
  // customer-managed key or outbound call would use (checkov CKV_AZURE_238).
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    // Entra ID authentication works only against the custom subdomain endpoint.
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: publicNetworkAccess
  }
}

resource additional 'Microsoft.CognitiveServices/accounts@2024-10-01' = [
  for (region, i) in additionalLocations: {
    // checkov:skip=CKV_AZURE_134: as for the first account: Disabled in private network mode, Entra tokens only otherwise
    name: '${name}-${i + 2}'
    location: region
    tags: tags
    kind: 'ComputerVision'
    sku: {
      name: sku
    }
    identity: {
      type: 'SystemAssigned'
    }
    properties: {
      customSubDomainName: '${name}-${i + 2}'
      disableLocalAuth: true
      publicNetworkAccess: publicNetworkAccess
    }
  }
]

// Every Vision call with its status and latency (RequestResponse) and the account's key and
// management events (Audit): the Cognitive Services categories ("Enable diagnostic logging for
// Azure AI services").
var visionLogs = [
  {
    category: 'Audit'
    enabled: true
  }
  {
    category: 'RequestResponse'
    enabled: true
  }
]

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'vision-to-log-analytics'
  scope: vision
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: visionLogs
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

resource additionalDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [
  for (region, i) in additionalLocations: {
    name: 'vision-to-log-analytics'
    scope: additional[i]
    properties: {
      workspaceId: logAnalyticsWorkspaceId
      logs: visionLogs
      metrics: [
        {
          category: 'AllMetrics'
          enabled: true
        }
      ]
    }
  }
]

// The accounts report their endpoints with a trailing slash; the Vision client joins paths itself.
var endpoint = vision.properties.endpoint
var firstEndpoint = endsWith(endpoint, '/') ? substring(endpoint, 0, length(endpoint) - 1) : endpoint
// (The client strips a trailing slash itself; only the first endpoint is also an output alone.)
var others = [for (region, i) in additionalLocations: additional[i].properties.endpoint]

output id string = vision.id
output name string = vision.name
output endpoint string = firstEndpoint
output additionalNames array = [for (region, i) in additionalLocations: additional[i].name]
@description('The endpoints of every account, comma-separated (VISION_ENDPOINT), the first one first.')
output endpoints string = join(concat([firstEndpoint], others), ',')
