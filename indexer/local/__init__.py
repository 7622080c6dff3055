"""The offline vectorizer: real pretrained models (EfficientNet-Lite, all-MiniLM-L6-v2,
Universal Sentence Encoder multilingual) joined by ConSE, standing in for Azure AI Vision.

Importing this package is cheap: torch and the models load only when a
``LocalVectorizer`` is built. Use::

    from indexer.local import get_local_vectorizer
    vectorizer = get_local_vectorizer("2023-04-15")   # -> local-conse-usem3-v1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from indexer.local.vectorizer import LocalVectorizer, get_local_vectorizer

__all__ = ["LocalVectorizer", "get_local_vectorizer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from indexer.local import vectorizer

        return getattr(vectorizer, name)
    raise AttributeError(f"module 'indexer.local' has no attribute {name!r}")
