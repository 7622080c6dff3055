// Role assignments, least privilege. Each one names why it is needed. Four principals:
// - the Function's user-assigned identity (always);
// - the Event Grid system topic's system-assigned identity (always), for dead-lettering;
// - the search service's system-assigned identity (pull mode only), to read the photos;
// - the deploying person or CI principal (principalId), optional, so that the post-provision hook
//   can create the index and the backfill can run from a laptop with the same Entra-only access.
// Role definition ids are the built-in role GUIDs ("Azure built-in roles", Microsoft Learn).

param functionPrincipalId string
param userPrincipalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
param userPrincipalType string = 'User'

param hostStorageName string
param imagesStorageName string
param imagesContainerName string
param failuresContainerName string
param deadLetterContainerName string
param eventGridPrincipalId string
param searchServiceName string
param visionAccountName string
@description('Vision accounts 2..N (the same roles as on the first).')
param additionalVisionAccountNames array = []
param appInsightsName string

@description('The search service\'s identity; set in pull mode only, when its indexer reads the images container.')
param searchPrincipalId string = ''

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  searchIndexDataContributor: '8ebe5a00-799e-43f5-93ac-243d3dce84a7'
  searchServiceContributor: '7ca78c08-252a-4471-8644-bb5ff32d4ba0'
  reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
  cognitiveServicesUser: 'a97b65f3-24c7-4388-baec-2e87135dc908'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

var assignUser = !empty(userPrincipalId)
var assignSearch = !empty(searchPrincipalId)

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource imagesStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: imagesStorageName
}

resource imagesBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: imagesStorage
  name: 'default'
}

resource imagesContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: imagesBlobService
  name: imagesContainerName
}

resource failuresContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: imagesBlobService
  name: failuresContainerName
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: imagesBlobService
  name: deadLetterContainerName
}

resource search 'Microsoft.Search/searchServices@2023-11-01' existing = {
  name: searchServiceName
}

resource vision 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: visionAccountName
}

resource additionalVision 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = [
  for accountName in additionalVisionAccountNames: {
    name: accountName
  }
]

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// ---- The Function's identity ----

// Host storage (AzureWebJobsStorage) through an identity: the Functions docs require Storage Blob
// Data Owner for the host's blobs (keys, leases, blob-trigger receipts). The same role lets Flex
// Consumption read the deployment package container with the UserAssignedIdentity.
resource fnHostBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, functionPrincipalId, roles.storageBlobDataOwner)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Host storage queues: the blob trigger keeps internal blobs and queues in AzureWebJobsStorage;
// the blob binding docs list Storage Queue Data Contributor (with Blob Data Owner) for it.
// (They also list Storage Account Contributor, which serves the polling trigger; with
// source=EventGrid nothing scans the account, and that management role can read account keys,
// so it is left out.)
resource fnHostQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, functionPrincipalId, roles.storageQueueDataContributor)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The images: the indexer only reads them (bytes in, vector out), so Storage Blob Data Reader,
// scoped to the images container alone, rather than the Owner role the docs give as the generic
// example for blob triggers. The Function can neither change nor delete a photo. (Its one write
// on this account goes to the failures container, below.)
resource fnImagesRead 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(imagesContainer.id, functionPrincipalId, roles.storageBlobDataReader)
  scope: imagesContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The failure record: one JSON blob per image that can never be indexed, written when it fails
// and deleted once it indexes. Contributor on this one container only; the container is created
// by the deployment, so no account-wide right to create containers is needed.
resource fnFailures 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(failuresContainer.id, functionPrincipalId, roles.storageBlobDataContributor)
  scope: failuresContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Images account queues: after repeated failures the blob trigger writes the blob to the poison
// queue (webjobs-blobtrigger-poison) of the storage account of its connection (IMAGES_STORAGE), so
// a bad image is parked, not lost.
resource fnImagesQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(imagesStorage.id, functionPrincipalId, roles.storageQueueDataContributor)
  scope: imagesStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Search documents: upsert on BlobCreated, delete on BlobDeleted, look up content hashes, query
// from the HTTP search function. Index Data Contributor covers documents only.
resource fnSearchData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(search.id, functionPrincipalId, roles.searchIndexDataContributor)
  scope: search
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.searchIndexDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Search index definition, read-only: the Function checks the model-version pin stored in the
// index definition before every write and query, and the data roles cannot read definitions.
// Reader grants exactly that (object definitions, no keys, no content). Search Service Contributor
// is deliberately not given: creating or changing the index is the deploying principal's job
// (post-provision hook), so the Function can never redefine or drop it.
resource fnSearchDefinition 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(search.id, functionPrincipalId, roles.reader)
  scope: search
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.reader)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Vision inference with an Entra token. Cognitive Services User is the documented role for data
// calls; its key-listing permission is moot because the account disables local (key) auth.
resource fnVision 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vision.id, functionPrincipalId, roles.cognitiveServicesUser)
  scope: vision
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesUser)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The same on Vision accounts 2..N (bulk work spreads over all of them).
resource fnAdditionalVision 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (accountName, i) in additionalVisionAccountNames: {
    name: guid(additionalVision[i].id, functionPrincipalId, roles.cognitiveServicesUser)
    scope: additionalVision[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesUser)
      principalId: functionPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Telemetry: with local auth disabled, Application Insights ingests only what an identity holding
// Monitoring Metrics Publisher on the component signs (despite its name it covers all telemetry).
resource fnTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- The Event Grid system topic's identity ----

// Dead-lettering (app/eventsubscriptions.bicep, deadLetterWithResourceIdentity): Event Grid writes
// one blob per undeliverable event with the topic's own identity. Blob Data Contributor on this
// one container only; it can neither read nor touch the photos.
resource eventGridDeadLetter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, eventGridPrincipalId, roles.storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: eventGridPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- The search service's identity (pull mode) ----

// Pull mode's data source lists and reads the photos (ResourceId=...; connection, the search
// service's system-assigned identity). Blob Data Reader on the images container only.
resource searchImages 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignSearch) {
  name: guid(imagesContainer.id, searchPrincipalId, roles.storageBlobDataReader)
  scope: imagesContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: searchPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- The deploying principal (optional) ----

// Upload photos and read them for the backfill. Shared keys are disabled, so even the portal and
// `az storage blob upload --auth-mode login` need a data role; scoped to the images container.
resource userImages 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignUser) {
  name: guid(imagesContainer.id, userPrincipalId, roles.storageBlobDataContributor)
  scope: imagesContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// Read why an image was not indexed (the Function's failure records).
resource userFailures 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignUser) {
  name: guid(failuresContainer.id, userPrincipalId, roles.storageBlobDataReader)
  scope: failuresContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// Create or verify the pinned index (post-provision hook: `imgsearch ensure-index`).
resource userSearchService 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignUser) {
  name: guid(search.id, userPrincipalId, roles.searchServiceContributor)
  scope: search
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.searchServiceContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// Backfill, reconcile and queries from a laptop write and read documents.
resource userSearchData 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignUser) {
  name: guid(search.id, userPrincipalId, roles.searchIndexDataContributor)
  scope: search
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.searchIndexDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// The backfill and text queries call Vision with the person's own token.
resource userVision 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignUser) {
  name: guid(vision.id, userPrincipalId, roles.cognitiveServicesUser)
  scope: vision
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesUser)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userAdditionalVision 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (accountName, i) in additionalVisionAccountNames: if (assignUser) {
    name: guid(additionalVision[i].id, userPrincipalId, roles.cognitiveServicesUser)
    scope: additionalVision[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesUser)
      principalId: userPrincipalId
      principalType: userPrincipalType
    }
  }
]
