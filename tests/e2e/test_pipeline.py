"""How index refusals are sorted: a busy index is worth retrying, a refused document is not.

The real Azure backend runs against the search double, whose fault injection makes the index
busy (whole-request 503s) or refuse a document outright (a per-document 400).
"""

from __future__ import annotations

import pytest

from indexer.errors import ServiceError
from indexer.indexing.bulk import BulkIndexingAborted, index_items
from indexer.indexing.pipeline import index_item
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
            concurrency=2,
            batch_size=10,
            stored_hashes={},
            max_consecutive_failures=10,
        )

    # One batch was vectorized (plus what was in flight), not all 60 images.
    assert vectorizer.image_calls < 30
    search_double.set_faults(search_index_name, None)
    assert azure_search_backend.get(document_key(listing[0].identity)) is None
