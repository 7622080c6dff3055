"""One data folder serves one ``imgsearch dev`` at a time: a second is refused with a message
naming the first (its pid and ports); the lock goes with its holder, even a dead one."""

from __future__ import annotations

import os

import pytest

from indexer.errors import ConfigurationError
from standins.dev_lock import LOCK_NAME, DataDirLock


def test_a_second_dev_on_the_same_folder_is_refused_naming_the_first(tmp_path):
    first = DataDirLock(tmp_path / "dev")
    first.acquire("blob port 10000, api port 7071")
    try:
        with pytest.raises(ConfigurationError) as caught:
            DataDirLock(tmp_path / "dev").acquire("blob port 20000, api port 7072")
        message = str(caught.value)
        assert f"another `imgsearch dev` runs on {tmp_path / 'dev'}" in message
        assert f"pid {os.getpid()}, blob port 10000, api port 7071" in message and "--data-dir" in message
        DataDirLock(tmp_path / "elsewhere").acquire("blob port 20000")  # another folder is free
    finally:
        first.release()


def test_a_released_or_stale_lock_does_not_stand_in_the_way(tmp_path):
    first = DataDirLock(tmp_path)
    first.acquire("api port 7071")
    first.release()
    first.release()  # idempotent
    (tmp_path / LOCK_NAME).write_text("pid 999999, api port 7071\n")  # left by a dev that was killed
    second = DataDirLock(tmp_path)
    second.acquire("api port 7072")
    try:
        assert (tmp_path / LOCK_NAME).read_text() == f"pid {os.getpid()}, api port 7072\n"
    finally:
        second.release()
