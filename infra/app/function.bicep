// The Function app on the Flex Consumption plan (FC1), Python 3.11, running as the user-assigned
// identity. Every connection is identity-based: no storage key, search key, Vision key or
// connection string appears in its settings. The app settings below are read by
// indexer.settings.Settings (VISION_*, SEARCH_*, IMAGES_*, AZURE_CLIENT_ID) and by the Functions
// host (AzureWebJobsStorage__*, APPLICATIONINSIGHTS_*); keep their names in step with
// indexer/settings.py and functions/local.settings.json.

param planName string
param name string
param location string = resourceGroup().location
param tags object = {}

@description('Name of the user-assigned identity the app runs as.')
param identityName string

@description('Host storage account (AzureWebJobsStorage and the deployment package).')
param hostStorageName string
param deploymentContainerName string

param appInsightsName string

param imagesBlobServiceUri string
param imagesQueueServiceUri string
param imagesContainerName string

param searchEndpoint string
param searchIndexName string

param visionEndpoint string
param visionModelVersion string
param visionApiVersion string
param visionRequestsPerSecond string

param maximumInstanceCount int = 100
param instanceMemoryMB int = 2048

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: identityName
}

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    // Linux
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd finds the deployment target of service `api` (azure.yaml) by this tag.
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

var appSettings = {
  // Host storage through the identity (Functions "connecting to host storage with an identity").
  AzureWebJobsStorage__blobServiceUri: hostStorage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: hostStorage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId

  // The connection named IMAGES_STORAGE: the blob trigger (index_image) reads blobs through the
  // blob service and parks poison messages in the queue service of the images account; the
  // indexer's blob source reads the same settings.
  IMAGES_STORAGE__blobServiceUri: imagesBlobServiceUri
  IMAGES_STORAGE__queueServiceUri: imagesQueueServiceUri
  IMAGES_STORAGE__credential: 'managedidentity'
  IMAGES_STORAGE__clientId: identity.properties.clientId
  IMAGES_CONTAINER: imagesContainerName

  // azure-identity's DefaultAzureCredential picks the user-assigned identity by this client id.
  AZURE_CLIENT_ID: identity.properties.clientId

  VISION_ENDPOINT: visionEndpoint
  VISION_MODEL_VERSION: visionModelVersion
  VISION_API_VERSION: visionApiVersion
  VISION_REQUESTS_PER_SECOND: visionRequestsPerSecond

  SEARCH_ENDPOINT: searchEndpoint
  SEARCH_INDEX_NAME: searchIndexName

  // Application Insights. The connection string is the one setting the host needs to find the
  // resource. It is not a secret: it holds the resource's instrumentation key and ingestion
  // endpoints, which Microsoft documents as identifiers, not security keys ("Connection strings in
  // Application Insights"). It grants nothing here either: the component has DisableLocalAuth, so
  // the ingestion endpoint accepts only telemetry signed with an Entra token, which the host gets
  // for the identity named in APPLICATIONINSIGHTS_AUTHENTICATION_STRING (Monitoring Metrics
  // Publisher, rbac.bicep). It is read from the resource here and never passed through an output.
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identity.properties.clientId}'
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: appSettings
}

output id string = site.id
output name string = site.name
// New apps may get a unique default host name (<name>-<hash>.<region>.azurewebsites.net); the
// Event Grid webhooks must use this value, not <name>.azurewebsites.net.
output defaultHostName string = site.properties.defaultHostName
