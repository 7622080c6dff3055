"""Stand-ins for the Azure services this project talks to, for offline development and tests
(the Azure AI Search double, Azurite for Blob Storage). Each is as strict as the service."""
