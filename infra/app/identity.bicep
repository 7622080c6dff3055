// The Function's user-assigned managed identity. A user-assigned identity exists before the
// app does, so its role assignments can be in place when the host first starts, and it survives
// re-creating the app.

param name string
param location string = resourceGroup().location
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
