"""The Azure AI Vision multimodal-embeddings REST contract, as ``VisionClient`` speaks it.

The Vision stand-in keeps its own copy, written from the same sources, so a mistake here cannot
be mirrored there. Sources: the how-to "Do image retrieval using multimodal embeddings (version
4.0)" (paths, parameters, bodies, key header, answer), the REST reference's error model, and
live answers to the retired ``2023-02-01-preview`` (410, azure-search-openai-demo#2514) and to
an unknown api-version (404, MicrosoftDocs/azure-docs#120920).
(details: docs/design.md#the-vision-client)
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
