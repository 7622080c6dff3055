"""Blob Storage clients built from ``Settings``, the way the Functions host builds its own.

The settings follow the Functions connection named ``IMAGES_STORAGE``, so the blob trigger's
binding and our SDK clients always point at the same account:

- ``IMAGES_STORAGE`` = a connection string: Azurite locally (``UseDevelopmentStorage=true``
  or an explicit ``BlobEndpoint=...``), or an account key (discouraged in Azure);
- ``IMAGES_STORAGE__blobServiceUri`` = ``https://<account>.blob.core.windows.net`` with a
  Microsoft Entra ID credential: ``DefaultAzureCredential`` picks the user-assigned managed
  identity named by ``AZURE_CLIENT_ID`` in Azure, and ``az login`` on a laptop.
"""

from __future__ import annotations

from typing import Any

from azure.storage.blob import BlobServiceClient, ContainerClient

from indexer.errors import ConfigurationError
from indexer.settings import Settings


def blob_service_client(settings: Settings, *, credential: Any = None) -> BlobServiceClient:
    """A ``BlobServiceClient`` for the images account. ``credential`` overrides the default
    Entra ID credential when ``IMAGES_STORAGE__blobServiceUri`` is used."""
    if settings.storage_connection_string:
        try:
            return BlobServiceClient.from_connection_string(settings.storage_connection_string)
        except ValueError as exc:
            raise ConfigurationError(f"IMAGES_STORAGE is not a valid storage connection string: {exc}") from None
    if settings.storage_blob_service_uri:
        uri = settings.storage_blob_service_uri
        if not uri.lower().startswith(("https://", "http://")):
            raise ConfigurationError(
                f"IMAGES_STORAGE__blobServiceUri must be a URL like https://<account>.blob.core.windows.net, "
                f"got {uri!r}")
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id or None)
        return BlobServiceClient(uri, credential=credential)
    raise ConfigurationError(
        "no Blob Storage account is configured: set IMAGES_STORAGE to a connection string "
        "(\"UseDevelopmentStorage=true\" for Azurite) or IMAGES_STORAGE__blobServiceUri to the account's "
        "blob endpoint (with a managed identity, AZURE_CLIENT_ID)")


def images_container_client(settings: Settings, *, service: BlobServiceClient | None = None,
                            credential: Any = None) -> ContainerClient:
    """The ``IMAGES_CONTAINER`` container of the images account."""
    service = service or blob_service_client(settings, credential=credential)
    return service.get_container_client(settings.images_container)
