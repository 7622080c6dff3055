"""The local index's files: a manifest and immutable segments.

A write adds one small segment (its documents, or the keys it deletes), then atomically
replaces ``manifest.json``, the one file that names the live segments: until that rename
readers load the old state, after it the new one. The newest segments of similar size are
merged, everything is compacted when most stored entries are dead, and files no manifest
names are removed by the next write. (layout and design: docs/design.md#the-numpy-index-on-disk)
"""

from __future__ import annotations

import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.atomic import atomic_write, atomic_write_bytes, fsync_directory, is_temp_file
from indexer.backends.numpy_index.columns import Column
from indexer.errors import CorruptIndexError

FORMAT = "imgsearch-local-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = "lock"
SEGMENTS = "segments"


def manifest_path(root: Path) -> Path:
    return root / MANIFEST


def read_manifest_bytes(root: Path | str) -> bytes | None:
    """The manifest as stored, or None if the index does not exist.

    It doubles as the fingerprint of the committed state: every commit writes a new
    generation number into it, and reading a few KB costs microseconds. (A stat of
    inode/mtime/size would be cheaper still, but two quick commits can reuse an inode within
    one tick of the file system's clock and look unchanged.) The file is only ever replaced,
    never modified in place, so a read sees one whole version."""
    try:
        with open(os.path.join(root, MANIFEST), "rb") as file:  # (no pathlib: this runs on every query)
            return file.read()
    except FileNotFoundError:
        return None


def parse_manifest(root: Path, raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise CorruptIndexError(f"{manifest_path(root)} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise CorruptIndexError(f"{manifest_path(root)} is not a {FORMAT} v{FORMAT_VERSION} manifest")
    return manifest


def write_manifest(root: Path, manifest: dict[str, Any]) -> bytes:
    """Commit ``manifest`` (atomically, durably); returns the bytes written."""
    data = json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8")
    atomic_write_bytes(manifest_path(root), data)
    return data


def new_manifest(name: str, pin: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": name,
        "uuid": secrets.token_hex(8),
        "pin": pin,
        "schema": schema,
        "generation": 0,
        "next_segment": 1,
        "segments": [],
    }


@dataclass(eq=False)
class Segment:
    """One immutable batch of rows (and deletions), as loaded into memory."""

    id: str
    vectors: np.ndarray  # float32 [rows, dims], C-contiguous
    keys: list[str]
    fields: list[dict[str, Any]]
    deleted: list[str]
    _columns: dict[str, Column] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> int:
        return len(self.keys)

    @property
    def entries(self) -> int:
        """Rows plus deletions: the size that decides when segments merge."""
        return len(self.keys) + len(self.deleted)

    def meta(self) -> dict[str, Any]:
        return {"id": self.id, "rows": self.rows, "deleted": len(self.deleted)}

    def column(self, name: str, edm_type: str) -> Column:
        column = self._columns.get(name)
        if column is None:
            column = Column(edm_type, [f.get(name) for f in self.fields])
            self._columns[name] = column
        return column


def segment_id(number: int) -> str:
    return f"{number:010d}"


def _segment_paths(root: Path, seg_id: str) -> tuple[Path, Path]:
    directory = root / SEGMENTS
    return directory / f"{seg_id}.npy", directory / f"{seg_id}.json"


def write_segment(root: Path, segment: Segment, *, mmap_threshold: int) -> Segment:
    """Write ``segment``'s two files durably (the caller then commits the manifest). Returns
    the segment to keep in memory: big vector arrays are swapped for a read-only map of the
    file just written, so the page cache, not a private copy, holds them."""
    directory = root / SEGMENTS
    directory.mkdir(parents=True, exist_ok=True)
    vectors_path, docs_path = _segment_paths(root, segment.id)
    vectors = np.ascontiguousarray(segment.vectors, dtype=np.float32)
    atomic_write(vectors_path, lambda file: np.save(file, vectors, allow_pickle=False), sync_directory=False)
    docs = {"keys": segment.keys, "fields": segment.fields, "deleted": segment.deleted}
    atomic_write_bytes(
        docs_path, json.dumps(docs, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), sync_directory=False
    )
    fsync_directory(directory)
    if vectors.nbytes >= mmap_threshold and vectors.size:
        vectors = _mapped(vectors_path)
    return Segment(segment.id, vectors, segment.keys, segment.fields, segment.deleted)


def _mapped(path: Path) -> np.ndarray:
    """A read-only memory map of a .npy file, as a plain ndarray view: the np.memmap
    subclass would make every result computed from it a memmap too, which costs time per
    query and means nothing (the view keeps the map alive through ``.base``)."""
    return np.load(path, mmap_mode="r", allow_pickle=False).view(np.ndarray)


def load_segment(root: Path, meta: dict[str, Any], dimensions: int, *, mmap_threshold: int) -> Segment:
    seg_id = meta["id"]
    vectors_path, docs_path = _segment_paths(root, seg_id)
    try:
        size = vectors_path.stat().st_size
        vectors = _mapped(vectors_path) if size >= mmap_threshold else np.load(vectors_path, allow_pickle=False)
        docs = json.loads(docs_path.read_bytes())
    except FileNotFoundError as exc:
        raise CorruptIndexError(f"segment file {exc.filename} named by {manifest_path(root)} is missing") from None
    except ValueError as exc:
        raise CorruptIndexError(f"segment {seg_id} under {root / SEGMENTS} is damaged: {exc}") from None
    keys, fields, deleted = docs.get("keys"), docs.get("fields"), docs.get("deleted")
    rows = meta.get("rows")
    if (
        vectors.dtype != np.float32
        or vectors.ndim != 2
        or vectors.shape != (rows, dimensions)
        or not isinstance(keys, list)
        or not isinstance(fields, list)
        or not isinstance(deleted, list)
        or len(keys) != rows
        or len(fields) != rows
        or len(deleted) != meta.get("deleted")
    ):
        raise CorruptIndexError(
            f"segment {seg_id} under {root / SEGMENTS} does not match the manifest "
            f"(expected {rows} x {dimensions} float32 vectors and {rows} documents)"
        )
    return Segment(seg_id, vectors, keys, fields, deleted)


def remove_unreferenced(root: Path, manifest: dict[str, Any]) -> None:
    """Delete segment files the manifest does not name and temporary files left by crashed
    writes. Only called by a writer holding the exclusive lock, so no write is in flight."""
    keep = {f"{s['id']}{ext}" for s in manifest["segments"] for ext in (".npy", ".json")}
    directory = root / SEGMENTS
    removed = False
    for directory_entry in (
        (root, [n for n in os.listdir(root) if is_temp_file(n)]),
        (directory, os.listdir(directory) if directory.is_dir() else []),
    ):
        base, names = directory_entry
        for name in names:
            if base == directory and name in keep:
                continue
            (base / name).unlink(missing_ok=True)
            removed = True
    if removed and directory.is_dir():
        fsync_directory(directory)


def merge_level(entries: int, fanout: int) -> int:
    return int(math.log(max(entries, 1), fanout) + 1e-9)


def tail_merge_start(entries: list[int], fanout: int) -> int | None:
    """Where the run of newest segments to merge starts, or None: ``fanout`` consecutive
    segments at the end that have the same size level (log base ``fanout`` of their rows)."""
    if len(entries) < fanout:
        return None
    level = merge_level(entries[-1], fanout)
    start = len(entries) - 1
    while start > 0 and merge_level(entries[start - 1], fanout) == level:
        start -= 1
    return start if len(entries) - start >= fanout else None
