// The Event Grid system topic of the images storage account. Its two subscriptions (BlobCreated to
// the blob trigger's webhook, BlobDeleted to the Event Grid trigger) need the Function's system
// keys, which exist only after the code is deployed and the host has started; the post-deploy
// hook (infra/hooks/postdeploy.*) creates them.

param name string
param location string = resourceGroup().location
param tags object = {}
param storageAccountName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  // A system topic lives in its source's region.
  location: location
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output id string = topic.id
output name string = topic.name
