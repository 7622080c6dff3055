"""Vector compression of the index's vector field (``SEARCH_VECTOR_COMPRESSION``).

``none`` keeps 1,024 float32 numbers per image in the vector index; ``scalar`` quantizes each
to int8 and ``binary`` to one bit. Both keep the original vectors beside the compressed ones
(``preserveOriginals``), so the service rescores an oversampled candidate set at full
precision. The kind is fixed when the vector field is created, so it is checked like the pin.
(design: docs/design.md#vector-compression)
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from indexer.errors import VectorCompressionMismatchError

Compression = Literal["none", "scalar", "binary"]
COMPRESSIONS: tuple[str, ...] = get_args(Compression)
# The kind new indexes get when SEARCH_VECTOR_COMPRESSION is unset. bench/RESULTS.md, "10.
# Vector compression": neither kind keeps 0.99 of the exact top 10 at 4x oversampling or less
# on the offline model's vectors, so compression is a choice for memory, not the default.
DEFAULT_COMPRESSION: Compression = "none"
# How many candidates per result the service takes from the compressed vectors before it
# rescores them with the originals (the compression's ``defaultOversampling``); same table:
# scalar needs 4x on random 1,024-d vectors (2x: 0.989), binary is far from 0.99 even at 10x.
DEFAULT_OVERSAMPLING: dict[str, float] = {"scalar": 4.0, "binary": 10.0}
# Bits the vector index holds per dimension (the quantized copy; originals are on disk).
BITS_PER_DIMENSION: dict[str, int] = {"none": 32, "scalar": 8, "binary": 1}
_DESCRIPTIONS = {
    "none": "uncompressed (float32)",
    "scalar": "with scalar (int8) quantization",
    "binary": "with binary quantization",
}
# Each kind's name and REST ``kind`` in ``vectorSearch.compressions``.
_REST_KINDS = {"scalar": ("image-scalar", "scalarQuantization"), "binary": ("image-binary", "binaryQuantization")}


def compression_definition(compression: str) -> dict[str, Any] | None:
    """The ``vectorSearch.compressions`` entry for ``compression`` (None for ``none``):
    rescoring from the preserved originals with the kind's default oversampling."""
    if compression == "none":
        return None
    name, kind = _REST_KINDS[compression]
    definition: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "rescoringOptions": {
            "enableRescoring": True,
            "defaultOversampling": DEFAULT_OVERSAMPLING[compression],
            "rescoreStorageMethod": "preserveOriginals",
        },
    }
    if kind == "scalarQuantization":
        definition["scalarQuantizationParameters"] = {"quantizedDataType": "int8"}
    return definition


def compression_of(definition: dict[str, Any], vector_field: str) -> str:
    """The compression (``none``, ``scalar``, ``binary``, or the REST kind of one this project
    does not make) of ``vector_field`` in an index definition of REST shape."""
    fields = {f.get("name"): f for f in definition.get("fields") or []}
    profile_name = (fields.get(vector_field) or {}).get("vectorSearchProfile")
    vector_search = definition.get("vectorSearch") or {}
    profiles = [p for p in vector_search.get("profiles") or [] if p.get("name") == profile_name]
    compression_name = profiles[0].get("compression") if profiles else None
    if not compression_name:
        return "none"
    entries = [c for c in vector_search.get("compressions") or [] if c.get("name") == compression_name]
    kind = str(entries[0].get("kind")) if entries else f"unknown ({compression_name})"
    ours = {rest_kind: ours for ours, (_, rest_kind) in _REST_KINDS.items()}
    return ours.get(kind, kind)


def describe_compression(compression: str) -> str:
    """How a field with ``compression`` holds its vectors, for people."""
    return _DESCRIPTIONS.get(compression, f"with a compression of kind {compression!r}")


def check_compression(have: str, wanted: str, *, where: str, remedy: str) -> None:
    """Raise ``VectorCompressionMismatchError`` unless the index's compression ``have`` is the
    ``wanted`` one. ``where`` names the index; ``remedy`` says what to do instead."""
    if have != wanted:
        raise VectorCompressionMismatchError(
            f"{where} stores its vectors {describe_compression(have)}, not {describe_compression(wanted)}, and a "
            f"vector field's compression is fixed when the index is created; {remedy}",
            expected=wanted,
            actual=have,
        )
