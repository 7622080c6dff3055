"""``imgsearch dev`` as a new user runs it: one foreground command, production's model version
(2023-04-15), ``imgsearch verify`` proving it (and naming Vision once its stand-in is stopped), an
upload with the CLI, a search over HTTP at the Function's route, a delete that the index follows,
and Ctrl-C that leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from indexer.model_versions import OFFLINE_MULTILINGUAL
from tests.fixtures.cli import SETTINGS_VARIABLES

REPO = Path(__file__).resolve().parents[2]


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def read_env_file(path: Path) -> dict[str, str]:
    import shlex

    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            values[name] = shlex.split(value)[0] if value else ""
    return values


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def descendants(pid: int) -> set[int]:
    """Every process whose parent chain leads to ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


IMGSEARCH = [sys.executable, "-m", "indexer"]


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_dev(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen, dict[str, str], dict[str, str], int]:
    """``imgsearch dev [flags]`` on free ports, as a user starts it; returns the process, the
    settings it wrote to dev.env, the user's environment and the port of ``serve``."""
    blob, vision, search, api = free_ports(4)
    data_dir = tmp_path / "dev"
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    ports = ["--blob-port", str(blob), "--vision-port", str(vision), "--search-port", str(search)]
    dev = subprocess.Popen(
        [*IMGSEARCH, "dev", *flags, "--data-dir", str(data_dir), *ports, "--api-port", str(api)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # As in a terminal: a shell runs background jobs (a test run started with `&`) with
        # SIGINT ignored, and Python then never turns SIGINT into Ctrl-C's KeyboardInterrupt.
        preexec_fn=_interruptible,
    )
    env_file = data_dir / "dev.env"
    try:
        wait_for(lambda: env_file.exists() or dev.poll() is not None, 240, f"imgsearch dev {' '.join(flags)} to start")
        assert dev.poll() is None, dev.stdout.read() if dev.stdout else ""
    except BaseException:
        stop_dev(dev, signal.SIGINT)
        raise
    return dev, read_env_file(env_file), env, api


def stop_dev(dev: subprocess.Popen, sig: int) -> tuple[set[int], str]:
    """Send ``sig`` to dev (and SIGCONT, should a test have paused it); return the processes it
    had started and what it printed."""
    started = descendants(dev.pid) if dev.poll() is None else set()
    dev.send_signal(sig)
    dev.send_signal(signal.SIGCONT)
    output, _ = dev.communicate(timeout=120)
    return started, output


def assert_stopped_everything(dev: subprocess.Popen, started: set[int], output: str) -> None:
    assert dev.returncode == 0, output
    assert "stopped every process" in output
    time.sleep(1)
    left = {pid for pid in started if Path(f"/proc/{pid}").exists()}
    assert not left, f"processes left running: {left}"


def verify(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``imgsearch verify`` against the settings of ``env``, as a user runs it."""
    return subprocess.run([*IMGSEARCH, "verify", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def probe_blobs(settings: dict[str, str]) -> list[str]:
    container = BlobServiceClient.from_connection_string(settings["IMAGES_STORAGE"]).get_container_client("images")
    return [blob.name for blob in container.list_blobs(name_starts_with="imgsearch-verify/")]


@pytest.mark.slow
def test_dev_runs_the_azure_path_with_productions_settings_and_stops_everything(tmp_path):
    dev, settings, env, api = start_dev(tmp_path)
    try:
        assert settings["VISION_MODEL_VERSION"] == "2023-04-15"  # production's value, unchanged
        started = descendants(dev.pid)
        assert len(started) >= 5  # azurite (node), vision, search, watch, serve
        assert all(settings["VISION_KEY"] not in Path(f"/proc/{pid}/cmdline").read_text() for pid in started)

        # A second dev on other ports and the same folder is refused, naming the first; the first's
        # dev.env stays as it was.
        env_file = tmp_path / "dev" / "dev.env"
        before = env_file.read_text()
        other = [str(p) for p in free_ports(4)]
        second = subprocess.run(
            [*IMGSEARCH, "dev", "--data-dir", str(tmp_path / "dev"), "--blob-port", other[0], "--vision-port",
             other[1], "--search-port", other[2], "--api-port", other[3]],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 2 and f"another `imgsearch dev` runs on {tmp_path / 'dev'}" in second.stderr
        assert f"pid {dev.pid}" in second.stderr and "--data-dir" in second.stderr
        assert env_file.read_text() == before and dev.poll() is None

        user_env = {**env, **settings}
        # dev.env is all `imgsearch verify` needs to prove the whole push path
        proved = verify(user_env)
        assert proved.returncode == 0, proved.stdout + proved.stderr
        stages = [line.split()[1] for line in proved.stdout.splitlines() if line.startswith("ok ")]
        assert stages == ["upload", "searchable", "vectorizer", "delete", "gone"]
        assert probe_blobs(settings) == []

        uploaded = subprocess.run(
            [*IMGSEARCH, "upload", "samples/cat.jpg", "samples/bus.jpg"],
            cwd=REPO,
            env=user_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert uploaded.returncode == 0, uploaded.stderr
        search_url = f"http://127.0.0.1:{api}/api/search"

        def top_hit():
            answer = requests.get(search_url, params={"text": "a cat", "k": 2}, timeout=30).json()
            return answer["results"] if answer.get("count") == 2 else None

        results = wait_for(top_hit, 120, "both uploads to be searchable")
        assert results[0]["fields"]["file_name"] == "cat.jpg"
        assert results[0]["fields"]["model_version"] == OFFLINE_MULTILINGUAL  # never Azure's name offline

        container = BlobServiceClient.from_connection_string(settings["IMAGES_STORAGE"]).get_container_client("images")
        # Its own Azurite blobs are on loopback, which dev lets the fetch of image URLs reach.
        assert settings["IMGSEARCH_ALLOW_PRIVATE_URLS"] == "true"
        sas = generate_blob_sas(
            container.account_name,
            "images",
            "bus.jpg",
            account_key=container.credential.account_key,
            permission=BlobSasPermissions(read=True),
            expiry=datetime.now(UTC) + timedelta(minutes=10),
        )
        bus_url = f"{container.get_blob_client('bus.jpg').url}?{sas}"
        by_url = requests.get(search_url, params={"image_url": bus_url, "k": 1}, timeout=60)
        assert by_url.status_code == 200, by_url.text
        assert by_url.json()["results"][0]["fields"]["file_name"] == "bus.jpg"
        container.delete_blob("cat.jpg")

        def gone():
            answer = requests.get(search_url, params={"text": "a cat"}, timeout=30).json()
            return [r["fields"]["file_name"] for r in answer["results"]] == ["bus.jpg"]

        wait_for(gone, 120, "the deleted blob to leave the index")

        # With the Vision stand-in stopped, verify fails at the first stage that needs it, names
        # Vision, and leaves no probe behind. dev is paused meanwhile: it would stop everything
        # on seeing one of its processes end (stop_dev resumes it).
        dev.send_signal(signal.SIGSTOP)
        vision = next(pid for pid in started if b"serve-vision" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.kill(vision, signal.SIGKILL)
        failed = verify(user_env, "--timeout", "5")
        assert failed.returncode == 1, failed.stdout + failed.stderr
        named = (
            f"error: stage 'searchable': Vision (VISION_ENDPOINT {settings['VISION_ENDPOINT']}) refused the connection"
        )
        assert named in failed.stderr
        assert "cleanup: deleted the blob imgsearch-verify/" in failed.stdout
        assert probe_blobs(settings) == []
    finally:
        stopped, output = stop_dev(dev, signal.SIGINT)  # what Ctrl-C sends
    assert_stopped_everything(dev, stopped, output)


@pytest.mark.slow
def test_dev_runs_pull_mode_end_to_end_offline(tmp_path):
    """`imgsearch dev --pull`: no watcher; the search double's indexer reads the container through
    serve's /api/vectorize on `imgsearch indexer run`, an app finds the cat by sending the text to
    the search service, and a deleted blob leaves the index on the next run (soft delete on)."""
    from azure.core.credentials import AzureKeyCredential
    from azure.search.documents import SearchClient
    from azure.search.documents.models import VectorizableTextQuery

    dev, settings, env, api = start_dev(tmp_path, "--pull")
    try:
        assert settings["INGESTION_MODE"] == "pull"
        assert settings["SEARCH_VECTORIZER_URI"] == f"http://127.0.0.1:{api}/api/vectorize"
        user_env = {**env, **settings}
        proved = verify(user_env, "--json")
        assert proved.returncode == 0, proved.stdout + proved.stderr
        report = json.loads(proved.stdout)
        assert report["ok"] and report["mode"] == "pull" and report["probe"].startswith("imgsearch-verify/")
        assert [stage["stage"] for stage in report["stages"]] == [
            "upload",
            "indexer",
            "searchable",
            "vectorizer",
            "delete",
            "gone",
        ]
        assert probe_blobs(settings) == []

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [*IMGSEARCH, *args], cwd=REPO, env=user_env, capture_output=True, text=True, timeout=300
            )

        uploaded = cli("upload", "samples/cat.jpg", "samples/bus.jpg", "samples/dog.jpg")
        assert uploaded.returncode == 0, uploaded.stderr
        ran = cli("indexer", "run", "--json")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert json.loads(ran.stdout)["last_run"]["status"] == "success"

        client = SearchClient(settings["SEARCH_ENDPOINT"], "images", AzureKeyCredential(settings["SEARCH_KEY"]))

        def text_query(text: str) -> list[str]:
            query = VectorizableTextQuery(text=text, k_nearest_neighbors=3, fields="image_vector")
            return [r["file_name"] for r in client.search(search_text=None, vector_queries=[query], top=3)]

        names = wait_for(lambda: (found := text_query("a cat")) and len(found) == 3 and found, 60, "three documents")
        assert names[0] == "cat.jpg"
        in_service = cli("search", "--in-service", "a red bus", "-k", "1", "--paths")
        assert in_service.returncode == 0 and in_service.stdout.strip().endswith("bus.jpg"), in_service.stderr
        status = cli("indexer", "status")
        assert status.returncode == 0 and "success" in status.stdout

        container = BlobServiceClient.from_connection_string(settings["IMAGES_STORAGE"]).get_container_client("images")
        container.delete_blob("cat.jpg")
        assert cli("indexer", "run").returncode == 0
        wait_for(lambda: "cat.jpg" not in text_query("a cat"), 60, "the deleted blob to leave the index")
        client.close()
    finally:
        stopped, output = stop_dev(dev, signal.SIGTERM)  # what `kill` sends: stops everything, as Ctrl-C does
    assert "pull mode" in output
    assert_stopped_everything(dev, stopped, output)


def test_dev_refuses_an_ingestion_mode_it_does_not_know_before_starting_anything(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    result = subprocess.run(
        [*IMGSEARCH, "dev", "--data-dir", str(tmp_path / "dev")],
        cwd=REPO,
        env={**env, "INGESTION_MODE": "pul"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "INGESTION_MODE must be 'push' or 'pull', not 'pul'" in result.stderr
    assert not (tmp_path / "dev").exists()  # nothing was started or written
