"""Search images by meaning: Azure AI Vision multimodal embeddings + Azure AI Search.

The package is layered so that data flows one way (see README "How it works"):
sources -> vectorizers -> index backends -> pipeline/query -> edges (CLI, servers, Functions).
Heavy offline-model code (torch) lives in ``indexer.vectorizers.offline`` and is imported lazily.
"""

__version__ = "0.1.0"
