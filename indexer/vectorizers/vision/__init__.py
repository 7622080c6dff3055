"""Azure AI Vision multimodal embeddings: the REST client, and the local server that speaks
the same contract offline.

``from indexer.vectorizers.vision import VisionClient`` pulls in only requests and azure-core (what the
Function app needs). The server (``standins.vision.server``) needs Starlette and uvicorn and is
imported explicitly where it is used.
"""

from indexer.vectorizers.vision.client import VisionClient

__all__ = ["VisionClient"]
