// Image search on Azure: a Flex Consumption Function that vectorizes every image uploaded to
// the `images` container with Azure AI Vision (multimodal embeddings) and upserts it into an
// Azure AI Search vector index; deleting the blob removes it from the index.
//
// Deploy with the Azure Developer CLI (recommended):
//   azd up
// azd fills main.parameters.json from its environment, runs infra/hooks/postprovision.* (creates
// the search index from schemas/), packages functions/ (infra/hooks/prepackage.* copies indexer/
// and schemas/ in) and, after deploying the code, runs infra/hooks/postdeploy.* (creates the
// Event Grid subscriptions, which need the Function's system keys).
//
// Deploy without azd: main.parameters.json holds azd placeholders (${...}) that the az CLI does
// not substitute, so give every one of these parameters an explicit value after the file
// (later --parameters win):
//   environmentName, location, principalId, principalType, visionLocation, visionModelVersion, searchSku
//   az deployment sub create --location <loc> --template-file infra/main.bicep \
//     --parameters infra/main.parameters.json \
//     --parameters environmentName=<env> location=<loc> \
//                  principalId=$(az ad signed-in-user show --query id -o tsv) principalType=User \
//                  visionLocation=<one of the allowed regions> visionModelVersion=2023-04-15 searchSku=basic
// then run the three hooks by hand with the deployment outputs exported under the same names
// azd would give them (see infra/hooks/*.sh), and deploy functions/ with Azure Functions Core Tools.

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
// in these regions (Azure AI Vision "image retrieval" how-to). Default: the primary location when
// it is one of them, else East US. Keep this list and the default's list identical.
@description('Region of the Azure AI Vision account: one of the regions that offer multimodal embeddings.')
@allowed([
  'eastus'
  'francecentral'
  'koreacentral'
  'northeurope'
  'southeastasia'
  'westeurope'
  'westus'
])
param visionLocation string = contains([
  'eastus'
  'francecentral'
  'koreacentral'
  'northeurope'
  'southeastasia'
  'westeurope'
  'westus'
], location) ? location : 'eastus'

@description('Vision pricing tier. F0 allows 20 calls a minute, S1 up to 20 calls a second.')
@allowed([
  'F0'
  'S1'
])
param visionSku string = 'S1'

// The index is pinned to exactly one model version (schemas/<version>.json); vectors of different
// versions are never mixed. Changing this on an existing index makes the post-provision hook fail.
@description('Vision multimodal embeddings model version the search index is pinned to.')
@allowed([
  '2023-04-15'
  '2022-04-11'
])
param visionModelVersion string = '2023-04-15'

@description('Vision REST API version used by the Function.')
param visionApiVersion string = '2024-02-01'

@description('Azure AI Search pricing tier.')
@allowed([
  'free'
  'basic'
  'standard'
  'standard2'
  'standard3'
  'storage_optimized_l1'
  'storage_optimized_l2'
])
param searchSku string = 'basic'

@minLength(2)
@maxLength(128)
@description('Name of the search index (lower-case letters, digits, - and _).')
param searchIndexName string = 'images'

@description('Object id of the person (or CI service principal) deploying; gets data roles to run the backfill and create the index. Empty: no roles.')
param principalId string = ''

@description('Kind of principal behind principalId.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Upper bound of Function instances. Lower it to keep bulk uploads under the Vision rate limit.')
param functionMaximumInstanceCount int = 100

@description('Memory of each Function instance in MB.')
param functionInstanceMemoryMB int = 2048

// The blob trigger (function index_image) binds to images/{name}; the container name is fixed so
// the trigger path, the Event Grid filter and the app setting cannot drift apart.
var imagesContainerName = 'images'
// The Function records images it can never index (corrupt, over a limit, refused by Vision) as
// one JSON blob each in this container of the images account (indexer.failures.FAILURES_CONTAINER).
var failuresContainerName = 'imgsearch-failures'

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
}
// Flex Consumption pulls the deployed package from this container of the host storage account.
var deploymentContainerName = 'app-package-${resourceToken}'

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
    containerNames: [
      imagesContainerName
      failuresContainerName
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
  }
}

module vision 'app/vision.bicep' = {
  name: 'vision'
  scope: rg
  params: {
    name: names.vision
    location: visionLocation
    tags: tags
    sku: visionSku
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
    searchServiceName: search.outputs.name
    visionAccountName: vision.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
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
    visionEndpoint: vision.outputs.endpoint
    visionModelVersion: visionModelVersion
    visionApiVersion: visionApiVersion
    visionRequestsPerSecond: visionRequestsPerSecond
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
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
output AZURE_EVENTGRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.name
output AZURE_SEARCH_SERVICE_NAME string = search.outputs.name
output AZURE_SEARCH_ENDPOINT string = search.outputs.endpoint
output AZURE_SEARCH_INDEX_NAME string = searchIndexName
output AZURE_VISION_ACCOUNT_NAME string = vision.outputs.name
output AZURE_VISION_ENDPOINT string = vision.outputs.endpoint
output AZURE_VISION_LOCATION string = visionLocation
output AZURE_VISION_MODEL_VERSION string = visionModelVersion
output AZURE_VISION_API_VERSION string = visionApiVersion
output AZURE_VISION_REQUESTS_PER_SECOND string = visionRequestsPerSecond
