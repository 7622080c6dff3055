"""Stand-ins for the Azure services this project talks to, for offline development and tests.

``search`` (an Azure AI Search double), ``vision`` (the Vision contract, answered by the
offline models), ``azurite`` (the Blob Storage emulator), ``functions_host`` and ``watch``
(the Functions host and Event Grid, with ``host_rules``), ``dev`` (the whole local Azure path)
and ``cli`` (their commands). A stand-in shares no contract code with the client it stands in
for; ``FIDELITY.md`` lists every rule it enforces with its source and test. Installed with the
``[local]`` extra, never deployed. (design: docs/design.md#stand-ins)
"""
