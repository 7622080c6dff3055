// The two Event Grid subscriptions that feed the Function, deployed by the post-deploy hook
// (infra/hooks/postdeploy.*) into the resource group with
//   az deployment group create --template-file infra/app/eventsubscriptions.bicep ...
// once the deployed host has created its extension system keys. Not a module of main.bicep: at
// provision time no code is deployed and the keys do not exist.
//
// The webhook URLs carry a system key of the Functions host. The template reads it with
// listKeys() inside Azure Resource Manager, so the key never reaches the machine that runs the
// hook: no command line (where `ps` would show it), file, log or deployment output holds it.
// Event Grid stores the URL write-only and shows only its base without the query string.
//
// Delivery: an explicit retry policy, then dead-lettering with the system topic's own identity
// into a container of the images account. A raised exception in remove_image, or a failed
// blob-trigger webhook, makes Event Grid redeliver on this policy; what still fails lands in the
// dead-letter container (one blob per event) instead of being dropped.

@description('Name of the Event Grid system topic of the images storage account.')
param systemTopicName string

@description('Name of the Function app whose webhooks receive the events.')
param functionAppName string

@description('Name of the images storage account (the events come from it, dead letters go to it).')
param storageAccountName string

@description('The container whose blob events are delivered.')
param imagesContainerName string

@description('The container Event Grid dead-letters into.')
param deadLetterContainerName string

// Event Grid's limits: 1 to 30 delivery attempts, a time to live of 1 to 1440 minutes ("Event Grid
// message delivery and retry"). These are also its defaults, stated here so the policy is explicit
// and reviewable; between attempts Event Grid backs off exponentially, up to hours apart.
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

// The host's system keys (POST .../sites/{name}/host/default/listkeys), read at deployment.
var hostKeys = listKeys('${site.id}/host/default', '2024-04-01')
// New apps may get a unique default host name (<name>-<hash>.<region>.azurewebsites.net).
var webhookBase = 'https://${site.properties.defaultHostName}/runtime/webhooks'
// Trailing slash: the container named imagesContainerName only, not one that starts with it.
var subjectBeginsWith = '/blobServices/default/containers/${imagesContainerName}/'

var retryPolicy = {
  maxDeliveryAttempts: maxDeliveryAttempts
  eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
}

var deadLetter = {
  identity: {
    type: 'SystemAssigned'
  }
  deadLetterDestination: {
    endpointType: 'StorageBlob'
    properties: {
      resourceId: storage.id
      blobContainerName: deadLetterContainerName
    }
  }
}

// BlobCreated: the blob trigger index_image (source EventGrid) through the blobs extension.
resource indexImage 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'index-image-on-blob-created'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: subjectBeginsWith
    }
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: '${webhookBase}/blobs?functionName=Host.Functions.index_image&code=${hostKeys.systemKeys.blobs_extension}'
      }
    }
    retryPolicy: retryPolicy
    deadLetterWithResourceIdentity: deadLetter
  }
}

// BlobDeleted: the Event Grid trigger remove_image through the eventgrid extension.
resource removeImage 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'remove-image-on-blob-deleted'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobDeleted'
      ]
      subjectBeginsWith: subjectBeginsWith
    }
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: '${webhookBase}/eventgrid?functionName=remove_image&code=${hostKeys.systemKeys.eventgrid_extension}'
      }
    }
    retryPolicy: retryPolicy
    deadLetterWithResourceIdentity: deadLetter
  }
}

// Names only; the endpoint URLs hold the keys and are never output.
output subscriptionNames array = [
  indexImage.name
  removeImage.name
]
