"""The Azure AI Search double: the REST subset this project uses, over HTTP, as strict as the
service (``service`` routes and authenticates, ``definitions`` validates index definitions,
``store`` holds documents and answers queries, ``odata_parser`` reads ``$filter``)."""
