"""The numpy fallback index: exact cosine search over L2-normalised float32 vectors on disk.

``NumpyIndex`` implements ``IndexBackend`` as strictly as Azure AI Search (same schema file,
same ``schema_rules``); its files and their crash safety are ``store``'s, this module holds the
in-memory view and the operations. Writers take an exclusive ``flock`` and re-read the newest
state first; every call compares the manifest's bytes with the state in memory and loads only
new segments. (design: docs/design.md#the-numpy-index-on-disk)
"""

from __future__ import annotations

import bisect
import os
import shutil
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from indexer.atomic import FileLock
from indexer.backends.base import WriteResult, normalize
from indexer.backends.numpy_index import store
from indexer.backends.numpy_index.store import Segment
from indexer.backends.schema_rules import (
    InvalidDocumentError,
    InvalidQueryError,
    check_filter_fields,
    check_index_name,
    check_k,
    check_schema_supported,
    check_select,
    check_threshold,
    coerce_filter_value,
    key_problem,
    validate_fields,
)
from indexer.documents import Document, Embedding, Hit, IndexPin
from indexer.errors import CREATE_INDEX_REMEDY, ConfigurationError, IndexNotFoundError
from indexer.filters import Condition
from indexer.schema import KEY_FIELD, VECTOR_FIELD, IndexSchema
from indexer.vector_compression import check_compression, compression_of

DEFAULT_MERGE_FANOUT = 8
DEFAULT_MMAP_THRESHOLD = 32 * 1024 * 1024  # vector files this big are mapped, not read


@dataclass(frozen=True)
class _State:
    """One committed state of the index, as loaded; never mutated once built, so a query can
    keep using it while a write in another thread builds the next one."""

    stamp: bytes  # the manifest as read: equal bytes, same committed state
    manifest: dict[str, Any]
    pin: IndexPin
    schema: IndexSchema
    segments: tuple[Segment, ...]
    offsets: np.ndarray  # offsets[i] = first global row of segments[i]; offsets[-1] = total rows
    live: np.ndarray  # bool per global row: False when superseded or deleted
    locations: dict[str, int]  # key -> global row of its live version

    @property
    def total_rows(self) -> int:
        return int(self.offsets[-1])

    @property
    def garbage(self) -> int:
        """Stored entries that no longer count: superseded/deleted rows and deletion marks."""
        return self.total_rows - len(self.locations) + sum(len(s.deleted) for s in self.segments)

    @cached_property
    def _starts(self) -> list[int]:
        return self.offsets.tolist()

    def row(self, global_row: int) -> tuple[Segment, int]:
        """The segment holding a global row, and the row's place in it."""
        starts = self._starts
        index = bisect.bisect_right(starts, global_row) - 1
        return self.segments[index], global_row - starts[index]

    def fields_of(self, global_row: int) -> dict[str, Any]:
        segment, local = self.row(global_row)
        return segment.fields[local]


def _build_state(
    stamp: bytes,
    manifest: dict[str, Any],
    segments: Sequence[Segment],
    base: _State | None = None,
    *,
    base_is_private: bool = False,
) -> _State:
    """Apply ``segments`` in order. With ``base`` (whose segments must be a prefix of
    ``segments``), only the new ones are applied, on copies of its structures (or on the
    structures themselves when ``base_is_private``: nobody else can be reading them)."""
    done = len(base.segments) if base is not None else 0
    if base is not None:
        locations = base.locations if base_is_private else dict(base.locations)
        live_parts = [base.live]
    else:
        locations, live_parts = {}, []
    offsets = [int(o) for o in (base.offsets[:-1] if base is not None else [])]
    total = base.total_rows if base is not None else 0
    new_live = np.ones(sum(s.rows for s in segments[done:]), dtype=bool)
    live = np.concatenate(live_parts + [new_live]) if live_parts else new_live
    for segment in segments[done:]:
        offsets.append(total)
        for key in segment.deleted:
            row = locations.pop(key, None)
            if row is not None:
                live[row] = False
        for local, key in enumerate(segment.keys):
            row = locations.get(key)
            if row is not None:
                live[row] = False
            locations[key] = total + local
        total += segment.rows
    offsets.append(total)
    pin = IndexPin(**manifest["pin"])
    return _State(
        stamp=stamp,
        manifest=manifest,
        pin=pin,
        schema=IndexSchema(pin=pin, definition=manifest["schema"]),
        segments=tuple(segments),
        offsets=np.asarray(offsets, dtype=np.int64),
        live=live,
        locations=locations,
    )


def _drop_tail(state: _State, start: int) -> _State:
    """``state`` without ``segments[start:]``, for re-applying a tail that a writer merged.

    Valid because a writer only ever appends segments or replaces the newest ones by one
    equivalent segment (see ``_merged_segment``): rows before ``start`` that the old tail
    superseded or deleted are superseded or deleted by the new tail as well, so their live
    flags stay right; only the keys whose live row was in the tail are forgotten here, and
    the new tail brings them back."""
    first = int(state.offsets[start])
    locations = dict(state.locations)
    for segment in state.segments[start:]:
        for key in segment.keys:
            if locations.get(key, -1) >= first:
                del locations[key]
    return _State(
        stamp=state.stamp,
        manifest=state.manifest,
        pin=state.pin,
        schema=state.schema,
        segments=state.segments[:start],
        offsets=state.offsets[: start + 1],
        live=state.live[:first],
        locations=locations,
    )


class NumpyIndex:
    """A vector index in ``directory/name/``, pinned to one model version.

    ``merge_fanout`` and ``mmap_threshold_bytes`` tune the storage (see ``store``);
    the defaults suit indexes from a handful of images to millions of vectors.
    """

    def __init__(
        self,
        directory: Path,
        name: str = "images",
        *,
        merge_fanout: int = DEFAULT_MERGE_FANOUT,
        mmap_threshold_bytes: int = DEFAULT_MMAP_THRESHOLD,
    ) -> None:
        self.name = check_index_name(name)
        self.root = Path(directory) / name
        self._root = os.fspath(self.root)
        if merge_fanout < 2:
            raise ValueError("merge_fanout must be at least 2")
        self._fanout = merge_fanout
        self._mmap_threshold = mmap_threshold_bytes
        self._state: _State | None = None
        self._mutex = threading.RLock()  # guards self._state and serialises this object's writers

    def __repr__(self) -> str:
        return f"NumpyIndex({str(self.root.parent)!r}, name={self.name!r})"

    # --- loading ----------------------------------------------------------------------

    def _current(self) -> _State:
        """The newest committed state; reloads (only new segments) when the manifest changed."""
        raw = store.read_manifest_bytes(self._root)
        state = self._state
        if raw is not None and state is not None and state.stamp == raw:
            return state
        if raw is None:
            raise self._not_found()
        with self._mutex:
            with FileLock(self.root / store.LOCK, shared=True):  # no writer deletes files while we read
                return self._reload_locked()

    def _reload_locked(self) -> _State:
        """Load the manifest and the segments not yet in memory. Caller holds a flock."""
        raw = store.read_manifest_bytes(self.root)
        if raw is None:
            raise self._not_found()
        state = self._state
        if state is not None and state.stamp == raw:
            return state
        manifest = store.parse_manifest(self.root, raw)
        dims = int(manifest["pin"]["dimensions"])
        # Segment ids are unique within one incarnation of the index; a deleted and re-created
        # index starts again from 1, so nothing cached may be reused across incarnations.
        same_index = state is not None and state.manifest.get("uuid") == manifest.get("uuid")
        cached = {s.id: s for s in state.segments} if state is not None and same_index else {}
        segments = [
            cached.get(meta["id"]) or store.load_segment(self.root, meta, dims, mmap_threshold=self._mmap_threshold)
            for meta in manifest["segments"]
        ]
        base, private = None, False
        if state is not None and same_index:
            common = 0
            for old, new in zip(state.segments, segments, strict=False):
                if old is not new:
                    break
                common += 1
            if common == len(state.segments):
                base, private = state, False
            else:
                base, private = _drop_tail(state, common), True
        self._state = _build_state(raw, manifest, segments, base, base_is_private=private)
        return self._state

    def _not_found(self) -> IndexNotFoundError:
        return IndexNotFoundError(
            f"the local index {self.name!r} does not exist under {self.root.parent}; {CREATE_INDEX_REMEDY}"
        )

    @contextmanager
    def _writing(self) -> Iterator[_State]:
        """Exclusive access to the newest state, across processes."""
        if not store.manifest_path(self.root).exists():
            raise self._not_found()  # and do not create the lock file of an index that is not there
        with self._mutex, FileLock(self.root / store.LOCK):
            yield self._reload_locked()

    # --- IndexBackend -------------------------------------------------------------------

    def ensure_index(self, schema: IndexSchema) -> IndexPin:
        """Create the index from ``schema``, or check that the existing one has the same pin.
        A schema that only adds fields to the stored one is adopted (as Azure allows adding
        fields to an index); removing or retyping a field is refused."""
        try:
            check_schema_supported(schema)
        except ValueError as exc:
            raise ConfigurationError(f"cannot create the local index {self.name!r}: {exc}") from None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the local index at {self.root}: {exc.strerror or exc}; check IMGSEARCH_DATA_DIR "
                f"(or --data-dir)"
            ) from None
        with self._mutex, FileLock(self.root / store.LOCK):
            raw = store.read_manifest_bytes(self.root)
            if raw is None:
                manifest = store.new_manifest(self.name, _pin_json(schema.pin), schema.definition)
                store.write_manifest(self.root, manifest)
                store.remove_unreferenced(self.root, manifest)
                self._state = None
                return schema.pin
            manifest = store.parse_manifest(self.root, raw)
            pin = IndexPin(**manifest["pin"])
            where, remedy = f"the local index {self.name!r} at {self.root}", _NEW_INDEX_ADVICE
            pin.check_pin(schema.pin, where=where, remedy=remedy)
            have = compression_of(manifest["schema"], VECTOR_FIELD)
            check_compression(have, schema.compression, where=where, remedy=remedy)
            if manifest["schema"] != schema.definition:
                _check_schema_evolution(self.name, IndexSchema(pin=pin, definition=manifest["schema"]), schema)
                manifest = {**manifest, "schema": schema.definition, "generation": manifest["generation"] + 1}
                store.write_manifest(self.root, manifest)
            return pin

    def delete_index(self) -> None:
        """Remove the index's folder. The manifest goes first (under the writers' lock), so a
        reader sees either the whole index or none, never a half-deleted one."""
        if not self.root.exists():
            return
        with self._mutex, FileLock(self.root / store.LOCK):
            store.manifest_path(self.root).unlink(missing_ok=True)
            self._state = None
        shutil.rmtree(self.root, ignore_errors=True)

    def get_pin(self) -> IndexPin:
        return self._current().pin

    @property
    def schema(self) -> IndexSchema:
        """The schema the index was created with (``IndexNotFoundError`` if none)."""
        return self._current().schema

    def upsert(self, documents: Sequence[Document]) -> WriteResult:
        """Insert or replace whole documents by key, in one write for the whole batch.

        The pin and the schema are checked for every document before anything is written:
        a mismatch raises (``ModelVersionMismatchError``, ``InvalidDocumentError``) and the
        index is unchanged. An invalid key or an unusable vector (zero, not finite) fails
        only that document, reported in ``WriteResult.failed``. A key given twice: the last
        one wins."""
        documents = list(documents)
        result = WriteResult()
        with self._writing() as state:
            types = state.schema.metadata_fields
            keys: list[str] = []
            vectors: list[np.ndarray] = []
            fields: list[dict[str, Any]] = []
            for position, document in enumerate(documents):
                if not isinstance(document, Document):
                    raise InvalidDocumentError(
                        f"item {position} of the batch is a {type(document).__name__}, not a Document"
                    )
                vector = _check_embedding(state.pin, document.embedding, action=f"index document {document.key!r}")
                checked = validate_fields(state.schema, document.key, document.fields, types=types)
                state.pin.check_claim(document.key, checked)
                problem = key_problem(document.key)
                if problem is not None:
                    result.failed[document.key] = problem
                    continue
                keys.append(document.key)
                vectors.append(vector)
                fields.append(checked)
            if not keys:
                return result
            matrix, usable = _normalized_rows(vectors)
            last: dict[str, int] = {}  # a key given twice: the last usable one wins
            for row, key in enumerate(keys):
                if usable[row]:
                    last.pop(key, None)
                    last[key] = row
                    result.succeeded.append(key)
                else:
                    result.failed[key] = f"document {key!r}: the vector is zero or not finite, it has no direction"
            if last:
                rows = list(last.values())
                if len(rows) < len(keys):
                    matrix = matrix[rows]
                self._commit(state, list(last), matrix, [fields[r] for r in rows], [])
        return result

    def delete(self, keys: Iterable[str]) -> WriteResult:
        """Delete documents by key; keys that are not in the index succeed too."""
        result = WriteResult()
        keys = list(keys)
        with self._writing() as state:
            present: dict[str, None] = {}  # ordered set
            for key in keys:
                problem = key_problem(key)
                if problem is not None:
                    result.failed[key] = problem
                    continue
                result.succeeded.append(key)
                if key in state.locations:
                    present[key] = None
            if present:
                self._commit(state, [], None, [], list(present))
        return result

    def get(self, key: str) -> dict[str, Any] | None:
        """The document's retrievable metadata fields (null ones as None), without the key
        and the vector; None if the key is not in the index."""
        state = self._current()
        row = state.locations.get(key)
        if row is None:
            return None
        stored = state.fields_of(row)
        return {name: stored.get(name) for name in check_select(state.schema, None)}

    def count(self) -> int:
        return len(self._current().locations)

    def not_yet_visible(self, expected: Mapping[str, str | None]) -> set[str]:
        """Reads show every committed write at once here, so this is empty unless another
        writer changed a document since (then its key is reported, as on Azure)."""
        state = self._current()
        pending = set()
        for key, digest in expected.items():
            row = state.locations.get(key)
            if digest is None:
                if row is not None:
                    pending.add(key)
            elif row is None or (state.fields_of(row).get("content_hash") or "") != digest:
                pending.add(key)
        return pending

    def search(
        self,
        query: Embedding,
        *,
        k: int = 10,
        threshold: float | None = None,
        filters: Sequence[Condition] = (),
        select: Sequence[str] | None = None,
    ) -> list[Hit]:
        """The ``k`` documents most similar to ``query`` (cosine), best first, among those
        matching every filter and scoring at least ``threshold``."""
        k = check_k(k)
        threshold = check_threshold(threshold)
        state = self._current()
        vector = _check_embedding(state.pin, query, action="search", error=InvalidQueryError)
        try:
            vector = normalize(vector)
        except ValueError as exc:
            raise InvalidQueryError(f"cannot search: {exc}") from None
        selected = check_select(state.schema, select)
        conditions = _prepared_conditions(state.schema, filters)
        if state.total_rows == 0:
            return []
        scores = _scores(state.segments, vector)
        mask = None if len(state.locations) == state.total_rows else state.live
        for condition, edm_type, value in conditions:
            matched = _condition_mask(state.segments, condition, edm_type, value)
            mask = matched if mask is None else mask & matched
        if threshold is not None:
            above = scores >= threshold
            mask = above if mask is None else mask & above
        rows = _top_k(scores, k, mask)
        # float32 rounding can put a vector's similarity to itself a hair above 1.
        return [self._hit(state, int(row), min(1.0, max(-1.0, float(scores[row]))), selected) for row in rows]

    def keys_with_hashes(self, conditions: Sequence[Condition] = ()) -> dict[str, str]:
        """Key -> ``content_hash`` ("" where it is null) of every document matching
        ``conditions``."""
        state = self._current()
        mask = state.live
        for condition, edm_type, value in _prepared_conditions(state.schema, conditions):
            mask = mask & _condition_mask(state.segments, condition, edm_type, value)
        return {
            segment.keys[local]: segment.fields[local].get("content_hash") or ""
            for segment, local in _rows_in(state, mask)
        }

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    def _hit(state: _State, row: int, score: float, selected: tuple[str, ...]) -> Hit:
        segment, local = state.row(row)
        key, stored = segment.keys[local], segment.fields[local]
        fields = {name: key if name == KEY_FIELD else stored.get(name) for name in selected}
        return Hit(key=key, source=stored.get("source") or "", score=score, fields=fields)

    def _commit(
        self,
        state: _State,
        keys: list[str],
        vectors: np.ndarray | None,
        fields: list[dict[str, Any]],
        deleted: list[str],
    ) -> None:
        """Write one new segment, merge or compact if due, switch the manifest, and keep the
        new state in memory. Caller holds the exclusive lock."""
        manifest = dict(state.manifest)
        number = manifest["next_segment"]
        dims = state.pin.dimensions
        segment = Segment(
            store.segment_id(number),
            vectors if vectors is not None else np.zeros((0, dims), np.float32),
            keys,
            fields,
            deleted,
        )
        number += 1
        segments = list(state.segments) + [store.write_segment(self.root, segment, mmap_threshold=self._mmap_threshold)]
        new_state = _build_state(state.stamp, manifest, segments, base=state)
        while True:
            start = self._merge_start(new_state)
            if start is None:
                break
            merged = _merged_segment(new_state, start, store.segment_id(number))
            number += 1
            if merged is not None:
                merged = store.write_segment(self.root, merged, mmap_threshold=self._mmap_threshold)
            new_state = _build_state(
                new_state.stamp,
                manifest,
                list(new_state.segments[:start]) + ([merged] if merged is not None else []),
                base=_drop_tail(new_state, start),
                base_is_private=True,
            )
        manifest.update(
            generation=manifest["generation"] + 1, next_segment=number, segments=[s.meta() for s in new_state.segments]
        )
        raw = store.write_manifest(self.root, manifest)
        store.remove_unreferenced(self.root, manifest)
        self._state = _State(
            stamp=raw,
            manifest=manifest,
            pin=new_state.pin,
            schema=new_state.schema,
            segments=new_state.segments,
            offsets=new_state.offsets,
            live=new_state.live,
            locations=new_state.locations,
        )

    def _merge_start(self, state: _State) -> int | None:
        if not state.segments:
            return None
        if state.garbage > len(state.locations):  # mostly dead weight: compact everything
            return 0
        return store.tail_merge_start([s.entries for s in state.segments], self._fanout)


# --- module helpers -----------------------------------------------------------------------


def _pin_json(pin: IndexPin) -> dict[str, Any]:
    return {"model_version": pin.model_version, "dimensions": pin.dimensions}


def _check_embedding(
    pin: IndexPin, embedding: Any, *, action: str, error: type[Exception] = InvalidDocumentError
) -> np.ndarray:
    """The embedding's vector, after checking it is one vector of the pinned model version
    and dimension count (``ModelVersionMismatchError`` otherwise)."""
    if not isinstance(embedding, Embedding):
        raise error(f"cannot {action}: expected an Embedding, got {type(embedding).__name__}")
    try:
        vector = np.asarray(embedding.vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise error(f"cannot {action}: the vector is not a list of numbers ({exc})") from None
    if vector.ndim != 1:
        raise error(f"cannot {action}: the vector must be one-dimensional, got shape {vector.shape}")
    pin.check(Embedding(vector, embedding.model_version), action=action)
    return vector


def _rows_in(state: _State, mask: np.ndarray) -> Iterator[tuple[Segment, int]]:
    """(segment, row within it) for every global row set in ``mask``, in storage order."""
    for index, segment in enumerate(state.segments):
        offset = int(state.offsets[index])
        for local in np.flatnonzero(mask[offset : offset + segment.rows]).tolist():
            yield segment, local


def _normalized_rows(vectors: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The vectors as one float32 matrix of unit rows, and which rows could be normalised
    (not zero, all finite). One vectorised pass, for batches of any size."""
    matrix = np.empty((len(vectors), vectors[0].shape[0]), dtype=np.float32)
    for row, vector in enumerate(vectors):
        matrix[row] = vector
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64))
    usable = np.isfinite(norms) & (norms > 0)
    if usable.all():
        matrix /= norms[:, None].astype(np.float32)
    else:
        matrix[usable] /= norms[usable, None].astype(np.float32)
    return matrix, usable


_NEW_INDEX_ADVICE = "use another index name for these settings (SEARCH_INDEX_NAME) and backfill it"


def _check_schema_evolution(name: str, stored: IndexSchema, new: IndexSchema) -> None:
    new_fields = new.fields
    for field_name, definition in stored.fields.items():
        if field_name not in new_fields:
            raise ConfigurationError(
                f"the schema for the local index {name!r} drops field {field_name!r}; "
                f"fields cannot be removed from an existing index"
            )
        if new_fields[field_name].get("type") != definition.get("type"):
            raise ConfigurationError(
                f"the schema for the local index {name!r} changes the type of field "
                f"{field_name!r}; create a new index instead"
            )


def _prepared_conditions(schema: IndexSchema, filters: Sequence[Condition]) -> list[tuple[Condition, str, Any]]:
    if isinstance(filters, Condition):
        filters = [filters]
    types = schema.fields
    return [
        (c, types[c.field]["type"], coerce_filter_value(c, types[c.field]["type"]))
        for c in check_filter_fields(schema, filters)
    ]


def _condition_mask(segments: Sequence[Segment], condition: Condition, edm_type: str, value: Any) -> np.ndarray:
    parts = [s.column(condition.field, edm_type).mask(condition.op, value) for s in segments]
    if not parts:
        return np.zeros(0, dtype=bool)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _scores(segments: Sequence[Segment], vector: np.ndarray) -> np.ndarray:
    parts = [s.vectors @ vector for s in segments if s.rows]
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _top_k(scores: np.ndarray, k: int, mask: np.ndarray | None) -> np.ndarray:
    """Indices of the ``k`` best scores among ``mask``, best first (ties: lower row first)."""
    candidates = np.flatnonzero(mask) if mask is not None else None
    values = scores[candidates] if candidates is not None else scores
    n = values.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        pool = _pool_holding_top_k(values, k)  # ascending indices
        pooled = values[pool]
        kth = np.partition(pooled, len(pool) - k)[len(pool) - k]
        above = pool[pooled > kth]
        tied = pool[pooled == kth][: k - len(above)]  # ties at the cut: the lowest rows, so results are stable
        top = np.concatenate([above, tied])
    else:
        top = np.arange(n)
    top = top[np.lexsort((top, -values[top]))]
    return candidates[top] if candidates is not None else top


_BLOCK = 64


def _pool_holding_top_k(values: np.ndarray, k: int) -> np.ndarray:
    """A small set of indices that surely contains the ``k`` best values.

    Selecting among all N scores (argpartition) costs about a tenth of the matrix-vector
    product itself; this cuts it to a few percent. Split the scores into blocks and take
    each block's maximum: the k-th largest block maximum is a floor that at least k scores
    (those k maxima, from k different blocks) reach, so every score in the true top k is
    at or above it, and usually only a few hundred scores are."""
    n = values.shape[0]
    blocks = n // _BLOCK
    if blocks < 4 * k:
        return np.arange(n)
    maxima = values[: blocks * _BLOCK].reshape(blocks, _BLOCK).max(axis=1)
    floor = np.partition(maxima, blocks - k)[blocks - k]
    return np.flatnonzero(values >= floor)


def _merged_segment(state: _State, start: int, seg_id: str) -> Segment | None:
    """One segment equivalent to ``state.segments[start:]`` (the tail): their live rows,
    plus their deletions of keys not live among them (older segments may hold those keys;
    with nothing older, deletions are dropped). None if nothing remains."""
    first = int(state.offsets[start])
    live_rows = np.flatnonzero(state.live[first:]) + first
    keys: list[str] = []
    fields: list[dict[str, Any]] = []
    blocks: list[np.ndarray] = []
    for index in range(start, len(state.segments)):
        segment = state.segments[index]
        offset = int(state.offsets[index])
        local = live_rows[(live_rows >= offset) & (live_rows < offset + segment.rows)] - offset
        if local.size:
            keys.extend(segment.keys[i] for i in local)
            fields.extend(segment.fields[i] for i in local)
            blocks.append(np.asarray(segment.vectors[local], dtype=np.float32))
    deleted: list[str] = []
    if start > 0:
        live_keys = set(keys)
        seen = set()
        for segment in state.segments[start:]:
            for key in segment.deleted:
                if key not in live_keys and key not in seen:
                    seen.add(key)
                    deleted.append(key)
    if not keys and not deleted:
        return None
    dims = state.pin.dimensions
    vectors = np.concatenate(blocks) if blocks else np.zeros((0, dims), dtype=np.float32)
    return Segment(seg_id, vectors, keys, fields, deleted)
