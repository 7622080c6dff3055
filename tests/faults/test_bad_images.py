"""Bad images through every entry point: ``VisionClient``, the local vectorizer server over
HTTP, the Function handler ``index_blob`` (Azurite), and ``imgsearch index``.

The catalogue (``tests/fixtures/bad_images.py``): empty, a truncated JPEG, text that is not an
image, decompression bombs (a 27 KB PNG declaring 15,000 x 15,000 pixels, within Azure's
limits; one of 20,000 x 20,000, over them), a JPEG whose header claims 15,999 x 15,999 with
the data of a small picture, over 20 MB, 10 x 10 pixels, 16,000 pixels wide, and lying names
(text saved as ``.png``; a PNG saved as ``.jpg``, which is fine and must be indexed).

For each entry point: every bad input gets an error that names the problem, nothing crashes
or is retried, good images indexed before are still there and still found, and (in a server
process of its own) memory stays bounded while the bombs are refused. The 15,000 x 15,000 PNG
is no bad image to Azure: the Vision stand-in answers it with a 503 naming its own decode limit
(transient, so it is retried and never recorded as a permanent failure), the in-process offline
model skips it naming its limit.
"""

from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path

import pytest
import requests
from azure.core.credentials import AzureKeyCredential
from azure.storage.blob import ContentSettings

from indexer.entrypoints import blob_events as handlers
from indexer.entrypoints.http import search_http
from indexer.errors import InputLimitError, InvalidImageError, ServiceError, VisionRequestError, VisionServiceError
from indexer.indexing.failures import JsonlFailureLog
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.services import build_services
from indexer.settings import Settings
from indexer.vectorizers.vision.client import VisionClient
from tests.fixtures.azurite import blob_key
from tests.fixtures.bad_images import BAD_IMAGES, jpeg_claiming

IMAGE_PATH = "/computervision/retrieval:vectorizeImage"
QUERY = {"api-version": "2024-02-01", "model-version": "2023-04-15"}
CASE_NAMES = [case.name for case in BAD_IMAGES]


def names_the_problem(case, message: str) -> bool:
    return re.search(case.problem, message, re.IGNORECASE | re.DOTALL) is not None


def service_message(error: dict) -> str:
    """The message that names the problem: the inner one where Azure's answer has one."""
    return (error.get("innererror") or {}).get("message") or error["message"]


def image_requests(server) -> int:
    return sum(1 for r in server.requests.all() if r.path.endswith("vectorizeImage"))


# --------------------------------------------------------------------------- VisionClient


@pytest.fixture(scope="module")
def vision_client(vision_server):
    with VisionClient(
        vision_server.url,
        AzureKeyCredential(vision_server.key),
        model_version=OFFLINE_MULTILINGUAL,
        backoff_factor=0.01,
        backoff_max=0.05,
    ) as client:
        yield client


@pytest.mark.parametrize("name", CASE_NAMES)
def test_vision_client_names_the_problem_and_never_retries(name, bad_image_cases, vision_client, vision_server):
    case, data = bad_image_cases[name]
    before = image_requests(vision_server)

    with pytest.raises((InputLimitError, InvalidImageError, VisionServiceError)) as caught:
        vision_client.vectorize_image(data)

    assert names_the_problem(case, str(caught.value)), str(caught.value)
    sent = image_requests(vision_server) - before
    if case.azure_accepts:  # the stand-in's own limit: transient, retried, never a 400
        assert type(caught.value) is VisionServiceError and caught.value.retriable
        assert caught.value.status_code == 503 and "stand-in" in str(caught.value)
        assert sent > 1 and vision_server.requests.last().status == 503
    elif case.caught_before_sending:
        assert sent == 0  # refused by the header check: no call, no cost
    else:
        assert sent == 1 and vision_server.requests.last().status == 400  # the service's 400, not retried
        assert isinstance(caught.value, VisionRequestError)


def test_an_image_within_azures_limits_is_never_refused_by_the_client(vision_client, vision_server):
    """A 14,000 x 14,000 JPEG is allowed by Azure (sides under 16,000). The client's header
    check must not refuse it as a "decompression bomb" (Pillow's default threshold, about 179
    million pixels, is below Azure's 256 million); decoding is the service's business. This
    one decodes (libjpeg fills what its data lacks with grey), so it is vectorized, in one call."""
    before = image_requests(vision_server)
    embedding = vision_client.vectorize_image(jpeg_claiming(14_000, 14_000, cut=False))
    assert embedding.model_version == OFFLINE_MULTILINGUAL
    assert image_requests(vision_server) - before == 1


# --------------------------------------------------------------------------- the server over HTTP


def post_image(url: str, key: str, data: bytes) -> requests.Response:
    return requests.post(
        f"{url}{IMAGE_PATH}",
        params=QUERY,
        data=data,
        timeout=120,
        headers={"Ocp-Apim-Subscription-Key": key, "Content-Type": "application/octet-stream"},
    )


@pytest.mark.parametrize("name", CASE_NAMES)
def test_the_vectorizer_server_answers_400_naming_the_problem(name, bad_image_cases, vision_server):
    case, data = bad_image_cases[name]

    response = post_image(vision_server.url, vision_server.key, data)

    error = response.json()["error"]
    if case.azure_accepts:
        assert response.status_code == 503 and error["code"] == "ServiceUnavailable", response.text
        assert "stand-in" in error["message"] and names_the_problem(case, error["message"]), error
        return
    assert response.status_code == 400, response.text
    assert error["code"] == "InvalidRequest" and response.headers["x-ms-error-code"] == "InvalidRequest"
    assert names_the_problem(case, service_message(error)), error


def test_the_vectorizer_server_keeps_serving_after_every_bad_image(bad_image_cases, good_images, vision_server):
    for case, data in bad_image_cases.values():
        assert post_image(vision_server.url, vision_server.key, data).status_code == (
            503 if case.azure_accepts else 400
        )
    for data in good_images.values():
        answer = post_image(vision_server.url, vision_server.key, data)
        assert answer.status_code == 200 and len(answer.json()["vector"]) == 512


# --------------------------------------------------------------------------- memory, in a process of its own

BOMBS = ("png_bomb_15000", "png_bomb_20000", "ico_bomb_12000", "jpeg_claiming_15999", "over_20_mb")


def test_bombs_leave_the_server_process_memory_bounded(bad_image_cases, good_images, vision_server_process):
    """The server's peak resident memory (VmHWM, reset after a warm-up request) while it
    refuses the bombs: a full decode of the 15,000 x 15,000 PNG would take at least 225 MB
    (one byte a pixel), as RGB 675 MB; refusing it from the header costs next to nothing."""
    server = vision_server_process
    first = next(iter(good_images.values()))
    assert post_image(server.url, server.key, first).status_code == 200  # warm: buffers and caches in place
    server.reset_peak()
    baseline = server.rss_kb()

    answers = {name: post_image(server.url, server.key, bad_image_cases[name][1]) for name in BOMBS}
    # A JPEG header of 15,999 x 15,999 that does decode: JPEG is decoded scaled down (draft
    # mode, 1/8 per side), so it is vectorized without ever holding the full raster.
    huge = post_image(server.url, server.key, jpeg_claiming(15_999, 15_999, cut=False))

    growth_mb = (server.peak_rss_kb() - baseline) / 1024
    expected = {name: 503 if bad_image_cases[name][0].azure_accepts else 400 for name in BOMBS}
    assert {n: a.status_code for n, a in answers.items()} == expected, {n: a.text for n, a in answers.items()}
    assert huge.status_code == 200, huge.text
    assert growth_mb < 150, f"peak memory grew by {growth_mb:.0f} MB while refusing the bombs"
    assert server.peak_rss_kb() / 1024 < 1500  # the whole process, model included: generous
    assert server.alive()
    assert post_image(server.url, server.key, first).status_code == 200


# --------------------------------------------------------------------------- the Function handler


@pytest.fixture
def function_services(azurite, blob_container, vision_server, local_index, tmp_path):
    settings = Settings(
        IMAGES_STORAGE=azurite.connection_string,
        IMAGES_CONTAINER=blob_container.container_name,
        VISION_ENDPOINT=vision_server.url,
        VISION_KEY=vision_server.key,
        VISION_MODEL_VERSION=OFFLINE_MULTILINGUAL,
        VISION_MAX_RETRIES=1,
        IMGSEARCH_DATA_DIR=str(tmp_path),
    )
    services = build_services(settings, backend=local_index, failures=JsonlFailureLog(tmp_path / "failures.jsonl"))
    yield services
    services.vectorizer.close()


def claimed_type(name: str) -> ContentSettings:
    return ContentSettings(content_type=mimetypes.guess_type(name)[0] or "application/octet-stream")


def test_index_blob_records_each_bad_blob_with_its_reason_and_loses_nothing(
    function_services, blob_container, bad_image_cases, good_images, vision_server
):
    container = blob_container.container_name
    for name, data in good_images.items():
        # Every blob declares the type its name suggests: a lie for the PNG named .jpg.
        blob_container.upload_blob(name, data, content_settings=claimed_type(name))
        assert handlers.index_blob(f"{container}/{name}", function_services).status == "indexed"
    before = {k: function_services.backend.get(k) for k in function_services.backend.keys_with_hashes()}

    for case, data in bad_image_cases.values():
        blob_container.upload_blob(case.file_name, data, content_settings=claimed_type(case.file_name))
        calls = image_requests(vision_server)
        if case.rendered:  # Vision refuses it as it is; the product sends a rendition it reads
            assert handlers.index_blob(f"{container}/{case.file_name}", function_services).status == "indexed"
            assert image_requests(vision_server) - calls == 1
            continue
        if case.azure_accepts:  # the stand-in's limit is transient: the host retries, nothing is recorded
            with pytest.raises(ServiceError) as raised:
                handlers.index_blob(f"{container}/{case.file_name}", function_services)
            assert raised.value.retriable and "stand-in" in str(raised.value)
            assert function_services.failures.get(blob_key(blob_container, case.file_name)) is None
            continue
        outcome = handlers.index_blob(f"{container}/{case.file_name}", function_services)  # never raises

        assert outcome.status == "failed" and not outcome.transient, (case.name, outcome)
        assert names_the_problem(case, outcome.reason), (case.name, outcome.reason)
        record = function_services.failures.get(blob_key(blob_container, case.file_name))
        assert record is not None and record.reason == outcome.reason and record.etag
        assert image_requests(vision_server) - calls == (0 if case.caught_before_sending else 1)

    # Nothing indexed before is lost or changed, and it is still found.
    backend = function_services.backend
    assert {k: backend.get(k) for k in before} == before
    # The type sniffed from the bytes wins over the blob's claim (image/jpeg for a PNG).
    assert backend.get(blob_key(blob_container, "png-named.jpg"))["content_type"] == "image/png"
    answer = search_http(
        method="POST",
        params={"k": "1"},
        body=good_images["good-1.jpg"],
        content_type="image/jpeg",
        services=function_services,
    )
    assert answer.status == 200 and answer.body["results"][0]["fields"]["file_name"] == "good-1.jpg"


# --------------------------------------------------------------------------- imgsearch index


def test_imgsearch_index_skips_each_bad_file_with_its_reason_and_loses_nothing(
    run_cli, tmp_path, bad_image_cases, good_images
):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, data in good_images.items():
        (folder / name).write_bytes(data)
    first = run_cli("index", folder, "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["indexed"] == len(good_images)
    for case, data in bad_image_cases.values():
        (folder / case.file_name).write_bytes(data)

    result = run_cli("index", folder)

    assert result.exit_code == 0, result.output  # skipped files are reported, the run completes
    skipped = {
        line.split(":", 1)[0].removeprefix("skipped "): line
        for line in result.stderr.splitlines()
        if line.startswith("skipped ")
    }
    rendered = [case for case, _ in bad_image_cases.values() if case.rendered]
    for case, _ in bad_image_cases.values():
        line = skipped.get(str(folder.resolve() / case.file_name))
        if case.rendered:  # too large for Vision as it is: indexed from a rendition
            assert line is None, line
            continue
        assert line is not None, (case.file_name, result.stderr)
        assert names_the_problem(case, line), line
    bad = len(BAD_IMAGES) - len(rendered)
    assert f"{len(rendered)} indexed, {len(good_images)} unchanged, {bad} skipped, 0 removed" in result.stdout

    # Nothing lost: the good images are all there and each still finds itself first.
    info = json.loads(run_cli("info", "--json").stdout)
    assert info["documents"] == len(good_images) + len(rendered)
    for name in good_images:
        hits = json.loads(run_cli("search", "--image", folder / name, "-k", "1", "--json").stdout)
        assert Path(hits[0]["fields"]["blob_path"]).name == name


def test_imgsearch_search_with_a_bad_example_image_is_a_clear_argument_error(
    run_cli, tmp_path, bad_image_cases, good_images
):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "good.jpg").write_bytes(good_images["good-0.jpg"])
    assert run_cli("index", folder).exit_code == 0
    for name in ("empty", "not_an_image", "png_bomb_20000", "under_10_px"):
        case, data = bad_image_cases[name]
        query = tmp_path / case.file_name
        query.write_bytes(data)
        result = run_cli("search", "--image", query)
        assert result.exit_code == 2, (name, result.output)
        [line] = [line for line in result.stderr.splitlines() if line.strip()]
        assert line.startswith("error: ") and names_the_problem(case, line), line
        query.unlink()
