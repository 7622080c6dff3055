"""``VisionClient`` against the local vectorizer server, over real HTTP.

Every behaviour is driven by the real server (keys, limits, fault injection, rate limit);
the only test double is the Entra ID credential, because no Entra ID stand-in exists.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import numpy as np
import pytest
import requests
from azure.core.credentials import AccessToken, AzureKeyCredential

from indexer.documents import Embedding
from indexer.errors import (
    InputLimitError,
    InvalidImageError,
    ServiceError,
    VisionAuthenticationError,
    VisionRequestError,
    VisionServiceError,
    VisionThrottledError,
)
from indexer.model_versions import AZURE_ENGLISH, AZURE_MULTILINGUAL, offline_model_for
from indexer.ratelimit import RateLimiter
from indexer.vectorizers import Vectorizer
from indexer.vectorizers.vision import VisionClient
from indexer.vectorizers.vision.contract import COGNITIVE_SERVICES_SCOPE
from indexer.vectorizers.vision.errors import error_from_response
from tests.contract.test_vision_server import GA, IMAGE_PATH, TEXT_PATH, png_header, tiny_png


def client_for(server, **options) -> VisionClient:
    options.setdefault("backoff_factor", 0.01)
    return VisionClient(server.url, AzureKeyCredential(server.key or "any"), **options)


# --- success paths ---------------------------------------------------------------------------


def test_client_is_a_vectorizer(vision_server):
    assert isinstance(client_for(vision_server), Vectorizer)


@pytest.mark.parametrize("azure_version", [AZURE_MULTILINGUAL, AZURE_ENGLISH])
def test_bytes_url_and_text_return_the_stand_ins_embedding(
    vision_server, image_url_server, vision_sample_images, azure_version
):
    stand_in = offline_model_for(azure_version)
    with client_for(vision_server, model_version=azure_version) as client:
        by_bytes = client.vectorize_image(vision_sample_images["cat.jpg"])
        by_url = client.vectorize_image_url(
            image_url_server(f"client-cat-{azure_version}.jpg", vision_sample_images["cat.jpg"])
        )
        text = client.vectorize_text("a cat sitting on a sofa")
    for embedding in (by_bytes, by_url, text):
        assert isinstance(embedding, Embedding)
        assert embedding.model_version == stand_in.name
        assert embedding.vector.dtype == np.float32
        assert embedding.dimensions == stand_in.dimensions
    np.testing.assert_allclose(by_bytes.vector, by_url.vector, rtol=1e-5, atol=1e-6)


def test_the_client_sends_the_seeds_query_parameters_and_headers(vision_server, vision_sample_images):
    with client_for(vision_server) as client:
        client.vectorize_image(vision_sample_images["dog.jpg"])
        image_request = vision_server.requests.last()
        client.vectorize_text("a dog")
        text_request = vision_server.requests.last()
    assert image_request.path == IMAGE_PATH
    assert image_request.query == {"api-version": "2024-02-01", "model-version": "2023-04-15"}
    assert image_request.headers["content-type"] == "application/octet-stream"
    assert image_request.headers["ocp-apim-subscription-key"] == vision_server.key
    assert text_request.path == TEXT_PATH
    assert text_request.headers["content-type"] == "application/json"


def test_preview_api_version_sends_model_version_the_older_way(faulty_vision_server):
    server = faulty_vision_server(serve_retired_preview=True)  # Azure itself answers 410 Gone now
    with client_for(server, api_version="2023-02-01-preview", model_version="latest") as client:
        embedding = client.vectorize_text("a red bus")
    assert server.requests.last().query == {"api-version": "2023-02-01-preview", "modelVersion": "latest"}
    assert embedding.model_version == offline_model_for(AZURE_ENGLISH).name


def test_the_retired_preview_is_a_request_error_not_retried(vision_server):
    before = len(vision_server.requests)
    with (
        client_for(vision_server, api_version="2023-02-01-preview", model_version="latest") as client,
        pytest.raises(VisionRequestError) as caught,
    ):
        client.vectorize_text("a red bus")
    assert (caught.value.status_code, caught.value.code) == (410, "Gone")
    assert len(vision_server.requests) == before + 1


# --- typed errors for what the service refuses -------------------------------------------------


def test_wrong_key_raises_authentication_error_without_leaking_the_key(vision_server, caplog):
    secret = "wrong-key-0123456789abcdef"
    caplog.set_level(logging.DEBUG)
    before = len(vision_server.requests)
    with (
        VisionClient(vision_server.url, AzureKeyCredential(secret)) as client,
        pytest.raises(VisionAuthenticationError) as caught,
    ):
        client.vectorize_text("cat")
    assert caught.value.status_code == 401 and caught.value.code == "401"
    assert not caught.value.retriable
    assert len(vision_server.requests) == before + 1  # a 401 is not retried
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert secret not in caplog.text


class NoTokenCredential:
    """A TokenCredential that cannot produce a token, as DefaultAzureCredential with no sign-in:
    its message lists each credential tried, one per line (azure-identity's own format)."""

    def get_token(self, *scopes, **kwargs):
        from azure.core.exceptions import ClientAuthenticationError

        raise ClientAuthenticationError(
            "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
            "Attempted credentials:\n\tEnvironmentCredential: unavailable.\n\tAzureCliCredential: not found"
        )


def test_no_entra_token_is_one_line_naming_the_setting_and_sends_nothing(vision_server):
    before = len(vision_server.requests)
    with (
        VisionClient(vision_server.url, NoTokenCredential()) as client,
        pytest.raises(VisionAuthenticationError) as caught,
    ):
        client.vectorize_text("cat")
    message = str(caught.value)
    assert "\n" not in message and "DefaultAzureCredential failed to retrieve a token" in message
    assert "VISION_KEY" in message and "Cognitive Services User" in message
    assert caught.value.code == "CredentialUnavailable" and not caught.value.retriable
    assert len(vision_server.requests) == before  # nothing was sent without a token


def test_unknown_api_version_raises_request_error_and_is_not_retried(vision_server):
    before = len(vision_server.requests)
    with (
        client_for(vision_server, api_version="2024-02-01-preview") as client,
        pytest.raises(VisionRequestError) as caught,
    ):
        client.vectorize_text("cat")
    assert (caught.value.status_code, caught.value.code) == (404, "404")
    assert len(vision_server.requests) == before + 1


def test_unknown_model_version_raises_request_error_and_is_not_retried(vision_server):
    before = len(vision_server.requests)
    with client_for(vision_server, model_version="2021-01-01") as client, pytest.raises(VisionRequestError) as caught:
        client.vectorize_text("cat")
    assert (caught.value.status_code, caught.value.code) == (400, "InvalidModel")
    assert "2021-01-01" in str(caught.value)
    assert len(vision_server.requests) == before + 1


@pytest.mark.parametrize(
    "name,data,inner",
    [
        ("url-corrupt.jpg", b"\x89PNG\r\n\x1a\n but truncated", "InvalidImageFormat"),
        ("url-tiny.png", tiny_png(8), "InvalidImageSize"),
        ("url-wide.png", png_header(16000, 20), "InvalidImageSize"),
        ("url-empty.png", b"", "InvalidRequest"),  # the size answer has no inner code: the outer one is reported
    ],
)
def test_images_refused_by_the_service_raise_request_errors_never_retried(
    vision_server, image_url_server, name, data, inner
):
    # By URL, the image is checked by the service, not by the client: this is the server's 400.
    url = image_url_server(name, data)
    before = len(vision_server.requests)
    with client_for(vision_server) as client, pytest.raises(VisionRequestError) as caught:
        client.vectorize_image_url(url)
    assert (caught.value.status_code, caught.value.code) == (400, inner)
    assert isinstance(caught.value, ServiceError)  # azure-core HttpResponseError underneath
    assert len(vision_server.requests) == before + 1


@pytest.mark.parametrize(
    "make_request,expected_type,code",
    [
        (
            lambda s: requests.post(f"{s.url}{TEXT_PATH}?{GA}", json={"text": "cat"}, timeout=10),
            VisionAuthenticationError,
            "401",
        ),
        (
            lambda s: requests.post(
                f"{s.url}{IMAGE_PATH}?{GA}",
                data=b"\x00" * 40,
                headers={"Ocp-Apim-Subscription-Key": s.key, "Content-Type": "image/jpeg"},
                timeout=10,
            ),
            VisionRequestError,
            "UnsupportedMediaType",
        ),
        (
            lambda s: requests.post(
                f"{s.url}{TEXT_PATH}?{GA}",
                json={"text": " ".join(["w"] * 71)},
                headers={"Ocp-Apim-Subscription-Key": s.key},
                timeout=10,
            ),
            VisionRequestError,
            "InvalidParameter",
        ),
        (
            lambda s: requests.post(
                f"{s.url}{IMAGE_PATH}?{GA}",
                data=b"junk" * 100,
                headers={"Ocp-Apim-Subscription-Key": s.key, "Content-Type": "application/octet-stream"},
                timeout=10,
            ),
            VisionRequestError,
            "InvalidImageFormat",
        ),
    ],
)
def test_raw_error_answers_map_to_typed_errors(vision_server, make_request, expected_type, code):
    response = make_request(vision_server)
    error = error_from_response(response, operation="test")
    assert type(error) is expected_type
    assert error.code == code and error.status_code == response.status_code
    assert response.json()["error"]["message"] in error.error_message


# --- limits checked before anything is sent ----------------------------------------------------


@pytest.mark.parametrize(
    "call,expected,limit",
    [
        (lambda c: c.vectorize_image(b"\x00\x01 corrupt"), InvalidImageError, None),
        (lambda c: c.vectorize_image(b""), InvalidImageError, None),
        (lambda c: c.vectorize_image(tiny_png(10)), InputLimitError, "image_min_dimensions"),
        (lambda c: c.vectorize_image(png_header(16000, 64)), InputLimitError, "image_max_dimensions"),
        (lambda c: c.vectorize_image(b"\xff\xd8\xff" + bytes(20 * 1024 * 1024)), InputLimitError, "image_bytes"),
        (lambda c: c.vectorize_text(" ".join(["word"] * 71)), InputLimitError, "text_words"),
        (lambda c: c.vectorize_text("  "), InputLimitError, "text_words"),
        (lambda c: c.vectorize_image_url("file:///etc/passwd"), InvalidImageError, None),
    ],
)
def test_limits_are_checked_before_any_request(vision_server, call, expected, limit):
    before = len(vision_server.requests)
    with client_for(vision_server) as client, pytest.raises(expected) as caught:
        call(client)
    if limit is not None:
        assert caught.value.limit == limit
    assert len(vision_server.requests) == before


# --- the word limit: documented where words are spaced, the service's call elsewhere ----------

SPACED_71 = " ".join(["word"] * 71)
UNSPACED_80 = " ".join(["猫"] * 80)  # 80 whitespace-separated pieces of a script without word spaces
CHINESE_SENTENCE = "一只黑色的猫坐在红色的沙发上看着窗外的雨" * 8  # no spaces: "words" are undocumented


@pytest.mark.parametrize(
    "word_check, text, sent",
    [
        ("auto", SPACED_71, False),  # Azure's documented limit, read literally: refused before sending
        ("auto", UNSPACED_80, True),  # the rule is undocumented for this script: the service judges
        ("auto", CHINESE_SENTENCE, True),
        ("strict", UNSPACED_80, False),  # the override: count by whitespace, always
        ("service", SPACED_71, True),  # the other override: always let the service judge
    ],
)
def test_the_word_limit_is_checked_where_it_is_documented_unless_overridden(vision_server, word_check, text, sent):
    before = len(vision_server.requests)
    with client_for(vision_server, word_check=word_check) as client:
        try:
            client.vectorize_text(text)
        except InputLimitError as refused:
            assert not sent and refused.limit == "text_words"
        except VisionRequestError as answered:
            assert sent and answered.code == "InvalidParameter"  # the stand-in counts by whitespace
    assert len(vision_server.requests) == before + (1 if sent else 0)


def test_an_empty_text_is_never_sent_and_nonsense_word_checks_are_refused(vision_server):
    with client_for(vision_server, word_check="service") as client, pytest.raises(InputLimitError):
        client.vectorize_text("   ")
    with pytest.raises(ValueError, match="word_check"):
        VisionClient(vision_server.url, AzureKeyCredential("k"), word_check="loose")


# --- retries, driven by the server's fault injection ------------------------------------------


def test_429_is_retried_after_the_advised_wait_and_then_succeeds(faulty_vision_server):
    server = faulty_vision_server(fault_first=2, fault_statuses=(429,), fault_retry_after=1)
    with client_for(server) as client:
        started = time.monotonic()
        embedding = client.vectorize_text("a cat")
        waited = time.monotonic() - started
    assert embedding.model_version == offline_model_for(AZURE_MULTILINGUAL).name
    assert [r.status for r in server.requests.all()] == [429, 429, 200]
    # Behaviour, not speed: the client must not come back before the service said it may.
    assert waited >= 2 * 1.0


def test_5xx_is_retried_with_backoff_and_then_succeeds(faulty_vision_server, vision_sample_images):
    server = faulty_vision_server(fault_first=3, fault_statuses=(500, 502, 503), fault_retry_after=None)
    with client_for(server) as client:
        embedding = client.vectorize_image(vision_sample_images["cat.jpg"])
    assert embedding.dimensions == offline_model_for(AZURE_MULTILINGUAL).dimensions
    statuses = [r.status for r in server.requests.all()]
    assert statuses[-1] == 200 and len(statuses) == 4 and all(s >= 500 for s in statuses[:3])


def test_408_is_retried(faulty_vision_server):
    server = faulty_vision_server(fault_first=1, fault_statuses=(408,), fault_retry_after=None)
    with client_for(server) as client:
        embedding = client.vectorize_text("a cat")
    assert embedding.model_version == offline_model_for(AZURE_MULTILINGUAL).name
    assert [r.status for r in server.requests.all()] == [408, 200]


def test_dropped_connections_are_retried(faulty_vision_server):
    server = faulty_vision_server(fault_first=2, fault_statuses=(), drop_connection=True)
    with client_for(server) as client:
        embedding = client.vectorize_text("a cat")
    assert embedding.model_version == offline_model_for(AZURE_MULTILINGUAL).name
    assert len(server.requests) == 3


def test_timeouts_are_retried(faulty_vision_server):
    server = faulty_vision_server(fault_first=1, fault_statuses=(), slow_seconds=1.0)
    with client_for(server, timeout=0.3) as client:
        embedding = client.vectorize_text("a cat")
    assert embedding.model_version == offline_model_for(AZURE_MULTILINGUAL).name


def test_gives_up_after_max_retries_with_a_throttled_error(faulty_vision_server):
    server = faulty_vision_server(fault_rate=1.0, fault_statuses=(429,), fault_retry_after=0)
    with client_for(server, max_retries=3) as client, pytest.raises(VisionThrottledError) as caught:
        client.vectorize_text("a cat")
    assert (caught.value.status_code, caught.value.code) == (429, "429")
    assert caught.value.retry_after == 0.0
    assert caught.value.retriable
    assert "4 attempts" in str(caught.value)
    assert len(server.requests) == 4


def test_gives_up_after_max_retries_with_a_service_error(faulty_vision_server):
    server = faulty_vision_server(fault_rate=1.0, fault_statuses=(503,), fault_retry_after=None)
    with client_for(server, max_retries=2) as client, pytest.raises(VisionServiceError) as caught:
        client.vectorize_text("a cat")
    assert type(caught.value) is VisionServiceError
    assert (caught.value.status_code, caught.value.code) == (503, "ServiceUnavailable")
    assert len(server.requests) == 3


def test_unreachable_service_raises_service_error_without_status(faulty_vision_server):
    server = faulty_vision_server(fault_rate=1.0, fault_statuses=(), slow_seconds=1.0)
    with client_for(server, timeout=0.3, max_retries=1) as client, pytest.raises(VisionServiceError) as caught:
        client.vectorize_text("a cat")
    assert caught.value.status_code is None and caught.value.retriable
    assert "2 attempt(s)" in str(caught.value)


def test_a_retry_after_longer_than_the_cap_fails_at_once_with_the_hint(faulty_vision_server):
    server = faulty_vision_server(fault_rate=1.0, fault_statuses=(429,), fault_retry_after=600)
    with client_for(server, backoff_max=5) as client, pytest.raises(VisionThrottledError) as caught:
        client.vectorize_text("a cat")
    assert caught.value.retry_after == 600
    assert len(server.requests) == 1


def test_the_servers_rate_limit_is_absorbed_by_retries_of_concurrent_callers(
    faulty_vision_server, vision_sample_images
):
    class RecordingLimiter(RateLimiter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.penalties: list[float] = []

        def penalize(self, seconds: float, **options) -> None:
            self.penalties.append(seconds)
            super().penalize(seconds, **options)

    server = faulty_vision_server(rate_limit_per_second=2, rate_limit_burst=1)
    images = list(vision_sample_images.values())[:3]
    limiter = RecordingLimiter(100, burst=3)
    with client_for(server, rate_limiter=limiter) as client, ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(client.vectorize_image, images))
    assert all(isinstance(r, Embedding) for r in results), results
    statuses = [r.status for r in server.requests.all()]
    assert statuses.count(200) == 3 and 429 in statuses
    # Each 429 paused the shared limiter for every worker, for what the server asked: its exact
    # wait (retry-after-ms, at most 1/2 s at 2 a second), not the whole second Retry-After says.
    assert len(limiter.penalties) == statuses.count(429)
    assert all(0 < seconds <= 0.5 for seconds in limiter.penalties), limiter.penalties


def test_a_429_with_whole_seconds_only_pauses_for_those_seconds(faulty_vision_server):
    class RecordingLimiter(RateLimiter):
        penalties: list[float] = []

        def penalize(self, seconds: float, **options) -> None:
            self.penalties.append(seconds)
            super().penalize(seconds, **options)

    server = faulty_vision_server(fault_first=1, fault_statuses=(429,), fault_retry_after=1)
    limiter = RecordingLimiter(100)
    with client_for(server, rate_limiter=limiter) as client:
        started = time.monotonic()
        client.vectorize_text("a cat")
        elapsed = time.monotonic() - started
    assert limiter.penalties == [1.0]
    assert [r.status for r in server.requests.all()] == [429, 200]
    assert elapsed >= 1.0  # the refused call went out again only after the pause


def test_throttling_is_pacing_not_failure_for_a_paced_client(faulty_vision_server, vision_sample_images):
    # No retries allowed at all, a limiter with no burst, four callers at once: every call still
    # succeeds, because a paced client waits out 429s instead of counting them as failures.
    server = faulty_vision_server(rate_limit_per_second=4, rate_limit_burst=1)
    images = list(vision_sample_images.values())[:4]
    with client_for(server, max_retries=0, rate_limiter=RateLimiter(40, adaptive=True)) as client:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(client.vectorize_image, images))
    assert all(isinstance(r, Embedding) for r in results)
    assert 429 in [r.status for r in server.requests.all()]


def test_an_unpaced_client_counts_429s_against_its_retries(faulty_vision_server):
    server = faulty_vision_server(fault_rate=1.0, fault_statuses=(429,), fault_retry_after=0)
    with client_for(server, max_retries=2) as client, pytest.raises(VisionThrottledError) as caught:
        client.vectorize_text("a cat")
    assert "3 attempts" in str(caught.value)
    assert len(server.requests) == 3


# --- Microsoft Entra ID ----------------------------------------------------------------------


def fake_token_credential(token: str, lifetime: float) -> mock.Mock:
    # A mock is the only option here: there is no Microsoft Entra ID stand-in offline. It
    # plays an azure-identity TokenCredential (``get_token(*scopes) -> AccessToken``).
    credential = mock.Mock(spec=["get_token"])
    credential.get_token.side_effect = lambda *scopes, **kw: AccessToken(token, int(time.time() + lifetime))
    return credential


def test_entra_id_token_is_sent_as_bearer_and_cached(faulty_vision_server):
    server = faulty_vision_server(keys=["some-key"], bearer_tokens=["fake-entra-token"])
    credential = fake_token_credential("fake-entra-token", lifetime=3600)
    with VisionClient(server.url, credential) as client:
        client.vectorize_text("a cat")
        client.vectorize_text("a dog")
    received = server.requests.last().headers
    assert received["authorization"] == "Bearer fake-entra-token"
    assert "ocp-apim-subscription-key" not in received
    credential.get_token.assert_called_once_with(COGNITIVE_SERVICES_SCOPE)


def test_entra_id_token_near_expiry_is_refreshed(faulty_vision_server):
    server = faulty_vision_server(bearer_tokens=["fake-entra-token"])
    credential = fake_token_credential("fake-entra-token", lifetime=60)  # inside the refresh margin
    with VisionClient(server.url, credential) as client:
        client.vectorize_text("a cat")
        client.vectorize_text("a dog")
    assert credential.get_token.call_count == 2


def test_rejected_entra_id_token_raises_authentication_error_without_leaking_it(faulty_vision_server, caplog):
    server = faulty_vision_server(bearer_tokens=["the-right-token"])
    caplog.set_level(logging.DEBUG)
    with (
        VisionClient(server.url, fake_token_credential("a-wrong-token-xyz", 3600)) as client,
        pytest.raises(VisionAuthenticationError) as caught,
    ):
        client.vectorize_text("a cat")
    assert caught.value.status_code == 401 and caught.value.code == "PermissionDenied"
    assert "a-wrong-token-xyz" not in str(caught.value) and "a-wrong-token-xyz" not in caplog.text
    assert [r.status for r in server.requests.all()] == [401, 401]  # one retry with a fresh token, no more


def test_a_401_to_a_cached_token_is_retried_once_with_a_fresh_one(faulty_vision_server):
    # The token was cached (an hour left) but the service refuses it now (revoked, or the
    # role assignment changed): the client asks the credential again and retries once.
    server = faulty_vision_server(bearer_tokens=["the-new-token"])
    tokens = iter(["a-revoked-token", "the-new-token", "never-asked-for"])
    credential = mock.Mock(spec=["get_token"])
    credential.get_token.side_effect = lambda *scopes, **kw: AccessToken(next(tokens), int(time.time() + 3600))
    with VisionClient(server.url, credential) as client:
        first = client.vectorize_text("a cat")
        second = client.vectorize_text("a dog")
    assert first.model_version == second.model_version == offline_model_for(AZURE_MULTILINGUAL).name
    assert [r.status for r in server.requests.all()] == [401, 200, 200]
    assert credential.get_token.call_count == 2  # the fresh token is cached again
    assert server.requests.last().headers["authorization"] == "Bearer the-new-token"


class _ChallengeThenAnswer(BaseHTTPRequestHandler):
    """A service that answers the first request 401 with a WWW-Authenticate challenge (no
    claims), and later ones 200 with an embedding; it keeps the tokens it was sent."""

    tokens: list = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.tokens.append(self.headers.get("Authorization"))
        if len(self.tokens) == 1:
            body = json.dumps({"error": {"code": "401", "message": "token expired"}}).encode()
            self.send_response(401)
            challenge = 'Bearer authorization_uri="https://login.example", error="invalid_token"'
            self.send_header("WWW-Authenticate", challenge)
        else:
            body = json.dumps({"modelVersion": "2023-04-15", "vector": [0.1, 0.2, 0.3]}).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_challenged_401_is_retried_once_with_a_fresh_token_too():
    handler = type("Challenge", (_ChallengeThenAnswer,), {"tokens": []})
    service = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=service.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    tokens = iter(["old", "fresh"])
    credential = mock.Mock(spec=["get_token"])
    credential.get_token.side_effect = lambda *scopes, **kw: AccessToken(next(tokens), int(time.time() + 3600))
    try:
        with VisionClient(f"http://127.0.0.1:{service.server_address[1]}", credential) as client:
            assert client.vectorize_text("a cat").dimensions == 3
    finally:
        service.shutdown()
        service.server_close()
    assert handler.tokens == ["Bearer old", "Bearer fresh"]


def test_an_unusable_credential_is_refused_up_front():
    with pytest.raises(TypeError, match="AzureKeyCredential"):
        VisionClient("https://example.invalid", "a plain string key")


# --- the answer's shape is checked -----------------------------------------------------------


class _FixedAnswer(BaseHTTPRequestHandler):
    """A broken service: answers every POST with the class's ``status`` and ``body``."""

    status = 200
    body = b"{}"
    extra_headers: dict = {}

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(self.status)
        for name, value in self.extra_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def broken_service():
    """A tiny HTTP server that answers what a test asks for (shapes no real server sends)."""
    servers = []

    def start(status: int, body: bytes, headers: dict | None = None) -> str:
        handler = type("Answer", (_FixedAnswer,), {"status": status, "body": body, "extra_headers": headers or {}})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "body,problem",
    [
        (b"<html>ok</html>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"vector": [0.1, 0.2]}).encode(), "'modelVersion'"),
        (json.dumps({"modelVersion": "2023-04-15", "vector": []}).encode(), "'vector' is missing or empty"),
        (json.dumps({"modelVersion": "2023-04-15"}).encode(), "'vector' is missing or empty"),
        (json.dumps({"modelVersion": "2023-04-15", "vector": ["a", "b"]}).encode(), "not numbers"),
        (json.dumps({"modelVersion": "2023-04-15", "vector": [[0.1], [0.2]]}).encode(), "not a flat list"),
        (b'{"modelVersion": "2023-04-15", "vector": [0.1, NaN]}', "NaN"),
    ],
)
def test_malformed_success_answers_raise_service_errors_naming_the_problem(broken_service, body, problem):
    with (
        VisionClient(broken_service(200, body), AzureKeyCredential("k")) as client,
        pytest.raises(VisionServiceError) as caught,
    ):
        client.vectorize_text("a cat")
    assert problem in str(caught.value)
    assert caught.value.code == "InvalidResponse"


def test_redirects_are_not_followed_so_the_key_never_reaches_another_host(broken_service, faulty_vision_server):
    elsewhere = faulty_vision_server()  # records every request it gets
    redirecting = broken_service(307, b"", {"Location": f"{elsewhere.url}{TEXT_PATH}?{GA}"})
    with (
        VisionClient(redirecting, AzureKeyCredential("secret-key")) as client,
        pytest.raises(VisionServiceError) as caught,
    ):
        client.vectorize_text("a cat")
    assert caught.value.status_code == 307 and not caught.value.retriable
    assert len(elsewhere.requests) == 0


def test_a_non_azure_error_page_still_raises_a_typed_error(broken_service):
    with (
        VisionClient(broken_service(418, b"<html>I'm a teapot</html>"), AzureKeyCredential("k")) as client,
        pytest.raises(VisionRequestError) as caught,
    ):
        client.vectorize_text("a cat")
    assert caught.value.status_code == 418 and caught.value.code == "418"
    assert "teapot" in str(caught.value)
