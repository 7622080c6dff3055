"""A local folder as an image source, for ``imgsearch index PATH``.

Every document of one folder carries the same ``container`` label, ``file://`` plus the
resolved folder path (``Path.as_uri()``), so a re-run can find that folder's documents again
(to skip unchanged bytes and remove deleted files) without touching documents of other
folders or of blob containers. ``blob_path`` is the file's path relative to the folder, in
POSIX form, so the fields read the same as for a blob.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from indexer.errors import FolderNotFoundError, InputLimitError, InvalidImageError
from indexer.filters import Condition
from indexer.limits import MAX_SOURCE_BYTES, SNIFF_BYTES, check_image_size, sniff_content_type, unreadable_format
from indexer.sources.base import ImageItem


class FolderSource:
    """Yields the images under ``root``, recursively, in a stable sorted order.

    A file is an image when its first bytes say so, whatever its name (as for blobs); others are
    listed in ``skipped`` with the reason. Hidden files and folders are left out and symlinked
    folders are not followed, so a walk always ends. Folders that cannot be listed are recorded in
    ``listing_errors``: a caller that removes documents of vanished files must not do so after an
    incomplete listing."""

    def __init__(self, root: Path | str, *, max_bytes: int = MAX_SOURCE_BYTES) -> None:
        path = Path(root).expanduser()
        if not path.exists():
            raise FolderNotFoundError(f"the folder {str(path)!r} does not exist")
        if not path.is_dir():
            raise FolderNotFoundError(f"{str(path)!r} is not a folder; give the folder that holds the images")
        self.root = path.resolve()
        self.max_bytes = max_bytes
        self.label = self.root.as_uri()
        self.listing_errors: list[str] = []
        self.skipped: list[tuple[str, str]] = []  # (path relative to the root, why it is no image)

    @property
    def conditions(self) -> list[Condition]:
        """Filter conditions that select the documents of this folder in an index."""
        return [Condition("container", "eq", self.label)]

    def in_scope(self, key: str) -> bool:
        """Every document with this folder's label was listed from this whole folder."""
        return True

    def list_items(self) -> Iterator[ImageItem]:
        self.listing_errors = []
        self.skipped = []

        def record(error: OSError) -> None:
            self.listing_errors.append(f"{error.filename}: {error.strerror or error}")

        for directory, dirnames, filenames in os.walk(self.root, onerror=record):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(directory) / name
                if name.startswith(".") or not path.is_file():
                    continue
                content_type, reason = self._sniff(path)
                if content_type is None:
                    self.skipped.append((path.relative_to(self.root).as_posix(), reason))
                    continue
                yield self._item(path, content_type)

    def get_item(self, name: str) -> ImageItem:
        """One image by its path relative to the folder (POSIX separators)."""
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise FolderNotFoundError(f"{name!r} is not a path inside {self.root}")
        path = self.root.joinpath(*relative.parts)
        if not path.is_file():
            raise FolderNotFoundError(f"there is no file {name!r} in {self.root}")
        content_type, reason = self._sniff(path)
        if content_type is None:
            raise InvalidImageError(f"{name!r} in {self.root}: {reason}")
        return self._item(path, content_type)

    @staticmethod
    def _sniff(path: Path) -> tuple[str | None, str]:
        """The file's image content type from its first bytes, or None and the reason."""
        try:
            with path.open("rb") as handle:
                head = handle.read(SNIFF_BYTES)
        except OSError as exc:
            return None, f"cannot be read ({exc.strerror or exc})"
        content_type = sniff_content_type(head)
        return content_type, "" if content_type else unreadable_format(head)

    def _item(self, path: Path, content_type: str) -> ImageItem:
        # The path stays as listed under the resolved root (a symlinked file is not resolved),
        # so each listed path is its own document, found again under the same key.
        stat = path.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
        return ImageItem(
            identity=str(path),
            source=str(path),
            read=lambda: read_file_guarded(path, max_bytes=self.max_bytes),
            fields={
                "container": self.label,
                "blob_path": path.relative_to(self.root).as_posix(),
                "file_name": path.name,
                "content_type": content_type,
                "last_modified": modified.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "size_bytes": stat.st_size,
            },
        )


def read_file_guarded(path: Path, *, max_bytes: int = MAX_SOURCE_BYTES) -> bytes:
    """The file's bytes, refusing files of ``max_bytes`` or more before reading them.

    The size comes from ``stat`` first, so a huge file is never loaded; the read itself is
    also bounded, in case the file grew in between.
    """
    check_image_size(path.stat().st_size, max_bytes=max_bytes)
    with path.open("rb") as handle:
        data = handle.read(max_bytes)
    if len(data) >= max_bytes:
        raise InputLimitError(
            f"{path} grew to {max_bytes:,} bytes or more while being read; the limit is under {max_bytes:,} bytes",
            limit="image_bytes",
            value=len(data),
        )
    check_image_size(len(data), max_bytes=max_bytes)
    return data
