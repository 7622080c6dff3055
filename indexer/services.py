"""The composition root: the one place that turns ``Settings`` into working objects.

The CLI, the Function app and the local ``watch`` runner all build their clients here, so a
setting means the same thing everywhere. Everything else takes its vectorizer, backend and
clients as arguments. Imports of the heavy or optional parts (torch for the offline model,
the HTTP clients, azure-identity) happen inside the functions that need them, so importing
this module stays cheap: the Azure Function imports it, and its cold start must not pay for
torch, FastAPI or uvicorn.

Blob Storage follows the Functions connection named ``IMAGES_STORAGE``, so the blob
trigger's binding and our SDK clients always point at the same account:

- ``IMAGES_STORAGE`` = a connection string: Azurite locally (``UseDevelopmentStorage=true``
  or an explicit ``BlobEndpoint=...``), or an account key (discouraged in Azure);
- ``IMAGES_STORAGE__blobServiceUri`` = ``https://<account>.blob.core.windows.net`` with a
  Microsoft Entra ID credential: ``DefaultAzureCredential`` picks the user-assigned managed
  identity named by ``AZURE_CLIENT_ID`` in Azure, and ``az login`` on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from indexer.documents import IndexPin
from indexer.errors import ConfigurationError, ImageSearchError, ModelVersionMismatchError
from indexer.model_versions import get_model_version
from indexer.schema import load_schema
from indexer.settings import Settings, pinned_model_version

if TYPE_CHECKING:  # pragma: no cover - typing only
    from azure.storage.blob import BlobServiceClient

    from indexer.backends.base import IndexBackend
    from indexer.indexing.failures import FailureLog
    from indexer.ratelimit import RateLimiter
    from indexer.sources.blob import BlobSource
    from indexer.vectorizers import Vectorizer

# --------------------------------------------------------------------------- credentials


def build_credential(key: str, settings: Settings) -> Any:
    """A key credential when a key is configured, else Microsoft Entra ID.

    ``DefaultAzureCredential`` picks the user-assigned managed identity named by
    ``AZURE_CLIENT_ID`` in Azure, and the developer's ``az login`` on a laptop.
    """
    if key:
        from azure.core.credentials import AzureKeyCredential

        return AzureKeyCredential(key)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id or None)


# --------------------------------------------------------------------------- the vectorizer


def index_model_version(settings: Settings) -> str:
    """The model version the index must be pinned to (``pinned_model_version``), with an
    error that names the setting to fix."""
    try:
        return pinned_model_version(settings)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"VISION_MODEL_VERSION={settings.vision_model_version!r} is not usable: {exc}"
        ) from None


def build_vectorizer(settings: Settings, *, paced: bool = False) -> Vectorizer:
    """The Vision REST client for ``VISION_ENDPOINT``, or the offline model in-process.

    Without an endpoint the offline model standing in for ``VISION_MODEL_VERSION`` is loaded
    (it reports its own model version name, which is what the index is pinned to).
    ``paced`` (bulk work) gives the client the ``VISION_REQUESTS_PER_SECOND`` limiter: pacing
    inside the client covers its retries too and slows every worker after a 429.
    """
    model_version = index_model_version(settings)
    if settings.uses_offline_model:
        try:
            from indexer.vectorizers.offline import get_offline_vectorizer  # torch: only now, only here
        except ModuleNotFoundError as exc:
            raise ConfigurationError(
                f"the offline model needs the [local] extra ({exc.name} is not installed): "
                f"pip install 'indexer[local]', or set VISION_ENDPOINT to use Azure AI Vision"
            ) from None
        return get_offline_vectorizer(model_version)
    from indexer.vectorizers.vision.client import VisionClient

    try:
        return VisionClient(
            settings.vision_endpoint,
            build_credential(settings.vision_key, settings),
            api_version=settings.vision_api_version,
            model_version=settings.vision_model_version,
            timeout=settings.vision_timeout_seconds,
            max_retries=settings.vision_max_retries,
            rate_limiter=build_rate_limiter(settings) if paced else None,
            word_check=settings.vision_word_check,
        )
    except ValueError as exc:
        raise ConfigurationError(f"VISION_ENDPOINT: {exc}") from None


def build_rate_limiter(settings: Settings) -> RateLimiter | None:
    """The pace of bulk Vision calls (``VISION_REQUESTS_PER_SECOND``); None for the offline
    model, which has no quota to respect."""
    if settings.uses_offline_model:
        return None
    from indexer.ratelimit import RateLimiter

    return RateLimiter(settings.vision_requests_per_second)


# --------------------------------------------------------------------------- the index


def build_backend(settings: Settings) -> IndexBackend:
    """Azure AI Search for ``SEARCH_ENDPOINT``, or the numpy index under ``IMGSEARCH_DATA_DIR``."""
    if settings.uses_numpy_index:
        from indexer.backends.numpy_index import NumpyIndex

        try:
            return NumpyIndex(settings.data_dir, settings.search_index_name)
        except ValueError as exc:
            raise ConfigurationError(f"SEARCH_INDEX_NAME / IMGSEARCH_DATA_DIR: {exc}") from None
    from indexer.backends.azure_search import AzureSearchBackend

    try:
        return AzureSearchBackend(
            settings.search_endpoint, settings.search_index_name, build_credential(settings.search_key, settings)
        )
    except ValueError as exc:
        raise ConfigurationError(f"SEARCH_ENDPOINT / SEARCH_INDEX_NAME: {exc}") from None


def ensure_index(settings: Settings, backend: IndexBackend) -> IndexPin:
    """Create the index from ``schemas/`` for the model version these settings pin, or verify
    the pin of the index that exists. The one "ensure the index" path of every edge.

    A mismatch names both versions and the settings that decide them; nothing is changed.
    """
    wanted = index_model_version(settings)
    try:
        return backend.ensure_index(load_schema(wanted))
    except ModelVersionMismatchError as exc:
        try:
            existing = backend.get_pin()
        except ImageSearchError:
            raise exc from None
        origin = (
            f"VISION_MODEL_VERSION={settings.vision_model_version} with no VISION_ENDPOINT, so the offline model"
            if settings.uses_offline_model
            else f"VISION_MODEL_VERSION={settings.vision_model_version} at VISION_ENDPOINT"
        )
        raise ModelVersionMismatchError(
            f"the {describe_backend(settings)} is pinned to model version {existing.model_version!r} "
            f"({existing.dimensions} dimensions), but the settings ask for {wanted!r} ({origin}); nothing was "
            f"changed. Use another index (--index-name / SEARCH_INDEX_NAME) or set VISION_MODEL_VERSION and "
            f"VISION_ENDPOINT to match the index.",
            expected=existing.model_version,
            actual=wanted,
        ) from None


# --------------------------------------------------------------------------- Blob Storage


def blob_service_client(settings: Settings, *, credential: Any = None) -> BlobServiceClient:
    """A ``BlobServiceClient`` for the images account. ``credential`` overrides the default
    Entra ID credential when ``IMAGES_STORAGE__blobServiceUri`` is used."""
    from azure.storage.blob import BlobServiceClient

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
                f"got {uri!r}"
            )
        if credential is None:
            credential = build_credential("", settings)
        return BlobServiceClient(uri, credential=credential)
    raise ConfigurationError(
        "no Blob Storage account is configured: set IMAGES_STORAGE to a connection string "
        '("UseDevelopmentStorage=true" for Azurite) or IMAGES_STORAGE__blobServiceUri to the account\'s '
        "blob endpoint (with a managed identity, AZURE_CLIENT_ID)"
    )


def blob_source(
    settings: Settings, *, container: str | None = None, prefix: str = "", service: BlobServiceClient | None = None
) -> BlobSource:
    """The ``BlobSource`` of ``container`` (default ``IMAGES_CONTAINER``), which must exist."""
    from indexer.sources.blob import BlobSource

    service = service or blob_service_client(settings)
    client = service.get_container_client(container or settings.images_container)
    if not client.exists():
        raise ConfigurationError(
            f"the container {client.container_name!r} does not exist at {client.url.rsplit('/', 1)[0]}; "
            f"check IMAGES_CONTAINER (or --container) and IMAGES_STORAGE"
        )
    return BlobSource(client, prefix=prefix, max_bytes=settings.max_image_bytes)


# --------------------------------------------------------------------------- what handlers share


@dataclass
class Services:
    """What every blob-event handler needs, built from ``Settings`` once per worker."""

    settings: Settings
    vectorizer: Vectorizer
    backend: IndexBackend
    blob_service: BlobServiceClient
    failures: FailureLog
    _sources: dict[str, BlobSource] = field(default_factory=dict, repr=False)

    def source(self, container: str) -> BlobSource:
        """The ``BlobSource`` of ``container`` with the configured size limit (cached)."""
        from indexer.sources.blob import BlobSource

        if container not in self._sources:
            self._sources[container] = BlobSource(
                self.blob_service.get_container_client(container), max_bytes=self.settings.max_image_bytes
            )
        return self._sources[container]


def build_services(
    settings: Settings,
    *,
    vectorizer: Vectorizer | None = None,
    backend: IndexBackend | None = None,
    blob_service: BlobServiceClient | None = None,
    failures: FailureLog | None = None,
) -> Services:
    """Build what is not given from ``settings``. Builds no network connection."""
    from indexer.indexing.failures import FAILURES_CONTAINER, BlobFailureLog

    blob_service = blob_service or blob_service_client(settings)
    if vectorizer is None:
        try:
            vectorizer = build_vectorizer(settings)
        except ImportError as exc:
            raise ConfigurationError(
                f"VISION_ENDPOINT is not set and the offline model cannot be loaded here ({exc}); the "
                f"Function app ships without it: set VISION_ENDPOINT to the Azure AI Vision endpoint "
                f"(or to a local vectorizer server)"
            ) from None
    return Services(
        settings=settings,
        vectorizer=vectorizer,
        backend=backend or build_backend(settings),
        blob_service=blob_service,
        failures=failures or BlobFailureLog(blob_service.get_container_client(FAILURES_CONTAINER)),
    )


# --------------------------------------------------------------------------- for people


def close_quietly(*resources: Any) -> None:
    """Close what has a ``close`` (HTTP sessions of the Vision and Search clients). The offline
    model has none: it is shared by the whole process and stays loaded."""
    for resource in resources:
        close = getattr(resource, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # closing is best effort at the end of a command  # noqa: BLE001
                pass


def describe_backend(settings: Settings) -> str:
    """Where the index lives, for people (never includes a key)."""
    if settings.uses_numpy_index:
        return f"local numpy index {settings.search_index_name!r} in {settings.data_dir.resolve()}"
    return f"Azure AI Search index {settings.search_index_name!r} at {settings.search_endpoint}"


def describe_vectorizer(settings: Settings) -> str:
    """Which vectorizer answers, for people (never includes a key)."""
    if settings.uses_offline_model:
        return f"offline model {index_model_version(settings)} in-process (no VISION_ENDPOINT set)"
    auth = "key" if settings.vision_key else "Microsoft Entra ID"
    return f"{settings.vision_endpoint} (model-version {settings.vision_model_version}, {auth} auth)"


def configured_model(settings: Settings) -> Any:
    """The registry entry of the model version these settings pin."""
    return get_model_version(index_model_version(settings))
