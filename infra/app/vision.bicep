// Azure AI Vision (kind ComputerVision) for the multimodal embeddings APIs. Keys are disabled;
// callers authenticate with Microsoft Entra tokens (scope https://cognitiveservices.azure.com/.default),
// which requires the custom subdomain endpoint.

param name string

// Only these regions offer retrieval:vectorizeImage / retrieval:vectorizeText.
@allowed([
  'eastus'
  'francecentral'
  'koreacentral'
  'northeurope'
  'southeastasia'
  'westeurope'
  'westus'
])
param location string
param tags object = {}

@allowed([
  'F0'
  'S1'
])
param sku string = 'S1'

resource vision 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'ComputerVision'
  sku: {
    name: sku
  }
  properties: {
    // Entra ID authentication works only against the custom subdomain endpoint.
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

// The account reports its endpoint with a trailing slash; the Vision client joins paths itself.
var endpoint = vision.properties.endpoint

output id string = vision.id
output name string = vision.name
output endpoint string = endsWith(endpoint, '/') ? substring(endpoint, 0, length(endpoint) - 1) : endpoint
