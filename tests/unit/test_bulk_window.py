"""The bulk run keeps its workers fed while one image is slow (a retry after a 429, a large
blob): submissions are bounded by the items still unfinished, not by the oldest one, while
outcomes are still reported in the order the items came."""

from __future__ import annotations

import threading

import numpy as np

from indexer.backends.numpy_index import NumpyIndex
from indexer.documents import Embedding
from indexer.indexing.bulk import MAX_HELD_PER_WORKER, RunOptions, index_items
from indexer.sources.base import ImageItem
from tests.fixtures.search_double import tiny_schema
from tests.unit.test_bulk_breaker import DIMS, png

CONCURRENCY = 2


class SlowFirstVectorizer:
    """The first image answers only once ``others`` other images have been answered (or after
    ``timeout`` seconds, which the test then reports as the run having stalled behind it)."""

    def __init__(self, first: bytes, others: int, timeout: float = 10.0) -> None:
        self.first = first
        self.others = others
        self.timeout = timeout
        self.answered = 0
        self.first_waited_out = False
        self._enough = threading.Event()
        self._lock = threading.Lock()

    def vectorize_image(self, image: bytes) -> Embedding:
        if image == self.first:
            self.first_waited_out = not self._enough.wait(self.timeout)
        else:
            with self._lock:
                self.answered += 1
                if self.answered >= self.others:
                    self._enough.set()
        return Embedding(np.ones(DIMS, dtype=np.float32), "test-tiny")

    def vectorize_image_url(self, url: str) -> Embedding:  # pragma: no cover - not used here
        raise NotImplementedError

    def vectorize_text(self, text: str) -> Embedding:  # pragma: no cover - not used here
        raise NotImplementedError


def items_of(images: list[bytes]) -> list[ImageItem]:
    return [ImageItem(f"/photos/{i}.png", f"/photos/{i}.png", lambda d=data: d) for i, data in enumerate(images)]


def test_a_slow_oldest_item_does_not_hold_back_the_ones_after_it(tmp_path):
    # Far more than 2 x concurrency items must be answered while the first one is still out.
    others = 6 * CONCURRENCY
    images = [png(i) for i in range(others + 4)]
    vectorizer = SlowFirstVectorizer(images[0], others=others)
    index = NumpyIndex(tmp_path, "images")
    index.ensure_index(tiny_schema(DIMS))
    seen: list[str] = []

    summary = index_items(
        items_of(images),
        vectorizer=vectorizer,
        backend=index,
        options=RunOptions(concurrency=CONCURRENCY, on_outcome=lambda outcome: seen.append(outcome.key)),
    )

    assert not vectorizer.first_waited_out, "the run stalled behind its slow first image"
    assert summary.indexed == len(images)
    assert seen == [item.key for item in items_of(images)]  # still in the order the items came


def test_finished_items_waiting_behind_a_slow_one_are_bounded(tmp_path):
    # The first image waits for more images than may be held behind it: the run must stop
    # submitting (the first image times out) rather than hold the whole listing in memory.
    held = MAX_HELD_PER_WORKER * CONCURRENCY
    images = [png(i) for i in range(held + 3 * CONCURRENCY + 5)]
    vectorizer = SlowFirstVectorizer(images[0], others=held + 2 * CONCURRENCY + 1, timeout=1.0)
    index = NumpyIndex(tmp_path, "images")
    index.ensure_index(tiny_schema(DIMS))

    options = RunOptions(concurrency=CONCURRENCY)
    summary = index_items(items_of(images), vectorizer=vectorizer, backend=index, options=options)

    assert vectorizer.first_waited_out
    assert summary.indexed == len(images)
