"""A blob event's handler checks after it acts (``indexing.events``): a blob that changed, went
away or came back while its document was being written is acted on again, so the index ends
up describing the blob as it is now.

The blobs live in memory here (``MemoryContainer``: what the handlers read through a
``BlobSource``), and a change "while the handler works" is made from inside the vectorizer or
the index's delete, the moments a concurrent writer could slip in. The index is the real numpy
backend; e2e/test_event_convergence.py plays the same races against Azurite.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Callable

import numpy as np
import pytest
from azure.core.exceptions import ResourceNotFoundError

from indexer.backends.numpy_index import NumpyIndex
from indexer.documents import Embedding
from indexer.errors import ServiceError
from indexer.indexing.events import MAX_ROUNDS, current_etag, index_blob_now, remove_blob_now
from indexer.indexing.pipeline import content_hash
from indexer.keys import blob_identity, document_key
from indexer.sources.blob import BlobItem
from tests.fixtures.search_double import tiny_schema
from tests.unit.test_bulk_breaker import DIMS, png

MODEL = "test-tiny"
NAME = "pets/cat.png"
A, B = png(1), png(2)
SAME_SECOND = "2025-05-01T10:00:00.000Z"  # Last-Modified counts whole seconds; ETags differ


class MemoryContainer:
    """One container's blobs in memory, read as ``BlobSource`` does: ``get_item`` is one Get
    Blob Properties (counted in ``property_reads``); every write makes a new ETag."""

    container_name = "images"

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, str, str]] = {}  # name -> (bytes, ETag, Last-Modified)
        self.property_reads = 0
        self._versions = itertools.count(1)

    def put(self, name: str, data: bytes, last_modified: str | None = None) -> str:
        version = next(self._versions)
        etag = f'"0x{version}"'
        self.blobs[name] = (data, etag, last_modified or f"2025-05-01T10:00:{version:02d}.000Z")
        return etag

    def delete(self, name: str) -> None:
        del self.blobs[name]

    def blob_url(self, name: str) -> str:
        return f"https://acct.blob.core.windows.net/{self.container_name}/{name}"

    def get_item(self, name: str) -> BlobItem:
        self.property_reads += 1
        if name not in self.blobs:
            raise ResourceNotFoundError("The specified blob does not exist.")
        data, etag, last_modified = self.blobs[name]
        url = self.blob_url(name)
        return BlobItem(
            identity=blob_identity(url),
            source=url,
            read=lambda: data,
            fields={"container": self.container_name, "blob_path": name, "last_modified": last_modified},
            container=self.container_name,
            blob_name=name,
            etag=etag,
            size=len(data),
        )


class ChangingVectorizer:
    """A vector from the bytes' hash; ``while_vectorizing`` holds changes to make to the
    container during the next calls, one per call (a concurrent writer)."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []
        self.while_vectorizing: list[Callable[[], object]] = []

    def vectorize_image(self, image: bytes) -> Embedding:
        self.calls.append(image)
        if self.while_vectorizing:
            self.while_vectorizing.pop(0)()
        seed = int.from_bytes(hashlib.sha256(image).digest()[:8], "big")
        return Embedding(np.random.default_rng(seed).normal(size=DIMS).astype(np.float32), MODEL)

    def vectorize_image_url(self, url: str) -> Embedding:  # pragma: no cover - not used by the handlers
        raise NotImplementedError

    def vectorize_text(self, text: str) -> Embedding:  # pragma: no cover - not used by the handlers
        raise NotImplementedError


class IndexWithDeleteHook(NumpyIndex):
    """The numpy index; ``while_deleting`` runs once during the next delete (a blob written
    again while its document is being removed). ``stale_reads`` makes ``get`` answer what the
    index held before its last delete, as a search service's reads can lag its writes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.while_deleting: Callable[[], object] | None = None
        self.stale_reads = False
        self._before_delete: dict[str, dict | None] = {}

    def delete(self, keys):
        keys = list(keys)
        self._before_delete = {key: NumpyIndex.get(self, key) for key in keys}
        if self.while_deleting is not None:
            hook, self.while_deleting = self.while_deleting, None
            hook()
        return super().delete(keys)

    def get(self, key):
        if self.stale_reads and key in self._before_delete:
            return self._before_delete[key]
        return super().get(key)


@pytest.fixture
def container() -> MemoryContainer:
    return MemoryContainer()


@pytest.fixture
def vectorizer() -> ChangingVectorizer:
    return ChangingVectorizer()


@pytest.fixture
def index(tmp_path) -> IndexWithDeleteHook:
    index = IndexWithDeleteHook(tmp_path, "images")
    index.ensure_index(tiny_schema(DIMS, MODEL))
    return index


def key_of(container: MemoryContainer, name: str = NAME) -> str:
    return document_key(blob_identity(container.blob_url(name)))


def indexed(index: NumpyIndex) -> dict[str, str]:
    return index.keys_with_hashes()


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_the_current_etag_is_none_once_the_blob_is_gone(container):
    etag = container.put(NAME, A)
    assert current_etag(container, NAME) == etag
    container.delete(NAME)
    assert current_etag(container, NAME) is None


def test_a_blob_that_stayed_as_it_was_is_indexed_once_and_checked_once(container, vectorizer, index):
    etag = container.put(NAME, A)

    outcome, item = index_blob_now(container, NAME, vectorizer, index)

    assert outcome is not None and item is not None
    assert (outcome.status, outcome.key, outcome.source) == ("indexed", key_of(container), container.blob_url(NAME))
    assert item.etag == etag
    assert indexed(index) == {key_of(container): content_hash(A)}
    assert vectorizer.calls == [A]
    assert container.property_reads == 2  # the read, and one check after the write


def test_a_blob_that_is_gone_is_neither_indexed_nor_removed(container, vectorizer, index):
    assert index_blob_now(container, NAME, vectorizer, index) == (None, None)
    assert vectorizer.calls == [] and container.property_reads == 1


def test_a_blob_the_index_already_holds_is_left_unchanged_without_a_check(container, vectorizer, index):
    container.put(NAME, A)
    index_blob_now(container, NAME, vectorizer, index)
    container.property_reads = 0

    outcome, item = index_blob_now(container, NAME, vectorizer, index)

    assert outcome is not None and outcome.status == "unchanged" and item is not None
    assert vectorizer.calls == [A]  # not vectorized again
    assert container.property_reads == 1  # nothing was written, so nothing to check


def test_a_bad_image_fails_for_good_and_is_not_checked_again(container, vectorizer, index):
    container.put(NAME, b"these bytes are no image")

    outcome, item = index_blob_now(container, NAME, vectorizer, index)

    assert outcome is not None and outcome.status == "failed" and not outcome.transient
    assert item is not None and item.blob_name == NAME
    assert indexed(index) == {} and container.property_reads == 1


def test_a_blob_overwritten_while_it_was_indexed_is_indexed_again_as_it_is_now(container, vectorizer, index, caplog):
    first = container.put(NAME, A)
    second: list[str] = []
    vectorizer.while_vectorizing = [lambda: second.append(container.put(NAME, B))]

    with caplog.at_level(logging.INFO, logger="indexer.indexing.events"):
        outcome, item = index_blob_now(container, NAME, vectorizer, index)

    assert outcome is not None and outcome.status == "indexed"
    assert item is not None and item.etag == second[0]
    assert indexed(index) == {key_of(container): content_hash(B)}
    assert vectorizer.calls == [A, B]
    assert logged(caplog) == [
        f"blob images/{NAME} changed while it was being indexed (ETag {first} -> {second[0]}); indexing it again"
    ]


def test_a_blob_rewritten_with_the_same_bytes_in_the_same_second_is_vectorized_again(container, vectorizer, index):
    # The document just written matches the new version by hash and Last-Modified, but a write
    # from an older read may still land after it: the redo is forced, not skipped as unchanged.
    container.put(NAME, A, last_modified=SAME_SECOND)
    vectorizer.while_vectorizing = [lambda: container.put(NAME, A, last_modified=SAME_SECOND)]

    outcome, _ = index_blob_now(container, NAME, vectorizer, index)

    assert outcome is not None and outcome.status == "indexed"
    assert vectorizer.calls == [A, A]


def test_a_blob_deleted_while_it_was_indexed_has_its_document_removed(container, vectorizer, index, caplog):
    first = container.put(NAME, A)
    vectorizer.while_vectorizing = [lambda: container.delete(NAME)]

    with caplog.at_level(logging.INFO, logger="indexer.indexing.events"):
        outcome, item = index_blob_now(container, NAME, vectorizer, index)

    assert outcome is not None and item is None
    assert (outcome.status, outcome.key, outcome.source) == ("deleted", key_of(container), container.blob_url(NAME))
    assert indexed(index) == {}
    assert logged(caplog) == [
        f"blob images/{NAME} changed while it was being indexed (ETag {first} -> gone); indexing it again"
    ]


def test_a_blob_that_comes_back_while_its_stale_document_is_removed_is_indexed_again(container, vectorizer, index):
    container.put(NAME, A)
    vectorizer.while_vectorizing = [lambda: container.delete(NAME)]
    index.while_deleting = lambda: container.put(NAME, B)

    outcome, item = index_blob_now(container, NAME, vectorizer, index)

    assert outcome is not None and outcome.status == "indexed" and item is not None
    assert indexed(index) == {key_of(container): content_hash(B)}
    assert vectorizer.calls == [A, B]


def test_a_blob_back_after_its_stale_document_was_removed_is_indexed_though_a_read_still_shows_it(
    container, vectorizer, index
):
    # Deleted while it was indexed, and written again (same bytes, same second) while the
    # document was removed: a lagging read still shows the removed document, so only a forced
    # redo indexes the blob that is there now.
    container.put(NAME, A, last_modified=SAME_SECOND)
    vectorizer.while_vectorizing = [lambda: container.delete(NAME)]
    index.stale_reads = True
    index.while_deleting = lambda: container.put(NAME, A, last_modified=SAME_SECOND)

    outcome, item = index_blob_now(container, NAME, vectorizer, index)

    assert outcome is not None and outcome.status == "indexed" and item is not None
    assert indexed(index) == {key_of(container): content_hash(A)}
    assert vectorizer.calls == [A, A]


def test_a_blob_that_keeps_changing_is_left_to_a_later_retry_after_the_last_round(container, vectorizer, index):
    container.put(NAME, A)
    contents = itertools.cycle([B, A])
    vectorizer.while_vectorizing = [lambda: container.put(NAME, next(contents)) for _ in range(10)]

    with pytest.raises(ServiceError, match=f"blob images/{NAME} changed 3 times while it was being indexed") as raised:
        index_blob_now(container, NAME, vectorizer, index, max_rounds=3)

    assert raised.value.code == "BlobKeptChanging" and raised.value.status_code is None
    assert len(vectorizer.calls) == 3


def test_the_rounds_are_bounded_by_default(container, vectorizer, index):
    container.put(NAME, A)
    contents = itertools.cycle([B, A])
    vectorizer.while_vectorizing = [lambda: container.put(NAME, next(contents)) for _ in range(2 * MAX_ROUNDS)]

    with pytest.raises(ServiceError, match=f"changed {MAX_ROUNDS} times"):
        index_blob_now(container, NAME, vectorizer, index)

    assert len(vectorizer.calls) == MAX_ROUNDS


def test_removing_the_document_of_a_deleted_blob(container, vectorizer, index):
    container.put(NAME, A)
    index_blob_now(container, NAME, vectorizer, index)
    container.delete(NAME)
    container.property_reads = 0

    outcome, item = remove_blob_now(container, NAME, vectorizer, index)

    assert outcome is not None and item is None
    assert (outcome.status, outcome.key, outcome.source) == ("deleted", key_of(container), container.blob_url(NAME))
    assert indexed(index) == {}
    assert container.property_reads == 2  # gone before the removal, and still gone after it


def test_the_removal_names_the_events_url_when_it_has_one(container, vectorizer, index):
    url = "https://acct.blob.core.windows.net/images/pets/cat.png?from=event"
    outcome, _ = remove_blob_now(container, NAME, vectorizer, index, url=url)
    assert outcome is not None and outcome.source == url


def test_a_deleted_blob_that_exists_again_is_indexed_not_removed(container, vectorizer, index, caplog):
    container.put(NAME, A)

    with caplog.at_level(logging.INFO, logger="indexer.indexing.events"):
        outcome, item = remove_blob_now(container, NAME, vectorizer, index)

    assert outcome is not None and outcome.status == "indexed" and item is not None
    assert indexed(index) == {key_of(container): content_hash(A)}
    assert logged(caplog) == [
        f"blob images/{NAME} exists again; keeping its document up to date instead of removing it"
    ]


def test_a_blob_that_exists_again_is_indexed_within_the_rounds_given(container, vectorizer, index):
    container.put(NAME, A)
    vectorizer.while_vectorizing = [lambda: container.put(NAME, B), lambda: container.put(NAME, A)]

    with pytest.raises(ServiceError, match="changed 2 times"):
        remove_blob_now(container, NAME, vectorizer, index, max_rounds=2)


def test_a_blob_that_comes_back_during_the_removal_is_indexed_though_a_read_still_shows_it(
    container, vectorizer, index, caplog
):
    # The removal may have taken the new blob's document away while a (lagging) read still
    # shows the old one with the same hash: the new blob is indexed, forced.
    container.put(NAME, A, last_modified=SAME_SECOND)
    index_blob_now(container, NAME, vectorizer, index)
    container.delete(NAME)
    index.stale_reads = True
    index.while_deleting = lambda: container.put(NAME, A, last_modified=SAME_SECOND)

    with caplog.at_level(logging.INFO, logger="indexer.indexing.events"):
        outcome, item = remove_blob_now(container, NAME, vectorizer, index)

    assert outcome is not None and outcome.status == "indexed" and item is not None
    assert indexed(index) == {key_of(container): content_hash(A)}
    assert vectorizer.calls == [A, A]
    assert logged(caplog) == [f"blob images/{NAME} came back while its document was removed; indexing it"]


def test_a_blob_that_comes_back_during_the_removal_is_indexed_within_the_rounds_given(container, vectorizer, index):
    index.while_deleting = lambda: container.put(NAME, A)
    vectorizer.while_vectorizing = [lambda: container.put(NAME, B)]

    with pytest.raises(ServiceError, match="changed 1 times"):
        remove_blob_now(container, NAME, vectorizer, index, max_rounds=1)
