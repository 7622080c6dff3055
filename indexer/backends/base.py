"""The protocol every index backend implements, and what it returns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from indexer.documents import Document, Embedding, Hit, IndexPin
from indexer.filters import Condition
from indexer.schema import IndexSchema


@dataclass
class WriteResult:
    """Per-document outcome of an upsert or delete batch.

    ``succeeded`` holds keys; ``failed`` maps a key to the reason it was not written (after
    the backend's own retries). ``retriable`` holds the failed keys that may succeed later
    (the service stayed busy or unreachable), as opposed to documents it refused outright.
    """

    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    retriable: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.failed

    def fail(self, key: str, reason: str, *, retriable: bool = False) -> None:
        self.failed[key] = reason
        if retriable:
            self.retriable.add(key)


@runtime_checkable
class IndexBackend(Protocol):
    """One vector index pinned to one model version.

    Implementations check the pin on every write and query (``IndexPin.check``) before they
    touch anything, so a mismatch leaves the index unchanged.
    """

    def ensure_index(self, schema: IndexSchema) -> IndexPin:
        """Create the index from ``schema`` or verify an existing one has the same pin.

        Raises ``ModelVersionMismatchError`` if an existing index is pinned to another
        model version or dimension count.
        """

    def delete_index(self) -> None:
        """Delete the whole index (its documents and its pin). Deleting what is not there is fine."""

    def get_pin(self) -> IndexPin:
        """The pin of the existing index; ``IndexNotFoundError`` if there is none."""

    @property
    def schema(self) -> IndexSchema:
        """The existing index's definition, with its pin (the fields filters may name)."""

    def upsert(self, documents: Sequence[Document]) -> WriteResult:
        """Insert or replace documents by key (merge-or-upload semantics per whole doc)."""

    def delete(self, keys: Iterable[str]) -> WriteResult:
        """Delete by key; deleting a key that does not exist is not an error."""

    def get(self, key: str) -> dict[str, Any] | None:
        """A document's fields (without the vector), or None."""

    def count(self) -> int: ...

    def search(
        self,
        query: Embedding,
        *,
        k: int = 10,
        threshold: float | None = None,
        filters: Sequence[Condition] = (),
        select: Sequence[str] | None = None,
    ) -> list[Hit]:
        """Top-k by cosine similarity, best first, at or above ``threshold`` if given."""

    def keys_with_hashes(self, conditions: Sequence[Condition] = ()) -> dict[str, str]:
        """Key -> content_hash of every document (matching ``conditions``), for reconcile."""

    def not_yet_visible(self, expected: Mapping[str, str | None]) -> set[str]:
        """The keys of ``expected`` whose write reads do not show yet.

        A key mapped to a ``content_hash`` is shown once a document with that hash is found
        under it; a key mapped to None once no document is. Azure AI Search makes writes
        visible "a few seconds after" it answers them, so a caller that must read its own
        writes polls this (``indexing.visibility.wait_until_visible``)."""


def normalize(vector: np.ndarray) -> np.ndarray:
    """L2-normalise to float32 so that a dot product is the cosine similarity."""
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("cannot index or search with a zero or non-finite vector")
    return v / norm
