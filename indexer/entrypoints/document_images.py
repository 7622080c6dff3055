"""The image behind an indexed document, read back for the search page: thumbnails, and
"more like this" (a search by a result's own image).

A document is found by its key in the index first; only then is its image read, from where it
was indexed from: a blob through the app's own identity (Blob Storage access stays with the
Function; the browser never gets a SAS or an account key, and the container stays private),
or, for the numpy index built from a local folder, the file whose path the document records.
A key that names no document reads nothing, so the endpoints never open a file or a blob a
caller merely names.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from azure.core.exceptions import ResourceNotFoundError

from indexer.errors import DocumentNotFoundError, InputLimitError, InvalidImageError
from indexer.keys import blob_url_parts, identity_from_key
from indexer.pixel_budget import open_within_budget
from indexer.renditions import upright_rgb
from indexer.services import Services
from indexer.sources.folder import read_file_guarded

THUMBNAIL_SIDES = (64, 1024)  # the sizes a caller may ask for, smallest and largest
DEFAULT_THUMBNAIL_SIDE = 320


@dataclass(frozen=True)
class DocumentImage:
    key: str
    data: bytes
    content_hash: str


@dataclass(frozen=True)
class IndexedImage:
    """Where the image of an indexed document lies, found in the index; nothing read yet."""

    key: str
    content_hash: str
    read: Callable[[], bytes]

    def load(self) -> DocumentImage:
        """Read the image's bytes from where it was indexed from."""
        try:
            data = self.read()
        except ResourceNotFoundError:
            raise DocumentNotFoundError(f"the blob of {self.key!r} no longer exists") from None
        except (FileNotFoundError, LookupError) as exc:
            raise DocumentNotFoundError(
                f"the image of {self.key!r} is gone from where it was indexed ({exc})"
            ) from None
        return DocumentImage(self.key, data, self.content_hash)


def read_document_image(key: str, services: Services) -> DocumentImage:
    """The bytes of the image indexed under ``key`` (see the module doc)."""
    return find_document_image(key, services).load()


def find_document_image(key: str, services: Services) -> IndexedImage:
    """The image indexed under ``key``, looked up in the index only (see the module doc)."""
    fields = services.backend.get(key)
    try:
        identity = identity_from_key(key) if fields is not None else None
    except ValueError:  # a key this project did not make
        identity = None
    if fields is None or identity is None:
        raise DocumentNotFoundError(f"no image is indexed under the key {key!r}")
    read: Callable[[], bytes]
    if str(fields.get("container") or "").startswith("file://"):
        # A folder's document: its identity is the file's path, recorded in ``source``.
        if fields.get("source") != identity:
            raise DocumentNotFoundError(f"the document {key!r} does not name its own file")
        path = Path(identity)
        read = lambda: read_file_guarded(path, max_bytes=services.settings.max_image_bytes)  # noqa: E731
    else:
        # A blob's identity is its URL (see indexer.keys); the container it names is the one read.
        container, name = blob_url_parts(identity)
        if not name:
            raise DocumentNotFoundError(f"the document {key!r} names no blob")
        read = lambda: services.source(container).download(name)  # noqa: E731
    return IndexedImage(key, str(fields.get("content_hash") or ""), read)


def thumbnail(image: DocumentImage, side: int) -> bytes:
    """A JPEG no larger than ``side`` pixels on its longer side, the right way up (EXIF
    orientation), which a browser shows whatever the original is (HEIC and AVIF included;
    16-bit grey scaled, not clipped to white). A JPEG of any size is scaled while decoding;
    any other image is decoded whole, so within ``indexer.pixel_budget``."""
    try:
        with open_within_budget(image.data, draft_side=side) as picture:
            upright = upright_rgb(picture)
        upright.thumbnail((side, side))
        out = io.BytesIO()
        upright.save(out, format="JPEG", quality=80)
    except (InputLimitError, InvalidImageError):
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError(f"the image of {image.key!r} cannot be read for a thumbnail ({exc})") from None
    return out.getvalue()
