"""Crash-safe file writes and an inter-process lock, for the local index's files.

``atomic_write`` writes a temporary file in the same directory, fsyncs it and renames it over
the target, so a reader sees the old content or the new, never a mixture, whatever happens to
the writer. ``FileLock`` wraps ``fcntl.flock``, which the kernel releases when its holder dies,
so a crashed writer never leaves the index locked (POSIX only).
(design: docs/design.md#the-numpy-index-on-disk)
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def temp_path_for(path: Path) -> Path:
    """A unique temporary name next to ``path`` (same directory, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def is_temp_file(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def fsync_directory(directory: Path) -> None:
    """Make renames and deletions inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], None], *, sync_directory: bool = True) -> None:
    """Write ``path`` through ``write(file)`` so that it holds either its old content or the
    complete new content, whatever happens. Pass ``sync_directory=False`` when several files
    of one directory are written in a row and the caller fsyncs the directory once after."""
    path = Path(path)
    temp = temp_path_for(path)
    try:
        with open(temp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if sync_directory:
        fsync_directory(path.parent)


def atomic_write_bytes(path: Path, data: bytes, *, sync_directory: bool = True) -> None:
    def write(file: BinaryIO) -> None:
        file.write(data)

    atomic_write(path, write, sync_directory=sync_directory)


class FileLock:
    """An advisory lock on ``path`` (created if missing): exclusive for writers, shared for
    readers. Use as a context manager: ``with FileLock(p, shared=True): ...``."""

    def __init__(self, path: Path, *, shared: bool = False) -> None:
        self.path = Path(path)
        self.shared = shared
        self._fd: int | None = None

    def __enter__(self) -> FileLock:
        try:
            # A reader needs no write access (the index may sit on a read-only volume).
            fd = os.open(self.path, os.O_RDONLY) if self.shared else os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc_info: object) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
