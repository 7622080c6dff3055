"""Sustained load on the local vectorizer server and on the HTTP search endpoint.

SOAK TEST. By default it runs for 20 seconds; set ``IMGSEARCH_SOAK_SECONDS=60`` (or more)
for the longer run. 32 concurrent clients on 127.0.0.1 only, each with its own HTTP session,
send a mix of ``vectorizeText`` and ``vectorizeImage`` calls to the vectorizer server and text
queries to the search endpoint (``http.search_http`` behind a small threaded HTTP server,
vectorizing through the vectorizer server and searching a numpy ``NumpyIndex``). Both servers
run in processes of their own, so their resident memory is read from ``/proc/<pid>/status``.

What must hold: no 5xx and no broken connection at all, and each server's resident memory at
the end within 20% of its level after the warm-up (the first fifth of the run, at least 3 s).
Every client loop is bounded both in requests and in time, and stops by itself.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter

import pytest
import requests
from azure.core.credentials import AzureKeyCredential

from indexer.backends.numpy_index import NumpyIndex
from indexer.indexing.pipeline import prepare
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.schema import load_schema
from indexer.sources.base import ImageItem
from indexer.vectorizers.vision.client import VisionClient
from tests.fixtures.bad_images import good_jpeg
from tests.fixtures.server_processes import child_env, free_port, start_server_process

SOAK_SECONDS = float(os.environ.get("IMGSEARCH_SOAK_SECONDS", "20"))
CLIENTS = 32
MAX_REQUESTS_PER_CLIENT = 20_000  # a bound on each loop besides the clock
REQUEST_TIMEOUT = 120.0  # generous: a slow answer under load is fine, a broken one is not
MEMORY_TOLERANCE = 0.20
PHOTOS = (
    "cat.jpg",
    "dog.jpg",
    "coffee.jpg",
    "fire_truck.jpg",
    "bicycle.jpg",
    "penguin.jpg",
    "airliner.jpg",
    "lighthouse.jpg",
)
TEXTS = (
    "a cat",
    "ein Hund",
    "une tasse de café",
    "a red fire truck",
    "自転車",
    "a bird on the ice",
    "an aeroplane in the sky",
    "a lighthouse by the sea",
)
QUERY = {"api-version": "2024-02-01", "model-version": "2023-04-15"}

# The search endpoint as a tiny HTTP server: the handler a Function would call, nothing more.
SEARCH_SERVER = r"""
import json, logging, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from azure.core.credentials import AzureKeyCredential
from azure.storage.blob import BlobServiceClient

from indexer.entrypoints import blob_events as handlers
from indexer.backends.numpy_index import NumpyIndex
from indexer.indexing.failures import JsonlFailureLog
from indexer.settings import Settings
from indexer.vectorizers.vision.client import VisionClient
from indexer.services import build_services
from indexer.entrypoints.http import search_http

port, vision_url, vision_key, data_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
logging.basicConfig(level=logging.WARNING)
settings = Settings(VISION_ENDPOINT=vision_url, VISION_KEY=vision_key, VISION_MODEL_VERSION="local-conse-usem3-v1",
                    IMGSEARCH_DATA_DIR=str(data_dir))
vectorizer = VisionClient(vision_url, AzureKeyCredential(vision_key), model_version="local-conse-usem3-v1",
                          timeout=120)
services = build_services(settings, vectorizer=vectorizer, backend=NumpyIndex(data_dir, "images"),
                                   blob_service=BlobServiceClient("http://127.0.0.1:9/devstoreaccount1"),
                                   failures=JsonlFailureLog(data_dir / "failures.jsonl"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per client for the whole run

    def answer(self):
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if parts.path != "/api/search":
            status, payload, headers = 404, {"error": {"code": "NotFound", "message": parts.path}}, {}
        else:
            try:
                reply = search_http(method=self.command, params=dict(parse_qsl(parts.query)), body=body,
                                             content_type=self.headers.get("Content-Type"), services=services)
                status, payload, headers = reply.status, reply.body, reply.headers
            except Exception as exc:  # what the Functions host does with an exception: 500, logged
                logging.exception("search failed")
                status, payload, headers = 500, {"error": {"code": "InternalServerError", "message": str(exc)}}, {}
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 32 clients connect at once


Server(("127.0.0.1", port), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def search_server_process(vision_server_process, samples_dir, tmp_path_factory):
    """The search endpoint in its own process, over an index of eight sample photos."""
    folder = tmp_path_factory.mktemp("search-process")
    index = NumpyIndex(folder, "images")
    pin = index.ensure_index(load_schema(OFFLINE_MULTILINGUAL))
    with VisionClient(
        vision_server_process.url, AzureKeyCredential(vision_server_process.key), model_version=OFFLINE_MULTILINGUAL
    ) as client:
        documents = []
        for name in PHOTOS:
            data = (samples_dir / name).read_bytes()
            item = ImageItem(
                identity=str(samples_dir / name),
                source=name,
                read=lambda data=data: data,
                fields={"file_name": name, "container": "samples"},
            )
            documents.append(prepare(item, client, pin).document)
    assert index.upsert(documents).ok
    script = folder / "search_server.py"
    script.write_text(SEARCH_SERVER)
    port = free_port()
    server = start_server_process(
        [sys.executable, str(script), str(port), vision_server_process.url, vision_server_process.key, str(folder)],
        port,
        log_path=folder / "server.log",
        env=child_env(),
    )
    try:
        yield server
    finally:
        server.stop()


def client_loop(
    number: int,
    *,
    vision,
    search_url: str,
    image: bytes,
    deadline: float,
    stop: threading.Event,
    tally: Counter,
    lock: threading.Lock,
) -> None:
    """One client: a fixed rotation of the three calls, until the deadline, ``stop``, or
    ``MAX_REQUESTS_PER_CLIENT`` requests."""
    session = requests.Session()
    headers = {"Ocp-Apim-Subscription-Key": vision.key}
    seen: Counter = Counter()
    try:
        for i in range(MAX_REQUESTS_PER_CLIENT):
            if stop.is_set() or time.monotonic() >= deadline:
                break
            kind = ("text", "image", "search")[(number + i) % 3]
            text = TEXTS[(number + i) % len(TEXTS)]
            try:
                if kind == "text":
                    answer = session.post(
                        f"{vision.url}/computervision/retrieval:vectorizeText",
                        params=QUERY,
                        json={"text": text},
                        headers=headers,
                        timeout=REQUEST_TIMEOUT,
                    )
                elif kind == "image":
                    answer = session.post(
                        f"{vision.url}/computervision/retrieval:vectorizeImage",
                        params=QUERY,
                        data=image,
                        headers={**headers, "Content-Type": "application/octet-stream"},
                        timeout=REQUEST_TIMEOUT,
                    )
                else:
                    answer = session.get(
                        f"{search_url}/api/search", params={"text": text, "k": "3"}, timeout=REQUEST_TIMEOUT
                    )
                seen[(kind, answer.status_code)] += 1
                if kind == "search" and answer.status_code == 200 and answer.json()["count"] != 3:
                    seen[(kind, "wrong count")] += 1
            except requests.RequestException as exc:
                seen[(kind, type(exc).__name__)] += 1
    finally:
        session.close()
        with lock:
            tally.update(seen)


def test_sustained_load_gives_no_5xx_and_memory_stays_level(vision_server_process, search_server_process):
    vision, search = vision_server_process, search_server_process
    image = good_jpeg(77, (160, 120))
    warmup = max(3.0, SOAK_SECONDS / 5)
    started = time.monotonic()
    deadline = started + SOAK_SECONDS
    stop = threading.Event()
    tally: Counter = Counter()
    lock = threading.Lock()
    clients = [
        threading.Thread(
            target=client_loop,
            name=f"soak-client-{n}",
            daemon=True,
            args=(n,),
            kwargs=dict(
                vision=vision, search_url=search.url, image=image, deadline=deadline, stop=stop, tally=tally, lock=lock
            ),
        )
        for n in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    try:
        time.sleep(warmup)
        after_warmup = {"vision": vision.rss_kb(), "search": search.rss_kb()}
        time.sleep(max(0.0, deadline - time.monotonic()))
        at_end = {"vision": vision.rss_kb(), "search": search.rss_kb()}
    finally:
        stop.set()
        for client in clients:
            client.join(REQUEST_TIMEOUT + 10)
    assert not any(client.is_alive() for client in clients)

    answered = {
        kind: sum(n for (k, status), n in tally.items() if k == kind and status == 200)
        for kind in ("text", "image", "search")
    }
    problems = {key: n for key, n in tally.items() if key[1] != 200}
    print(
        f"\nsoak {SOAK_SECONDS:g}s, {CLIENTS} clients: {dict(answered)} answered 200; "
        f"RSS after warm-up {after_warmup} kB, at end {at_end} kB"
    )
    assert problems == {}, problems  # no 5xx, no 4xx, no broken connection, no wrong answer
    assert all(n > 0 for n in answered.values()), answered
    assert vision.alive() and search.alive()
    for name in ("vision", "search"):
        assert at_end[name] <= after_warmup[name] * (1 + MEMORY_TOLERANCE), (name, after_warmup, at_end)
