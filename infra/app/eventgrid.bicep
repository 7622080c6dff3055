// The Event Grid system topic of the images storage account. Its two subscriptions (BlobCreated to
// the blob trigger's webhook, BlobDeleted to the Event Grid trigger) are authorized by the
// Function's system keys, which exist only after the code is deployed and the host has started;
// the post-deploy hook (infra/hooks/postdeploy.*) deploys them from app/eventsubscriptions.bicep.
//
// The topic has a system-assigned identity: Event Grid dead-letters undeliverable events into a
// container of the images account with it (rbac.bicep gives it Storage Blob Data Contributor on
// that container). Only a system-assigned identity passes a storage firewall through the trusted
// services bypass, which private network mode relies on.

param name string
param location string = resourceGroup().location
param tags object = {}
param storageAccountName string

@description('Log Analytics workspace that receives the topic\'s delivery failures and metrics.')
param logAnalyticsWorkspaceId string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  // A system topic lives in its source's region.
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// Events Event Grid could not deliver to the Function, with the reason (the one category of
// system topics, DeliveryFailures: "Supported logs for Microsoft.EventGrid/systemTopics").
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'events-to-log-analytics'
  scope: topic
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'DeliveryFailures'
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

output id string = topic.id
output name string = topic.name
output principalId string = topic.identity.principalId
