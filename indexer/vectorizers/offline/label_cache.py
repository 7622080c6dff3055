"""A disk cache for the label embeddings (1000 classes x prompt texts).

Embedding every label takes seconds on every process start and depends only on the text
model's weights and the label wording, so it is cached under a key derived from both; writes
are atomic, and a file that does not load or has the wrong shape is rebuilt. Where:
``IMGSEARCH_MODEL_CACHE``, else ``$XDG_CACHE_HOME/imgsearch`` (``~/.cache/imgsearch``), resolved
at the edge by ``default_cache_dir``. (design: docs/design.md#the-offline-models)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CACHE_ENV = "IMGSEARCH_MODEL_CACHE"


def default_cache_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "imgsearch"


def cache_key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def load_or_compute(
    cache_dir: Path | None, key: str, shape: tuple[int, int], compute: Callable[[], np.ndarray]
) -> np.ndarray:
    """Return the cached float32 array for ``key``, or compute, store and return it.

    ``cache_dir=None`` disables the cache. A cache that cannot be written (read-only home,
    full disk) only costs the recomputation next time: it is logged, never raised.
    """
    path = None if cache_dir is None else Path(cache_dir) / f"labels-{key}.npy"
    if path is not None and path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == shape and cached.dtype == np.float32 and np.isfinite(cached).all():
                return cached
            log.warning(
                "ignoring label cache %s: shape %s / dtype %s, expected %s float32",
                path,
                cached.shape,
                cached.dtype,
                shape,
            )
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable label cache %s: %s", path, exc)
    array = np.ascontiguousarray(compute(), dtype=np.float32)
    if array.shape != shape:  # pragma: no cover - a programming error, not an input error
        raise ValueError(f"label embeddings have shape {array.shape}, expected {shape}")
    if path is not None:
        try:
            _atomic_save(path, array)
        except OSError as exc:
            log.warning("cannot write label cache %s (%s); it will be recomputed next time", path, exc)
    return array


def _atomic_save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache holds nothing secret
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
