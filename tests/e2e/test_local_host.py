"""``imgsearch serve``: the Function app's HTTP endpoints hosted locally, over real HTTP (uvicorn
on a free port), answering exactly what the deployed ``search`` function answers."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from indexer.entrypoints import local_host
from indexer.errors import ConfigurationError
from indexer.services import build_services
from indexer.settings import Settings

KEY = "a-function-key-of-32-characters!"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def serve(indexed_samples, run_asgi):
    """``serve(keys=())`` runs the local host over the indexed samples; returns its URL."""

    def start(keys: tuple[str, ...] = ()) -> str:
        settings = Settings(IMGSEARCH_DATA_DIR=str(indexed_samples.data_dir))
        return run_asgi(local_host.create_app(build_services(settings, storage=False), keys=keys))

    return start


def test_search_answers_as_the_function_does(serve):
    url = serve()
    by_get = requests.get(f"{url}/api/search", params={"text": "a cat", "k": 3}, timeout=60)
    by_post = requests.post(f"{url}/api/search", json={"text": "a cat", "k": 3}, timeout=60)

    assert by_get.status_code == by_post.status_code == 200
    assert by_get.headers["content-type"].startswith("application/json")
    body = by_get.json()
    assert body["count"] == 3 and body["results"][0]["source"].endswith("cat.jpg")
    assert [r["key"] for r in by_post.json()["results"]] == [r["key"] for r in body["results"]]
    bad = requests.get(f"{url}/api/search", params={"text": "a cat", "k": "many"}, timeout=60)
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("k must be a whole number")


def test_with_a_key_a_caller_needs_it_as_a_header_or_code(serve):
    url = serve(keys=(KEY,))
    query = {"text": "a dog"}
    assert requests.get(f"{url}/api/search", params=query, timeout=60).status_code == 401
    assert (
        requests.get(f"{url}/api/search", params=query, headers={"x-functions-key": "nope"}, timeout=60).status_code
        == 401
    )
    with_header = requests.get(f"{url}/api/search", params=query, headers={"x-functions-key": KEY}, timeout=60)
    with_code = requests.get(f"{url}/api/search", params={**query, "code": KEY}, timeout=60)
    assert with_header.status_code == with_code.status_code == 200
    assert with_code.json()["results"][0]["source"].endswith("dog.jpg")


def test_a_busy_port_is_a_configuration_error_naming_it():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}.*--port"):
            local_host.bind("127.0.0.1", port)


def test_the_cli_refuses_a_network_address_without_a_key_and_a_busy_port(tmp_path):
    imgsearch = [sys.executable, "-m", "indexer", "--data-dir", str(tmp_path)]
    exposed = subprocess.run(
        [*imgsearch, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exposed.returncode == 2 and "--key" in exposed.stderr and "Traceback" not in exposed.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = subprocess.run(
            [*imgsearch, "serve", "--port", str(busy.getsockname()[1])], capture_output=True, text=True, timeout=60
        )
        stand_ins = [
            subprocess.run(
                [*imgsearch, command, "--port", str(busy.getsockname()[1])], capture_output=True, text=True, timeout=60
            )
            for command in ("serve-vision", "serve-search-double")
        ]
    assert taken.returncode == 2 and "already using the port" in taken.stderr
    for result in stand_ins:  # uvicorn's own exit code would have been 3: "pinned to another model"
        assert result.returncode == 2 and "already using the port" in result.stderr


def test_thumbnails_are_small_cached_jpegs_of_indexed_images_only(serve):
    url = serve()
    key = requests.get(f"{url}/api/search", params={"text": "a cat", "k": 1}, timeout=60).json()["results"][0]["key"]

    thumb = requests.get(f"{url}/api/thumbnail", params={"key": key, "size": 96}, timeout=60)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.headers["cache-control"].startswith("private") and thumb.headers["etag"]
    from PIL import Image

    assert max(Image.open(io.BytesIO(thumb.content)).size) == 96
    again = requests.get(
        f"{url}/api/thumbnail",
        params={"key": key, "size": 96},
        headers={"If-None-Match": thumb.headers["etag"]},
        timeout=60,
    )
    assert again.status_code == 304 and again.content == b""

    too_big = requests.get(f"{url}/api/thumbnail", params={"key": key, "size": 5000}, timeout=60)
    assert too_big.status_code == 400 and "size must be between 64 and 1024" in too_big.json()["error"]["message"]
    # A key that names no indexed document reads nothing, whatever file it would decode to.
    import base64

    stranger = base64.urlsafe_b64encode(b"/etc/passwd").decode()
    missing = requests.get(f"{url}/api/thumbnail", params={"key": stranger}, timeout=60)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "DocumentNotFound"


def test_more_like_this_leaves_the_example_out_and_info_describes_the_index(serve):
    url = serve()
    cat = requests.get(f"{url}/api/search", params={"text": "a cat", "k": 1}, timeout=60).json()["results"][0]
    like = requests.post(f"{url}/api/search", json={"like": cat["key"], "k": 5}, timeout=60).json()
    assert like["query"]["kind"] == "like" and like["count"] == 5
    assert cat["key"] not in [r["key"] for r in like["results"]]

    info = requests.get(f"{url}/api/info", timeout=60).json()
    assert info["documents"] == 34 and info["model_version"] == "local-conse-usem3-v1"
    assert {"name": "tags", "type": "Collection(Edm.String)"} in info["filterable"]
    assert all(f["name"] not in ("id", "content_hash") for f in info["filterable"])


def test_a_thumbnail_the_browser_holds_is_answered_from_the_index_without_reading_the_image(serve, indexed_samples):
    url = serve()
    hit = requests.get(f"{url}/api/search", params={"text": "a red bus", "k": 1}, timeout=60).json()["results"][0]
    first = requests.get(f"{url}/api/thumbnail", params={"key": hit["key"]}, timeout=60)
    assert first.status_code == 200
    image = Path(hit["source"])
    hidden = image.with_name(image.name + ".away")
    image.rename(hidden)  # the file cannot be read now: only a read of it would notice
    try:
        held = requests.get(
            f"{url}/api/thumbnail",
            params={"key": hit["key"]},
            headers={"If-None-Match": first.headers["etag"]},
            timeout=60,
        )
        fresh = requests.get(f"{url}/api/thumbnail", params={"key": hit["key"]}, timeout=60)
    finally:
        hidden.rename(image)
    assert held.status_code == 304 and held.headers["etag"] == first.headers["etag"]
    assert fresh.status_code == 404 and fresh.json()["error"]["code"] == "DocumentNotFound"
