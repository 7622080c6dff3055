"""The registry of model versions an index can be pinned to.

Vectors of different model versions live in different spaces and must never meet in one
index. Azure's versions keep Azure's names; the offline ConSE models carry names of their
own, so a local vector can never pass for an Azure one. Each local model says which Azure
version it stands in for, so the local vectorizer server can answer a request for
``model-version=2023-04-15`` (as the seed's curl commands send) with the local model that
plays that role, and report the local name in ``modelVersion``.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.errors import ConfigurationError


@dataclass(frozen=True)
class ModelVersion:
    name: str
    dimensions: int
    languages: str  # "multilingual" or an ISO 639-1 code
    provider: str  # "azure" or "offline"
    stands_in_for: str | None = None  # for local models: the Azure version they replace offline
    description: str = ""


AZURE_MULTILINGUAL = "2023-04-15"
AZURE_ENGLISH = "2022-04-11"
OFFLINE_MULTILINGUAL = "local-conse-usem3-v1"
OFFLINE_ENGLISH = "local-conse-minilm-v1"

MODEL_VERSIONS: dict[str, ModelVersion] = {
    m.name: m
    for m in (
        ModelVersion(
            AZURE_MULTILINGUAL,
            1024,
            "multilingual",
            "azure",
            description="Azure AI Vision multimodal embeddings, 102 languages",
        ),
        ModelVersion(
            AZURE_ENGLISH, 1024, "en", "azure", description="Azure AI Vision multimodal embeddings, legacy English-only"
        ),
        ModelVersion(
            OFFLINE_MULTILINGUAL,
            512,
            "multilingual",
            "offline",
            stands_in_for=AZURE_MULTILINGUAL,
            description="offline: EfficientNet-Lite + Universal Sentence Encoder multilingual, joined by ConSE",
        ),
        ModelVersion(
            OFFLINE_ENGLISH,
            384,
            "en",
            "offline",
            stands_in_for=AZURE_ENGLISH,
            description="offline: EfficientNet-Lite + all-MiniLM-L6-v2, joined by ConSE",
        ),
    )
}

DEFAULT_MODEL_VERSION = AZURE_MULTILINGUAL


def get_model_version(name: str) -> ModelVersion:
    try:
        return MODEL_VERSIONS[name]
    except KeyError:
        known = ", ".join(sorted(MODEL_VERSIONS))
        raise ConfigurationError(f"unknown model version {name!r}; known versions: {known}") from None


def answers_for(reported: str, requested: str) -> bool:
    """Whether vectors reported as ``reported`` are a right answer to a request for
    ``requested``: the same version, or the offline model that stands in for it."""
    if reported == requested:
        return True
    model = MODEL_VERSIONS.get(reported)
    return model is not None and model.stands_in_for == requested


def offline_model_for(name: str) -> ModelVersion:
    """The offline model that answers for ``name`` (an Azure version or a local one)."""
    model = get_model_version(name)
    if model.provider == "offline":
        return model
    for candidate in MODEL_VERSIONS.values():
        if candidate.stands_in_for == model.name:
            return candidate
    raise ConfigurationError(f"no offline model stands in for {name!r}")  # pragma: no cover - registry invariant
