// The Function app on the Flex Consumption plan (FC1), Python 3.11, running as the user-assigned
// identity. Every connection is identity-based: no storage key, search key, Vision key or
// connection string appears in its settings. The app settings below are read by
// indexer.settings.Settings (VISION_*, SEARCH_*, IMAGES_*, AZURE_CLIENT_ID) and by the Functions
// host (AzureWebJobsStorage__*, APPLICATIONINSIGHTS_*); keep their names in step with
// indexer/settings.py and functions/local.settings.example.json.

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
// none, scalar or binary; empty: the index keeps its own (indexer/vector_compression.py).
param searchVectorCompression string

param visionEndpoint string
param visionModelVersion string
param visionApiVersion string
param visionRequestsPerSecond string

// Flex Consumption bounds (main.bicep names the sources): 40 to 1000 instances; 512, 2048 or
// 4096 MB each.
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Subnet the app is integrated into (private network mode); empty: none.')
param virtualNetworkSubnetId string = ''

@allowed([
  'push'
  'pull'
])
@description('push: the blob trigger and the BlobDeleted handler index uploads; pull: they are disabled (an indexer does it).')
param ingestionMode string = 'push'

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
  // checkov:skip=CKV_AZURE_225: zone redundancy is a per-region option of Flex Consumption; asking for it fails the deployment in regions without it
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  // reserved: true makes it a Linux plan, the only kind Flex Consumption offers.
  properties: {
    reserved: true
  }
}

// checkov findings on the site, skipped inside it (one check per comment line):
// - public inbound (222) and no client certificates (17): Event Grid delivers blob events to the
//   webhooks over the public endpoint, authorized by host system keys, and presents no certificate;
// - FTP (78): FTP publishing needs basic credentials, which the ftp and scm policies below turn off;
// - HTTP/2 (18, 67): a client performance option, not a control; the callers speak HTTP/1.1;
// - failover minimum (212) and health check (213): Flex Consumption scales each function from
//   zero on events; a minimum would bill idle always-ready instances, a probe has nothing to check.
resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Event Grid reaches the webhooks through the public endpoint (HTTPS only, TLS 1.2, host keys), in both network modes
  // checkov:skip=CKV_AZURE_17: Event Grid presents no client certificate; callers authenticate with host or function keys
  // checkov:skip=CKV_AZURE_78: FTP needs basic publishing credentials, which ftpBasicAuth and scmBasicAuth below disable
  // checkov:skip=CKV_AZURE_18: HTTP/2 is a performance option, not a control; the callers speak HTTP/1.1 over HTTPS
  name: name
  // checkov:skip=CKV_AZURE_67: the Function-app form of CKV_AZURE_18, same reason
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero per function; a failover minimum bills idle instances
  // checkov:skip=CKV_AZURE_213: a health-check path has nothing to probe on instances that exist only while events arrive
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
    // Private network mode: outbound calls to storage, Search and Vision go through this subnet
    // and their private endpoints.
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
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

// Application Insights. APPLICATIONINSIGHTS_CONNECTION_STRING is the one setting the host needs to
// find the resource. It is not a secret: it holds the resource's instrumentation key and ingestion
// endpoints, which Microsoft documents as identifiers, not security keys ("Connection strings in
// Application Insights"). It grants nothing here either: the component has DisableLocalAuth, so
// the ingestion endpoint accepts only telemetry signed with an Entra token, which the host gets
// for the identity named in APPLICATIONINSIGHTS_AUTHENTICATION_STRING (Monitoring Metrics
// Publisher, rbac.bicep). It is read from the resource here and never passed through an output.
// (checkov's Bicep parser cannot read five or more comment lines in a row inside an object, so
// long notes live above the object they describe.)
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
  SEARCH_VECTOR_COMPRESSION: searchVectorCompression
  // This app's /api/vectorize: the index's Web API vectorizer and the pull-mode skill call it.
  SEARCH_VECTORIZER_URI: 'https://${site.properties.defaultHostName}/api/vectorize'
  INGESTION_MODE: ingestionMode
  // Pull mode: an Azure AI Search indexer indexes the container; the push functions stay off
  // ("How to disable functions in Azure Functions": AzureWebJobs.<name>.Disabled).
  'AzureWebJobs.index_image.Disabled': ingestionMode == 'pull' ? 'true' : 'false'
  'AzureWebJobs.remove_image.Disabled': ingestionMode == 'pull' ? 'true' : 'false'

  // Application Insights: see the note above this variable.
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identity.properties.clientId}'
}

// checkov reads every sites/config resource as the web config; this one is appsettings, which
// holds only the settings above, so the web-config checks skipped inside it do not apply to it.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: appsettings, not the web config (authentication settings)
  // checkov:skip=CKV_AZURE_63: appsettings, not the web config (HTTP logging)
  // checkov:skip=CKV_AZURE_65: appsettings, not the web config (detailed error messages)
  // checkov:skip=CKV_AZURE_66: appsettings, not the web config (failed request tracing)
  parent: site
  // checkov:skip=CKV_AZURE_80: appsettings, not the web config (.NET Framework version; this is Python)
  // checkov:skip=CKV_AZURE_88: appsettings, not the web config (Azure Files mounts; Flex Consumption has no content share)
  // checkov:skip=CKV_AZURE_222: appsettings, not the web config (public network access; see the site)
  name: 'appsettings'
  properties: appSettings
}

// No publishing with a user name and password: FTP and SCM (Kudu, zip deploy) basic
// authentication are off, so deployment goes through Microsoft Entra ID only, as azd deploys.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = site.id
output name string = site.name
// New apps may get a unique default host name (<name>-<hash>.<region>.azurewebsites.net); the
// Event Grid webhooks must use this value, not <name>.azurewebsites.net.
output defaultHostName string = site.properties.defaultHostName
