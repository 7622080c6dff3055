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

// The account reports its endpoint with a trailing slash; the Vision client joins paths itself.
var endpoint = vision.properties.endpoint

output id string = vision.id
output name string = vision.name
output endpoint string = endsWith(endpoint, '/') ? substring(endpoint, 0, length(endpoint) - 1) : endpoint
