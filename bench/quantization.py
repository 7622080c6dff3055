"""Models of Azure AI Search's vector compressions, and recall@k against exact search, in numpy.

``bench/bench_compression_recall.py`` measures with these; ``tests/unit/test_quantization_math.py``
checks them. Pure numpy, no torch and no ``indexer`` code: the figures are the benchmark's, not
the product's.

The models follow Microsoft's description ("Compress vectors using scalar or binary
quantization", https://learn.microsoft.com/azure/search/vector-search-how-to-quantization):

* scalar (int8): each dimension's range, from its ``low``-th to its ``high``-th percentile over
  the corpus (the page: "typically" min and max at a percentile), is cut into 256 equal levels;
  a value becomes the nearest level (values outside the range are clipped to its ends). Corpus
  and query are both quantized and compared by the dot product of the levels' values.
* binary: one bit per dimension, 1 where the value is above 0, else 0; vectors are compared by
  Hamming distance, computed as the dot product of the +1/-1 codes (``D - 2 * Hamming``, the
  same order).

Candidates are the top ``k * oversampling`` by compressed score over the whole corpus (brute
force: no HNSW); rescoring ranks them by the full-precision dot product (the vectors are unit
length, so cosine) and keeps the top ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVELS = 256  # int8: 2^8 bins
BITS_PER_DIMENSION = {"none": 32, "scalar": 8, "binary": 1}


def bytes_per_vector(kind: str, dimensions: int) -> int:
    """Bytes one vector takes in the vector index for ``kind`` (the quantized copy only; the
    scalar ranges are per field, not per vector, and the preserved originals are on disk)."""
    if kind not in BITS_PER_DIMENSION:
        raise ValueError(f"unknown compression {kind!r}; choose one of {', '.join(BITS_PER_DIMENSION)}")
    if dimensions < 1:
        raise ValueError(f"dimensions must be at least 1, got {dimensions}")
    return -(-dimensions * BITS_PER_DIMENSION[kind] // 8)


@dataclass(frozen=True)
class ScalarQuantizer:
    """int8 scalar quantization with one range per dimension (``low`` .. ``high``)."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, corpus: np.ndarray, *, percentile: float = 99.0) -> ScalarQuantizer:
        """Ranges from the corpus: each dimension's ``100 - percentile``-th to ``percentile``-th
        percentile (``percentile=100``: plain min and max)."""
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be above 50 and at most 100, got {percentile}")
        corpus = np.asarray(corpus, dtype=np.float32)
        low = np.percentile(corpus, 100.0 - percentile, axis=0).astype(np.float32)
        high = np.percentile(corpus, percentile, axis=0).astype(np.float32)
        # A constant dimension still needs a non-empty range to divide into levels.
        high = np.maximum(high, low + np.float32(1e-12))
        return cls(low, high)

    @property
    def step(self) -> np.ndarray:
        return (self.high - self.low) / np.float32(LEVELS - 1)

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors -> uint8 level numbers (0..255), nearest level, clipped to the range."""
        clipped = np.clip(np.asarray(vectors, dtype=np.float32), self.low, self.high)
        return np.rint((clipped - self.low) / self.step).astype(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """uint8 level numbers -> the float32 values the levels stand for."""
        return (self.low + codes.astype(np.float32) * self.step).astype(np.float32)

    def roundtrip(self, vectors: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(vectors))


def binary_codes(vectors: np.ndarray) -> np.ndarray:
    """Vectors -> packed bits (uint8, 8 dimensions a byte): 1 where the value is above 0."""
    return np.packbits(np.asarray(vectors) > 0, axis=-1)


def signs(vectors: np.ndarray) -> np.ndarray:
    """Vectors -> +1/-1 float32 codes (+1 where the value is above 0): the bits of
    ``binary_codes`` as numbers, so a matrix product gives ``D - 2 * Hamming``."""
    return np.where(np.asarray(vectors) > 0, np.float32(1.0), np.float32(-1.0))


def hamming(query_codes: np.ndarray, corpus_codes: np.ndarray) -> np.ndarray:
    """(Q, B) x (N, B) packed bits -> (Q, N) Hamming distances. For checking; the benchmark
    ranks by ``signs`` products, which order alike and run as one BLAS call."""
    xor = np.bitwise_xor(query_codes[:, None, :], corpus_codes[None, :, :])
    return np.unpackbits(xor, axis=-1).sum(axis=-1, dtype=np.int64)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(Q, N) scores -> (Q, k) row indices of the k highest per query, best first; equal
    scores in corpus order (binary scores tie often, and the order must not be arbitrary)."""
    k = min(k, scores.shape[1])
    # Stable sort of the negated scores: ties keep the lower index first.
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def rescore(query: np.ndarray, corpus: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """Rank each query's candidate rows by the full-precision dot product; keep the top k."""
    exact = np.einsum("qd,qcd->qc", query, corpus[candidates])
    order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(candidates, order, axis=1)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / |truth| (the order within the k does not count)."""
    if found.shape[0] != truth.shape[0]:
        raise ValueError(f"{found.shape[0]} result rows for {truth.shape[0]} queries")
    hits = [len(np.intersect1d(f, t, assume_unique=True)) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits) / truth.shape[1])
