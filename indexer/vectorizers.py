"""The vectorizer protocol: one interface over the Vision REST client and the offline model.

Both return ``Embedding(vector=float32[dims], model_version=...)``; the model version is the
one the service *reported*, which is what the index pin is checked against.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from indexer.types import Embedding


@runtime_checkable
class Vectorizer(Protocol):
    def vectorize_image(self, image: bytes) -> Embedding:
        """Vectorize raw image bytes (checked against the input limits first)."""

    def vectorize_image_url(self, url: str) -> Embedding:
        """Vectorize an image the service fetches from ``url``."""

    def vectorize_text(self, text: str) -> Embedding:
        """Vectorize a query text of 1 to 70 words."""
