// Log Analytics + Application Insights. Local (key) authentication is disabled on both: the
// component ingests only telemetry signed with a Microsoft Entra token (the Function's identity,
// which holds Monitoring Metrics Publisher), and the workspace answers queries and takes
// ingestion only with Entra tokens, never with its shared keys.

param logAnalyticsName string
param appInsightsName string
param location string = resourceGroup().location
param tags object = {}

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
  }
}

// Names only: the connection string is read where it is used (function.bicep), never passed
// through an output.
output logAnalyticsName string = logAnalytics.name
// Where the diagnostic settings of Storage, Search, Vision and Event Grid send their logs.
output logAnalyticsId string = logAnalytics.id
output appInsightsName string = appInsights.name
