"""The Azure AI Search double: the requests imgsearch sends, over HTTP, as strict as the service
(``service`` routes and authenticates, ``definitions`` and ``pull_definitions`` validate what is
defined, ``store`` holds documents and answers queries, ``odata_parser`` reads ``$filter``,
``indexer_runs`` runs pull mode's indexer); everything else gets one "not served" 400."""
