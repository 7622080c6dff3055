// Private network mode (main.bicep: vnetEnabled, azd: VNET_ENABLED=true), after the Flex
// Consumption quickstarts (Azure-Samples/functions-quickstart-python-azd-eventgrid-blob,
// infra/app/vnet.bicep and storage-PrivateEndpoint.bicep):
// - a virtual network with a subnet for private endpoints and a subnet delegated to
//   Microsoft.App/environments, the delegation Flex Consumption's virtual network integration needs;
// - private endpoints for the blob and queue services of both storage accounts (the Functions
//   host uses both on its own account; the blob trigger reads blobs and parks poison messages in a
//   queue of the images account), for Azure AI Search and for Azure AI Vision;
// - one private DNS zone per service, linked to the network, so the public host names the app
//   settings hold resolve to the private endpoints from inside the network.
// The accounts themselves disable public network access (main.bicep passes 'Disabled').

param vnetName string
param location string = resourceGroup().location
param tags object = {}

param hostStorageName string
param imagesStorageName string
param searchServiceName string
param visionAccountName string
@description('Vision accounts 2..N: a private endpoint each, in the same zone as the first.')
param additionalVisionAccountNames array = []

@description('Address space of the virtual network and its two subnets.')
param addressPrefix string = '10.0.0.0/16'
param privateEndpointSubnetPrefix string = '10.0.1.0/24'
param appSubnetPrefix string = '10.0.2.0/24'

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource imagesStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: imagesStorageName
}

resource search 'Microsoft.Search/searchServices@2023-11-01' existing = {
  name: searchServiceName
}

resource vision 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: visionAccountName
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: vnetName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
      {
        name: 'app'
        properties: {
          addressPrefix: appSubnetPrefix
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
    ]
  }
}

// The private DNS zone of each private link group ("Azure Private Endpoint private DNS zone values").
var zoneNames = [
  'privatelink.blob.${environment().suffixes.storage}'
  'privatelink.queue.${environment().suffixes.storage}'
  'privatelink.search.windows.net'
  'privatelink.cognitiveservices.azure.com'
]

// zone: the index of the endpoint's zone in zoneNames.
var additionalVisionEndpoints = [
  for accountName in additionalVisionAccountNames: {
    name: 'pe-${accountName}'
    target: resourceId('Microsoft.CognitiveServices/accounts', accountName)
    groupId: 'account'
    zone: 3
  }
]
var endpoints = concat(baseEndpoints, additionalVisionEndpoints)
var baseEndpoints = [
  {
    name: 'pe-${hostStorageName}-blob'
    target: hostStorage.id
    groupId: 'blob'
    zone: 0
  }
  {
    name: 'pe-${hostStorageName}-queue'
    target: hostStorage.id
    groupId: 'queue'
    zone: 1
  }
  {
    name: 'pe-${imagesStorageName}-blob'
    target: imagesStorage.id
    groupId: 'blob'
    zone: 0
  }
  {
    name: 'pe-${imagesStorageName}-queue'
    target: imagesStorage.id
    groupId: 'queue'
    zone: 1
  }
  {
    name: 'pe-${searchServiceName}'
    target: search.id
    groupId: 'searchService'
    zone: 2
  }
  {
    name: 'pe-${visionAccountName}'
    target: vision.id
    groupId: 'account'
    zone: 3
  }
]

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for zoneName in zoneNames: {
    name: zoneName
    location: 'global'
    tags: tags
  }
]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (zoneName, i) in zoneNames: {
    parent: zones[i]
    name: vnetName
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [
  for endpoint in endpoints: {
    name: endpoint.name
    location: location
    tags: tags
    properties: {
      subnet: {
        id: vnet.properties.subnets[0].id
      }
      privateLinkServiceConnections: [
        {
          name: endpoint.name
          properties: {
            privateLinkServiceId: endpoint.target
            groupIds: [
              endpoint.groupId
            ]
          }
        }
      ]
    }
  }
]

// Each endpoint registers its private address in its zone.
resource zoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [
  for (endpoint, i) in endpoints: {
    parent: privateEndpoints[i]
    name: 'default'
    properties: {
      privateDnsZoneConfigs: [
        {
          name: endpoint.groupId
          properties: {
            privateDnsZoneId: zones[endpoint.zone].id
          }
        }
      ]
    }
  }
]

output vnetId string = vnet.id
output appSubnetId string = vnet.properties.subnets[1].id
