"""Stand-ins for the Azure services this project talks to, for offline development and tests.

- ``search``: an Azure AI Search double (the REST subset the project uses);
- ``vision``: the Vision multimodal-embeddings contract, answered by the offline models;
- ``azurite``: starts Microsoft's Blob Storage emulator (npm ``azurite``);
- ``functions_host`` and ``watch``: the Functions host (and Event Grid) running the product's
  handlers, with the retry and poison rules of ``host_rules``;
- ``dev``: the whole local Azure path at once;
- ``cli``: the ``serve-vision``, ``serve-search-double``, ``watch`` and ``dev`` commands.

The rule of this package: **a stand-in shares no contract code with the client it stands in
for.** Paths, parameters, limits, error bodies and status codes are written here again from
Azure's documentation and from live answers quoted in public issues, never imported from
``indexer``. A client's mistake therefore cannot be mirrored by its double, and a test that
passes against a stand-in says something about Azure. ``FIDELITY.md`` lists every rule the
stand-ins enforce with Azure's behaviour, its source (or "assumption") and its test;
``tests/contract/test_fidelity_table.py`` keeps it complete. What a stand-in may share with the
product is what is not contract: value types, the offline models behind the Vision stand-in,
and file utilities. The host stand-ins double no service: like the Functions host, they run
the product's own handlers (``watch`` builds their services as the Function's worker does).

The package installs beside ``indexer`` and its server dependencies come with the ``[local]``
extra. It is never deployed: the Function package holds ``indexer/`` and ``schemas/`` only.
"""
