"""What a source is, and what it yields: one ``ImageItem`` per image, read lazily."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from indexer.filters import Condition
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
    """A place images are listed from: a local folder or a blob container (or a prefix of one).

    ``indexing.run`` makes an index match any source through these members alone, so the
    folder and the container are kept in step by one algorithm.
    """

    @property
    def conditions(self) -> list[Condition]:
        """Filter conditions that select this source's documents in an index."""

    @property
    def listing_errors(self) -> list[str]:
        """Parts of the last listing that could not be read (empty when it was complete)."""

    def list_items(self) -> Iterator[ImageItem]:
        """Every image currently in the source."""

    def in_scope(self, key: str) -> bool:
        """Whether a stored document selected by ``conditions`` belongs to what ``list_items``
        lists (a blob source limited to a prefix lists less than its container holds)."""
