"""Index backends: one protocol (``base.IndexBackend``), two implementations.

- ``azure_search``: Azure AI Search through azure-search-documents;
- ``numpy_index``: the local fallback, cosine search over numpy arrays on disk.

Both apply the same schema rules (``schema_rules``) so code developed against one does not
meet new errors on the other.
"""
