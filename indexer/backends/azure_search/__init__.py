"""The Azure AI Search backend (``AzureSearchBackend``), the OData it renders (``odata``), pull
mode (``pull``) and the errors of both (``errors``)."""

from indexer.backends.azure_search.backend import AzureSearchBackend, score_to_cosine

__all__ = ["AzureSearchBackend", "score_to_cosine"]
