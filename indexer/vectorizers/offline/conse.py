"""ConSE: Convex combination of Semantic Embeddings (Norouzi et al., ICLR 2014).

An image becomes the probability-weighted mean of the text embeddings s(y) of its classifier's
T most probable labels, f(x) = 1/Z * sum_{t=1..T} p(y_t | x) * s(y_t) with Z the sum of those
probabilities, L2-normalised so that cosine similarity against a query's text embedding ranks
images. Pure numpy, no model code: easy to test on its own.
(design: docs/design.md#the-offline-models)
"""

from __future__ import annotations

import numpy as np


def conse_vectors(probabilities: np.ndarray, label_embeddings: np.ndarray, *, top_t: int) -> np.ndarray:
    """(N, classes) probabilities x (classes, D) embeddings -> (N, D) unit float32 vectors."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.ndim != 2 or probabilities.shape[1] != label_embeddings.shape[0]:
        raise ValueError(
            f"probabilities of shape {probabilities.shape} do not match {label_embeddings.shape[0]} label embeddings"
        )
    if not 1 <= top_t <= label_embeddings.shape[0]:
        raise ValueError(f"top_t must be between 1 and {label_embeddings.shape[0]}, got {top_t}")
    top = np.argpartition(-probabilities, top_t - 1, axis=1)[:, :top_t]
    weights = np.take_along_axis(probabilities, top, axis=1)
    weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), np.float32(1e-12))
    mixed = np.einsum("nt,ntd->nd", weights, label_embeddings[top])
    return unit_rows(mixed)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)


def average_label_embeddings(text_vectors: np.ndarray, groups: list[int]) -> np.ndarray:
    """Average consecutive rows of ``text_vectors`` in groups of the given sizes (one group
    per class: its names x templates), then normalise each class embedding."""
    if sum(groups) != len(text_vectors):
        raise ValueError(f"groups cover {sum(groups)} rows but there are {len(text_vectors)}")
    starts = np.concatenate([[0], np.cumsum(groups)[:-1]])
    sums = np.add.reduceat(np.asarray(text_vectors, dtype=np.float32), starts, axis=0)
    return unit_rows(sums / np.asarray(groups, dtype=np.float32)[:, None])
