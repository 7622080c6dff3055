"""The edges: they parse input, call the layers below and format output, holding no logic of
their own.

- ``functions``: the blob-event handlers behind the Azure Functions (and ``watch``);
- ``http``: the search endpoint's request parsing and answers;
- ``cli``: the ``imgsearch`` command line.
"""
