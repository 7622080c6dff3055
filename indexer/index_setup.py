"""Setting up the index: the schema and pin these settings ask for, creating the index or
checking its pin (and re-pinning an empty one), and pull mode's data source, skillset and
indexer. Every edge that creates or checks the index does it here, with the same messages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from indexer.documents import IndexPin
from indexer.errors import (
    ConfigurationError,
    ImageSearchError,
    ModelVersionMismatchError,
    VectorCompressionMismatchError,
)
from indexer.model_versions import ModelVersion, answers_for, get_model_version
from indexer.schema import (
    IndexSchema,
    PullDefinitions,
    VectorizerEndpoint,
    load_pull_definitions,
    load_schema,
    pull_indexer_name,
)
from indexer.services import build_vectorizer, close_quietly
from indexer.settings import Settings, pinned_model_version
from indexer.vector_compression import COMPRESSIONS, check_compression

if TYPE_CHECKING:  # pragma: no cover - typing only
    from indexer.backends.azure_search.pull import AzureSearchPull
    from indexer.backends.base import IndexBackend
    from indexer.vectorizers import Vectorizer

log = logging.getLogger(__name__)

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
    """The schema of the index these settings must use: compressed as ``SEARCH_VECTOR_COMPRESSION``
    says, with its Web API vectorizer pointed at ``SEARCH_VECTORIZER_URI`` when that is set
    (``pinned_schema`` has the rest)."""
    pinned = pinned_schema(settings, vectorizer)
    return pinned.with_compression(settings.vector_compression).with_vectorizer(vectorizer_endpoint(settings))


def pinned_schema(settings: Settings, vectorizer: Vectorizer | None = None) -> IndexSchema:
    """The schema of the index these settings must use.

    The version *requested* is configuration (``VISION_MODEL_VERSION``); the version *pinned*
    is the one the vectorizer *reports*. Without ``VISION_ENDPOINT`` that is the embedded
    offline model standing in for the request, known without asking. An Azure endpoint
    answers with the version requested. Any other endpoint (the local Vision stand-in) is
    asked once (with ``vectorizer``, or one built for it): the stand-in answers with its
    offline model's own name (and, if it pads, Azure's 1024 dimensions), so the same settings
    work in both worlds while their vectors never share an index.
    """
    pinned_here = pinned_model_version(settings)  # also names VISION_MODEL_VERSION when it is wrong
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
    except VectorCompressionMismatchError as exc:
        return _ensure_other_compression(settings, backend, schema, exc, repin=repin)
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
        existing.check_pin(schema.pin, where=f"the {describe_backend(settings)}", remedy=_remedy(settings, documents))
        raise  # the same pin: the index is inconsistent in some other way, which the backend's error names


def _ensure_other_compression(
    settings: Settings, backend: IndexBackend, schema: IndexSchema, exc: VectorCompressionMismatchError, *, repin: bool
) -> IndexPin:
    """An index whose vectors are compressed otherwise than these settings' compression: kept
    as it is when ``SEARCH_VECTOR_COMPRESSION`` is unset (the default is for new indexes),
    re-created when ``repin`` and it is empty, else reported with the way out."""
    have, where = str(exc.actual), describe_backend(settings)
    if settings.search_vector_compression is None and have in COMPRESSIONS:
        log.info("the %s stores its vectors %s; SEARCH_VECTOR_COMPRESSION is unset, so it stays so", where, have)
        return backend.ensure_index(_compressed_as(schema, settings, have))
    documents = backend.count()
    if repin and documents == 0:
        log.warning("re-creating the empty %s with %s compression instead of %s", where, schema.compression, have)
        backend.delete_index()
        return backend.ensure_index(schema)
    if documents == 0:
        way_out = "It holds no documents: `imgsearch ensure-index --repin` re-creates it as asked."
    else:
        way_out = (
            f"It holds {documents} documents, so it is never re-created: set SEARCH_VECTOR_COMPRESSION={have} to use "
            f"it as it is, or create a new index (--index-name / SEARCH_INDEX_NAME), backfill it and switch to it "
            f'(README, "Changing the compression safely").'
        )
    check_compression(
        have,
        schema.compression,
        where=f"the {where}",
        remedy=f"SEARCH_VECTOR_COMPRESSION={settings.search_vector_compression} asks for the latter; nothing was "
        f"changed. {way_out}",
    )
    raise exc  # pragma: no cover - check_compression raised: have differs from the schema's


def _compressed_as(schema: IndexSchema, settings: Settings, compression: str) -> IndexSchema:
    """``schema`` compressed as ``compression`` instead (pin and vectorizer unchanged)."""
    pinned = load_schema(schema.pin.model_version).with_dimensions(schema.pin.dimensions)
    return pinned.with_compression(compression).with_vectorizer(vectorizer_endpoint(settings))


def _remedy(settings: Settings, documents: int) -> str:
    """Where the pin these settings ask for comes from, and the way out of a mismatch."""
    origin = (
        f"VISION_MODEL_VERSION={settings.vision_model_version} with no VISION_ENDPOINT, so the offline model"
        if settings.uses_offline_model
        else f"VISION_MODEL_VERSION={settings.vision_model_version} as answered by {settings.vision_endpoint}"
    )
    if documents == 0:
        way_out = "It holds no documents: `imgsearch ensure-index --repin` re-pins it."
    else:
        way_out = (
            f"It holds {documents} documents, so it is never re-pinned: use another index (--index-name / "
            f"SEARCH_INDEX_NAME) or settings that match it."
        )
    return f"the settings ask for the latter ({origin}); nothing was changed. {way_out}"


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


def ensure_indexer(settings: Settings, backend: IndexBackend, pull: AzureSearchPull) -> tuple[IndexPin, str]:
    """Pull mode's one set-up path: the pinned index with its vectorizer (``ensure_index``),
    then the data source, skillset and indexer. Returns the pin and the indexer's name."""
    definitions = pull_definitions(settings)  # every setting checked before anything is created
    pin = ensure_index(settings, backend)
    pull.ensure(definitions)
    return pin, str(definitions.indexer["name"])


def indexer_name(settings: Settings) -> str:
    """The pull-mode indexer of ``SEARCH_INDEX_NAME`` (``schemas/indexer.json``)."""
    return pull_indexer_name(settings.search_index_name)


def describe_backend(settings: Settings) -> str:
    """Where the index lives, for people (never includes a key)."""
    if settings.uses_numpy_index:
        return f"local numpy index {settings.search_index_name!r} in {settings.data_dir.resolve()}"
    return f"Azure AI Search index {settings.search_index_name!r} at {settings.search_endpoint}"


def describe_vectorizer(settings: Settings) -> str:
    """Which vectorizer answers, for people (never includes a key)."""
    if settings.uses_offline_model:
        return f"offline model {pinned_model_version(settings)} in-process (no VISION_ENDPOINT set)"
    auth = "key" if settings.vision_key else "Microsoft Entra ID"
    endpoints = settings.vision_endpoints
    where = endpoints[0] if len(endpoints) == 1 else f"{len(endpoints)} resources ({', '.join(endpoints)})"
    return f"{where} (model-version {settings.vision_model_version}, {auth} auth)"


def configured_model(settings: Settings) -> ModelVersion:
    """The registry entry of the model version these settings pin."""
    return get_model_version(pinned_model_version(settings))
