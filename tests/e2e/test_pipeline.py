"""How index refusals are sorted: a busy index is worth retrying, a refused document is not;
and the content-hash skip under Azure's indexing latency.

The real Azure backend runs against the search double, whose fault injection makes the index
busy (whole-request 503s) or refuse a document outright (a per-document 400), and which shows
writes only after a delay (``tests/e2e/conftest.py``), as Azure does.
"""

from __future__ import annotations

import time

import pytest

from indexer.errors import ServiceError
from indexer.indexing.bulk import BulkIndexingAborted, RunOptions, index_items
from indexer.indexing.pipeline import content_hash, index_item
from indexer.keys import document_key
from indexer.sources.base import ImageItem
from standins.search.service import FaultConfig


class CountingVectorizer:
    """The real offline model, counting the (paid, on Azure) image calls made through it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.image_calls = 0

    def vectorize_image(self, image: bytes):
        self.image_calls += 1
        return self.inner.vectorize_image(image)

    def vectorize_image_url(self, url: str):
        return self.inner.vectorize_image_url(url)

    def vectorize_text(self, text: str):
        return self.inner.vectorize_text(text)


def items(samples_dir, count: int, prefix: str = "img") -> list[ImageItem]:
    photos = sorted(samples_dir.glob("*.jpg"))
    chosen = [photos[i % len(photos)] for i in range(count)]
    return [
        ImageItem(identity=f"{prefix}/{i}/{p.name}", source=f"{prefix}/{i}/{p.name}", read=(lambda p=p: p.read_bytes()))
        for i, p in enumerate(chosen)
    ]


def test_a_busy_index_raises_so_the_host_retries(
    azure_search_backend, search_double, search_index_name, local_multilingual, samples_dir
):
    search_double.set_faults(
        search_index_name,
        FaultConfig(request_fault_rate=1.0, request_fault_status=503, operations=frozenset({"index"})),
    )
    item = items(samples_dir, 1)[0]
    with pytest.raises(ServiceError) as raised:
        index_item(item, local_multilingual, azure_search_backend)
    assert raised.value.retriable
    search_double.set_faults(search_index_name, None)
    assert azure_search_backend.get(item.key) is None


def test_a_refused_document_is_a_permanent_failure_not_an_endless_retry(
    azure_search_backend, search_double, search_index_name, local_multilingual, samples_dir
):
    search_double.set_faults(search_index_name, FaultConfig(document_fault_rate=1.0, document_fault_statuses=(400,)))
    item = items(samples_dir, 1)[0]

    outcome = index_item(item, local_multilingual, azure_search_backend)

    assert outcome.status == "failed" and not outcome.transient
    assert "the index refused the document" in outcome.reason and "(400)" in outcome.reason
    assert azure_search_backend.get(item.key) is None


def test_a_bulk_run_stops_when_the_index_is_down_instead_of_paying_for_every_image(
    azure_search_backend, search_double, search_index_name, local_multilingual, samples_dir
):
    search_double.set_faults(
        search_index_name,
        FaultConfig(request_fault_rate=1.0, request_fault_status=503, operations=frozenset({"index"})),
    )
    vectorizer = CountingVectorizer(local_multilingual)
    listing = items(samples_dir, 60)

    with pytest.raises(BulkIndexingAborted, match="in a row"):
        index_items(
            listing,
            vectorizer=vectorizer,
            backend=azure_search_backend,
            stored_hashes={},
            options=RunOptions(concurrency=2, batch_size=10, max_consecutive_failures=10),
        )

    # One batch was vectorized (plus what was in flight), not all 60 images.
    assert vectorizer.image_calls < 30
    search_double.set_faults(search_index_name, None)
    assert azure_search_backend.get(document_key(listing[0].identity)) is None


def eventually(condition, what: str, timeout: float = 30.0) -> None:
    """Wait for the index to show a write (a bound on a hang, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_content_hash_skip_never_trusts_a_stale_read(azure_search_backend, local_multilingual, samples_dir):
    # A blob goes A -> B -> A and each change is handled at once, as the blob trigger does. The
    # read before the third write can still show the first A while B's write is not visible
    # yet; skipping "unchanged" bytes then would leave B indexed for good.
    backend = azure_search_backend
    vectorizer = CountingVectorizer(local_multilingual)
    a, b = (samples_dir / "cat.jpg").read_bytes(), (samples_dir / "dog.jpg").read_bytes()

    def version(data: bytes, second: int) -> ImageItem:
        fields = {"last_modified": f"2025-03-01T10:00:{second:02d}Z"}
        return ImageItem(identity="c/flip.jpg", source="c/flip.jpg", read=lambda: data, fields=fields)

    assert index_item(version(a, 1), vectorizer, backend).status == "indexed"
    eventually(lambda: (backend.get(version(a, 1).key) or {}).get("content_hash") == content_hash(a), "A")
    assert index_item(version(b, 2), vectorizer, backend).status == "indexed"
    third = index_item(version(a, 3), vectorizer, backend)  # B is not visible yet; A (from second 1) is

    assert third.status == "indexed"
    eventually(lambda: backend.get(version(a, 3).key)["last_modified"] == "2025-03-01T10:00:03Z", "A again")
    assert backend.get(version(a, 3).key)["content_hash"] == content_hash(a)
    # Once its document is visible, the same version is skipped without a Vision call.
    calls = vectorizer.image_calls
    assert index_item(version(a, 3), vectorizer, backend).status == "unchanged"
    assert vectorizer.image_calls == calls
