"""The vectorizer protocol: one interface over the Vision REST client (``vectorizers.vision``)
and the offline model (``vectorizers.offline``).

Both return ``Embedding(vector=float32[dims], model_version=...)``; the model version is the
one the service *reported*, which is what the index pin is checked against. A vectorizer may
also say before any call which version its vectors will report, as ``reported_model_version``
(a str; the offline model has it, since its name is its own). Callers read it with getattr:
Azure AI Vision names the version only in its answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from indexer.documents import Embedding


@runtime_checkable
class Vectorizer(Protocol):
    def vectorize_image(self, image: bytes) -> Embedding:
        """Vectorize raw image bytes (checked against the input limits first)."""

    def vectorize_image_url(self, url: str) -> Embedding:
        """Vectorize an image the service fetches from ``url``."""

    def vectorize_text(self, text: str) -> Embedding:
        """Vectorize a query text of 1 to 70 words."""


class LazyVectorizer:
    """Builds the real vectorizer on first use.

    A re-run over unchanged files never calls the vectorizer, so it should not pay for
    loading the offline model either. Safe to share between threads.
    """

    def __init__(self, factory: Callable[[], Vectorizer]) -> None:
        self._factory = factory
        self._vectorizer: Vectorizer | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._vectorizer is not None

    def _get(self) -> Vectorizer:
        if self._vectorizer is None:
            with self._lock:
                if self._vectorizer is None:
                    self._vectorizer = self._factory()
        return self._vectorizer

    def close(self) -> None:
        """Close the built vectorizer if it holds resources (the HTTP client's session)."""
        close = getattr(self._vectorizer, "close", None)
        if close is not None:
            close()

    @property
    def reported_model_version(self) -> str | None:
        """The built vectorizer's, once built (building it here would defeat the laziness)."""
        return getattr(self._vectorizer, "reported_model_version", None)

    def vectorize_image(self, image: bytes) -> Embedding:
        return self._get().vectorize_image(image)

    def vectorize_image_url(self, url: str) -> Embedding:
        return self._get().vectorize_image_url(url)

    def vectorize_text(self, text: str) -> Embedding:
        return self._get().vectorize_text(text)
