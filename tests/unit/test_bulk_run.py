"""A bulk run (``indexing.bulk``): what it writes, in which batches, what it reports for each
item and in which order, what it skips, and how it removes the documents of images that are
gone. The index is the real numpy backend (``RefusingIndex`` adds only the refusals a search
service can answer with); the vectorizer is test_bulk_breaker's scripted one.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future

import pytest

from indexer.backends.numpy_index import NumpyIndex
from indexer.errors import BulkIndexingAborted, ServiceError
from indexer.filters import Condition
from indexer.indexing import bulk
from indexer.indexing.bulk import RunOptions, _Window, index_items, remove_missing
from indexer.indexing.pipeline import content_hash
from indexer.sources.base import ImageItem
from tests.fixtures.search_double import tiny_schema
from tests.unit.test_bulk_breaker import DIMS, ScriptedVectorizer, png


class RefusingIndex(NumpyIndex):
    """The numpy index, refusing the keys in ``refuse`` (key -> retriable?) on writes and
    deletes as a search service answers per document; records each upsert's keys."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.refuse: dict[str, bool] = {}
        self.upserted: list[list[str]] = []
        self.deleted: list[list[str]] = []
        self.hash_listings = 0

    def upsert(self, documents):
        documents = list(documents)
        self.upserted.append([d.key for d in documents])
        result = super().upsert([d for d in documents if d.key not in self.refuse])
        for document in documents:
            if document.key in self.refuse:
                result.fail(document.key, "the index is busy", retriable=self.refuse[document.key])
        return result

    def delete(self, keys):
        keys = list(keys)
        self.deleted.append(keys)
        result = super().delete([k for k in keys if k not in self.refuse])
        for key in keys:
            if key in self.refuse:
                result.fail(key, "the document is locked")
        return result

    def keys_with_hashes(self, conditions=()):
        self.hash_listings += 1
        return super().keys_with_hashes(conditions)


class Progress:
    """What a tqdm bar is given."""

    def __init__(self) -> None:
        self.updates: list[int] = []

    def update(self, n: int) -> None:
        self.updates.append(n)


@pytest.fixture
def index(tmp_path) -> RefusingIndex:
    index = RefusingIndex(tmp_path, "images")
    index.ensure_index(tiny_schema(DIMS))
    return index


def items_of(count: int, *, start: int = 0) -> list[ImageItem]:
    return [
        ImageItem(f"/photos/{i}.png", f"/photos/{i}.png", lambda i=i: png(i), {"container": "photos"})
        for i in range(start, start + count)
    ]


def all_ok(items: list[ImageItem]) -> ScriptedVectorizer:
    return ScriptedVectorizer({item.read(): "ok" for item in items})


def run(items, index, *, vectorizer=None, stored_hashes=None, **options):
    return index_items(
        items,
        vectorizer=vectorizer or all_ok(items),
        backend=index,
        stored_hashes=stored_hashes,
        options=RunOptions(concurrency=1, **options),
    )


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(("option", "named"), [("concurrency", "concurrency"), ("batch_size", "batch_size")])
def test_a_run_needs_at_least_one_worker_and_one_document_a_batch(option, named):
    with pytest.raises(ValueError, match=f"^{named} must be at least 1, got 0$"):
        RunOptions(**{option: 0})


def test_one_worker_and_batches_of_one_are_a_run():
    assert RunOptions(concurrency=1, batch_size=1).batch_size == 1


# --------------------------------------------------------------------------- writes


def test_documents_are_written_in_batches_of_the_batch_size_in_the_order_the_items_came(index):
    items = items_of(5)
    summary = run(items, index, batch_size=2)
    assert index.upserted == [[i.key for i in items[:2]], [i.key for i in items[2:4]], [items[4].key]]
    assert (summary.indexed, summary.upserts, summary.seen) == (5, 3, 5)
    assert summary.written == {item.key: content_hash(item.read()) for item in items}


def test_a_batch_of_exactly_the_batch_size_is_written_at_once(index):
    items = items_of(4)
    summary = run(items, index, batch_size=2)
    assert summary.upserts == 2 and index.upserted == [[items[0].key, items[1].key], [items[2].key, items[3].key]]


def test_a_short_batch_is_written_once_many_outcomes_wait_behind_it(index, monkeypatch):
    # A mostly unchanged listing: the one new image is written (and its checkpoint reported)
    # once enough unchanged outcomes wait behind it, not only at the end of the run.
    monkeypatch.setattr(bulk, "MAX_WAITING_OUTCOMES", 3)
    items = items_of(6)
    stored = {item.key: content_hash(item.read()) for item in items}
    new_ones = (items[0].key, items[3].key)
    for key in new_ones:
        del stored[key]

    summary = run(items, index, stored_hashes=stored)

    assert index.upserted == [[items[0].key], [items[3].key]]
    assert (summary.indexed, summary.unchanged, summary.upserts) == (2, 4, 2)


def test_unchanged_bytes_are_skipped_without_a_vision_call(index):
    items = items_of(3)
    run(items, index)
    vectorizer = ScriptedVectorizer({})  # any call would fail: no image is in its script

    summary = run(items, index, vectorizer=vectorizer)

    assert (summary.indexed, summary.unchanged, summary.upserts, summary.failed) == (0, 3, 0, [])
    assert index.hash_listings == 2  # one listing a run, not a lookup per image


def test_the_stored_hashes_given_are_used_instead_of_a_listing(index):
    items = items_of(2)
    stored = {items[0].key: content_hash(items[0].read())}
    summary = run(items, index, stored_hashes=stored)
    assert (summary.indexed, summary.unchanged) == (1, 1)
    assert index.hash_listings == 0


def test_force_vectorizes_unchanged_bytes_again_without_listing_the_index(index):
    items = items_of(2)
    run(items, index)
    summary = run(items, index, force=True)
    assert (summary.indexed, summary.unchanged) == (2, 0)
    assert index.hash_listings == 1  # the first run's only


def test_force_overrides_the_stored_hashes_given(index):
    items = items_of(2)
    stored = {item.key: content_hash(item.read()) for item in items}
    assert run(items, index, stored_hashes=stored, force=True).indexed == 2


def test_a_document_the_index_refuses_is_a_failure_and_not_written(index):
    items = items_of(3)
    index.refuse = {items[1].key: False}

    summary = run(items, index)

    assert summary.indexed == 2 and summary.upserts == 1
    assert set(summary.written) == {items[0].key, items[2].key}
    (failure,) = summary.failed
    assert (failure.key, failure.source, failure.status) == (items[1].key, items[1].source, "failed")
    assert failure.reason == "the index refused the document: the index is busy"
    assert not failure.transient  # refused outright: the next run would be refused again


def test_a_document_the_index_cannot_take_yet_is_left_for_the_next_run_and_counts_towards_stopping(index):
    # A whole batch the index could not take: as many transient failures in a row.
    items = items_of(4)
    index.refuse = {item.key: True for item in items}

    with pytest.raises(BulkIndexingAborted, match="3 images in a row"):
        run(items, index, batch_size=3, max_consecutive_failures=3)


def test_a_transient_refusal_is_reported_as_transient(index):
    items = items_of(2)
    index.refuse = {items[0].key: True}
    summary = run(items, index)
    assert [(o.key, o.transient) for o in summary.transient_failures] == [(items[0].key, True)]
    assert list(summary.written) == [items[1].key]


def test_a_transient_vision_error_fails_that_item_for_now_naming_the_error(index):
    items = items_of(2)
    vectorizer = ScriptedVectorizer({items[0].read(): "down", items[1].read(): "ok"})

    summary = run(items, index, vectorizer=vectorizer)

    (failure,) = summary.failed
    assert (failure.key, failure.source, failure.status, failure.transient) == (
        items[0].key,
        items[0].source,
        "failed",
        True,
    )
    assert failure.reason == (
        "VisionServiceError: (ServiceUnavailable) service unavailable (not indexed; the next run retries it)"
    )
    assert summary.indexed == 1


def test_an_error_of_the_set_up_stops_the_run_and_keeps_its_traceback(index):
    class Broken(ScriptedVectorizer):
        def vectorize_image(self, image):
            raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        run(items_of(2), index, vectorizer=Broken({}))
    assert index.upserted == []


# --------------------------------------------------------------------------- reports


def test_every_item_is_reported_once_in_order_after_its_batch_was_written(index):
    items = items_of(5)
    stored = {items[1].key: content_hash(items[1].read())}
    vectorizer = ScriptedVectorizer({item.read(): "ok" for item in items} | {items[3].read(): "bad"})
    seen: list[tuple[str, str, int]] = []

    summary = run(
        items,
        index,
        vectorizer=vectorizer,
        stored_hashes=stored,
        batch_size=2,
        on_outcome=lambda o: seen.append((o.key, o.status, len(index.upserted))),
    )

    assert [(key, status) for key, status, _ in seen] == [
        (items[0].key, "indexed"),
        (items[1].key, "unchanged"),
        (items[2].key, "indexed"),
        (items[3].key, "failed"),
        (items[4].key, "indexed"),
    ]
    assert [written for _, status, written in seen if status == "indexed"] == [1, 1, 2]
    assert (summary.indexed, summary.unchanged, len(summary.failed), summary.seen) == (3, 1, 1, 5)
    assert summary.transient_failures == []


def test_the_progress_bar_moves_one_step_per_item(index):
    progress = Progress()
    run(items_of(3), index, progress=progress)
    assert progress.updates == [1, 1, 1]


def test_each_item_not_indexed_is_logged_with_its_reason(index, caplog):
    items = items_of(1)
    vectorizer = ScriptedVectorizer({items[0].read(): "bad"})
    with caplog.at_level(logging.DEBUG, logger="indexer.indexing.bulk"):
        summary = run(items, index, vectorizer=vectorizer)
    assert [r.getMessage() for r in caplog.records] == [f"not indexed: /photos/0.png: {summary.failed[0].reason}"]


# --------------------------------------------------------------------------- concurrency


def test_no_more_images_are_vectorized_at_once_than_the_concurrency(index):
    # One worker: the first image waits a little for another to start beside it.
    items = items_of(3)
    another_started = threading.Event()
    overlapped: list[bool] = []
    threads: set[str] = set()

    class Alone(ScriptedVectorizer):
        def vectorize_image(self, image):
            threads.add(threading.current_thread().name)
            if image == items[0].read():
                overlapped.append(another_started.wait(timeout=0.3))
            else:
                another_started.set()
            return super().vectorize_image(image)

    summary = run(items, index, vectorizer=Alone({item.read(): "ok" for item in items}))

    assert summary.indexed == 3 and overlapped == [False]
    assert all(name.startswith("imgsearch-index") for name in threads)  # named in thread dumps


def test_unfinished_items_in_the_window_are_bounded(index):
    # Both items handed out are unfinished: no room until one finishes.
    window = _Window(queued=2, held=3)
    first, second = Future(), Future()
    window.add(first)
    window.add(second)
    threading.Timer(0.05, second.set_result, args=[None]).start()

    window.wait_for_room()

    assert second.done() and not first.done()


def test_finished_items_held_behind_an_unfinished_oldest_are_bounded(index):
    window = _Window(queued=2, held=3)
    oldest = Future()
    window.add(oldest)
    for _ in range(4):  # queued + held items in all, all but the oldest finished
        done = Future()
        done.set_result(None)
        window.add(done)
    threading.Timer(0.05, oldest.set_result, args=[None]).start()

    window.wait_for_room()

    assert oldest.done()


def test_a_window_with_room_does_not_wait():
    window = _Window(queued=2, held=3)
    window.add(Future())  # one unfinished of two, one of five in all
    waiting = threading.Thread(target=window.wait_for_room, daemon=True)
    waiting.start()
    waiting.join(timeout=5)
    assert not waiting.is_alive(), "waited for room in a window that had some"


# --------------------------------------------------------------------------- removals


def stored_documents(index: NumpyIndex, count: int, container: str = "photos") -> list[str]:
    items = items_of(count, start=100 if container != "photos" else 0)
    for item in items:
        item.fields["container"] = container
    run(items, index)
    return [item.key for item in items]


def test_documents_of_images_no_longer_listed_are_removed(index):
    keys = stored_documents(index, 4)
    removed = remove_missing(set(keys[:2]), backend=index, conditions=[Condition("container", "eq", "photos")])
    assert removed == 2
    assert set(index.keys_with_hashes()) == set(keys[:2])


def test_only_the_documents_of_the_source_are_removed(index):
    mine = stored_documents(index, 2)
    others = stored_documents(index, 2, container="elsewhere")
    removed = remove_missing(set(), backend=index, conditions=[Condition("container", "eq", "photos")])
    assert removed == 2
    assert set(index.keys_with_hashes()) == set(others)
    assert not set(mine) & set(index.keys_with_hashes())


def test_a_listing_made_earlier_saves_listing_the_index_again(index):
    keys = stored_documents(index, 3)
    listings = index.hash_listings
    removed = remove_missing({keys[0]}, backend=index, conditions=[], stored_keys=keys[1:])
    assert removed == 2 and index.hash_listings == listings
    assert list(index.keys_with_hashes()) == [keys[0]]


def test_removals_go_in_batches_of_the_most_one_request_takes(index, monkeypatch):
    monkeypatch.setattr(bulk, "MAX_DELETE_BATCH", 2)
    keys = stored_documents(index, 5)
    assert remove_missing(set(), backend=index, conditions=[]) == 5
    assert index.deleted == [sorted(keys)[:2], sorted(keys)[2:4], sorted(keys)[4:]]


def test_a_removal_the_index_refuses_is_an_error_naming_a_document(index):
    keys = stored_documents(index, 3)
    index.refuse = {keys[1]: False}
    with pytest.raises(ServiceError, match=f"refused to delete 1 document.s. of removed images, e.g. {keys[1]}: "
                       "the document is locked") as refused:  # fmt: skip
        remove_missing(set(), backend=index, conditions=[])
    assert refused.value.code == "DeleteFailed"


def test_nothing_to_remove_makes_no_request(index):
    keys = stored_documents(index, 2)
    assert remove_missing(set(keys), backend=index, conditions=[]) == 0
    assert index.deleted == []
