"""Waiting for an index to show a run's own writes (``indexing.visibility``), and the content
hash skip's version check (``pipeline.stored_hash_of_same_version``)."""

from __future__ import annotations

import numpy as np

from indexer.documents import Document, Embedding
from indexer.indexing.pipeline import stored_hash_of_same_version
from indexer.indexing.visibility import wait_until_visible
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.sources.base import ImageItem


class LaggingIndex:
    """Shows each expected write only after ``polls_to_show`` checks (an index behind its writes)."""

    def __init__(self, polls_to_show: int) -> None:
        self.polls_to_show = polls_to_show
        self.checks: list[dict] = []

    def not_yet_visible(self, expected):
        self.checks.append(dict(expected))
        return set(expected) if len(self.checks) < self.polls_to_show else set()


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_waits_until_the_index_shows_every_write():
    index, time = LaggingIndex(polls_to_show=4), FakeTime()
    remaining = wait_until_visible(index, {"a": "sha256:1", "b": None}, timeout=60, sleep=time.sleep, clock=time.clock)
    assert remaining == set()
    assert len(index.checks) == 4 and index.checks[0] == {"a": "sha256:1", "b": None}
    assert time.sleeps == sorted(time.sleeps)  # backing off, never hammering the service


def test_gives_up_after_the_timeout_and_reports_what_is_missing(caplog):
    index, time = LaggingIndex(polls_to_show=10_000), FakeTime()
    remaining = wait_until_visible(index, {"a": "sha256:1"}, timeout=5, sleep=time.sleep, clock=time.clock)
    assert remaining == {"a"}
    assert time.now <= 5.0 + 1e-9  # a bound, not a hang
    assert "not visible" in caplog.text


def test_nothing_to_wait_for_costs_no_call():
    index = LaggingIndex(polls_to_show=1)
    assert wait_until_visible(index, {}) == set() and index.checks == []


def test_the_numpy_index_shows_writes_at_once(local_index):
    vector = np.ones(512, dtype=np.float32)
    local_index.upsert([Document("k1", Embedding(vector, OFFLINE_MULTILINGUAL), {"content_hash": "sha256:a"})])
    assert local_index.not_yet_visible({"k1": "sha256:a", "gone": None}) == set()
    # Another writer's newer bytes, or a document still there, are reported.
    assert local_index.not_yet_visible({"k1": "sha256:b", "k2": "sha256:a"}) == {"k1", "k2"}
    assert local_index.not_yet_visible({"k1": None}) == {"k1"}


def test_a_stored_document_vouches_only_for_the_same_version_of_the_image():
    def item(last_modified: str | None) -> ImageItem:
        fields = {} if last_modified is None else {"last_modified": last_modified}
        return ImageItem(identity="c/x.jpg", source="c/x.jpg", read=lambda: b"", fields=fields)

    stored = {"content_hash": "sha256:a", "last_modified": "2025-03-01T10:00:01.000Z"}
    # The same instant written back in another format still counts as the same version.
    assert stored_hash_of_same_version(stored, item("2025-03-01T10:00:01Z")) == "sha256:a"
    assert stored_hash_of_same_version(stored, item("2025-03-01T10:00:02Z")) is None
    assert stored_hash_of_same_version({**stored, "last_modified": None}, item("2025-03-01T10:00:01Z")) is None
    assert stored_hash_of_same_version(stored, item(None)) == "sha256:a"  # a source without versions
    assert stored_hash_of_same_version(None, item("2025-03-01T10:00:01Z")) is None
