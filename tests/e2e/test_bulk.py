"""Bulk indexing (``indexer.indexing.bulk``) with the real offline model and the real numpy index.

The index and the vectorizer are wrapped only to count calls; every call goes through to
the real object, so what is asserted is what the real pipeline did.
"""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from indexer.errors import ModelVersionMismatchError
from indexer.indexing.bulk import BulkIndexingAborted, RunOptions, index_items, remove_missing
from indexer.indexing.pipeline import Outcome, content_hash
from indexer.model_versions import OFFLINE_ENGLISH
from indexer.sources.base import ImageItem
from indexer.sources.folder import FolderSource

IMAGES = ("cat.jpg", "dog.jpg", "fire_truck.jpg", "coffee.jpg", "zebra.jpg", "penguin.jpg", "laptop.jpg")


class CountingIndex:
    """A real index; records each upsert batch and counts the other calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.upserts: list[list[str]] = []
        self.calls: Counter[str] = Counter()

    def upsert(self, documents):
        self.upserts.append([d.key for d in documents])
        return self.inner.upsert(documents)

    def __getattr__(self, name: str) -> Any:
        self.calls[name] += 1
        return getattr(self.inner, name)


class CountingVectorizer:
    """The real vectorizer; counts image calls (from any thread)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.images = 0
        self._lock = threading.Lock()

    def vectorize_image(self, image: bytes):
        with self._lock:
            self.images += 1
        return self.inner.vectorize_image(image)

    def vectorize_image_url(self, url: str):
        return self.inner.vectorize_image_url(url)

    def vectorize_text(self, text: str):
        return self.inner.vectorize_text(text)


@pytest.fixture
def photos(tmp_path: Path, samples_dir: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in IMAGES:
        shutil.copy(samples_dir / name, folder / name)
    return folder


@pytest.fixture
def index(local_index) -> CountingIndex:
    return CountingIndex(local_index)


@pytest.fixture
def vectorizer(local_multilingual) -> CountingVectorizer:
    return CountingVectorizer(local_multilingual)


def run(items, vectorizer, index, **options):
    outcomes: list[Outcome] = []
    summary = index_items(
        items, vectorizer=vectorizer, backend=index, options=RunOptions(on_outcome=outcomes.append, **options)
    )
    return summary, outcomes


def test_indexes_every_image_in_batches_of_batch_size(photos, vectorizer, index) -> None:
    items = list(FolderSource(photos).list_items())

    summary, outcomes = run(items, vectorizer, index, concurrency=3, batch_size=3)

    assert summary.indexed == len(IMAGES) and summary.failed == [] and summary.unchanged == 0
    assert [len(batch) for batch in index.upserts] == [3, 3, 1]
    assert summary.upserts == 3
    assert index.inner.count() == len(IMAGES)
    stored = index.inner.get(items[0].key)
    assert stored["content_hash"] == content_hash((photos / items[0].fields["file_name"]).read_bytes())
    assert stored["container"] == FolderSource(photos).label


def test_on_outcome_is_called_once_per_item_in_item_order(photos, vectorizer, index) -> None:
    items = list(FolderSource(photos).list_items())
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    items.insert(2, FolderSource(photos).get_item("broken.jpg"))

    summary, outcomes = run(items, vectorizer, index, concurrency=4, batch_size=2)

    assert [o.key for o in outcomes] == [item.key for item in items]
    assert Counter(o.status for o in outcomes) == {"indexed": len(IMAGES), "failed": 1}
    assert summary.seen == len(items)


def test_a_rerun_skips_unchanged_bytes_from_one_listing(photos, vectorizer, index) -> None:
    items = list(FolderSource(photos).list_items())
    run(items, vectorizer, index)
    vectorizer.images = 0
    index.calls.clear()
    index.upserts.clear()

    summary, outcomes = run(items, vectorizer, index)

    assert (summary.indexed, summary.unchanged) == (0, len(IMAGES))
    assert {o.status for o in outcomes} == {"unchanged"}
    assert vectorizer.images == 0
    assert index.upserts == []
    assert index.calls["keys_with_hashes"] == 1 and index.calls["get"] == 0


def test_changed_bytes_are_indexed_again_and_only_they(photos, vectorizer, index) -> None:
    source = FolderSource(photos)
    run(list(source.list_items()), vectorizer, index)
    before = index.inner.get(source.get_item("cat.jpg").key)
    shutil.copy(photos / "dog.jpg", photos / "cat.jpg")
    vectorizer.images = 0

    summary, _ = run(list(source.list_items()), vectorizer, index)

    assert (summary.indexed, summary.unchanged) == (1, len(IMAGES) - 1)
    assert vectorizer.images == 1
    after = index.inner.get(source.get_item("cat.jpg").key)
    assert after["content_hash"] == content_hash((photos / "dog.jpg").read_bytes()) != before["content_hash"]


def test_force_vectorizes_unchanged_images_again(photos, vectorizer, index) -> None:
    items = list(FolderSource(photos).list_items())
    run(items, vectorizer, index)
    vectorizer.images = 0

    summary, _ = run(items, vectorizer, index, force=True)

    assert summary.indexed == len(IMAGES) and vectorizer.images == len(IMAGES)


def _gated(items: list[ImageItem], gate: threading.Barrier, in_flight: list[int], lock: threading.Lock):
    """Items whose read waits until ``gate.parties`` reads are running at once."""

    def wrap(item: ImageItem) -> ImageItem:
        def read() -> bytes:
            with lock:
                in_flight[0] += 1
                in_flight[1] = max(in_flight[1], in_flight[0])
            try:
                gate.wait()  # a broken or timed-out barrier fails the item, and so the test
                return item.read()
            finally:
                with lock:
                    in_flight[0] -= 1

        return ImageItem(item.identity, item.source, read, dict(item.fields))

    return [wrap(item) for item in items]


def test_reads_run_concurrently_up_to_the_concurrency(photos, vectorizer, index) -> None:
    items = list(FolderSource(photos).list_items())[:6]
    in_flight = [0, 0]  # now, highest seen
    # Parties = concurrency: the reads only get past the barrier if 3 run at the same time.
    gate = threading.Barrier(3, timeout=30)

    summary, _ = run(_gated(items, gate, in_flight, threading.Lock()), vectorizer, index, concurrency=3)

    assert summary.indexed == 6 and summary.failed == []
    assert in_flight[1] == 3


def test_items_are_pulled_lazily_with_bounded_read_ahead(photos, vectorizer, index) -> None:
    items = list(FolderSource(photos).list_items())
    pulled = 0
    pulled_at_first_outcome: list[int] = []

    def lazily() -> Iterator[ImageItem]:
        nonlocal pulled
        for item in items:
            pulled += 1
            yield item

    def first(outcome: Outcome) -> None:
        if not pulled_at_first_outcome:
            pulled_at_first_outcome.append(pulled)

    # One worker finishes items in the order they came, so the first outcome comes before
    # more than 2 x concurrency items are pulled. With more workers, items behind a slow first
    # one may run ahead of it, up to ``_Window``'s bound (tests/unit/test_bulk_window.py).
    options = RunOptions(concurrency=1, batch_size=1, on_outcome=first)
    index_items(lazily(), vectorizer=vectorizer, backend=index, options=options)

    assert pulled_at_first_outcome[0] <= 2 * 1 < len(items)


def test_a_short_batch_is_written_once_many_outcomes_wait_behind_it(photos, vectorizer, index, monkeypatch) -> None:
    import indexer.indexing.bulk

    source = FolderSource(photos)
    items = list(source.list_items())
    run(items[1:], vectorizer, index)  # all but the first are unchanged on the next run
    monkeypatch.setattr(indexer.indexing.bulk, "MAX_WAITING_OUTCOMES", 3)
    pulled = 0
    pulled_when_written: list[int] = []

    def lazily() -> Iterator[ImageItem]:
        nonlocal pulled
        for item in items:
            pulled += 1
            yield item

    def on_outcome(outcome: Outcome) -> None:
        if outcome.status == "indexed":
            pulled_when_written.append(pulled)

    index_items(
        lazily(),
        vectorizer=vectorizer,
        backend=index,
        options=RunOptions(concurrency=1, batch_size=100, on_outcome=on_outcome),
    )

    assert len(pulled_when_written) == 1 and pulled_when_written[0] < len(items)


def test_bad_images_and_unreadable_files_are_reported_and_the_run_goes_on(photos, vectorizer, index) -> None:
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (photos / "lying.png").write_text("this is a text file with an image extension")
    (photos / "empty.png").write_bytes(b"")
    source = FolderSource(photos)
    items = list(source.list_items())
    (photos / "zebra.jpg").unlink()  # vanished between listing and reading

    summary, outcomes = run(items, vectorizer, index, concurrency=2)

    failed = {Path(o.source).name: o for o in summary.failed}
    assert set(failed) == {"corrupt.jpg", "zebra.jpg"}  # a JPEG by its first bytes, and a vanished file
    assert dict(source.skipped).keys() == {"lying.png", "empty.png"}  # no image by their bytes: never offered
    assert not failed["corrupt.jpg"].transient and "InvalidImageError" in failed["corrupt.jpg"].reason
    assert "not a readable image" in dict(source.skipped)["lying.png"]
    assert failed["zebra.jpg"].transient and "FileNotFoundError" in failed["zebra.jpg"].reason
    assert summary.indexed == len(IMAGES) - 1
    assert index.inner.count() == len(IMAGES) - 1
    assert index.inner.get(source.get_item("corrupt.jpg").key) is None
    assert len(outcomes) == len(items)


def test_a_pin_mismatch_stops_the_run_and_writes_nothing(photos, vectorizer, local_index_factory) -> None:
    english = CountingIndex(local_index_factory(OFFLINE_ENGLISH, name="english"))
    outcomes: list[Outcome] = []

    with pytest.raises(ModelVersionMismatchError):
        index_items(
            FolderSource(photos).list_items(),
            vectorizer=vectorizer,
            backend=english,
            options=RunOptions(on_outcome=outcomes.append),
        )

    assert english.inner.count() == 0 and english.upserts == []
    assert [o for o in outcomes if o.status == "indexed"] == []


def test_a_run_of_transient_failures_stops_the_run(photos, vectorizer, index) -> None:
    items = list(FolderSource(photos).list_items())
    for item in items:  # every read now fails with FileNotFoundError, a transient error
        Path(item.source).unlink()

    with pytest.raises(BulkIndexingAborted, match="3 images in a row"):
        run(items, vectorizer, index, max_consecutive_failures=3)

    summary, _ = run(items, vectorizer, index, max_consecutive_failures=None)
    assert len(summary.transient_failures) == len(items) == len(summary.failed)


def test_remove_missing_deletes_only_vanished_documents_of_the_selected_folder(
    tmp_path, photos, vectorizer, index
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(photos / "cat.jpg", other / "cat.jpg")
    run(list(FolderSource(other).list_items()), vectorizer, index)
    source = FolderSource(photos)
    run(list(source.list_items()), vectorizer, index)
    (photos / "dog.jpg").unlink()
    (photos / "laptop.jpg").unlink()

    present = {item.key for item in source.list_items()}
    removed = remove_missing(present, backend=index, conditions=source.conditions)

    assert removed == 2
    assert set(index.inner.keys_with_hashes(source.conditions)) == present
    assert index.inner.get(FolderSource(other).get_item("cat.jpg").key) is not None
    assert remove_missing(present, backend=index, conditions=source.conditions) == 0


@pytest.mark.parametrize("options", [{"concurrency": 0}, {"batch_size": 0}])
def test_invalid_options_are_refused(options) -> None:
    with pytest.raises(ValueError, match=f"{next(iter(options))} must be at least 1"):
        RunOptions(**options)
