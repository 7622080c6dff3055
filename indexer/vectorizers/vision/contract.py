"""The Azure AI Vision multimodal-embeddings REST contract, as ``VisionClient`` speaks it.

The Vision stand-in (``standins.vision``) keeps its own copy of the facts, written from the
same sources, so that a mistake here cannot be mirrored by the stand-in.

Sources checked:
- The how-to "Do image retrieval using multimodal embeddings (version 4.0)" (the seed): the
  paths, ``api-version=2024-02-01`` with ``model-version=2023-04-15``, the JSON and binary
  bodies, ``Ocp-Apim-Subscription-Key`` and the ``{"modelVersion", "vector"}`` answer.
- Older samples (e.g. the azure-search-openai-demo before 2024) send
  ``api-version=2023-02-01-preview`` with ``modelVersion=latest`` (camel-case name); the
  REST reference of that era lists ``model-version`` as optional. Today Azure answers that
  preview with 410 Gone (``{"error": {"code": "Gone", ...}}``, reported in
  azure-search-openai-demo#2514).
- An unknown api-version (e.g. ``2024-02-01-preview``) gets 404
  ``{"error": {"code": "404", "message": "Resource not found"}}`` (MicrosoftDocs/azure-docs#120920).
- The REST reference's error model: ``{"error": {"code", "message", "target"?, "details"?,
  "innererror"?: {"code", "message"}}}`` plus an ``x-ms-error-code`` header.
"""

from __future__ import annotations

VECTORIZE_IMAGE_PATH = "/computervision/retrieval:vectorizeImage"
VECTORIZE_TEXT_PATH = "/computervision/retrieval:vectorizeText"

API_VERSION_GA = "2024-02-01"
API_VERSION_PREVIEW = "2023-02-01-preview"

# How each api-version names its model parameter. The GA version uses the kebab-case name
# (as in the seed's curl commands); the 2023 preview was called with ``modelVersion``.
MODEL_PARAMETER = {
    API_VERSION_GA: "model-version",
    API_VERSION_PREVIEW: "modelVersion",
}

SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"
# The Microsoft Entra ID scope of every Azure AI services resource.
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"

OCTET_STREAM = "application/octet-stream"
JSON = "application/json"


def model_parameter(api_version: str) -> str:
    """The query-parameter name that carries the model version for ``api_version``.

    Unknown (future) api-versions follow the GA convention."""
    return MODEL_PARAMETER.get(api_version, "model-version")


def query_parameters(api_version: str, model_version: str) -> dict[str, str]:
    return {"api-version": api_version, model_parameter(api_version): model_version}
