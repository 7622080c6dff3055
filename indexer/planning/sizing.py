"""Bytes per image in the search service, by compression: the vector index the quota counts
(memory: the quantized vectors and the HNSW graph) and the storage the partition counts (disk:
the index, the preserved originals, the retrievable copy when ``stored`` is true, the fields).
The estimate follows the docs' formula; each term is a Figure. (design: docs/design.md#capacity-planning)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from indexer.planning.figures import Figure
from indexer.planning.service_limits import STORAGE_OPTIONS_PAGE, VECTOR_SIZE_PAGE
from indexer.vector_compression import BITS_PER_DIMENSION

# The vector field of schemas/2023-04-15.json (a test holds these to the file).
DIMENSIONS = 1024
HNSW_M = 4
FLOAT32_BYTES = 4

# "each link contributes approximately 8 to 10 bytes per document"; the page's table of overheads
# at m=4 comes to 61 to 77 bytes per document whatever the dimensions, so 20 bytes per unit of m.
GRAPH_BYTES_PER_M = Figure(
    "HNSW graph bytes per document per unit of m (from the m=4 overhead table)", 20, "bytes", VECTOR_SIZE_PAGE
)
# "half of our customers have a deleted documents ratio less than 10%": updates are a delete and
# an insert, and the space is reclaimed later; the same slack is kept on disk.
DELETED_DOCUMENTS_RATIO = Figure(
    "deleted documents ratio (half of customers are below it)", 0.10, "ratio", VECTOR_SIZE_PAGE
)
# "The extra storage is approximately equal to the size of the compressed index" (preserveOriginals
# keeps full-precision originals beside it); stored=false saves "up to 50 percent", so the
# retrievable copy is taken as large as the full-precision vector.
ORIGINALS_BYTES = Figure(
    "full-precision originals kept for rescoring, per image", DIMENSIONS * FLOAT32_BYTES, "bytes", STORAGE_OPTIONS_PAGE
)
STORED_COPY_BYTES = Figure(
    "retrievable copy of the vector (stored: true), per image",
    DIMENSIONS * FLOAT32_BYTES,
    "bytes",
    STORAGE_OPTIONS_PAGE,
)
# The 13 metadata fields of the schema: about 0.5 kB of values (URL, path, hash, names, dates)
# and their filter and search structures. No page gives it: an assumption, rounded up.
FIELDS_BYTES = Figure("metadata fields with their filter and search structures, per image", 2048, "bytes", None)


def keeps_stored_copy(compression: str) -> bool:
    """Whether the vector field is ``stored: true``: without compression it is; with compression
    the index is made ``stored: false``, since the originals are kept for rescoring anyway."""
    return compression == "none"


@dataclass(frozen=True)
class ImageFootprint:
    """Bytes one image takes, each term before the deleted-documents slack."""

    compression: str
    quantized_vector: int
    graph: int
    originals: int  # 0 without compression: the index's own full-precision vectors are the originals
    stored_copy: int
    fields: int

    @property
    def vector_index(self) -> float:
        """Memory the vector quota counts, with the deleted-documents slack."""
        return (self.quantized_vector + self.graph) * (1 + DELETED_DOCUMENTS_RATIO.value)

    @property
    def storage(self) -> float:
        """Disk the storage quota counts (the vector index is on disk too), with the slack."""
        on_disk = self.quantized_vector + self.graph + self.originals + self.stored_copy + self.fields
        return on_disk * (1 + DELETED_DOCUMENTS_RATIO.value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantized_vector": self.quantized_vector,
            "hnsw_graph": self.graph,
            "originals_for_rescoring": self.originals,
            "stored_copy": self.stored_copy,
            "fields": self.fields,
            "deleted_documents_ratio": DELETED_DOCUMENTS_RATIO.value,
            "vector_index": round(self.vector_index),
            "storage": round(self.storage),
        }


def footprint(compression: str) -> ImageFootprint:
    """Bytes per image with ``compression`` (one of ``indexer.vector_compression.COMPRESSIONS``)."""
    quantized = DIMENSIONS * BITS_PER_DIMENSION[compression] // 8
    return ImageFootprint(
        compression=compression,
        quantized_vector=quantized,
        graph=int(GRAPH_BYTES_PER_M.value) * HNSW_M,
        originals=0 if compression == "none" else int(ORIGINALS_BYTES.value),
        stored_copy=int(STORED_COPY_BYTES.value) if keeps_stored_copy(compression) else 0,
        fields=int(FIELDS_BYTES.value),
    )


def sizing_figures() -> list[Figure]:
    """The figures the footprint rests on, for a plan's list of sources."""
    return [GRAPH_BYTES_PER_M, DELETED_DOCUMENTS_RATIO, ORIGINALS_BYTES, STORED_COPY_BYTES, FIELDS_BYTES]
