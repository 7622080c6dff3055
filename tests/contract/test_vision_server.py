"""The local vectorizer server answers as Azure AI Vision does, over real HTTP.

These tests speak raw HTTP with ``requests`` (what the seed's curl commands send), against
the real offline models. The client's view of the same answers is in test_vision_client.py.
"""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
import requests

from indexer.model_versions import AZURE_ENGLISH, AZURE_MULTILINGUAL, MODEL_VERSIONS, offline_model_for
from standins.vision.server import ServerConfig, create_app

IMAGE_PATH = "/computervision/retrieval:vectorizeImage"
TEXT_PATH = "/computervision/retrieval:vectorizeText"
GA = "api-version=2024-02-01&model-version=2023-04-15"


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height``: enough for a dimension check, and
    cheap, since no pixel data is ever decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def tiny_png(side: int = 8) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (side, side), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


def post(
    server,
    path: str,
    query: str = GA,
    *,
    data=None,
    json=None,
    content_type: str | None = None,
    key: str | None = "configured",
    headers: dict | None = None,
) -> requests.Response:
    sent = dict(headers or {})
    if key == "configured":
        key = server.key
    if key is not None:
        sent["Ocp-Apim-Subscription-Key"] = key
    if content_type is not None:
        sent["Content-Type"] = content_type
    return requests.post(f"{server.url}{path}?{query}", data=data, json=json, headers=sent, timeout=60)


def assert_azure_error(response: requests.Response, status: int, code: str, inner: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert response.headers["x-ms-error-code"] == code
    if inner is None:
        assert "innererror" not in error
    else:
        assert error["innererror"]["code"] == inner
        assert error["innererror"]["message"]
    return error


# --- the seed's curl commands ----------------------------------------------------------------


def test_seed_curl_vectorize_text_answers_with_the_stand_in(vision_server):
    # The seed's body, byte for byte: single-quoted, as its curl --data-ascii sends it.
    response = post(vision_server, TEXT_PATH, data="\n{\n'text':'cat jumping'\n}", content_type="application/json")
    assert response.status_code == 200, response.text
    body = response.json()
    stand_in = offline_model_for(AZURE_MULTILINGUAL)
    assert set(body) == {"modelVersion", "vector"}
    assert body["modelVersion"] == stand_in.name
    assert len(body["vector"]) == stand_in.dimensions
    assert all(isinstance(x, float) for x in body["vector"])


def test_seed_curl_vectorize_image_url_answers_with_the_stand_in(vision_server, image_url_server, vision_sample_images):
    # The seed's image URL is on learn.microsoft.com, out of reach offline: same request,
    # with the URL of a local copy of a photo.
    url = image_url_server("seed-cat.jpg", vision_sample_images["cat.jpg"], "image/jpeg")
    response = post(vision_server, IMAGE_PATH, data=f"\n{{\n'url':'{url}'\n}}", content_type="application/json")
    assert response.status_code == 200, response.text
    body = response.json()
    stand_in = offline_model_for(AZURE_MULTILINGUAL)
    assert body["modelVersion"] == stand_in.name
    assert len(body["vector"]) == stand_in.dimensions


def test_image_bytes_and_the_same_image_by_url_give_the_same_vector(
    vision_server, image_url_server, vision_sample_images
):
    data = vision_sample_images["dog.jpg"]
    by_bytes = post(vision_server, IMAGE_PATH, data=data, content_type="application/octet-stream")
    by_url = post(
        vision_server, IMAGE_PATH, json={"url": image_url_server("same-dog.jpg", data)}, content_type="application/json"
    )
    assert by_bytes.status_code == by_url.status_code == 200
    np.testing.assert_allclose(by_bytes.json()["vector"], by_url.json()["vector"], rtol=1e-5, atol=1e-6)
    other = post(
        vision_server, IMAGE_PATH, data=vision_sample_images["fire_truck.jpg"], content_type="application/octet-stream"
    )
    assert not np.allclose(other.json()["vector"], by_bytes.json()["vector"])


@pytest.mark.parametrize("azure_version", [AZURE_MULTILINGUAL, AZURE_ENGLISH])
def test_each_azure_model_version_is_answered_by_its_local_stand_in(vision_server, vision_sample_images, azure_version):
    stand_in = offline_model_for(azure_version)
    query = f"api-version=2024-02-01&model-version={azure_version}"
    image = post(
        vision_server, IMAGE_PATH, query, data=vision_sample_images["cat.jpg"], content_type="application/octet-stream"
    )
    text = post(vision_server, TEXT_PATH, query, json={"text": "a cat"}, content_type="application/json")
    for response in (image, text):
        assert response.status_code == 200, response.text
        assert response.json()["modelVersion"] == stand_in.name
        assert len(response.json()["vector"]) == stand_in.dimensions
    # Never an Azure name: a local vector must not pass for an Azure one.
    assert MODEL_VERSIONS[image.json()["modelVersion"]].provider == "offline"


def test_local_model_names_are_accepted_as_model_version(vision_server):
    local = offline_model_for(AZURE_ENGLISH).name
    response = post(
        vision_server,
        TEXT_PATH,
        f"api-version=2024-02-01&model-version={local}",
        json={"text": "a red bus"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["modelVersion"] == local


def test_preview_api_with_model_version_latest_as_older_clients_sent_it_when_opted_in(faulty_vision_server):
    server = faulty_vision_server(serve_retired_preview=True)
    response = post(
        server,
        TEXT_PATH,
        "api-version=2023-02-01-preview&modelVersion=latest",
        key=None,
        json={"text": "a red bus"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.text
    assert (
        response.json()["modelVersion"] == offline_model_for("2022-04-11").name
    )  # the seed's answers: latest meant 2022-04-11


def test_retired_preview_answers_gone_by_default(vision_server):
    # Live Azure answers the retired preview with 410 Gone (azure-search-openai-demo#2514).
    response = post(
        vision_server,
        TEXT_PATH,
        "api-version=2023-02-01-preview&modelVersion=latest",
        json={"text": "a red bus"},
        content_type="application/json",
    )
    assert_azure_error(response, 410, "Gone")


def test_without_configured_keys_every_caller_is_accepted(faulty_vision_server):
    server = faulty_vision_server()
    response = post(server, TEXT_PATH, key=None, json={"text": "a red bus"}, content_type="application/json")
    assert response.status_code == 200


def test_answers_carry_a_request_id(vision_server):
    response = post(vision_server, TEXT_PATH, json={"text": "a red bus"}, content_type="application/json")
    assert response.headers["apim-request-id"]


# --- every error path, with Azure's status and error shape -----------------------------------


def test_missing_key_is_401(vision_server):
    response = post(vision_server, TEXT_PATH, key=None, json={"text": "cat"}, content_type="application/json")
    error = assert_azure_error(response, 401, "401")
    assert "missing subscription key" in error["message"]


def test_wrong_key_is_401(vision_server):
    response = post(vision_server, TEXT_PATH, key="not-the-key", json={"text": "cat"}, content_type="application/json")
    error = assert_azure_error(response, 401, "401")
    assert "invalid subscription key" in error["message"]


def test_unknown_api_version_is_404_resource_not_found(vision_server):
    response = post(
        vision_server,
        TEXT_PATH,
        "api-version=2024-02-01-preview&model-version=2023-04-15",
        json={"text": "cat"},
        content_type="application/json",
    )
    error = assert_azure_error(response, 404, "404")
    assert error["message"] == "Resource not found"


def test_missing_api_version_is_404(vision_server):
    response = post(
        vision_server, TEXT_PATH, "model-version=2023-04-15", json={"text": "cat"}, content_type="application/json"
    )
    assert_azure_error(response, 404, "404")


def test_unknown_route_and_method_are_404(vision_server):
    assert_azure_error(
        requests.post(f"{vision_server.url}/computervision/retrieval:vectorizeVideo?{GA}", timeout=10), 404, "404"
    )
    assert_azure_error(requests.get(f"{vision_server.url}{IMAGE_PATH}?{GA}", timeout=10), 404, "404")


def test_unknown_model_version_is_400(vision_server):
    response = post(
        vision_server,
        TEXT_PATH,
        "api-version=2024-02-01&model-version=2021-01-01",
        json={"text": "cat"},
        content_type="application/json",
    )
    error = assert_azure_error(response, 400, "InvalidRequest", "InvalidModel")
    assert "2021-01-01" in error["innererror"]["message"]


def test_missing_model_version_names_the_parameter(vision_server):
    # GA takes ``model-version``; the camel-case name of the preview does not count.
    response = post(
        vision_server,
        TEXT_PATH,
        "api-version=2024-02-01&modelVersion=2023-04-15",
        json={"text": "cat"},
        content_type="application/json",
    )
    error = assert_azure_error(response, 400, "InvalidRequest", "ParameterMissing")
    assert "model-version" in error["innererror"]["message"]


def test_corrupt_image_is_400_invalid_image_format(vision_server):
    response = post(
        vision_server,
        IMAGE_PATH,
        data=b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10,
        content_type="application/octet-stream",
    )
    assert_azure_error(response, 400, "InvalidRequest", "InvalidImageFormat")


IMAGE_BYTES_MESSAGE = "The image size is not allowed to be zero or larger than 20971520 bytes."
IMAGE_URL_MESSAGE = "Image URL is badly formatted or not accessible."


def test_empty_image_body_is_400_with_the_size_answer(vision_server):
    # "InvalidRequest - The image size is not allowed to be zero or larger than 20971520 bytes",
    # with no inner code (Image Analysis 4.0 error list; the mission brief's live answer).
    response = post(vision_server, IMAGE_PATH, data=b"", content_type="application/octet-stream")
    error = assert_azure_error(response, 400, "InvalidRequest")
    assert error["message"] == IMAGE_BYTES_MESSAGE


def test_image_too_small_is_400_invalid_image_size(vision_server):
    response = post(vision_server, IMAGE_PATH, data=tiny_png(8), content_type="application/octet-stream")
    error = assert_azure_error(response, 400, "InvalidRequest", "InvalidImageSize")
    assert "8x8" in error["innererror"]["message"]


@pytest.mark.parametrize("width,height", [(16000, 20), (20, 16000), (16000, 16000), (40000, 40000)])
def test_image_dimensions_too_large_is_400_invalid_image_size(vision_server, width, height):
    response = post(vision_server, IMAGE_PATH, data=png_header(width, height), content_type="application/octet-stream")
    assert_azure_error(response, 400, "InvalidRequest", "InvalidImageSize")


def test_image_of_20_mb_is_400_invalid_request_without_an_inner_code(vision_server):
    data = b"\xff\xd8\xff" + bytes(20 * 1024 * 1024 - 3)  # exactly 20 MiB: the limit is "under 20 MB"
    response = post(vision_server, IMAGE_PATH, data=data, content_type="application/octet-stream")
    error = assert_azure_error(response, 400, "InvalidRequest")
    assert error["message"] == IMAGE_BYTES_MESSAGE


def test_image_url_that_cannot_be_fetched_is_400_without_an_inner_code(vision_server, image_url_server):
    missing = image_url_server("placeholder.jpg", b"").rsplit("/", 1)[0] + "/no-such-image.jpg"
    response = post(vision_server, IMAGE_PATH, json={"url": missing}, content_type="application/json")
    error = assert_azure_error(response, 400, "InvalidRequest")
    assert error["message"] == IMAGE_URL_MESSAGE
    assert "404" in response.headers["x-standin-detail"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.0.0.1", "192.168.1.20", "169.254.169.254"])
def test_image_urls_on_loopback_or_private_hosts_are_refused_by_default(faulty_vision_server, image_url_server, host):
    # Azure fetches only publicly reachable URLs ("valid and publicly accessible"): refused before
    # any connection, with the answer Azure gives for a URL it cannot fetch.
    server = faulty_vision_server()
    served = image_url_server("private.jpg", tiny_png(64))
    url = served.replace("127.0.0.1", host)
    response = post(server, IMAGE_PATH, key=None, json={"url": url}, content_type="application/json")
    error = assert_azure_error(response, 400, "InvalidRequest")
    assert error["message"] == IMAGE_URL_MESSAGE
    assert "--allow-private-urls" in response.headers["x-standin-detail"]


def test_which_hosts_count_as_private():
    # The stand-in fetches through indexer.safe_fetch (its address table: tests/unit/test_safe_fetch.py).
    from standins.vision.fetch import UrlRefused, fetch_image

    for url in ("http://127.0.0.2/a.jpg", "http://[fd00::1]/a.jpg", "http://100.64.0.1/a.jpg", "http://2130706433/a"):
        with pytest.raises(UrlRefused) as refused:
            fetch_image(url, allow_private=False)
        assert "address" in refused.value.reason and "--allow-private-urls" in refused.value.reason
    with pytest.raises(UrlRefused, match=IMAGE_URL_MESSAGE):
        fetch_image("ftp://8.8.8.8/a")


def test_every_redirect_hop_is_checked(image_url_server, monkeypatch):
    from indexer import safe_fetch
    from standins.vision import fetch

    target = image_url_server("hop-target.png", tiny_png(64))
    first = image_url_server("hop.png", b"", "redirect:" + target.replace("127.0.0.1", "localhost"))
    assert fetch.fetch_image(first, allow_private=True) == tiny_png(64)  # redirects are followed
    # Pretend 127.0.0.1 is a public host: the first hop passes, the redirect to localhost not.
    real = safe_fetch.resolve_checked

    def resolve(host: str, port: int, *, allow_private: bool = False) -> str:
        return real(host, port, allow_private=allow_private or host == "127.0.0.1")

    monkeypatch.setattr(safe_fetch, "resolve_checked", resolve)
    with pytest.raises(fetch.UrlRefused) as refused:
        fetch.fetch_image(first, allow_private=False)
    assert "loopback address" in refused.value.reason


def test_image_url_pointing_at_a_corrupt_file_is_400_invalid_image_format(vision_server, image_url_server):
    url = image_url_server("corrupt.jpg", b"GIF89a but not really" * 5)
    response = post(vision_server, IMAGE_PATH, json={"url": url}, content_type="application/json")
    assert_azure_error(response, 400, "InvalidRequest", "InvalidImageFormat")


def test_text_over_70_words_is_400(vision_server):
    response = post(vision_server, TEXT_PATH, json={"text": " ".join(["word"] * 71)}, content_type="application/json")
    error = assert_azure_error(response, 400, "InvalidRequest", "InvalidParameter")
    assert "71 words" in error["innererror"]["message"]


def test_text_of_exactly_70_words_is_accepted(vision_server):
    response = post(vision_server, TEXT_PATH, json={"text": " ".join(["word"] * 70)}, content_type="application/json")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_400(vision_server, text):
    response = post(vision_server, TEXT_PATH, json={"text": text}, content_type="application/json")
    assert_azure_error(response, 400, "InvalidRequest", "InvalidParameter")


def test_text_that_is_not_a_string_is_400(vision_server):
    response = post(vision_server, TEXT_PATH, json={"text": ["cat"]}, content_type="application/json")
    assert_azure_error(response, 400, "InvalidRequest", "InvalidParameter")


@pytest.mark.parametrize(
    "path,content_type",
    [
        (IMAGE_PATH, "image/jpeg"),
        (IMAGE_PATH, "text/plain"),
        (IMAGE_PATH, None),
        (TEXT_PATH, "application/octet-stream"),
        (TEXT_PATH, "text/plain"),
    ],
)
def test_wrong_content_type_is_415(vision_server, vision_sample_images, path, content_type):
    body = vision_sample_images["cat.jpg"] if path == IMAGE_PATH else b'{"text": "cat"}'
    response = post(vision_server, path, data=body, content_type=content_type)
    assert_azure_error(response, 415, "InvalidRequest", "UnsupportedMediaType")


@pytest.mark.parametrize(
    "path,body",
    [
        (TEXT_PATH, b'{"text": "cat"'),
        (TEXT_PATH, b"[1, 2]"),
        (TEXT_PATH, b'{"words": "cat"}'),
        (IMAGE_PATH, b'{"uri": "http://example.invalid/a.jpg"}'),
        (IMAGE_PATH, b"\xff\xfe not utf-8"),
    ],
)
def test_malformed_json_body_is_400_bad_argument(vision_server, path, body):
    response = post(vision_server, path, data=body, content_type="application/json")
    assert_azure_error(response, 400, "InvalidRequest", "BadArgument")


def test_json_with_charset_parameter_is_accepted(vision_server):
    response = post(vision_server, TEXT_PATH, data=b'{"text": "a cat"}', content_type="application/json; charset=utf-8")
    assert response.status_code == 200


# --- a busy remote service: rate limit and injected faults -----------------------------------


def test_over_the_rate_limit_the_answer_is_429_with_retry_after(faulty_vision_server):
    server = faulty_vision_server(rate_limit_per_second=0.5, rate_limit_burst=1)
    first = post(server, TEXT_PATH, key=None, json={"text": "cat"}, content_type="application/json")
    second = post(server, TEXT_PATH, key=None, json={"text": "cat"}, content_type="application/json")
    assert first.status_code == 200
    error = assert_azure_error(second, 429, "429")
    assert int(second.headers["Retry-After"]) >= 1
    assert f"retry after {second.headers['Retry-After']} second" in error["message"]


def test_azures_gateway_count_admits_a_windows_allowance_at_once_then_429_until_the_window_ends(
    faulty_vision_server,
):
    # The default model is Azure's: a fixed interval (here 5 s) with the rate's allowance (2/s
    # x 5 s = 10), taken at once by a burst; the 11th is refused until the interval ends.
    server = faulty_vision_server(rate_limit_per_second=2, rate_limit_window=5.0)
    answers = [
        post(server, TEXT_PATH, key=None, json={"text": "cat"}, content_type="application/json") for _ in range(11)
    ]
    assert [a.status_code for a in answers[:10]] == [200] * 10
    refused = answers[10]
    assert_azure_error(refused, 429, "429")
    # Whole seconds in Retry-After (what the message says), the exact wait in retry-after-ms.
    seconds, millis = int(refused.headers["Retry-After"]), int(refused.headers["retry-after-ms"])
    assert 1 <= seconds <= 5 and 0 < millis <= 5000 and seconds == -(-millis // 1000)


def test_a_no_burst_token_bucket_refuses_a_second_request_at_once_with_its_exact_wait(faulty_vision_server):
    server = faulty_vision_server(rate_limit_per_second=4, rate_limit_burst=1)
    first = post(server, TEXT_PATH, key=None, json={"text": "cat"}, content_type="application/json")
    second = post(server, TEXT_PATH, key=None, json={"text": "cat"}, content_type="application/json")
    assert first.status_code == 200 and second.status_code == 429
    assert second.headers["Retry-After"] == "1"  # 0.25 s at most, rounded up to whole seconds
    assert 0 < int(second.headers["retry-after-ms"]) <= 250


def test_injected_faults_use_the_configured_statuses_and_retry_after(faulty_vision_server):
    server = faulty_vision_server(fault_rate=1.0, fault_statuses=(429, 503), fault_retry_after=7)
    statuses = set()
    for _ in range(12):
        response = post(server, TEXT_PATH, key=None, json={"text": "cat"}, content_type="application/json")
        statuses.add(response.status_code)
        assert response.headers["Retry-After"] == "7"
        assert_azure_error(
            response, response.status_code, "429" if response.status_code == 429 else "ServiceUnavailable"
        )
    assert statuses == {429, 503}


def test_fault_draws_replay_for_the_same_seed(faulty_vision_server):
    def statuses(seed: int) -> list[int]:
        server = faulty_vision_server(fault_rate=0.5, fault_statuses=(500, 503), fault_seed=seed)
        return [
            post(server, TEXT_PATH, key=None, json={"text": "cat"}, content_type="application/json").status_code
            for _ in range(10)
        ]

    first = statuses(42)
    assert statuses(42) == first
    assert 200 in first and set(first) - {200}


def test_fault_first_fails_exactly_the_first_requests(faulty_vision_server):
    server = faulty_vision_server(fault_first=2, fault_statuses=(500,))
    codes = [
        post(server, TEXT_PATH, key=None, json={"text": "cat"}, content_type="application/json").status_code
        for _ in range(4)
    ]
    assert codes == [500, 500, 200, 200]
    assert_azure_error(
        post(
            faulty_vision_server(fault_first=1, fault_statuses=(500,)),
            TEXT_PATH,
            key=None,
            json={"text": "x"},
            content_type="application/json",
        ),
        500,
        "InternalServerError",
        "Unknown",
    )


def test_injected_dropped_connection_breaks_off_the_answer(faulty_vision_server):
    server = faulty_vision_server(fault_first=1, fault_statuses=(), drop_connection=True)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        post(server, TEXT_PATH, key=None, json={"text": "cat"}, content_type="application/json")
    # The server itself is fine afterwards.
    assert post(server, TEXT_PATH, key=None, json={"text": "cat"}, content_type="application/json").status_code == 200


def test_configured_latency_is_added_to_every_answer(faulty_vision_server):
    server = faulty_vision_server(latency_ms=300)
    started = time.monotonic()
    ok = post(server, TEXT_PATH, key=None, json={"text": "cat"}, content_type="application/json")
    refused = post(
        server, TEXT_PATH, "api-version=1999-01-01", key=None, json={"text": "cat"}, content_type="application/json"
    )
    assert (ok.status_code, refused.status_code) == (200, 404)
    assert time.monotonic() - started >= 2 * 0.3  # a lower bound: the behaviour, not a speed


@pytest.mark.parametrize(
    "options",
    [
        {"fault_rate": 0.5, "fault_statuses": ()},  # faults asked for, but no kind of fault
        {"fault_rate": 1.5},
        {"fault_statuses": (404,), "fault_first": 1},  # a 4xx is not a fault a client should retry
        {"latency_ms": -1},
        {"rate_limit_per_second": 0},
    ],
)
def test_nonsense_server_options_are_refused_up_front(options):
    with pytest.raises(ValueError):
        create_app(ServerConfig(**options), model_lookup=lambda name: None)


# --- formats: Azure's list, nothing more -----------------------------------------------------


def saved(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    from PIL import Image

    image = Image.new("RGB", size, (200, 60, 30))
    if fmt == "XBM":
        image = image.convert("1")
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["TGA", "PPM", "PCX", "SGI", "DDS", "QOI", "JPEG2000", "XBM"])
def test_formats_outside_azures_list_are_400_invalid_image_format(vision_server, fmt):
    # "JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF, or MPO" (input requirements); Pillow reads these too.
    response = post(vision_server, IMAGE_PATH, data=saved(fmt), content_type="application/octet-stream")
    error = assert_azure_error(response, 400, "InvalidRequest", "InvalidImageFormat")
    assert "supported formats" in error["innererror"]["message"]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "WEBP", "ICO", "TIFF", "MPO"])
def test_every_format_on_azures_list_is_vectorized(vision_server, fmt):
    response = post(vision_server, IMAGE_PATH, data=saved(fmt), content_type="application/octet-stream")
    assert response.status_code == 200, response.text


# --- what Azure accepts, the stand-in accepts ------------------------------------------------


def big_picture(width: int, height: int, fmt: str) -> bytes:
    """A large image that compresses well (flat colours and a few shapes), well under 20 MB."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (40, 90, 160))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(230, 200, 40))
    out = io.BytesIO()
    image.save(out, fmt, **({"compress_level": 1} if fmt == "PNG" else {"quality": 80}))
    data = out.getvalue()
    assert len(data) < 20 * 1024 * 1024
    return data


def test_an_8000_by_7000_png_is_accepted(vision_server):
    # 56 megapixels: over the offline model's own 50-megapixel decode cap, under Azure's limits.
    response = post(
        vision_server, IMAGE_PATH, data=big_picture(8000, 7000, "PNG"), content_type="application/octet-stream"
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["vector"]) == offline_model_for(AZURE_MULTILINGUAL).dimensions


def test_beyond_the_stand_ins_decode_budget_the_answer_is_a_503_naming_the_stand_in(faulty_vision_server):
    server = faulty_vision_server(max_decode_pixels=10_000_000)
    png = big_picture(5000, 4000, "PNG")  # 20 megapixels: valid on Azure, over this stand-in's budget
    response = post(server, IMAGE_PATH, key=None, data=png, content_type="application/octet-stream")
    error = assert_azure_error(response, 503, "ServiceUnavailable")
    assert "stand-in" in error["message"] and "Azure AI Vision, which accepts it" in error["message"]
    # The same picture as a JPEG is decoded scaled down while decoding, whatever its size.
    jpeg = big_picture(5000, 4000, "JPEG")
    assert post(server, IMAGE_PATH, key=None, data=jpeg, content_type="application/octet-stream").status_code == 200


def test_a_text_longer_than_the_model_reads_is_still_vectorized(vision_server):
    long_words = " ".join(["incomprehensibilities" * 40] * 10)  # 10 words, 8,000+ characters
    response = post(vision_server, TEXT_PATH, json={"text": long_words}, content_type="application/json")
    assert response.status_code == 200, response.text
    # Where the word rule is undocumented (no spaces between words), the stand-in lets it through.
    chinese = "一只黑色的猫坐在红色的沙发上看着窗外的雨" * 10  # 200 characters, no spaces
    response = post(vision_server, TEXT_PATH, json={"text": chinese}, content_type="application/json")
    assert response.status_code == 200, response.text


def test_a_limit_of_the_model_is_a_503_never_an_azure_400():
    from indexer.errors import InputLimitError
    from standins.vision.server import serve_in_thread

    class Refusing:
        def vectorize_text(self, text):
            raise InputLimitError("too much for the offline model", limit="text_chars")

        vectorize_image = vectorize_text

    with serve_in_thread(ServerConfig(), model_lookup=lambda name: Refusing()) as url:
        response = requests.post(
            f"{url}{TEXT_PATH}?{GA}", json={"text": "a cat"}, headers={"Content-Type": "application/json"}, timeout=30
        )
    error = assert_azure_error(response, 503, "ServiceUnavailable")
    assert "too much for the offline model" in error["message"] and "stand-in" in error["message"]


def test_a_json_body_over_the_stand_ins_cap_is_a_503(vision_server):
    body = b'{"text": "' + b"a" * (1024 * 1024) + b'"}'
    response = post(vision_server, TEXT_PATH, data=body, content_type="application/json")
    error = assert_azure_error(response, 503, "ServiceUnavailable")
    assert "stand-in" in error["message"]
