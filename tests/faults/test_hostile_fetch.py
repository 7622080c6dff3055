"""Hostile image URLs: what a caller can make this server fetch, and for how long.

A local server plays every hostile answer (a redirect loop, a redirect to an inner address, a
body sent a byte at a time, a server that never answers, an endless body). The fetcher
(``indexer.safe_fetch``), the Vision stand-in's fetch (the same module, Azure's answers) and
``imgsearch serve`` over HTTP must refuse each within the deadline and the byte cap, in the
same words whatever answered, and leave everything stored as it was.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
import requests

from indexer import safe_fetch
from indexer.entrypoints import local_host
from indexer.errors import InputLimitError
from indexer.safe_fetch import NOT_FETCHED, UrlNotFetched, fetch_url
from indexer.services import build_services
from indexer.settings import Settings
from standins.vision.fetch import UrlRefused, fetch_image
from tests.fixtures.bad_images import good_jpeg, ico_bomb

IMAGE = good_jpeg(5, (64, 48))


class Hostile:
    """The local server's address and the paths it was asked for."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.paths: list[str] = []
        self.stop = threading.Event()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    state: Hostile

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            try:
                self._route()
            except (ConnectionResetError, BrokenPipeError):
                pass  # the fetcher hung up at its deadline or byte cap: what these routes test

        def _route(self) -> None:
            state.paths.append(self.path)
            route, _, rest = self.path.partition("?")
            if route == "/image":
                self._answer(200, IMAGE)
            elif route == "/loop":
                self._redirect(state.url("/loop"))
            elif route == "/redirect":
                self._redirect(unquote(rest.removeprefix("to=")))
            elif route == "/drip":  # headers at once, then a byte every 0.2 s, for ever
                self.send_response(200)
                self.end_headers()
                while not state.stop.is_set():
                    self.wfile.write(b"\xff")
                    self.wfile.flush()
                    time.sleep(0.2)
            elif route == "/stall":  # accepts the request and never answers
                state.stop.wait(30)
            elif route == "/endless":  # 200 and megabytes without end
                self.send_response(200)
                self.end_headers()
                block = b"\x00" * 65536
                while not state.stop.is_set():
                    self.wfile.write(block)
            else:
                self._answer(404, b"")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = Hostile(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.stop.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def loopback_is_public(monkeypatch):
    """Let 127.0.0.1 itself pass the address check (it stands for a public host here), so the
    check of the later hops can be seen; every other spelling of loopback is still checked."""
    real = safe_fetch.resolve_checked

    def resolve(host: str, port: int, *, allow_private: bool = False) -> str:
        return real(host, port, allow_private=allow_private or host == "127.0.0.1")

    monkeypatch.setattr(safe_fetch, "resolve_checked", resolve)


def test_the_development_setting_fetches_from_loopback(hostile):
    assert fetch_url(hostile.url("/image"), allow_private=True) == IMAGE


def test_a_redirect_loop_ends_after_five_hops(hostile):
    before = len(hostile.paths)
    started = time.monotonic()
    with pytest.raises(UrlNotFetched, match=f"^{NOT_FETCHED}$") as refused:
        fetch_url(hostile.url("/loop"), allow_private=True)
    assert refused.value.reason == "more than 5 redirects"
    assert hostile.paths[before:] == ["/loop"] * 6
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("inner", ["localhost", "2130706433", "0x7f000001", "127.1", "[::ffff:127.0.0.1]"])
def test_every_redirect_hop_is_checked_again(hostile, loopback_is_public, inner):
    before = len(hostile.paths)
    with pytest.raises(UrlNotFetched, match=f"^{NOT_FETCHED}$") as refused:
        fetch_url(hostile.url(f"/redirect?to={quote(hostile.url('/image', inner))}"))
    assert "loopback address" in refused.value.reason
    assert hostile.paths[before:] == [f"/redirect?to={quote(hostile.url('/image', inner))}"]  # /image never asked for


@pytest.mark.parametrize("path", ["/drip", "/stall"])
def test_one_deadline_bounds_the_whole_fetch(hostile, path):
    started = time.monotonic()
    with pytest.raises(UrlNotFetched, match=f"^{NOT_FETCHED}$"):
        fetch_url(hostile.url(path), allow_private=True, deadline_seconds=1.0)
    assert time.monotonic() - started < 1.8


def test_the_body_is_capped_while_it_streams(hostile):
    started = time.monotonic()
    with pytest.raises(InputLimitError) as caught:
        fetch_url(hostile.url("/endless"), allow_private=True, max_bytes=1_000_000)
    assert caught.value.limit == "image_bytes"
    assert str(caught.value) == "the image at the URL is 1,000,000 bytes or more; the limit is under 1,000,000 bytes"
    assert time.monotonic() - started < 2


def test_what_answered_cannot_be_told_from_the_answer(hostile):
    failures = []
    for url, allow_private, deadline in (
        (hostile.url("/image"), False, 10.0),  # a refused address
        (hostile.url("/missing"), True, 10.0),  # 404
        (hostile.url("/stall"), True, 0.5),  # no answer in time
    ):
        with pytest.raises(UrlNotFetched) as caught:
            fetch_url(url, allow_private=allow_private, deadline_seconds=deadline)
        failures.append(caught.value)
    assert {str(failure) for failure in failures} == {NOT_FETCHED}


def test_the_vision_stand_in_fetches_by_the_same_rules(hostile, loopback_is_public):
    # Azure's one answer for a URL it cannot fetch; the stand-in's reason in x-standin-detail.
    for url, deadline in (
        (hostile.url("/loop"), 15.0),
        (hostile.url(f"/redirect?to={quote(hostile.url('/image', '2130706433'))}"), 15.0),
        (hostile.url("/drip"), 1.0),
    ):
        started = time.monotonic()
        with pytest.raises(UrlRefused, match="^Image URL is badly formatted or not accessible.$"):
            fetch_image(url, deadline=deadline)
        assert time.monotonic() - started < 2
    assert fetch_image(hostile.url("/image")) == IMAGE  # 127.0.0.1 counts as public in this test


# --------------------------------------------------------------------------- through imgsearch serve


def stored(data_dir: Path) -> dict[str, str]:
    return {
        str(path.relative_to(data_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(data_dir.rglob("*"))
        if path.is_file()
    }


HOSTILE_FORMS = ["127.0.0.1", "localhost", "2130706433", "0x7f000001", "127.1", "[::1]", "[::ffff:127.0.0.1]"]


def test_serve_refuses_inner_urls_and_bombs_and_changes_nothing(hostile, indexed_samples, run_asgi):
    settings = Settings(IMGSEARCH_DATA_DIR=str(indexed_samples.data_dir))  # IMGSEARCH_ALLOW_PRIVATE_URLS off
    assert settings.allow_private_urls is False
    url = run_asgi(local_host.create_app(build_services(settings, storage=False)))
    before = stored(indexed_samples.data_dir)
    asked = len(hostile.paths)

    for host in HOSTILE_FORMS:
        image_url = hostile.url("/image", host)
        started = time.monotonic()
        search = requests.get(f"{url}/api/search", params={"image_url": image_url}, timeout=60)
        assert search.status_code == 400, search.text
        assert search.json()["error"]["message"] == NOT_FETCHED
        record = {"recordId": "1", "data": {"imageUrl": image_url}}
        vectorized = requests.post(f"{url}/api/vectorize", json={"values": [record]}, timeout=60)
        assert vectorized.status_code == 200, vectorized.text
        (answer,) = vectorized.json()["values"]
        assert answer["data"] is None or not answer["data"].get("vector")
        assert NOT_FETCHED in answer["errors"][0]["message"]
        assert time.monotonic() - started < 5
    assert hostile.paths[asked:] == []  # not one of them reached the server behind the address

    # The ICO bomb, posted as the example image: refused from its header, at once.
    started = time.monotonic()
    bomb = requests.post(
        f"{url}/api/search", data=ico_bomb(12_000), headers={"Content-Type": "image/x-icon"}, timeout=60
    )
    assert bomb.status_code == 400, bomb.text
    assert "image_decode_pixels" in bomb.json()["error"]["message"]
    assert time.monotonic() - started < 2

    assert stored(indexed_samples.data_dir) == before


def test_serve_with_the_development_setting_fetches_from_loopback(hostile, indexed_samples, run_asgi):
    settings = Settings(IMGSEARCH_DATA_DIR=str(indexed_samples.data_dir), IMGSEARCH_ALLOW_PRIVATE_URLS="true")
    url = run_asgi(local_host.create_app(build_services(settings, storage=False)))
    search = requests.get(f"{url}/api/search", params={"image_url": hostile.url("/image"), "k": 1}, timeout=60)
    assert search.status_code == 200, search.text
    assert search.json()["count"] == 1
