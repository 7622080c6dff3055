"""The Vision stand-in: Azure AI Vision's multimodal-embeddings REST contract served offline
by the project's offline models (``server``), with its own reading of the contract
(``contract``), Azure's error answers (``answers``), throttling (``throttle``), URL fetching
(``fetch``) and deliberate faults (``faults``)."""
