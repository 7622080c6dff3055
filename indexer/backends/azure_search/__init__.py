"""The Azure AI Search backend (``AzureSearchBackend``) and the OData it renders (``odata``)."""

from indexer.backends.azure_search.backend import AzureSearchBackend, score_to_cosine

__all__ = ["AzureSearchBackend", "score_to_cosine"]
