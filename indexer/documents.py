"""Value types shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Embedding:
    """What every vectorizer returns: a float32 vector and the model version that made it."""

    vector: np.ndarray
    model_version: str

    @property
    def dimensions(self) -> int:
        return int(self.vector.shape[0])


@dataclass(frozen=True)
class IndexPin:
    """The one model version (and its dimension count) an index accepts."""

    model_version: str
    dimensions: int

    def check(self, embedding: Embedding, *, action: str) -> None:
        """Raise ``ModelVersionMismatchError`` unless ``embedding`` belongs in this index."""
        from indexer.errors import ModelVersionMismatchError

        self.check_version(embedding.model_version, action=action, what="the vector was made by")
        if embedding.dimensions != self.dimensions:
            raise ModelVersionMismatchError(
                f"cannot {action}: the vector has {embedding.dimensions} dimensions but the index "
                f"pinned to {self.model_version!r} holds {self.dimensions}",
                expected=self.dimensions,
                actual=embedding.dimensions,
            )

    def check_version(
        self, model_version: str, *, action: str, what: str = "the vectorizer makes vectors with"
    ) -> None:
        """Raise ``ModelVersionMismatchError`` unless vectors of ``model_version`` belong here.
        ``what`` says where the version comes from, for the message."""
        from indexer.errors import ModelVersionMismatchError

        if model_version != self.model_version:
            raise ModelVersionMismatchError(
                f"cannot {action}: {what} model version {model_version!r} "
                f"but the index is pinned to {self.model_version!r}; use a vectorizer with that "
                f"model version, or create a new index for the new version and backfill it",
                expected=self.model_version,
                actual=model_version,
            )

    def check_pin(self, wanted: IndexPin, *, where: str, remedy: str) -> None:
        """Raise ``ModelVersionMismatchError`` unless ``wanted`` is this index's pin. ``where``
        names the index; ``remedy`` says what to do instead (each caller knows its own)."""
        from indexer.errors import ModelVersionMismatchError

        if wanted != self:
            raise ModelVersionMismatchError(
                f"{where} is pinned to model version {self.model_version!r} ({self.dimensions} dimensions), not "
                f"{wanted.model_version!r} ({wanted.dimensions} dimensions), and vectors of different model "
                f"versions never share an index; {remedy}",
                expected=self,
                actual=wanted,
            )

    def check_claim(self, key: str, fields: dict[str, Any]) -> None:
        """A document may not claim, in its ``model_version`` field, another version than the pin."""
        from indexer.errors import ModelVersionMismatchError

        claimed = fields.get("model_version")
        if claimed is not None and claimed != self.model_version:
            raise ModelVersionMismatchError(
                f"document {key!r} says model_version={claimed!r} but the index is pinned to {self.model_version!r}",
                expected=self.model_version,
                actual=claimed,
            )


@dataclass
class Document:
    """One indexed image: its key, its vector and the metadata fields of the schema.

    ``fields`` uses the index schema's field names (see ``indexer.schema``), e.g.
    ``source``, ``container``, ``content_hash``. The vector is kept apart because it is
    checked against the pin and never returned by default.
    """

    key: str
    embedding: Embedding
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One search result, the same from every backend. ``score`` is cosine similarity."""

    key: str
    source: str
    score: float
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "source": self.source, "score": self.score, "fields": self.fields}
