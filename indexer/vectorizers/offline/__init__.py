"""The offline vectorizer: real pretrained models (EfficientNet-Lite, all-MiniLM-L6-v2,
Universal Sentence Encoder multilingual) joined by ConSE, standing in for Azure AI Vision.

Importing this package is cheap: torch and the models load only when a
``OfflineVectorizer`` is built. Use::

    from indexer.vectorizers.offline import get_offline_vectorizer
    vectorizer = get_offline_vectorizer("2023-04-15")   # -> local-conse-usem3-v1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from indexer.vectorizers.offline.vectorizer import OfflineVectorizer, PrivateUrlsAllowed, get_offline_vectorizer

__all__ = ["OfflineVectorizer", "PrivateUrlsAllowed", "get_offline_vectorizer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from indexer.vectorizers.offline import vectorizer

        return getattr(vectorizer, name)
    raise AttributeError(f"module 'indexer.vectorizers.offline' has no attribute {name!r}")
