"""The numpy fallback index (``NumpyIndex``): its operations (``index``), its files and their
crash safety (``store``), and its filter columns (``columns``)."""

from indexer.backends.numpy_index.index import NumpyIndex

__all__ = ["NumpyIndex"]
