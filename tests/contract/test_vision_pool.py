"""``VisionPool`` against several Vision stand-ins at once: bulk work spreads over the
resources, single calls take the first healthy one, a throttling or failing resource is backed
off on its own, and a resource that answers with another model version is refused."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.credentials import AzureKeyCredential

from indexer.errors import ConfigurationError, ModelVersionMismatchError
from indexer.index_setup import describe_vectorizer
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.ratelimit import RateLimiter
from indexer.services import build_vectorizer
from indexer.settings import Settings
from indexer.vectorizers.vision import VisionClient
from indexer.vectorizers.vision.pool import VisionPool


def client(server, *, rate: float | None = None, **options) -> VisionClient:
    options.setdefault("backoff_factor", 0.01)
    limiter = RateLimiter(rate, adaptive=True) if rate else None
    return VisionClient(
        server.url, AzureKeyCredential("any"), model_version=OFFLINE_MULTILINGUAL, rate_limiter=limiter, **options
    )


def image_calls(server) -> list[int]:
    return [r.status for r in server.requests.all() if r.path.endswith("vectorizeImage")]


def test_bulk_calls_spread_over_every_resource_each_at_its_own_pace(faulty_vision_server, vision_sample_images):
    first, second = faulty_vision_server(), faulty_vision_server()
    images = list(vision_sample_images.values()) * 3
    with VisionPool([client(first, rate=50), client(second, rate=50)], spread=True) as pool:
        with ThreadPoolExecutor(max_workers=4) as workers:
            results = list(workers.map(pool.vectorize_image, images))
    assert len(results) == len(images) and {r.model_version for r in results} == {OFFLINE_MULTILINGUAL}
    assert image_calls(first) and image_calls(second)
    assert len(image_calls(first)) + len(image_calls(second)) == len(images)


def test_a_single_call_uses_the_first_healthy_resource(faulty_vision_server):
    first, second = faulty_vision_server(), faulty_vision_server()
    with VisionPool([client(first), client(second)], spread=False) as pool:
        for text in ("a cat", "a dog", "a bus"):
            pool.vectorize_text(text)
    assert len(first.requests) == 3 and len(second.requests) == 0


def test_a_failing_resource_is_backed_off_while_the_next_one_answers(faulty_vision_server):
    failing = faulty_vision_server(fault_rate=1.0, fault_statuses=(503,), fault_retry_after=30)
    healthy = faulty_vision_server()
    with VisionPool([client(failing), client(healthy)], spread=False) as pool:
        for text in ("a cat", "a dog", "a bus"):
            pool.vectorize_text(text)
        assert pool.gates[0].paused_for() > 20  # backed off for the 30 s its answer asked
    assert len(failing.requests) == 1 and len(healthy.requests) == 3


def test_a_throttling_resource_pauses_on_its_own_and_the_others_take_the_calls(
    faulty_vision_server, vision_sample_images
):
    throttled = faulty_vision_server(fault_rate=1.0, fault_statuses=(429,), fault_retry_after=30)
    free = faulty_vision_server()
    images = list(vision_sample_images.values())
    with VisionPool([client(throttled, rate=50), client(free, rate=50)], spread=True) as pool:
        with ThreadPoolExecutor(max_workers=2) as workers:
            results = list(workers.map(pool.vectorize_image, images))
    assert len(results) == len(images)
    assert image_calls(throttled) == [429]  # asked once, then left alone for the 30 s it asked
    assert image_calls(free) == [200] * len(images)


def test_a_resource_answering_another_model_version_is_refused_and_the_pin_holds(
    faulty_vision_server, vision_sample_images
):
    # Same model, but the second stand-in pads to 1024 dimensions: its vectors cannot share an
    # index with the first one's, so once the first has answered the second is refused.
    usual, padded = faulty_vision_server(), faulty_vision_server(pad_to=1024)
    images = list(vision_sample_images.values())
    with VisionPool([client(usual, rate=50), client(padded, rate=50)], spread=True) as pool:
        first = pool.vectorize_image(images[0])  # the rotation starts at the first resource
        rest = [pool.vectorize_image(image) for image in images[1:]]
        assert list(pool.refused()) == [padded.url]
    assert {e.dimensions for e in [first, *rest]} == {first.dimensions} and first.dimensions != 1024
    assert len(image_calls(padded)) == 1  # asked once, its answer thrown away


def test_when_every_resource_is_refused_the_call_fails_as_a_pin_mismatch(faulty_vision_server):
    usual, padded = faulty_vision_server(), faulty_vision_server(pad_to=1024)
    pool = VisionPool([client(usual), client(padded)], spread=False)
    pool.vectorize_text("a cat")
    usual_gate = pool.gates[0]
    usual_gate.refused = "was taken out by the test"
    with pytest.raises(ModelVersionMismatchError, match="no Vision resource"):
        pool.vectorize_text("a dog")
    pool.close()


def test_settings_with_several_endpoints_build_a_pool_each_resource_with_its_own_pace(faulty_vision_server):
    first, second = faulty_vision_server(), faulty_vision_server()
    chosen = Settings(
        VISION_ENDPOINT=f"{first.url}, {second.url}",
        VISION_KEY="key-one,key-two",
        VISION_MODEL_VERSION="2023-04-15",
        VISION_REQUESTS_PER_SECOND=7,
    )
    paced = build_vectorizer(chosen, paced=True)
    single = build_vectorizer(chosen)
    try:
        assert isinstance(paced, VisionPool) and paced.spread and paced.endpoints == [first.url, second.url]
        limiters = [client.rate_limiter for client in paced.clients]
        assert limiters[0] is not limiters[1] and all(lim.limit_per_second == 7 for lim in limiters)
        assert isinstance(single, VisionPool) and not single.spread
        assert all(client.rate_limiter is None for client in single.clients)
        single.vectorize_text("a cat")
    finally:
        paced.close()
        single.close()
    assert first.requests.last().headers["ocp-apim-subscription-key"] == "key-one"
    assert "2 resources" in describe_vectorizer(chosen) and "key-one" not in describe_vectorizer(chosen)


@pytest.mark.parametrize(
    "endpoint,key,match",
    [
        ("http://127.0.0.1:1,http://127.0.0.1:2", "only-one", "one key per endpoint"),
        ("http://127.0.0.1:1,http://127.0.0.1:1", "", "same endpoint twice"),
        ("http://127.0.0.1:1,ftp://nope", "", "VISION_ENDPOINT"),
    ],
)
def test_endpoint_and_key_lists_that_do_not_match_name_the_settings(endpoint, key, match):
    with pytest.raises(ConfigurationError, match=match):
        build_vectorizer(Settings(VISION_ENDPOINT=endpoint, VISION_KEY=key, VISION_MODEL_VERSION="2023-04-15"))
