// Azure AI Search with API keys disabled: every call carries a Microsoft Entra token and is
// authorized by role assignments (rbac.bicep). The index itself is created from schemas/ by the
// post-provision hook, not here, because its definition is pinned to the Vision model version.

param name string
param location string = resourceGroup().location
param tags object = {}

@allowed([
  'free'
  'basic'
  'standard'
  'standard2'
  'standard3'
  'storage_optimized_l1'
  'storage_optimized_l2'
])
param sku string = 'basic'

resource search 'Microsoft.Search/searchServices@2023-11-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
  }
  properties: {
    replicaCount: 1
    partitionCount: 1
    hostingMode: 'default'
    publicNetworkAccess: 'enabled'
    // Role-based access only; authOptions must stay unset when local auth is disabled.
    disableLocalAuth: true
  }
}

output id string = search.id
output name string = search.name
output endpoint string = 'https://${search.name}.search.windows.net'
