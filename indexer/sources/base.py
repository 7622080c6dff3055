"""What a source yields: one ``ImageItem`` per image, read lazily."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from indexer.keys import document_key


@dataclass
class ImageItem:
    """An image a source can deliver.

    ``identity`` is stable for the image's location (``container/blob`` or an absolute file
    path); the document key derives from it, so indexing the same location twice overwrites.
    ``fields`` holds schema metadata known without reading the bytes (container, blob_path,
    file_name, content_type, size_bytes, last_modified, ...). ``read`` returns the bytes,
    enforcing the source's size guard.
    """

    identity: str
    source: str
    read: Callable[[], bytes]
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return document_key(self.identity)


class ImageSource(Protocol):
    def list_items(self) -> Iterator[ImageItem]:
        """Every image currently in the source."""

    def get_item(self, name: str) -> ImageItem:
        """One image by its name inside the source (blob name or relative path)."""
