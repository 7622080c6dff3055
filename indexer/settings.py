"""One settings object, read from the environment once at the edge and passed down.

The environment variable names are shared with the Bicep app settings
(``infra/``) and ``functions/local.settings.example.json``; keep the three in step. The README's
"Configuration" table documents each one.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.errors import ConfigurationError
from indexer.limits import MAX_SOURCE_BYTES
from indexer.model_versions import DEFAULT_MODEL_VERSION
from indexer.vector_compression import DEFAULT_COMPRESSION, Compression

log = logging.getLogger(__name__)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", populate_by_name=True)

    # --- Azure AI Vision (or the local vectorizer server). Empty endpoint: the offline model in-process.
    # Several resources of one model version: comma-separated endpoints (and keys, one each).
    vision_endpoint: str = Field("", validation_alias="VISION_ENDPOINT")
    vision_key: str = Field("", validation_alias="VISION_KEY", repr=False)
    vision_api_version: str = Field("2024-02-01", validation_alias="VISION_API_VERSION")
    vision_model_version: str = Field(DEFAULT_MODEL_VERSION, validation_alias="VISION_MODEL_VERSION")
    vision_timeout_seconds: float = Field(30.0, validation_alias="VISION_TIMEOUT_SECONDS", gt=0)
    vision_max_retries: int = Field(5, validation_alias="VISION_MAX_RETRIES", ge=0)
    # The pace of bulk work (backfill), per Vision resource. S1 allows 20 calls a second; the
    # free tier F0 allows 20 a minute, so set 0.33 there.
    vision_requests_per_second: float = Field(20.0, validation_alias="VISION_REQUESTS_PER_SECOND", gt=0)
    vision_concurrency: int = Field(8, validation_alias="VISION_CONCURRENCY", ge=1)
    # Where a text's 70-word limit is checked before sending (indexer.limits): "auto" for text
    # written with spaces, "strict" for all, "service" never (the service judges).
    vision_word_check: Literal["auto", "strict", "service"] = Field("auto", validation_alias="VISION_WORD_CHECK")

    # Image URLs that the offline model fetches itself (Azure AI Vision fetches them from its own
    # network, public hosts only): true lets loopback and private addresses through, for `imgsearch
    # dev` (its Azurite URLs are on loopback). Off by default (indexer.safe_fetch).
    allow_private_urls: bool = Field(False, validation_alias="IMGSEARCH_ALLOW_PRIVATE_URLS")

    # --- Azure AI Search. Empty endpoint: the local numpy index under IMGSEARCH_DATA_DIR.
    search_endpoint: str = Field("", validation_alias="SEARCH_ENDPOINT")
    search_key: str = Field("", validation_alias="SEARCH_KEY", repr=False)
    search_index_name: str = Field("images", validation_alias="SEARCH_INDEX_NAME")
    # How the index's vector field is compressed (indexer/vector_compression.py). Unset: new
    # indexes get DEFAULT_COMPRESSION and an existing index keeps its own; set: it must match.
    search_vector_compression: Compression | None = Field(None, validation_alias="SEARCH_VECTOR_COMPRESSION")

    # --- Azure AI Search calling this project back (the Function's /api/vectorize, or `imgsearch
    # serve`'s): the index's Web API vectorizer (apps send text straight to the search service)
    # and the pull mode's Web API skill. Empty URI: no vectorizer in the index, no pull mode.
    search_vectorizer_uri: str = Field("", validation_alias="SEARCH_VECTORIZER_URI")
    # Microsoft Entra: the application ID URI (api://<appId>) the search service's managed
    # identity gets a token for (authResourceId); the Function validates it with App Service
    # authentication. The function key (x-functions-key) goes with it or alone.
    search_vectorizer_auth_resource_id: str = Field("", validation_alias="SEARCH_VECTORIZER_AUTH_RESOURCE_ID")
    search_vectorizer_key: str = Field("", validation_alias="SEARCH_VECTORIZER_KEY", repr=False)
    # The Function app's HTTP endpoints, for `imgsearch verify` (its /api/search): the base URL
    # (https://<app>.azurewebsites.net; default: the app of SEARCH_VECTORIZER_URI) and a function
    # key of `search` (empty: none sent, as `imgsearch serve` on loopback needs none).
    function_url: str = Field("", validation_alias="IMGSEARCH_FUNCTION_URL")
    function_key: str = Field("", validation_alias="IMGSEARCH_FUNCTION_KEY", repr=False)
    # How images reach the index: "push" (the Function's blob trigger, seconds) or "pull" (an
    # Azure AI Search indexer on a schedule, minutes; schemas/indexer.json).
    ingestion_mode: Literal["push", "pull"] = Field("push", validation_alias="INGESTION_MODE")

    # --- Blob Storage. The names follow the Functions connection named IMAGES_STORAGE, so the
    # blob trigger and our SDK client read the same settings: a connection string (Azurite),
    # or IMAGES_STORAGE__blobServiceUri with a managed identity (AZURE_CLIENT_ID).
    storage_connection_string: str = Field("", validation_alias="IMAGES_STORAGE", repr=False)
    storage_blob_service_uri: str = Field(
        "", validation_alias=AliasChoices("IMAGES_STORAGE__blobServiceUri", "IMAGES_STORAGE__BLOBSERVICEURI")
    )
    # The queue service of the same account (deferred indexing of throttled blobs). With a
    # connection string it comes from its QueueEndpoint (or the account's default); with an
    # identity, from IMAGES_STORAGE__queueServiceUri, else the blob URI with .blob. -> .queue.
    storage_queue_service_uri: str = Field(
        "", validation_alias=AliasChoices("IMAGES_STORAGE__queueServiceUri", "IMAGES_STORAGE__QUEUESERVICEURI")
    )
    # Pull mode with a managed identity: the search service reads the account as itself, named by
    # its resource id (the data source's "ResourceId=...;" connection string).
    images_storage_resource_id: str = Field("", validation_alias="IMAGES_STORAGE_RESOURCE_ID")
    images_container: str = Field("images", validation_alias="IMAGES_CONTAINER")
    max_image_bytes: int = Field(MAX_SOURCE_BYTES, validation_alias="MAX_IMAGE_BYTES", gt=0)

    # --- Identity: the client id of a user-assigned managed identity (read by azure-identity too).
    azure_client_id: str = Field("", validation_alias="AZURE_CLIENT_ID")

    # --- Local state: the numpy index, backfill checkpoints, failure records.
    data_dir: Path = Field(Path(".imgsearch"), validation_alias="IMGSEARCH_DATA_DIR")

    @field_validator("search_vector_compression", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: Any) -> Any:
        """An empty value (an app setting left blank) is unset; case does not matter."""
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @property
    def vector_compression(self) -> Compression:
        """The compression a new index gets: ``SEARCH_VECTOR_COMPRESSION`` or the default."""
        return self.search_vector_compression or DEFAULT_COMPRESSION

    @property
    def uses_offline_model(self) -> bool:
        return not self.vision_endpoint.strip(" ,")

    @property
    def vision_endpoints(self) -> list[str]:
        """``VISION_ENDPOINT`` as a list: one Vision resource each, in order of preference."""
        endpoints = _split(self.vision_endpoint)
        if len(set(endpoints)) != len(endpoints):
            raise ConfigurationError("VISION_ENDPOINT names the same endpoint twice: each Vision resource once")
        return endpoints

    @property
    def bulk_concurrency(self) -> int:
        """Images in flight at once in bulk work: ``VISION_CONCURRENCY`` for each Vision resource."""
        return self.vision_concurrency * max(1, len(self.vision_endpoints))

    @property
    def vision_keys(self) -> list[str]:
        """``VISION_KEY`` as a list: empty (Microsoft Entra ID), or one key per endpoint."""
        keys, endpoints = _split(self.vision_key), self.vision_endpoints
        if keys and len(keys) != len(endpoints):
            raise ConfigurationError(
                f"VISION_KEY holds {len(keys)} key(s) for {len(endpoints)} endpoint(s) in VISION_ENDPOINT: give one "
                f"key per endpoint, in the same order (comma-separated), or none to use Microsoft Entra ID"
            )
        return keys

    @property
    def uses_numpy_index(self) -> bool:
        return not self.search_endpoint


def _split(value: str) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def load_settings(**overrides: Any) -> Settings:
    """Read the environment; ``overrides`` (field names) win, for tests and CLI flags.

    A value that is not valid raises ``ConfigurationError`` naming its environment variable and
    the problem, with the value itself unless it is a secret (a key or connection string). A
    variable that looks like a misspelled setting is named in a warning (once per process):
    otherwise it is silently ignored and the default (say, the offline model) is used instead.
    """
    warn_misspelled_settings(os.environ)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigurationError(f"invalid setting: {'; '.join(map(_problem, exc.errors()))}") from None


# Variables read by others, or by this project outside ``Settings``, that resemble a setting:
# never reported as a misspelling. azure-identity reads AZURE_*; the Functions host reads the
# properties of an identity-based connection (IMAGES_STORAGE__credential, ...).
_READ_ELSEWHERE = frozenset(
    name.upper()
    for name in (
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "AZURE_AUTHORITY_HOST",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_USERNAME",
        "AZURE_PASSWORD",
        "IMAGES_STORAGE__credential",
        "IMAGES_STORAGE__clientId",
        "IMAGES_STORAGE__serviceUri",
        "IMAGES_STORAGE__tableServiceUri",
        "IMAGES_STORAGE__accountName",
        "IMGSEARCH_MODEL_CACHE",
        "VISION_SERVER_KEYS",
        "VISION_SERVER_TOKENS",
        "SEARCH_DOUBLE_KEYS",
    )
)
_SIMILARITY = 0.85  # VISON_ENDPOINT ~ VISION_ENDPOINT is 0.97; AZURE_TENANT_ID ~ AZURE_CLIENT_ID 0.8
_warned: set[str] = set()


def setting_names() -> list[str]:
    """Every environment variable ``Settings`` reads, as spelled in the README."""
    names: list[str] = []
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names.extend([str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else [str(alias)])
    return names


def misspelled_settings(names: Iterable[str]) -> dict[str, str]:
    """The names among ``names`` that are not a setting but closely resemble one, each with the
    setting it most likely means (``VISON_ENDPOINT`` -> ``VISION_ENDPOINT``).

    Compared in upper case (settings are not case-sensitive); names read by other libraries
    or hosts (``AZURE_TENANT_ID``, ``IMAGES_STORAGE__credential``) and azd's outputs
    (``AZURE_SEARCH_INDEX_NAME``) are never reported.
    """
    known = {name.upper(): name for name in setting_names()}
    found: dict[str, str] = {}
    for name in names:
        upper = name.upper()
        # AZURE_<setting> is the deployment's output of that setting in the azd environment.
        if upper in known or upper in _READ_ELSEWHERE or upper.removeprefix("AZURE_") in known:
            continue
        match = difflib.get_close_matches(upper, known, n=1, cutoff=_SIMILARITY)
        if match:
            found[name] = known[match[0]]
    return found


def warn_misspelled_settings(environ: Mapping[str, str]) -> None:
    """Log a warning for each variable in ``environ`` that looks like a misspelled setting,
    once per process (settings are read once per command, but tests and hosts read them often)."""
    for name, meant in sorted(misspelled_settings(environ).items()):
        if name not in _warned:
            _warned.add(name)
            log.warning("%s is not a setting and is ignored; did you mean %s?", name, meant)


def _problem(error: Any) -> str:
    """One validation error as ``VARIABLE='value': what is wrong``; a secret's value is left out."""
    name = str(error["loc"][0]).lower() if error["loc"] else ""
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        variables = [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else [str(alias)]
        if name in (field_name, *(v.lower() for v in variables)):
            value = f"={error['input']!r}" if field.repr else ""
            return f"{variables[0]}{value}: {error['msg']}"
    return str(error["msg"])


def pinned_model_version(settings: Settings) -> str:
    """The model version the index is pinned to under these settings.

    With a Vision endpoint (Azure, or the local server) it is ``VISION_MODEL_VERSION`` as
    configured: the service must report exactly that version or writes fail. Without one, the
    embedded offline model stands in, and the pin is that model's own name, so an offline
    index can never be mistaken for an Azure one.
    """
    from indexer.model_versions import get_model_version, offline_model_for

    try:
        if settings.uses_offline_model:
            return offline_model_for(settings.vision_model_version).name
        return get_model_version(settings.vision_model_version).name
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"VISION_MODEL_VERSION={settings.vision_model_version!r} is not usable: {exc}"
        ) from None


def require_key_over_plain_http(key: Any, endpoints: list[str], endpoint_setting: str, key_setting: str) -> None:
    """Without a key the client authenticates with Microsoft Entra ID, whose tokens the Azure SDK
    sends over https only; against a plain-http endpoint (a local stand-in) it would fail later
    with "Bearer token authentication is not permitted for non-TLS". Say what to set instead."""
    plain = [e for e in endpoints if e.strip().lower().startswith("http://")]
    if plain and not key:
        raise ConfigurationError(
            f"{endpoint_setting}={plain[0]} is plain http and {key_setting} is empty: Microsoft Entra ID tokens "
            f"are sent over https only; set {key_setting} (a local stand-in started without --key accepts any "
            f"value, e.g. {key_setting}=local)"
        )
