// Image search on Azure: a Flex Consumption Function that vectorizes every image uploaded to
// the `images` container with Azure AI Vision (multimodal embeddings) and upserts it into an
// Azure AI Search vector index; deleting the blob removes it from the index.
//
// Deploy with the Azure Developer CLI (recommended):
//   azd up
// azd runs infra/hooks/preprovision.* (checks the prerequisites), fills main.parameters.json from
// its environment, provisions this template, runs infra/hooks/postprovision.* (sets up a Python
// environment and creates the search index from schemas/), packages functions/
// (infra/hooks/prepackage.* copies indexer/ and schemas/ in) and, after deploying the code, runs
// infra/hooks/postdeploy.* (deploys app/eventsubscriptions.bicep, which needs the Function's
// system keys).
//
// Deploy without azd: main.parameters.json holds azd placeholders (${...}) that the az CLI does
// not substitute, so do not pass that file; every parameter it maps has a default here, and only
// these need a value on the command line:
//   environmentName, location, principalId
//   az deployment sub create --name imgsearch --location <loc> --template-file infra/main.bicep \
//     --parameters environmentName=<env> location=<loc> \
//                  principalId=$(az ad signed-in-user show --query id --output tsv)
// then run the hooks by hand with the deployment outputs exported under the same names azd would
// give them (infra/README.md, "Without azd"), and deploy functions/ with Azure Functions Core Tools.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it seeds the unique suffix of every resource name.')
param environmentName string

@minLength(1)
@description('Primary location of every resource except the Vision account.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

// The multimodal embeddings APIs (retrieval:vectorizeImage / retrieval:vectorizeText) exist only
// in these 12 regions: the "Multimodal embeddings" column of the region table in "What is Image
// Analysis?" (MicrosoftDocs/azure-ai-docs, articles/ai-services/computer-vision/
// overview-image-analysis.md, ms.date 09/16/2025). Default: the primary location when it is one
// of them, else East US. Keep this list, the default's list, app/vision.bicep and the README's
// region list identical (tests/test_infra_graph.py checks the three Bicep lists).
@description('Region of the Azure AI Vision account: one of the regions that offer multimodal embeddings.')
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
param visionLocation string = contains([
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
], location) ? location : 'eastus'

// Several Vision accounts of the same model version: each has its own quota, and bulk work
// (backfill, reconcile) spreads over all of them, each at its own pace (VISION_ENDPOINT lists
// them; one identity holds Cognitive Services User on each). Accounts 2..N go to
// visionAdditionalLocations in turn, or to visionLocation when it is empty.
@description('Number of Vision accounts (1 to 8), all serving the same model version.')
@minValue(1)
@maxValue(8)
param visionCount int = 1

@description('Regions of Vision accounts 2..N, in turn (empty: visionLocation).')
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
param visionAdditionalLocations array = []

@description('Vision pricing tier. F0 allows 20 calls a minute, S1 up to 20 calls a second.')
@allowed([
  'F0'
  'S1'
])
param visionSku string = 'S1'

// The index is pinned to exactly one model version (schemas/<version>.json); vectors of different
// versions are never mixed. Changing this on an existing index makes the post-provision hook fail:
// change searchIndexName with it (README, "Switching the pinned model version safely").
@description('Vision multimodal embeddings model version the search index is pinned to.')
@allowed([
  '2023-04-15'
  '2022-04-11'
])
param visionModelVersion string = '2023-04-15'

@description('Vision REST API version used by the Function.')
param visionApiVersion string = '2024-02-01'

// No 'free': the search service always gets a system-assigned identity (pull mode's data source
// and the vectorizer's token need it), and a managed identity needs the Basic tier or higher
// ("Configure a search service to connect using a managed identity", Prerequisites:
// learn.microsoft.com/azure/search/search-howto-managed-identities-data-sources).
@description('Azure AI Search pricing tier (basic or higher: the service has a managed identity).')
@allowed([
  'basic'
  'standard'
  'standard2'
  'standard3'
  'storage_optimized_l1'
  'storage_optimized_l2'
])
param searchSku string = 'basic'

// Each replica is a full search unit, billed as one. One replica serves an image library's queries;
// Azure AI Search's SLA needs 2 (queries) or 3 (queries and index updates).
@minValue(1)
@maxValue(12)
@description('Replicas of the search service: 2 for the query SLA, 3 for the query and update SLA.')
param searchReplicaCount int = 1

// azd maps AZURE_SEARCH_INDEX_NAME to this parameter (main.parameters.json), the name the output
// of the same value writes back, so switching the pinned model version is
// `azd env set AZURE_SEARCH_INDEX_NAME <new>` + `azd env set AZURE_VISION_MODEL_VERSION <new>`
// + `azd provision` (README, "Switching the pinned model version safely").
@minLength(2)
@maxLength(128)
@description('Name of the search index (lower-case letters, digits, - and _).')
param searchIndexName string = 'images'

// How the index's vector field is compressed (indexer/vector_compression.py): int8 'scalar' or
// 'binary' quantization, rescored with the original vectors, or 'none'. Empty: the index keeps the
// compression it was created with, and a new index gets the project's default (none). Like the
// pinned model version it is fixed when the index is created: change searchIndexName with it
// (README, "Changing the compression safely").
@description('Vector compression of the search index: none, scalar or binary; empty keeps what the index has (new: none).')
@allowed([
  ''
  'none'
  'scalar'
  'binary'
])
param searchVectorCompression string = ''

@description('Object id of the person (or CI service principal) deploying; gets data roles to run the backfill and create the index. Empty: no roles.')
param principalId string = ''

@description('Kind of principal behind principalId.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

// Flex Consumption accepts a maximum instance count from 40 to 1000 ("The lowest maximum instance
// count value is 40, and the highest supported maximum instance count value is 1,000", Azure
// Functions event-driven scaling, "Limit scale-out") and instance memory of 512, 2048 or 4096 MB
// (Flex Consumption plan hosting, "Instance memory"). This bounds scale, not the Vision call rate:
// pacing belongs to the Vision client (retries on 429 with Retry-After) and to host.json.
@minValue(40)
@maxValue(1000)
@description('Upper bound of Function instances (Flex Consumption: 40 to 1000).')
param functionMaximumInstanceCount int = 100

@allowed([
  512
  2048
  4096
])
@description('Memory of each Function instance in MB (Flex Consumption: 512, 2048 or 4096).')
param functionInstanceMemoryMB int = 2048

// The photos are the one copy the team keeps in Azure: geo-redundant by default. Standard_LRS or
// Standard_ZRS for a region without a paired region (GRS needs one; the pre-provision hook checks
// and names the fix; azd: AZURE_IMAGES_STORAGE_SKU).
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
@description('Replication of the images storage account.')
param imagesStorageSku string = 'Standard_GRS'

// Private network mode (azd: VNET_ENABLED=true), like the Flex Consumption quickstarts: a virtual
// network, the Function integrated into it, private endpoints for blob and queue storage (both
// accounts), Azure AI Search and Azure AI Vision, and public network access disabled on all of
// them. Off by default: the search index is then created, and photos uploaded, from a machine
// that reaches the virtual network (infra/README.md, "Private network mode").
@description('Private network mode: private endpoints, public network access disabled.')
param vnetEnabled bool = false

// How images reach the index (azd: INGESTION_MODE). push (default): the Function's blob trigger,
// fed by Event Grid, indexes each upload within seconds. pull: an Azure AI Search indexer reads
// the images container every 5 minutes with the search service's managed identity and calls the
// Function's /api/vectorize as its custom skill (schemas/indexer.json); the push triggers are
// disabled, blob soft delete is on so that the indexer sees deletions, and the search service may
// read the images container.
@allowed([
  'push'
  'pull'
])
@description('push: the Function indexes each upload (seconds); pull: a search indexer on a schedule (minutes).')
param ingestionMode string = 'push'

// The blob trigger (function index_image) binds to images/{name}; the container name is fixed so
// the trigger path, the Event Grid filter and the app setting cannot drift apart.
var imagesContainerName = 'images'
// The Function records images it can never index (corrupt, over a limit, refused by Vision) as
// one JSON blob each in this container of the images account (indexer.failures.FAILURES_CONTAINER).
var failuresContainerName = 'imgsearch-failures'
// Event Grid parks here, with its own managed identity, every blob event it could not deliver
// to the Function after its retry policy (app/eventsubscriptions.bicep).
var deadLetterContainerName = 'imgsearch-deadletter'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
// Storage account names: 3-24 lower-case letters and digits, globally unique.
var names = {
  resourceGroup: 'rg-${environmentName}'
  identity: 'id-func-${resourceToken}'
  hostStorage: 'stfn${resourceToken}'
  imagesStorage: 'stimg${resourceToken}'
  logAnalytics: 'log-${resourceToken}'
  appInsights: 'appi-${resourceToken}'
  plan: 'plan-${resourceToken}'
  functionApp: 'func-${resourceToken}'
  search: 'srch-${resourceToken}'
  vision: 'cv-${resourceToken}'
  systemTopic: 'evgt-img-${resourceToken}'
  vnet: 'vnet-${resourceToken}'
}
// Flex Consumption pulls the deployed package from this container of the host storage account.
var deploymentContainerName = 'app-package-${resourceToken}'

// Storage, Search and Vision take no traffic from the internet in private network mode.
var publicNetworkAccess = vnetEnabled ? 'Disabled' : 'Enabled'

// Regions of Vision accounts 2..N: visionAdditionalLocations in turn, else visionLocation.
var visionAdditionalPool = empty(visionAdditionalLocations) ? [visionLocation] : visionAdditionalLocations
var visionAdditionalRegions = [for i in range(0, visionCount - 1): visionAdditionalPool[i % length(visionAdditionalPool)]]

// The free tier allows 20 Vision transactions a minute; S1 up to 20 a second. The backfill's
// pace follows the tier (VISION_REQUESTS_PER_SECOND).
var visionRequestsPerSecond = visionSku == 'F0' ? '0.33' : '20'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: names.resourceGroup
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

// Host storage: AzureWebJobsStorage (keys, leases, blob-trigger receipts) and the Flex
// deployment package. Kept apart from the images so the Function's broad host-storage role never
// reaches the user's photos.
module hostStorage 'app/storage.bicep' = {
  name: 'host-storage'
  scope: rg
  params: {
    name: names.hostStorage
    location: location
    tags: tags
    // Host state and a deployment package that azd uploads again on every deploy. No soft delete
    // and no resource logs: the host's lease and receipt traffic would fill the workspace.
    skuName: 'Standard_LRS'
    publicNetworkAccess: publicNetworkAccess
    containerNames: [
      deploymentContainerName
    ]
  }
}

// Images storage: the container the team uploads photos to (its events drive the index), and
// the record of images that could not be indexed.
module imagesStorage 'app/storage.bicep' = {
  name: 'images-storage'
  scope: rg
  params: {
    name: names.imagesStorage
    location: location
    tags: tags
    skuName: imagesStorageSku
    publicNetworkAccess: publicNetworkAccess
    // The photos are the team's only copy: a deleted blob or container can be restored for 14
    // days, in both modes. In pull mode native blob soft delete is also how the indexer sees
    // deletions ("Change and delete detection using indexers for Azure Storage"; versioning stays
    // off, which that policy requires), and 14 days is well above its 5-minute schedule.
    blobSoftDeleteDays: 14
    containerSoftDeleteDays: 14
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
    containerNames: [
      imagesContainerName
      failuresContainerName
      deadLetterContainerName
    ]
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    location: location
    tags: tags
  }
}

module search 'app/search.bicep' = {
  name: 'search'
  scope: rg
  params: {
    name: names.search
    location: location
    tags: tags
    sku: searchSku
    replicaCount: searchReplicaCount
    publicNetworkAccess: publicNetworkAccess
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module vision 'app/vision.bicep' = {
  name: 'vision'
  scope: rg
  params: {
    name: names.vision
    location: visionLocation
    additionalLocations: visionAdditionalRegions
    tags: tags
    sku: visionSku
    publicNetworkAccess: publicNetworkAccess
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module eventGrid 'app/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    name: names.systemTopic
    location: location
    tags: tags
    storageAccountName: imagesStorage.outputs.name
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

// Private network mode only: the virtual network, the Function's integration subnet, and the
// private endpoints (with their private DNS zones) of both storage accounts, Search and Vision.
module network 'app/network.bicep' = if (vnetEnabled) {
  name: 'network'
  scope: rg
  params: {
    vnetName: names.vnet
    location: location
    tags: tags
    hostStorageName: hostStorage.outputs.name
    imagesStorageName: imagesStorage.outputs.name
    searchServiceName: search.outputs.name
    visionAccountName: vision.outputs.name
    additionalVisionAccountNames: vision.outputs.additionalNames
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    functionPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
    hostStorageName: hostStorage.outputs.name
    imagesStorageName: imagesStorage.outputs.name
    imagesContainerName: imagesContainerName
    failuresContainerName: failuresContainerName
    deadLetterContainerName: deadLetterContainerName
    eventGridPrincipalId: eventGrid.outputs.principalId
    searchServiceName: search.outputs.name
    visionAccountName: vision.outputs.name
    additionalVisionAccountNames: vision.outputs.additionalNames
    appInsightsName: monitoring.outputs.appInsightsName
    searchPrincipalId: ingestionMode == 'pull' ? search.outputs.principalId : ''
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    planName: names.plan
    name: names.functionApp
    location: location
    tags: tags
    identityName: identity.outputs.name
    hostStorageName: hostStorage.outputs.name
    deploymentContainerName: deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    imagesBlobServiceUri: imagesStorage.outputs.blobEndpoint
    imagesQueueServiceUri: imagesStorage.outputs.queueEndpoint
    imagesContainerName: imagesContainerName
    searchEndpoint: search.outputs.endpoint
    searchIndexName: searchIndexName
    searchVectorCompression: searchVectorCompression
    visionEndpoint: vision.outputs.endpoints
    visionModelVersion: visionModelVersion
    visionApiVersion: visionApiVersion
    visionRequestsPerSecond: visionRequestsPerSecond
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
    virtualNetworkSubnetId: vnetEnabled ? network.outputs.appSubnetId : ''
    ingestionMode: ingestionMode
  }
  // Start the host only once its identity can reach host storage, so the first start does not
  // fail on 403s while the role assignments are created.
  dependsOn: [
    rbac
  ]
}

// Outputs land in the azd environment; the hooks read them. None of them is a secret: endpoints,
// names and the identity's client id only.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_HOSTNAME string = functionApp.outputs.defaultHostName
output AZURE_FUNCTION_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_STORAGE_ACCOUNT_NAME string = imagesStorage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = imagesStorage.outputs.blobEndpoint
output AZURE_IMAGES_CONTAINER string = imagesContainerName
output AZURE_FAILURES_CONTAINER string = failuresContainerName
output AZURE_EVENTGRID_DEADLETTER_CONTAINER string = deadLetterContainerName
output AZURE_EVENTGRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.name
output AZURE_SEARCH_SERVICE_NAME string = search.outputs.name
output AZURE_SEARCH_ENDPOINT string = search.outputs.endpoint
output AZURE_SEARCH_INDEX_NAME string = searchIndexName
output AZURE_SEARCH_VECTOR_COMPRESSION string = searchVectorCompression
output AZURE_VISION_ACCOUNT_NAME string = vision.outputs.name
output AZURE_VISION_ENDPOINT string = vision.outputs.endpoints
output AZURE_VISION_LOCATION string = visionLocation
output AZURE_VISION_MODEL_VERSION string = visionModelVersion
output AZURE_VISION_API_VERSION string = visionApiVersion
output AZURE_VISION_REQUESTS_PER_SECOND string = visionRequestsPerSecond
output AZURE_VNET_ENABLED bool = vnetEnabled
output AZURE_INGESTION_MODE string = ingestionMode
// Where the search service calls the Function back: the index's Web API vectorizer (text queries
// sent to the search service) and, in pull mode, the indexer's skill (SEARCH_VECTORIZER_URI).
output AZURE_SEARCH_VECTORIZER_URI string = 'https://${functionApp.outputs.defaultHostName}/api/vectorize'
// The pull-mode data source connects as the search service's managed identity: ResourceId=<this>;
output AZURE_STORAGE_ACCOUNT_ID string = imagesStorage.outputs.id
