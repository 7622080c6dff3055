"""The composition root: the one place that turns ``Settings`` into working objects.

Everything else takes its vectorizer, backend and credentials as arguments. Imports of the
heavy or optional parts (torch for the offline model, the HTTP clients, azure-identity) happen
inside the functions that need them, so importing this module stays cheap: the Azure Function
imports it, and its cold start must not pay for torch, FastAPI or uvicorn.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from indexer.errors import ConfigurationError
from indexer.settings import Settings, pinned_model_version
from indexer.types import Embedding

if TYPE_CHECKING:  # pragma: no cover - typing only
    from indexer.backends.base import IndexBackend
    from indexer.ratelimit import RateLimiter
    from indexer.vectorizers import Vectorizer


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


def index_model_version(settings: Settings) -> str:
    """The model version the index must be pinned to (``pinned_model_version``), with an
    error that names the setting to fix."""
    try:
        return pinned_model_version(settings)
    except ConfigurationError as exc:
        raise ConfigurationError(f"VISION_MODEL_VERSION={settings.vision_model_version!r} is not usable: {exc}") \
            from None


def build_vectorizer(settings: Settings, *, paced: bool = False) -> Vectorizer:
    """The Vision REST client for ``VISION_ENDPOINT``, or the offline model in-process.

    Without an endpoint the offline model standing in for ``VISION_MODEL_VERSION`` is loaded
    (it reports its own model version name, which is what the index is pinned to).
    ``paced`` (bulk work) gives the client the ``VISION_REQUESTS_PER_SECOND`` limiter: pacing
    inside the client covers its retries too and slows every worker after a 429.
    """
    model_version = index_model_version(settings)
    if settings.uses_local_vectorizer:
        try:
            from indexer.local import get_local_vectorizer  # torch: only now, only here
        except ModuleNotFoundError as exc:
            raise ConfigurationError(
                f"the offline model needs the [local] extra ({exc.name} is not installed): "
                f"pip install 'indexer[local]', or set VISION_ENDPOINT to use Azure AI Vision") from None
        return get_local_vectorizer(model_version)
    from indexer.vision.client import VisionClient

    try:
        return VisionClient(
            settings.vision_endpoint,
            build_credential(settings.vision_key, settings),
            api_version=settings.vision_api_version,
            model_version=settings.vision_model_version,
            timeout=settings.vision_timeout_seconds,
            max_retries=settings.vision_max_retries,
            rate_limiter=build_rate_limiter(settings) if paced else None,
        )
    except ValueError as exc:
        raise ConfigurationError(f"VISION_ENDPOINT: {exc}") from None


def build_backend(settings: Settings) -> IndexBackend:
    """Azure AI Search for ``SEARCH_ENDPOINT``, or the numpy index under ``IMGSEARCH_DATA_DIR``."""
    if settings.uses_local_index:
        from indexer.backends.local import LocalIndex

        try:
            return LocalIndex(settings.data_dir, settings.search_index_name)
        except ValueError as exc:
            raise ConfigurationError(f"SEARCH_INDEX_NAME / IMGSEARCH_DATA_DIR: {exc}") from None
    from indexer.backends.azure_search import AzureSearchBackend

    try:
        return AzureSearchBackend(settings.search_endpoint, settings.search_index_name,
                                  build_credential(settings.search_key, settings))
    except ValueError as exc:
        raise ConfigurationError(f"SEARCH_ENDPOINT / SEARCH_INDEX_NAME: {exc}") from None


def build_rate_limiter(settings: Settings) -> RateLimiter | None:
    """The pace of bulk Vision calls (``VISION_REQUESTS_PER_SECOND``); None for the offline
    model, which has no quota to respect."""
    if settings.uses_local_vectorizer:
        return None
    from indexer.ratelimit import RateLimiter

    return RateLimiter(settings.vision_requests_per_second)


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
    if settings.uses_local_index:
        return f"local numpy index {settings.search_index_name!r} in {settings.data_dir.resolve()}"
    return f"Azure AI Search index {settings.search_index_name!r} at {settings.search_endpoint}"


def describe_vectorizer(settings: Settings) -> str:
    """Which vectorizer answers, for people (never includes a key)."""
    if settings.uses_local_vectorizer:
        return f"offline model {index_model_version(settings)} in-process (no VISION_ENDPOINT set)"
    auth = "key" if settings.vision_key else "Microsoft Entra ID"
    return f"{settings.vision_endpoint} (model-version {settings.vision_model_version}, {auth} auth)"


class LazyVectorizer:
    """Builds the real vectorizer on first use.

    A re-run over unchanged files never calls the vectorizer, so it should not pay for
    loading the offline model either. Safe to share between threads.
    """

    def __init__(self, factory: Callable[[], Vectorizer]) -> None:
        self._factory = factory
        self._vectorizer: Vectorizer | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._vectorizer is not None

    def _get(self) -> Vectorizer:
        if self._vectorizer is None:
            with self._lock:
                if self._vectorizer is None:
                    self._vectorizer = self._factory()
        return self._vectorizer

    def close(self) -> None:
        """Close the built vectorizer if it holds resources (the HTTP client's session)."""
        close = getattr(self._vectorizer, "close", None)
        if close is not None:
            close()

    def vectorize_image(self, image: bytes) -> Embedding:
        return self._get().vectorize_image(image)

    def vectorize_image_url(self, url: str) -> Embedding:
        return self._get().vectorize_image_url(url)

    def vectorize_text(self, text: str) -> Embedding:
        return self._get().vectorize_text(text)
