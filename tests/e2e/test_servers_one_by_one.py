"""The README's "servers one by one" path as written, each server a process of its own:
``serve-azurite`` (Blob Storage with the images container), ``serve-vision``,
``serve-search-double`` (indexes kept under IMGSEARCH_DATA_DIR across a restart), then
``ensure-index``, ``upload`` (into a container it creates), ``backfill`` and ``search`` with
any key; without a key, a plain-http endpoint is a set-up error naming the key to set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.test_dev import free_ports
from tests.fixtures.cli import SETTINGS_VARIABLES

REPO = Path(__file__).resolve().parents[2]
IMGSEARCH = [sys.executable, "-m", "indexer"]

pytestmark = pytest.mark.skipif(
    not (REPO / "node_modules" / ".bin" / "azurite-blob").exists(), reason="needs Azurite (npm ci)"
)


def start(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [*IMGSEARCH, *command], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_until(predicate, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def test_the_servers_one_by_one_as_the_readme_runs_them(tmp_path, samples_dir):
    blob, vision, search = free_ports(3)
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    base["IMGSEARCH_DATA_DIR"] = str(tmp_path / "data")
    servers: list[subprocess.Popen] = []
    try:
        azurite = start(["serve-azurite", "--port", str(blob)], base, tmp_path, tmp_path / "azurite.log")
        servers.append(azurite)
        servers.append(start(["serve-vision", "--port", str(vision)], base, tmp_path, tmp_path / "vision.log"))
        double = ["serve-search-double", "--port", str(search)]
        servers.append(start(double, base, tmp_path, tmp_path / "search.log"))
        wait_until(lambda: "export IMAGES_STORAGE=" in (tmp_path / "azurite.log").read_text(), "serve-azurite")
        banner = (tmp_path / "azurite.log").read_text()
        storage = banner.split("export IMAGES_STORAGE=", 1)[1].splitlines()[0].strip("'")
        assert (tmp_path / "data" / "azurite").is_dir() and "containers: images" in banner
        for port in (vision, search):
            wait_until(lambda port=port: answers(f"http://127.0.0.1:{port}/"), f"the server on {port}")

        settings = {
            "IMAGES_STORAGE": storage,
            "VISION_ENDPOINT": f"http://127.0.0.1:{vision}",
            "VISION_KEY": "local",
            "SEARCH_ENDPOINT": f"http://127.0.0.1:{search}",
            "SEARCH_KEY": "local",
        }
        env = {**base, **settings}

        def run(*args: str, environment: dict[str, str] = env) -> subprocess.CompletedProcess:
            return subprocess.run([*IMGSEARCH, *args], env=environment, cwd=tmp_path, capture_output=True, text=True)

        no_key = run("info", environment={k: v for k, v in env.items() if k != "SEARCH_KEY"})
        assert no_key.returncode == 2 and "set SEARCH_KEY" in no_key.stderr and "Bearer" not in no_key.stderr

        assert run("ensure-index").returncode == 0
        cat, bus = str(samples_dir / "cat.jpg"), str(samples_dir / "bus.jpg")
        upload = run("upload", "--container", "holiday", cat, bus)  # a container that is not there yet
        assert upload.returncode == 0, upload.stderr
        backfill = run("backfill", "--container", "holiday")
        assert backfill.returncode == 0 and "2 indexed" in backfill.stdout, backfill.stderr
        hits = run("search", "a red double-decker bus", "-k", "1", "--paths")
        assert hits.returncode == 0 and hits.stdout.strip().endswith("holiday/bus.jpg")

        stop(servers.pop())  # the search double, restarted: its indexes are kept
        servers.append(start(double, base, tmp_path, tmp_path / "search-again.log"))
        wait_until(lambda: answers(f"http://127.0.0.1:{search}/"), "the search double again")
        info = run("info")
        assert info.returncode == 0 and "documents:      2" in info.stdout, info.stdout + info.stderr
    finally:
        for server in servers:
            stop(server)
    assert azurite.returncode is not None and "stopped" in (tmp_path / "azurite.log").read_text()
