"""One data folder serves one ``imgsearch dev`` at a time.

Azurite's blobs, the search double's indexes and ``dev.env`` live in the data folder; a second
dev on other ports would share the first one's storage and overwrite its ``dev.env``, which
then points at dead ports once the second stops. So dev holds an exclusive lock on
``<data folder>/dev.lock`` while it runs (an ``flock``: the system releases it when the process
ends, however it ends), and writes its pid and ports there for the message a second dev gives.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from indexer.errors import ConfigurationError

LOCK_NAME = "dev.lock"


class DataDirLock:
    """The lock of one data folder; ``acquire`` or fail naming the dev that holds it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self, description: str) -> None:
        """Take the lock and record this process (``description``: its ports), or raise
        ``ConfigurationError`` naming the dev that runs on this folder."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ConfigurationError(
                f"another `imgsearch dev` runs on {self.data_dir} ({holder}); one data folder serves one dev at a "
                f"time: stop that one (Ctrl-C in its terminal), or give this one a folder of its own with --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, {description}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Give the lock up (idempotent); the file stays, empty, for the next dev."""
        if self._file is None:
            return
        self._file.seek(0)
        self._file.truncate()
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None
