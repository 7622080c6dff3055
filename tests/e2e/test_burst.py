"""A burst of uploads under a Vision rate limit, through a simulated Functions host: N workers
(the fleet's instances x their concurrency) run the real ``index_image`` and ``index_deferred``
handlers with the host's retry and poison rules (``standins.functions_host``), against the
Vision stand-in counting as Azure's gateway does, Azurite (blobs and queues) and a numpy index.

With the deferred-indexing queue, every blob ends up indexed and nothing is poisoned; without
it (a handler still throttled after the client's retries raises), the same burst poisons
blobs. The test shows both, so it fails if either stops being true.
"""

from __future__ import annotations

import hashlib

import pytest
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from indexer.entrypoints import blob_events as handlers
from indexer.indexing.deferrals import DEFERRED_QUEUE
from indexer.indexing.failures import JsonlFailureLog
from indexer.keys import blob_identity, document_key
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.services import build_services
from indexer.settings import Settings
from standins.functions_host import SimulatedHost
from tests.fixtures.bad_images import good_jpeg

BLOBS = 24


def image(number: int) -> bytes:
    return good_jpeg(7000 + number, (64, 48))


@pytest.fixture
def throttled_vision(faulty_vision_server):
    # 3 calls in each one-second window: a burst of 24 from 12 workers is throttled at once.
    return faulty_vision_server(rate_limit_per_second=3)


def burst(connection: str, container, index, tmp_path, vision, *, workers: int, queues: str) -> SimulatedHost:
    """Upload BLOBS images at once and deliver their events to a host of ``workers`` workers.
    The handlers use the storage of ``connection``; the host polls the queue of ``queues``."""
    for number in range(BLOBS):
        container.upload_blob(f"burst/{number:03d}.jpg", image(number))
    settings = Settings(
        IMAGES_STORAGE=connection,
        IMAGES_CONTAINER=container.container_name,
        VISION_ENDPOINT=vision.url,
        VISION_KEY="any",
        VISION_MODEL_VERSION=OFFLINE_MULTILINGUAL,
        VISION_MAX_RETRIES=0,  # no retry in the client: what the handler does next is what is tested
    )
    services = build_services(settings, backend=index, failures=JsonlFailureLog(tmp_path / "failures.jsonl"))
    queue = QueueClient.from_connection_string(queues, DEFERRED_QUEUE, message_decode_policy=TextBase64DecodePolicy())
    host = SimulatedHost(
        workers=workers,
        blob_trigger=lambda path: handlers.index_blob(path, services),
        queue_trigger=lambda text: handlers.index_deferred(text, services),
        queue=queue,
        duplicate_rate=0.2,  # Event Grid: at least once
        max_polling_interval=0.5,
    )
    host.start()
    for number in range(BLOBS):
        host.deliver(f"{container.container_name}/burst/{number:03d}.jpg")
    return host


def expected(container) -> dict[str, str]:
    return {
        document_key(blob_identity(container.get_blob_client(f"burst/{n:03d}.jpg").url)): "sha256:"
        + hashlib.sha256(image(n)).hexdigest()
        for n in range(BLOBS)
    }


def test_a_burst_is_fully_indexed_with_nothing_poisoned(
    storage_with_queues, blob_container, local_index, tmp_path, throttled_vision
):
    host = burst(
        storage_with_queues,
        blob_container,
        local_index,
        tmp_path,
        throttled_vision,
        workers=12,
        queues=storage_with_queues,
    )
    try:
        assert host.wait_until(lambda: host.idle() and local_index.count() == BLOBS, timeout=240)
    finally:
        host.stop()
    statuses = [r.status for r in throttled_vision.requests.all() if r.path.endswith("vectorizeImage")]
    assert 429 in statuses  # the burst really was throttled ...
    assert host.stats.queue_runs > 0  # ... and blobs went through the deferred queue
    assert host.stats.poisoned == [] and host.stats.poisoned_messages == []
    assert local_index.keys_with_hashes() == expected(blob_container)


def test_without_the_deferred_queue_the_same_burst_poisons_blobs(
    azurite, storage_with_queues, blob_container, local_index, tmp_path, throttled_vision
):
    # Azurite's blob service alone: no queue to defer to, so a throttled handler raises and the
    # host retries the blob, five times at most, then poisons it.
    queue_less = azurite.connection_string
    host = burst(
        queue_less, blob_container, local_index, tmp_path, throttled_vision, workers=12, queues=storage_with_queues
    )
    try:
        assert host.wait_until(lambda: host.idle(), timeout=240)
    finally:
        host.stop()
    assert host.stats.poisoned  # left to a reconcile
    assert local_index.count() < BLOBS
