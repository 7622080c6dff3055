"""``imgsearch serve``: the Function app's HTTP endpoints hosted locally, over real HTTP (uvicorn
on a free port), answering exactly what the deployed ``search`` function answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from indexer.entrypoints import local_host
from indexer.errors import ConfigurationError
from indexer.services import build_services
from indexer.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def serve(indexed_samples):
    """``serve(keys=())`` runs the local host in a thread over the indexed samples; returns its URL."""
    servers = []

    def start(keys: tuple[str, ...] = ()) -> str:
        import uvicorn

        settings = Settings(IMGSEARCH_DATA_DIR=str(indexed_samples.data_dir))
        app = local_host.create_app(build_services(settings, storage=False), keys=keys)
        sock = local_host.bind("127.0.0.1", 0)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        servers.append((server, thread, sock))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, thread, sock in servers:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


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
    url = serve(keys=("s3cret",))
    query = {"text": "a dog"}
    assert requests.get(f"{url}/api/search", params=query, timeout=60).status_code == 401
    assert (
        requests.get(f"{url}/api/search", params=query, headers={"x-functions-key": "nope"}, timeout=60).status_code
        == 401
    )
    with_header = requests.get(f"{url}/api/search", params=query, headers={"x-functions-key": "s3cret"}, timeout=60)
    with_code = requests.get(f"{url}/api/search", params={**query, "code": "s3cret"}, timeout=60)
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
