"""Azure AI Search failing on purpose: per-document 503s and 429s inside a batch, and whole
indexing requests answered 503. ``AzureSearchBackend`` (the real azure-search-documents
pipeline, over HTTP) talks to the search double behind a recorder of every indexing action,
so each test can say, per document key, how often it was sent and how often the service
applied it: nothing may be lost, nothing written twice, and what cannot be written after the
retries must be reported as retriable, never dropped or recorded as a bad image.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from azure.core.credentials import AzureKeyCredential

from indexer.documents import Document, Embedding
from indexer.indexing.bulk import RunOptions
from indexer.indexing.checkpoint import Checkpoint, checkpoint_path
from indexer.indexing.failures import JsonlFailureLog
from indexer.indexing.run import index_source
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.schema import load_schema
from indexer.sources.blob import BlobSource
from indexer.vectorizers.vision.client import VisionClient
from standins.search.service import FaultConfig
from tests.fixtures.azurite import blob_key
from tests.fixtures.bad_images import good_jpeg
from tests.fixtures.search_double import tiny_schema

DIMS = 8
TINY = "test-tiny"


def documents(count: int, *, seed: int = 0) -> list[Document]:
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(count):
        vector = rng.normal(size=DIMS).astype(np.float32)
        docs.append(
            Document(
                key=f"doc-{i:04d}",
                embedding=Embedding(vector, TINY),
                fields={
                    "source": f"https://example.invalid/images/{i}.jpg",
                    "file_name": f"{i}.jpg",
                    "content_hash": f"sha256:{hashlib.sha256(str(i).encode()).hexdigest()}",
                    "model_version": TINY,
                },
            )
        )
    return docs


def expected_hashes(docs: list[Document]) -> dict[str, str]:
    return {d.key: d.fields["content_hash"] for d in docs}


@pytest.fixture
def tiny_backend(azure_backend_factory):
    def make(**options):
        backend = azure_backend_factory(max_batch_actions=100, **options)
        backend.ensure_index(tiny_schema(DIMS, TINY))
        return backend

    return make


def test_per_document_503s_and_429s_are_retried_until_each_document_is_written_once(
    tiny_backend, search_double, search_index_name
):
    backend = tiny_backend()
    # Each key fails at most 3 times (the backend retries 5), so every document gets through.
    search_double.set_faults(
        search_index_name,
        FaultConfig(document_fault_rate=0.3, document_fault_statuses=(503, 429), max_faults_per_document=3, seed=11),
    )
    docs = documents(300)

    result = backend.upsert(docs)

    assert result.ok, dict(list(result.failed.items())[:3])
    assert sorted(result.succeeded) == sorted(d.key for d in docs)  # each reported once
    assert backend.count() == len(docs)
    assert backend.keys_with_hashes() == expected_hashes(docs)
    recorder = search_double.recorder
    assert recorder.applied_per_key(search_index_name) == {d.key: 1 for d in docs}
    refused = [a.document_status for a in recorder.actions_for(search_index_name) if not a.applied]
    assert {503, 429} <= set(refused)  # the faults really happened, and only those
    assert set(refused) == {503, 429}
    # Only the refused documents were sent again, never the whole batch.
    assert sum(recorder.sent_per_key(search_index_name).values()) == len(docs) + len(refused)


def test_whole_request_503s_are_retried_without_loss_or_duplication(tiny_backend, search_double, search_index_name):
    backend = tiny_backend(max_retries=10)
    # The first four indexing requests fail whole (rate 1, capped at 4): deterministic, whatever
    # the index name the double seeds its draws with.
    search_double.set_faults(
        search_index_name,
        FaultConfig(
            request_fault_rate=1.0,
            request_fault_status=503,
            max_request_faults=4,
            operations=frozenset({"index"}),
            retry_after_seconds=0.01,
        ),
    )
    docs = documents(250, seed=1)

    result = backend.upsert(docs)

    assert result.ok and len(result.succeeded) == len(docs)
    assert backend.keys_with_hashes() == expected_hashes(docs)
    assert search_double.recorder.applied_per_key(search_index_name) == {d.key: 1 for d in docs}
    statuses = [r.status for r in search_double.requests_for(search_index_name, "index")]
    assert statuses == [503, 503, 503, 503, 200, 200, 200]  # three batches of at most 100


def test_deletes_under_both_kinds_of_faults_remove_exactly_what_was_asked(
    tiny_backend, search_double, search_index_name
):
    backend = tiny_backend(max_retries=10)
    docs = documents(200, seed=2)
    assert backend.upsert(docs).ok
    search_double.set_faults(
        search_index_name,
        FaultConfig(
            document_fault_rate=0.3,
            document_fault_statuses=(503, 429),
            max_faults_per_document=3,
            request_fault_rate=0.4,
            max_request_faults=8,
            operations=frozenset({"index"}),
            seed=3,
        ),
    )
    gone, kept = docs[::2], docs[1::2]

    result = backend.delete(d.key for d in gone)

    assert result.ok and sorted(result.succeeded) == sorted(d.key for d in gone)
    assert backend.keys_with_hashes() == expected_hashes(kept)
    deletes = search_double.recorder.actions_for(search_index_name, "delete")
    assert any(not a.applied for a in deletes)  # faults met the deletes too


# --------------------------------------------------------------------------- through a backfill


def upload_photos(container, count: int, prefix: str = "p") -> dict[str, bytes]:
    blobs = {f"{prefix}/{i:02d}.jpg": good_jpeg(300 + i) for i in range(count)}
    for name, data in blobs.items():
        container.upload_blob(name, data)
    return blobs


def vision_client(vision_server) -> VisionClient:
    return VisionClient(
        vision_server.url,
        AzureKeyCredential(vision_server.key),
        model_version=OFFLINE_MULTILINGUAL,
        backoff_factor=0.01,
        backoff_max=0.05,
    )


def image_calls(vision_server) -> int:
    return sum(1 for r in vision_server.requests.all() if r.path.endswith("vectorizeImage"))


def test_a_backfill_into_a_faulty_index_writes_every_blob_once_and_vectorizes_each_once(
    vision_server, blob_container, search_double, search_index_name, azure_backend_factory, tmp_path
):
    blobs = upload_photos(blob_container, 30)
    # A batch counts its request-level and document-level retries together, so the budget must
    # cover every request fault landing on one batch plus a document's own: 6 + 3 < 10. (With
    # 8, a batch the timing left unlucky failed one document, rightly, as retriable.)
    backend = azure_backend_factory(max_retries=10)
    backend.ensure_index(load_schema(OFFLINE_MULTILINGUAL))
    search_double.set_faults(
        search_index_name,
        FaultConfig(
            document_fault_rate=0.3,
            document_fault_statuses=(503, 429),
            max_faults_per_document=3,
            request_fault_rate=0.3,
            max_request_faults=6,
            operations=frozenset({"index"}),
            seed=9,
        ),
    )
    source = BlobSource(blob_container)
    calls_before = image_calls(vision_server)

    with vision_client(vision_server) as client:
        summary = index_source(
            source,
            vectorizer=client,
            backend=backend,
            failures=JsonlFailureLog(tmp_path / "failures.jsonl"),
            checkpoint=Checkpoint(checkpoint_path(tmp_path, source, search_index_name)),
            options=RunOptions(concurrency=4, batch_size=8),
        )

    assert [failed.failure_dict() for failed in summary.failed] == []
    assert summary.completed and summary.indexed == len(blobs)
    keys = {blob_key(blob_container, name): data for name, data in blobs.items()}
    assert backend.keys_with_hashes() == {k: "sha256:" + hashlib.sha256(d).hexdigest() for k, d in keys.items()}
    assert search_double.recorder.applied_per_key(search_index_name) == dict.fromkeys(keys, 1)
    assert any(not a.applied for a in search_double.recorder.actions_for(search_index_name))
    # The index's retries never cost another (paid, rate-limited) Vision call.
    assert image_calls(vision_server) - calls_before == len(blobs)


def test_documents_the_index_keeps_refusing_are_retriable_failures_and_the_next_run_writes_them(
    vision_server, blob_container, search_double, search_index_name, azure_backend_factory, tmp_path
):
    blobs = upload_photos(blob_container, 6, prefix="q")
    backend = azure_backend_factory(max_retries=2)
    backend.ensure_index(load_schema(OFFLINE_MULTILINGUAL))
    source = BlobSource(blob_container)
    checkpoint_file = checkpoint_path(tmp_path, source, search_index_name)
    failures = JsonlFailureLog(tmp_path / "failures.jsonl")

    def run(client):
        checkpoint = Checkpoint(checkpoint_file)
        return index_source(source, vectorizer=client, backend=backend, failures=failures, checkpoint=checkpoint,
                            options=RunOptions(batch_size=3))  # fmt: skip

    # The service is busy for every document, longer than the backend's retries last.
    search_double.set_faults(search_index_name, FaultConfig(document_fault_rate=1.0, document_fault_statuses=(503,)))

    with vision_client(vision_server) as client:
        first = run(client)

        # Not written, and reported as "try again later": not a bad image, not done.
        assert backend.count() == 0
        assert len(first.failed) == len(blobs)
        assert all(o.transient for o in first.failed), [o.reason for o in first.failed]
        assert not first.completed  # (nothing finished, so there is no checkpoint to resume from)
        assert failures.records() == []  # nothing recorded as a permanent failure

        search_double.set_faults(search_index_name, None)  # the service recovers
        second = run(client)

    assert second.completed and second.indexed == len(blobs) and second.known_failures == 0
    assert backend.count() == len(blobs)
    assert search_double.recorder.applied_per_key(search_index_name) == {
        blob_key(blob_container, name): 1 for name in blobs
    }
