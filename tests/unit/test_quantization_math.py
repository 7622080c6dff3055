"""The quantization models and recall@k of bench/quantization.py, which
bench/bench_compression_recall.py's figures (and so the default compression) rest on."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "quantization.py"
_spec = importlib.util.spec_from_file_location("bench_quantization", _PATH)
assert _spec and _spec.loader
quantization = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = quantization  # dataclasses look their module up here
_spec.loader.exec_module(quantization)


def test_recall_of_identical_sets_is_one_and_order_does_not_count():
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    assert quantization.recall_at_k(truth, truth) == 1.0
    assert quantization.recall_at_k(truth[:, ::-1], truth) == 1.0


def test_recall_counts_the_shared_part_per_query():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[1, 2, 9, 10], [5, 11, 12, 13]])  # 2/4 and 1/4
    assert quantization.recall_at_k(found, truth) == pytest.approx(0.375)


def test_recall_refuses_results_for_another_number_of_queries():
    with pytest.raises(ValueError, match="2 result rows for 1 queries"):
        quantization.recall_at_k(np.zeros((2, 3), int), np.zeros((1, 3), int))


def test_binary_codes_are_the_signs_packed_eight_to_a_byte():
    vector = np.array([[0.5, -0.1, 0.0, 2.0, -3.0, 0.01, -0.2, 0.3, 1.0]])
    # Above zero is 1; zero itself is 0.
    assert quantization.binary_codes(vector).tolist() == [[0b10010101, 0b10000000]]
    assert quantization.signs(vector).tolist() == [[1, -1, -1, 1, -1, 1, -1, 1, 1]]


def test_sign_products_order_as_hamming_distance():
    rng = np.random.default_rng(0)
    corpus, query = rng.standard_normal((50, 64)), rng.standard_normal((3, 64))
    products = quantization.signs(query) @ quantization.signs(corpus).T
    distances = quantization.hamming(quantization.binary_codes(query), quantization.binary_codes(corpus))
    np.testing.assert_array_equal(products, 64 - 2 * distances)


def test_scalar_round_trip_is_within_half_a_level_inside_the_range():
    rng = np.random.default_rng(1)
    corpus = rng.standard_normal((2_000, 16)).astype(np.float32)
    quantizer = quantization.ScalarQuantizer.fit(corpus, percentile=100.0)
    codes = quantizer.encode(corpus)
    assert codes.dtype == np.uint8 and codes.min() == 0 and codes.max() == 255
    error = np.abs(quantizer.decode(codes) - corpus)
    assert np.all(error <= quantizer.step / 2 * 1.0001)


def test_scalar_values_outside_the_percentile_range_clip_to_its_ends():
    corpus = np.linspace(0.0, 1.0, 1001, dtype=np.float32)[:, None]
    quantizer = quantization.ScalarQuantizer.fit(corpus, percentile=99.0)
    assert quantizer.low[0] == pytest.approx(0.01) and quantizer.high[0] == pytest.approx(0.99)
    assert quantizer.encode(np.array([[-5.0], [5.0]])).tolist() == [[0], [255]]


def test_top_k_breaks_ties_by_corpus_order_and_rescoring_ranks_by_full_precision():
    scores = np.array([[1.0, 3.0, 3.0, 0.0, 3.0]])
    assert quantization.top_k(scores, 3).tolist() == [[1, 2, 4]]
    corpus = np.eye(4, dtype=np.float32)
    query = np.array([[0.1, 0.2, 0.9, 0.5]], dtype=np.float32)
    assert quantization.rescore(query, corpus, np.array([[0, 1, 2, 3]]), 2).tolist() == [[2, 3]]


@pytest.mark.parametrize(
    ("kind", "dimensions", "expected"),
    [("none", 1024, 4096), ("scalar", 1024, 1024), ("binary", 1024, 128), ("binary", 9, 2)],
)
def test_bytes_per_vector(kind, dimensions, expected):
    assert quantization.bytes_per_vector(kind, dimensions) == expected


def test_bytes_per_vector_names_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown compression 'pq'"):
        quantization.bytes_per_vector("pq", 8)
