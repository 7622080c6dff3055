"""A backfill against a Vision service that fails a fifth of its calls on purpose.

The local vectorizer server injects the failures a real service produces (429 with
``Retry-After``, 500, 503, answers too slow for the client's timeout, connections dropped in
the middle of the answer); ``VisionClient`` (with millisecond backoffs, so the test is quick)
does the retrying; the blobs live in Azurite and the index is the Azure AI Search double
behind a recorder of every indexing action. What must hold:

- every good blob ends up in the index exactly once (one applied upload per key, and the
  count of documents equals the number of good blobs);
- retries are bounded: the server never sees more than ``max_retries + 1`` requests for one
  image (requests are told apart by their body size: every image here has its own);
- a permanent 400 (an image the service cannot decode) is never retried: exactly one 400 for
  it, nothing after it, and its reason is in the failure log.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import defaultdict

import pytest
from azure.core.credentials import AzureKeyCredential

from indexer.indexing.bulk import RunOptions
from indexer.indexing.checkpoint import Checkpoint, checkpoint_path
from indexer.indexing.failures import JsonlFailureLog
from indexer.indexing.run import index_source
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.schema import load_schema
from indexer.sources.blob import BlobSource
from indexer.vectorizers.vision.client import VisionClient
from standins.vision.faults import FaultInjector
from tests.fixtures.azurite import blob_key
from tests.fixtures.bad_images import good_jpeg, truncated_jpeg

FAULT_RATE = 0.2
FAULT_STATUSES = (429, 500, 503)
MAX_RETRIES = 6  # P(7 faults in a row) = 0.2**7: about 1 in 78,000 per image
CLIENT_TIMEOUT = 1.0
SLOW_SECONDS = 2.0  # an injected slow answer comes after the client has given up on it


def seed_with_every_fault_kind(*, draws: int, drop: bool, slow: bool) -> int:
    """The first fault seed whose first ``draws`` draws include every kind of fault.

    The injector draws once per request, in the order requests arrive, so with this seed a run
    that makes at least ``draws`` requests meets each kind, whatever the threads' interleaving."""
    for seed in range(1000):
        injector = FaultInjector(
            rate=FAULT_RATE,
            statuses=FAULT_STATUSES,
            drop_connection=drop,
            slow_seconds=SLOW_SECONDS if slow else 0.0,
            seed=seed,
        )
        kinds = set()
        for _ in range(draws):
            fault = injector.draw()
            if fault is not None:
                kinds.add(fault.status if fault.kind == "status" else fault.kind)
        if kinds == {*FAULT_STATUSES, *(["drop"] if drop else []), *(["slow"] if slow else [])}:
            return seed
    raise AssertionError("no seed below 1000 meets every fault kind")  # pragma: no cover


def images_of_distinct_sizes(count: int, *, start_seed: int, avoid: set[int] = frozenset()) -> list[bytes]:
    """``count`` valid JPEGs whose byte sizes differ from each other and from ``avoid``: the
    server's request log records each request's Content-Length, which then names the image."""
    images, sizes, seed = [], set(avoid), start_seed
    while len(images) < count:
        data = good_jpeg(seed, (48 + seed % 17, 40 + seed % 13))
        seed += 1
        if len(data) not in sizes:
            sizes.add(len(data))
            images.append(data)
    return images


def corrupt_images(count: int, avoid: set[int]) -> list[bytes]:
    """Truncated JPEGs (intact header, missing scan data) of distinct sizes: the client's
    header check passes, only the service's decoder fails (400 InvalidImageFormat)."""
    found, keep = [], 0.40
    while len(found) < count:
        data = truncated_jpeg(keep)
        keep += 0.03
        if len(data) not in avoid:
            avoid.add(len(data))
            found.append(data)
    return found


def attempts_by_size(server) -> dict[int, list[int]]:
    """Content-Length -> the statuses the server answered for it, in order."""
    seen: dict[int, list[int]] = defaultdict(list)
    for request in server.requests.all():
        if request.path.endswith("vectorizeImage"):
            seen[int(request.headers["content-length"])].append(request.status)
    return seen


def wait_for_slow_answers(server) -> None:
    """Injected slow answers are recorded when the server finally gets to them, up to
    ``SLOW_SECONDS`` after the client gave up; wait that long, then until the log is still
    (a bound on the wait, not a timing assertion)."""
    time.sleep(SLOW_SECONDS)
    deadline = time.monotonic() + 10
    previous = len(server.requests)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        current = len(server.requests)
        if current == previous:
            return
        previous = current


@pytest.fixture
def key() -> str:
    return secrets.token_hex(16)


def client_for(server, key: str) -> VisionClient:
    return VisionClient(
        server.url,
        AzureKeyCredential(key),
        model_version=OFFLINE_MULTILINGUAL,
        timeout=CLIENT_TIMEOUT,
        max_retries=MAX_RETRIES,
        backoff_factor=0.01,
        backoff_max=0.05,
    )


def run_backfill(container, client, backend, tmp_path, failures):
    source = BlobSource(container)
    return index_source(
        source,
        vectorizer=client,
        backend=backend,
        failures=failures,
        checkpoint=Checkpoint(checkpoint_path(tmp_path, source, backend.index_name)),
        options=RunOptions(concurrency=4, batch_size=10),
    )


def test_a_backfill_under_20_percent_vision_faults_indexes_every_blob_exactly_once(
    faulty_vision_server, key, blob_container, search_double, search_index_name, azure_backend_factory, tmp_path, caplog
):
    good = images_of_distinct_sizes(40, start_seed=1)
    sizes = {len(d) for d in good}
    bad = corrupt_images(2, sizes)
    # Every image is requested at least once, so the first len(good + bad) draws are certain.
    seed = seed_with_every_fault_kind(draws=len(good) + len(bad), drop=True, slow=True)
    server = faulty_vision_server(
        keys=[key],
        fault_rate=FAULT_RATE,
        fault_statuses=FAULT_STATUSES,
        fault_retry_after=1,
        drop_connection=True,
        slow_seconds=SLOW_SECONDS,
        fault_seed=seed,
    )
    blobs = {f"photos/{i:02d}.jpg": data for i, data in enumerate(good)}
    blobs.update({f"broken/{i}.jpg": data for i, data in enumerate(bad)})
    for name, data in blobs.items():
        blob_container.upload_blob(name, data)
    backend = azure_backend_factory()
    backend.ensure_index(load_schema(OFFLINE_MULTILINGUAL))
    failures = JsonlFailureLog(tmp_path / "failures.jsonl")

    with client_for(server, key) as client:
        summary = run_backfill(blob_container, client, backend, tmp_path, failures)
    wait_for_slow_answers(server)

    # Every good blob is in the index, once, with the bytes it has in the container.
    assert summary.completed, summary.to_dict()
    assert (summary.listed, summary.indexed) == (len(blobs), len(good))
    assert backend.count() == len(good)
    good_keys = {blob_key(blob_container, name): data for name, data in blobs.items() if name.startswith("photos/")}
    for key_, data in good_keys.items():
        assert backend.get(key_)["content_hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
    applied = search_double.recorder.applied_per_key(search_index_name)
    assert applied == dict.fromkeys(good_keys, 1)  # exactly one upload of each, none of the broken ones

    # The run really met every kind of fault, and retries stayed bounded for every image.
    attempts = attempts_by_size(server)
    statuses = [s for answers in attempts.values() for s in answers]
    assert {429, 500, 503} <= set(statuses)
    # Each good image got exactly one answer the client used; more 200s are answers dropped
    # mid-way (recorded as 200 when they started). A slow answer the client gave up on is
    # recorded as 499 (client closed request) when the server finally gets to it.
    assert statuses.count(200) > len(good)
    assert 499 in statuses
    # Faults on purpose are not failures of the server: it logged none.
    assert not [r for r in caplog.records if r.name == "standins.vision.server" and r.levelno >= logging.ERROR]
    for data in good + bad:
        assert 1 <= len(attempts[len(data)]) <= MAX_RETRIES + 1, attempts[len(data)]

    # The broken blobs failed for good, with the service's reason on record.
    assert sorted(o.source.rsplit("/", 2)[-2] for o in summary.failed) == ["broken", "broken"]
    assert not any(o.transient for o in summary.failed)
    records = {r.key: r for r in failures.records()}
    for i in range(len(bad)):
        record = records[blob_key(blob_container, f"broken/{i}.jpg")]
        assert "InvalidImageFormat" in record.reason and "truncated" in record.reason and record.etag


def test_a_permanent_400_is_sent_once_never_retried_and_recorded(
    faulty_vision_server, key, blob_container, azure_backend_factory, tmp_path
):
    # No slow answers here: a slow answer is recorded late, with whatever the server finally
    # answered, so it would blur "which request got the 400". Every other kind is on.
    good = images_of_distinct_sizes(8, start_seed=500)
    bad = corrupt_images(3, {len(d) for d in good})
    server = faulty_vision_server(
        keys=[key],
        fault_rate=FAULT_RATE,
        fault_statuses=FAULT_STATUSES,
        fault_retry_after=0,
        drop_connection=True,
        fault_seed=seed_with_every_fault_kind(draws=len(good) + len(bad), drop=True, slow=False),
    )
    for i, data in enumerate(good):
        blob_container.upload_blob(f"ok/{i}.jpg", data)
    for i, data in enumerate(bad):
        blob_container.upload_blob(f"bad/{i}.jpg", data)
    backend = azure_backend_factory()
    backend.ensure_index(load_schema(OFFLINE_MULTILINGUAL))
    failures = JsonlFailureLog(tmp_path / "failures.jsonl")

    with client_for(server, key) as client:
        summary = run_backfill(blob_container, client, backend, tmp_path, failures)

        assert summary.completed and summary.indexed == len(good) and backend.count() == len(good)
        attempts = attempts_by_size(server)
        for data in bad:
            answers = attempts[len(data)]
            # Faults before it may be retried; the 400 itself is answered once and is the last.
            assert answers.count(400) == 1 and answers[-1] == 400, answers
            assert len(answers) <= MAX_RETRIES + 1
        for i in range(len(bad)):
            record = failures.get(blob_key(blob_container, f"bad/{i}.jpg"))
            assert record is not None
            assert "VisionRequestError" in record.reason and "InvalidImageFormat" in record.reason

        # A second run knows these blobs cannot succeed until they change: no call for them.
        before = len(server.requests)
        again = run_backfill(blob_container, client, backend, tmp_path, failures)
    assert again.known_failures == len(bad) and again.unchanged == len(good)
    assert len(server.requests) == before
