"""Images in an Azure Blob Storage container (Azure or Azurite), through azure-storage-blob.

Each blob becomes a ``BlobItem`` whose identity and ``source`` are its URL (the key an Azure
AI Search indexer derives too). Metadata comes from the listing or the properties, never the
bytes: ``container``, ``blob_path``, ``file_name``, ``size_bytes``, ``last_modified`` (UTC),
``content_type`` only when it is ``image/*``, and ``tags`` from the metadata entry ``tags``
(comma-separated). Reading checks the size before any byte moves and again on the download.
(design: docs/design.md#the-blob-source)
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.storage.blob import BlobProperties, ContainerClient

from indexer.errors import InputLimitError, ServiceError
from indexer.filters import Condition
from indexer.keys import blob_identity, blob_url_parts, identity_from_key
from indexer.limits import MAX_SOURCE_BYTES
from indexer.sources.base import ImageItem

TAGS_METADATA_KEY = "tags"


@dataclass
class BlobItem(ImageItem):
    """An ``ImageItem`` that also knows which blob version it describes.

    ``etag`` lets backfill checkpoints and the local watch runner tell a changed blob from an
    unchanged one without reading it. These are attributes, not schema fields, so they are
    never written to the index.
    """

    container: str = ""
    blob_name: str = ""
    etag: str = ""
    size: int = 0


def parse_tags(value: str | None) -> list[str]:
    """``"cat, pet,,cat"`` -> ``["cat", "pet"]``."""
    seen: dict[str, None] = {}
    for part in (value or "").split(","):
        tag = part.strip()
        if tag:
            seen.setdefault(tag, None)
    return list(seen)


def iso_utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _metadata_value(metadata: dict[str, str] | None, name: str) -> str | None:
    for key, value in (metadata or {}).items():
        if key.lower() == name:
            return value
    return None


class BlobSource:
    """An ``ImageSource`` over one container, optionally only the blobs under ``prefix``.

    A listing either completes or raises (the SDK pages through it), so ``listing_errors``
    is always empty."""

    listing_errors: list[str] = []

    def __init__(
        self, container_client: ContainerClient, *, prefix: str = "", max_bytes: int = MAX_SOURCE_BYTES
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self._container = container_client
        self.prefix = prefix
        self.max_bytes = max_bytes

    @property
    def container_name(self) -> str:
        return self._container.container_name

    @property
    def container_client(self) -> ContainerClient:
        return self._container

    @property
    def conditions(self) -> list[Condition]:
        """The documents of this container (a prefix is checked by ``in_scope``: OData has no
        prefix match on ``blob_path`` that both backends share)."""
        return [Condition("container", "eq", self.container_name)]

    def in_scope(self, key: str) -> bool:
        """Whether a document of this container lies under the prefix."""
        if not self.prefix:
            return True
        try:
            identity = identity_from_key(key)
        except ValueError:
            return False  # not a key this tool makes (another writer's document): leave it alone
        # A digest-form key (identity too long to encode) cannot be placed; leave it alone.
        if identity is None:
            return False
        container, name = blob_url_parts(identity)
        return container == self.container_name and name.startswith(self.prefix)

    def list_items(self) -> Iterator[BlobItem]:
        """Every blob under the prefix, with its metadata, from one paged listing."""
        for props in self._container.list_blobs(name_starts_with=self.prefix or None, include=["metadata"]):
            if _metadata_value(props.metadata, "hdi_isfolder") == "true":
                continue  # a directory marker of a hierarchical-namespace account, not a file
            yield self.item_from_properties(props)

    def get_item(self, name: str) -> BlobItem:
        """One blob by name. Raises azure-core's ``ResourceNotFoundError`` if it is gone."""
        props = self._container.get_blob_client(name).get_blob_properties()
        return self.item_from_properties(props)

    def item_from_properties(self, props: BlobProperties) -> BlobItem:
        name = props.name
        fields: dict[str, Any] = {
            "container": self.container_name,
            "blob_path": name,
            "file_name": posixpath.basename(name) or name,
            "size_bytes": int(props.size or 0),
        }
        content_type = (props.content_settings.content_type or "") if props.content_settings else ""
        if content_type.lower().startswith("image/"):
            fields["content_type"] = content_type
        last_modified = iso_utc(props.last_modified)
        if last_modified:
            fields["last_modified"] = last_modified
        tags = parse_tags(_metadata_value(props.metadata, TAGS_METADATA_KEY))
        if tags:
            fields["tags"] = tags
        size = int(props.size or 0)
        etag = props.etag or ""
        return BlobItem(
            identity=blob_identity(self.blob_url(name)),
            source=self.blob_url(name),
            read=lambda: self.download(name, known_size=size),
            fields=fields,
            container=self.container_name,
            blob_name=name,
            etag=etag,
            size=size,
        )

    def blob_url(self, name: str) -> str:
        return self._container.get_blob_client(name).url

    def check_size(self, name: str, size: int) -> None:
        if size >= self.max_bytes:
            raise InputLimitError(
                f"blob {self.container_name}/{name} is {size:,} bytes; images must be under "
                f"{self.max_bytes:,} bytes (setting MAX_IMAGE_BYTES)",
                limit="image_bytes",
                value=size,
            )

    def download(self, name: str, *, known_size: int | None = None) -> bytes:
        """The blob's bytes, refusing blobs of ``max_bytes`` or more (see the module doc). No
        answer from the account (after the SDK's retries) is a ``ServiceError`` naming it and
        its setting, so a bulk run that stops on an outage says which service is down."""
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError

        try:
            return self._download(name, known_size=known_size)
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise ServiceError(
                f"Blob Storage at {self._container.url.rsplit('/', 1)[0]} does not answer ({type(exc).__name__}); "
                f"check IMAGES_STORAGE (Azurite: is it running? `imgsearch serve-azurite` or `imgsearch dev` "
                f"starts it)",
                code="ServiceUnreachable",
                status_code=None,
            ) from None

    def _download(self, name: str, *, known_size: int | None) -> bytes:
        if known_size is not None:
            self.check_size(name, known_size)
        blob = self._container.get_blob_client(name)
        if known_size == 0:
            return blob.download_blob().readall()  # a range request on an empty blob is refused
        downloader = blob.download_blob(offset=0, length=self.max_bytes)
        self.check_size(name, _full_size(downloader.properties))
        return downloader.readall()


def _full_size(props: BlobProperties) -> int:
    """The whole blob's size from a ranged download's ``Content-Range: bytes 0-999/2000``;
    ``props.size`` there is only the size of the range."""
    content_range = getattr(props, "content_range", None) or ""
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else int(props.size or 0)
