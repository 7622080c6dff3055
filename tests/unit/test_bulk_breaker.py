"""The bulk run's breaker: an outage stops a run after a bounded number of transient failures,
whatever bad images come in between; only a success shows the service is back."""

from __future__ import annotations

import io

import numpy as np
import pytest
from azure.core.exceptions import ServiceRequestError
from PIL import Image

from indexer.backends.numpy_index import NumpyIndex
from indexer.documents import Embedding
from indexer.errors import BulkIndexingAborted, VisionRequestError, VisionServiceError
from indexer.indexing.bulk import RunOptions, index_items
from indexer.sources.base import ImageItem
from tests.fixtures.search_double import tiny_schema

DIMS = 8


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (seed % 256, 40, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


class ScriptedVectorizer:
    """Answers each image as its script says: "ok", "down" (503, no answer) or "bad" (a 400)."""

    def __init__(self, script: dict[bytes, str]) -> None:
        self.script = script

    def vectorize_image(self, image: bytes) -> Embedding:
        kind = self.script[image]
        if kind == "down":
            raise VisionServiceError("service unavailable", code="ServiceUnavailable", status_code=503)
        if kind == "unreachable":
            raise ServiceRequestError("Connection refused")
        if kind == "bad":
            raise VisionRequestError("not a valid image", code="InvalidImageFormat", status_code=400)
        return Embedding(np.ones(DIMS, dtype=np.float32), "test-tiny")

    def vectorize_image_url(self, url: str) -> Embedding:  # pragma: no cover - not used here
        raise NotImplementedError

    def vectorize_text(self, text: str) -> Embedding:  # pragma: no cover - not used here
        raise NotImplementedError


def run(tmp_path, kinds: list[str], limit: int):
    index = NumpyIndex(tmp_path, "images")
    index.ensure_index(tiny_schema(DIMS))
    images = [png(i) for i in range(len(kinds))]
    items = [ImageItem(f"/photos/{i}.png", f"/photos/{i}.png", lambda d=data: d) for i, data in enumerate(images)]
    vectorizer = ScriptedVectorizer(dict(zip(images, kinds, strict=True)))
    options = RunOptions(concurrency=1, max_consecutive_failures=limit)
    return index_items(items, vectorizer=vectorizer, backend=index, options=options)


def test_bad_images_between_transient_failures_do_not_keep_an_outage_going(tmp_path):
    # down, bad, down, bad, down: three transient failures with permanent ones in between.
    with pytest.raises(BulkIndexingAborted, match="3 images in a row"):
        run(tmp_path, ["down", "bad", "down", "bad", "down", "ok", "ok"], limit=3)


def test_a_success_resets_the_count(tmp_path):
    summary = run(tmp_path, ["down", "down", "ok", "down", "down", "ok"], limit=3)
    assert summary.indexed == 2 and len(summary.transient_failures) == 4


def test_bad_images_alone_never_stop_a_run(tmp_path):
    summary = run(tmp_path, ["bad"] * 6 + ["ok"], limit=3)
    assert summary.indexed == 1 and len(summary.failed) == 6 and not summary.transient_failures


def test_the_stop_names_the_last_error_once_with_its_type(tmp_path):
    with pytest.raises(BulkIndexingAborted) as caught:
        run(tmp_path, ["unreachable"] * 3, limit=3)
    message = str(caught.value)
    assert "ServiceRequestError: Connection refused" in message
    assert "ServiceRequestError: ServiceRequestError" not in message


class SlowClock:
    """A clock each failing image moves on by ``step`` seconds (its client's retries)."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        return self.now


def test_a_streak_that_lasts_a_minute_stops_the_run_before_the_count(tmp_path):
    clock = SlowClock(step=25.0)
    index = NumpyIndex(tmp_path, "images")
    index.ensure_index(tiny_schema(DIMS))
    images = [png(i) for i in range(10)]
    vectorizer = ScriptedVectorizer(dict.fromkeys(images, "down"))
    original = vectorizer.vectorize_image

    def slow(image: bytes) -> Embedding:
        clock.now += clock.step  # each image fails after 25 s of retries
        return original(image)

    vectorizer.vectorize_image = slow  # type: ignore[method-assign]
    items = [ImageItem(f"/p/{i}.png", f"/p/{i}.png", lambda d=data: d) for i, data in enumerate(images)]
    options = RunOptions(concurrency=1, max_consecutive_failures=25, clock=clock)
    with pytest.raises(BulkIndexingAborted, match=r"s without a success\)") as caught:
        index_items(items, vectorizer=vectorizer, backend=index, options=options)
    count = int(str(caught.value).split("after ", 1)[1].split(" ", 1)[0])
    assert 3 <= count < 10  # a minute of failures, long before 25 of them
