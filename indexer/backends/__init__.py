"""Index backends: the numpy fallback (``local``) and Azure AI Search (``azure_search``)."""
