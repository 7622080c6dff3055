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

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from indexer.call_log import log_response
from indexer.documents import IndexPin
from indexer.errors import ConfigurationError, ImageSearchError, ModelVersionMismatchError, ServiceError
from indexer.model_versions import answers_for, get_model_version
from indexer.schema import IndexSchema, PullDefinitions, VectorizerEndpoint, load_pull_definitions, load_schema
from indexer.settings import Settings, pinned_model_version

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from azure.storage.blob import BlobServiceClient

    from indexer.backends.azure_search.pull import AzureSearchPull
    from indexer.backends.base import IndexBackend
    from indexer.indexing.deferrals import DeferralQueue
    from indexer.indexing.failures import FailureLog
    from indexer.ratelimit import RateLimiter
    from indexer.sources.blob import BlobSource
    from indexer.vectorizers import Vectorizer

# What every Azure SDK client gets: a service that does not answer fails in seconds, not in
# the minute and a half of the SDKs' default retries (the host retries a blob event anyway,
# and a person at a terminal wants to hear about it), and -v logs each call (call_log).
SDK_CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 10,
    "retry_total": 3,
    "retry_backoff_factor": 0.5,
    "raw_response_hook": log_response,
}


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

    Several endpoints (comma-separated) make a ``VisionPool``: one client per resource, each
    with its own pace and backoff; bulk work spreads over them, a single call takes the first
    healthy one.
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

    endpoints, keys = settings.vision_endpoints, settings.vision_keys
    if keys and len(keys) != len(endpoints):
        raise ConfigurationError(
            f"VISION_KEY holds {len(keys)} key(s) for {len(endpoints)} endpoint(s) in VISION_ENDPOINT: give one key "
            f"per endpoint, in the same order (comma-separated), or none to use Microsoft Entra ID"
        )
    if len(set(endpoints)) != len(endpoints):
        raise ConfigurationError("VISION_ENDPOINT names the same endpoint twice: each Vision resource once")
    credential = None if keys else build_credential("", settings)  # one Entra ID credential for all
    clients = []
    try:
        for position, endpoint in enumerate(endpoints):
            clients.append(
                VisionClient(
                    endpoint,
                    build_credential(keys[position], settings) if keys else credential,
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
    """The pace of bulk Vision calls for one resource (``VISION_REQUESTS_PER_SECOND``), adaptive:
    it paces a little under the limit and slows down on a 429 (``indexer.ratelimit``). None for
    the offline model, which has no quota to respect."""
    if settings.uses_offline_model:
        return None
    from indexer.ratelimit import RateLimiter

    return RateLimiter(settings.vision_requests_per_second, adaptive=True)


# --------------------------------------------------------------------------- the index


def build_backend(settings: Settings) -> IndexBackend:
    """Azure AI Search for ``SEARCH_ENDPOINT``, or the numpy index under ``IMGSEARCH_DATA_DIR``."""
    if settings.uses_numpy_index:
        from indexer.backends.numpy_index import NumpyIndex

        if settings.data_dir.exists() and not settings.data_dir.is_dir():
            raise ConfigurationError(
                f"IMGSEARCH_DATA_DIR (or --data-dir) must be a folder; {settings.data_dir} is a file"
            )

        try:
            return NumpyIndex(settings.data_dir, settings.search_index_name)
        except ValueError as exc:
            raise ConfigurationError(f"SEARCH_INDEX_NAME / IMGSEARCH_DATA_DIR: {exc}") from None
    from indexer.backends.azure_search import AzureSearchBackend

    try:
        return AzureSearchBackend(
            settings.search_endpoint,
            settings.search_index_name,
            build_credential(settings.search_key, settings),
            **SDK_CLIENT_OPTIONS,
        )
    except ValueError as exc:
        raise ConfigurationError(f"SEARCH_ENDPOINT / SEARCH_INDEX_NAME: {exc}") from None


# A query every model answers; its vector tells the model version and length an endpoint
# gives (one Vision transaction per ensure-index).
PROBE_TEXT = "a photo"


def vectorizer_endpoint(settings: Settings) -> VectorizerEndpoint | None:
    """Where Azure AI Search calls this project back (``SEARCH_VECTORIZER_URI``, with the key
    and Entra resource the settings give), or None when no URI is set."""
    uri = settings.search_vectorizer_uri.strip()
    if not uri:
        return None
    if not uri.lower().startswith(("https://", "http://")):
        raise ConfigurationError(
            f"SEARCH_VECTORIZER_URI must be the URL of the vectorize endpoint, e.g. "
            f"https://<function-app>.azurewebsites.net/api/vectorize, got {uri!r}"
        )
    return VectorizerEndpoint(
        uri=uri, key=settings.search_vectorizer_key, auth_resource_id=settings.search_vectorizer_auth_resource_id
    )


def wanted_schema(settings: Settings, vectorizer: Vectorizer | None = None) -> IndexSchema:
    """The schema of the index these settings must use, with its Web API vectorizer pointed at
    ``SEARCH_VECTORIZER_URI`` when that is set (``pinned_schema`` has the rest)."""
    return pinned_schema(settings, vectorizer).with_vectorizer(vectorizer_endpoint(settings))


def pinned_schema(settings: Settings, vectorizer: Vectorizer | None = None) -> IndexSchema:
    """The schema of the index these settings must use.

    The version *requested* is configuration (``VISION_MODEL_VERSION``); the version *pinned*
    is the one the vectorizer *reports*. Without ``VISION_ENDPOINT`` that is the embedded
    offline model standing in for the request, known without asking. An Azure endpoint
    answers with the version requested. Any other endpoint (the local Vision stand-in) is
    asked once: the stand-in answers with its offline model's own name (and, if it pads,
    Azure's 1024 dimensions), so the same settings work in both worlds while their vectors
    never share an index.
    """
    pinned_here = index_model_version(settings)  # also names VISION_MODEL_VERSION when it is wrong
    requested = get_model_version(settings.vision_model_version)
    if settings.uses_offline_model:
        return load_schema(pinned_here)
    if all(is_azure_endpoint(endpoint) for endpoint in settings.vision_endpoints):
        # Azure answers with the version asked for (and every write checks it again), so the
        # provisioning hook needs no Vision call, nor the role to make one.
        return load_schema(requested.name)
    own = vectorizer is None
    vectorizer = vectorizer or build_vectorizer(settings)
    try:
        probe = vectorizer.vectorize_text(PROBE_TEXT)
    finally:
        if own:
            close_quietly(vectorizer)
    if not answers_for(probe.model_version, requested.name):
        raise ModelVersionMismatchError(
            f"VISION_ENDPOINT {settings.vision_endpoints[0]} answers VISION_MODEL_VERSION={requested.name} with "
            f"vectors of model version {probe.model_version!r}, which is neither that version nor its offline "
            f"stand-in; check the endpoint and the model version",
            expected=requested.name,
            actual=probe.model_version,
        )
    return load_schema(probe.model_version).with_dimensions(probe.dimensions)


def is_azure_endpoint(endpoint: str) -> bool:
    """An Azure AI services endpoint: a custom subdomain (``<name>.cognitiveservices.azure.com``)
    or a regional one (``<region>.api.cognitive.microsoft.com``)."""
    host = (urlsplit(endpoint).hostname or "").lower()
    return host.endswith((".cognitiveservices.azure.com", ".api.cognitive.microsoft.com"))


def ensure_index(
    settings: Settings, backend: IndexBackend, *, vectorizer: Vectorizer | None = None, repin: bool = False
) -> IndexPin:
    """Create the index from ``schemas/`` for the model version these settings pin (see
    ``wanted_schema``), or verify the pin of the index that exists. The one "ensure the
    index" path of every edge.

    A mismatch names both versions and the settings that decide them; nothing is changed.
    With ``repin`` an index pinned to another version is deleted and created again with the
    new pin, but only while it holds no documents: vectors are never thrown away.
    """
    schema = wanted_schema(settings, vectorizer)
    try:
        return backend.ensure_index(schema)
    except ModelVersionMismatchError as exc:
        try:
            existing = backend.get_pin()
            documents = backend.count()
        except ImageSearchError:
            raise exc from None
        if repin and documents == 0:
            log.warning("re-pinning the empty %s from %s to %s", describe_backend(settings), existing, schema.pin)
            backend.delete_index()
            return backend.ensure_index(schema)
        origin = (
            f"VISION_MODEL_VERSION={settings.vision_model_version} with no VISION_ENDPOINT, so the offline model"
            if settings.uses_offline_model
            else f"VISION_MODEL_VERSION={settings.vision_model_version} as answered by {settings.vision_endpoint}"
        )
        if documents == 0:
            remedy = "It holds no documents: `imgsearch ensure-index --repin` re-pins it."
        else:
            remedy = (
                f"It holds {documents} documents, so it is never re-pinned: use another index (--index-name / "
                f"SEARCH_INDEX_NAME) or settings that match it."
            )
        raise ModelVersionMismatchError(
            f"the {describe_backend(settings)} is pinned to model version {existing.model_version!r} "
            f"({existing.dimensions} dimensions), but the settings give {schema.pin.model_version!r} "
            f"({schema.pin.dimensions} dimensions; {origin}); nothing was changed. {remedy}",
            expected=existing.model_version,
            actual=schema.pin.model_version,
        ) from None


# --------------------------------------------------------------------------- pull mode


def pull_definitions(settings: Settings) -> PullDefinitions:
    """The data source, skillset and indexer of ``schemas/`` for these settings: the images
    container (read with the account's connection string, or with the search service's managed
    identity through ``IMAGES_STORAGE_RESOURCE_ID``) and ``SEARCH_VECTORIZER_URI`` as the skill."""
    if settings.uses_numpy_index:
        raise ConfigurationError(
            "pull mode runs in Azure AI Search: set SEARCH_ENDPOINT (the local numpy index has no indexers)"
        )
    endpoint = vectorizer_endpoint(settings)
    if endpoint is None:
        raise ConfigurationError(
            "pull mode needs SEARCH_VECTORIZER_URI, the vectorize endpoint the indexer's skill calls "
            "(https://<function-app>.azurewebsites.net/api/vectorize, or `imgsearch serve`'s /api/vectorize)"
        )
    if settings.storage_connection_string:
        connection = settings.storage_connection_string
    elif settings.images_storage_resource_id:
        connection = f"ResourceId={settings.images_storage_resource_id.strip()};"
    else:
        raise ConfigurationError(
            "pull mode needs the images account for the indexer's data source: IMAGES_STORAGE_RESOURCE_ID (its "
            "resource id; the search service reads it with its managed identity) or IMAGES_STORAGE (a connection "
            "string)"
        )
    values = {
        "SEARCH_INDEX_NAME": settings.search_index_name,
        "IMAGES_STORAGE_CONNECTION": connection,
        "IMAGES_CONTAINER": settings.images_container,
        "SEARCH_VECTORIZER_URI": endpoint.uri,
    }
    return load_pull_definitions(values, vectorize=endpoint)


def build_pull(settings: Settings) -> AzureSearchPull:
    """The pull-mode client of ``SEARCH_ENDPOINT``."""
    from indexer.backends.azure_search.pull import AzureSearchPull

    if settings.uses_numpy_index:
        raise ConfigurationError("pull mode runs in Azure AI Search: set SEARCH_ENDPOINT")
    try:
        return AzureSearchPull(
            settings.search_endpoint, build_credential(settings.search_key, settings), **SDK_CLIENT_OPTIONS
        )
    except ValueError as exc:
        raise ConfigurationError(f"SEARCH_ENDPOINT: {exc}") from None


def ensure_indexer(settings: Settings, backend: IndexBackend, pull: AzureSearchPull) -> tuple[IndexPin, str]:
    """Pull mode's one set-up path: the pinned index with its vectorizer (``ensure_index``),
    then the data source, skillset and indexer. Returns the pin and the indexer's name."""
    definitions = pull_definitions(settings)  # every setting checked before anything is created
    pin = ensure_index(settings, backend)
    pull.ensure(definitions)
    return pin, str(definitions.indexer["name"])


def indexer_name(settings: Settings) -> str:
    """The pull-mode indexer of ``SEARCH_INDEX_NAME`` (``schemas/indexer.json``)."""
    from indexer.schema import pull_indexer_name

    return pull_indexer_name(settings.search_index_name)


# --------------------------------------------------------------------------- Blob Storage


def blob_service_client(settings: Settings, *, credential: Any = None) -> BlobServiceClient:
    """A ``BlobServiceClient`` for the images account. ``credential`` overrides the default
    Entra ID credential when ``IMAGES_STORAGE__blobServiceUri`` is used."""
    from azure.storage.blob import BlobServiceClient, ExponentialRetry

    options = {
        **SDK_CLIENT_OPTIONS,
        "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2),
    }
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
        if credential is None:
            credential = build_credential("", settings)
        return BlobServiceClient(uri, credential=credential, **options)
    raise ConfigurationError(
        "no Blob Storage account is configured: set IMAGES_STORAGE to a connection string "
        '("UseDevelopmentStorage=true" for Azurite) or IMAGES_STORAGE__blobServiceUri to the account\'s '
        "blob endpoint (with a managed identity, AZURE_CLIENT_ID)"
    )


def deferral_queue(settings: Settings, *, credential: Any = None) -> DeferralQueue | None:
    """The ``imgsearch-deferred`` queue of the images account (``indexing.deferrals``), or None
    when no queue service is configured: a connection string naming a ``BlobEndpoint`` but no
    ``QueueEndpoint`` (Azurite's blob service alone), or no storage at all. Builds no connection."""
    from indexer.indexing.deferrals import DEFERRED_QUEUE, StorageQueueDeferrals

    options = {**SDK_CLIENT_OPTIONS}
    connection = settings.storage_connection_string
    if connection:
        parts = {k.strip().lower() for k, _, _ in (p.partition("=") for p in connection.split(";")) if k.strip()}
        if "blobendpoint" in parts and "queueendpoint" not in parts:
            return None
        from azure.storage.queue import QueueClient, TextBase64EncodePolicy

        try:
            client = QueueClient.from_connection_string(
                connection, DEFERRED_QUEUE, message_encode_policy=TextBase64EncodePolicy(), **options
            )
        except ValueError as exc:
            raise ConfigurationError(f"IMAGES_STORAGE is not a valid storage connection string: {exc}") from None
        return StorageQueueDeferrals(client)
    uri = settings.storage_queue_service_uri or settings.storage_blob_service_uri.replace(".blob.", ".queue.", 1)
    if not uri or uri == settings.storage_blob_service_uri:
        return None
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    client = QueueClient(
        uri,
        DEFERRED_QUEUE,
        credential=credential or build_credential("", settings),
        message_encode_policy=TextBase64EncodePolicy(),
        **options,
    )
    return StorageQueueDeferrals(client)


def blob_source(
    settings: Settings, *, container: str | None = None, prefix: str = "", service: BlobServiceClient | None = None
) -> BlobSource:
    """The ``BlobSource`` of ``container`` (default ``IMAGES_CONTAINER``), which must exist."""
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
    if not exists:
        raise ConfigurationError(
            f"the container {client.container_name!r} does not exist at {client.url.rsplit('/', 1)[0]}; "
            f"check IMAGES_CONTAINER (or --container) and IMAGES_STORAGE"
        )
    return BlobSource(client, prefix=prefix, max_bytes=settings.max_image_bytes)


# --------------------------------------------------------------------------- what handlers share


@dataclass
class Services:
    """What every handler needs, built from ``Settings`` once per worker. ``blob_service`` and
    ``failures`` are None where no storage account is configured (``imgsearch serve`` without
    ``IMAGES_STORAGE``: the search endpoint needs none)."""

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
    """Build what is not given from ``settings``. Builds no network connection. With
    ``storage=False`` a missing storage account is allowed (``blob_service`` stays None)."""
    from indexer.indexing.failures import FAILURES_CONTAINER, BlobFailureLog

    if blob_service is None and (storage or settings.storage_connection_string or settings.storage_blob_service_uri):
        blob_service = blob_service_client(settings)
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
        failures=failures
        or (None if blob_service is None else BlobFailureLog(blob_service.get_container_client(FAILURES_CONTAINER))),
        # The queue shares the blob client's identity (one token cache, not a second credential).
        deferrals=deferrals
        or (None if blob_service is None else deferral_queue(settings, credential=blob_service.credential)),
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
    endpoints = settings.vision_endpoints
    where = endpoints[0] if len(endpoints) == 1 else f"{len(endpoints)} resources ({', '.join(endpoints)})"
    return f"{where} (model-version {settings.vision_model_version}, {auth} auth)"


def configured_model(settings: Settings) -> Any:
    """The registry entry of the model version these settings pin."""
    return get_model_version(index_model_version(settings))
