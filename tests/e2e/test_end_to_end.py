"""The whole offline system, end to end, with every service over real HTTP:

photos uploaded to Azurite -> the ``watch`` runner (standing in for Event Grid and the
Functions host) calls the Function handlers -> the local vectorizer server vectorizes them
(``VISION_ENDPOINT``) -> the Azure AI Search double stores them through azure-search-documents
(``SEARCH_ENDPOINT``) -> the Function's HTTP search endpoint answers text queries; deleting a
blob removes its document, re-uploading the same bytes keeps one document, a redelivered event
costs no Vision call, a corrupt blob is recorded and does not stop the others. The double shows
writes a second after it answers them (``tests/e2e/conftest.py``), as Azure shows them "a few
seconds" after.

The services are configured through environment variables only, as in Azure: the handlers
build everything from the environment on first use (``indexer.services.get_services``).
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import azure.functions as func
import pytest

from indexer.entrypoints import blob_events as handlers
from indexer.index_setup import ensure_index
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.services import Services, build_backend, get_services
from indexer.settings import load_settings
from standins.watch import BlobWatcher, Change
from tests.fixtures.azurite import blob_key

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "samples"
PHOTOS = ("cat.jpg", "dog.jpg", "coffee.jpg", "fire_truck.jpg", "penguin.jpg", "bicycle.jpg")


def labels() -> dict[str, list[str]]:
    return {entry["file"]: entry["labels"] for entry in json.loads((SAMPLES / "manifest.json").read_text())}


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """Wait for the background watcher (not a timing assertion: only a bound on a hang)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def function_app():
    spec = importlib.util.spec_from_file_location("function_app_e2e", REPO_ROOT / "functions" / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.indexed_functions = {f.get_function_name(): f for f in module.app.get_functions()}
    return module


@pytest.fixture
def azure_like_environment(
    monkeypatch, azurite, blob_container, vision_server, search_double, search_index_name, tmp_path, worker_services
):
    """App settings as the Function app would have them, pointing at the stand-ins."""
    for name, value in {
        "IMAGES_STORAGE": azurite.connection_string,
        "IMAGES_CONTAINER": blob_container.container_name,
        "VISION_ENDPOINT": vision_server.url,
        "VISION_KEY": vision_server.key,
        "VISION_MODEL_VERSION": OFFLINE_MULTILINGUAL,
        "SEARCH_ENDPOINT": search_double.endpoint,
        "SEARCH_KEY": search_double.api_key,
        "SEARCH_INDEX_NAME": search_index_name,
        "IMGSEARCH_DATA_DIR": str(tmp_path / "data"),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("IMAGES_STORAGE__blobServiceUri", "AZURE_CLIENT_ID", "MAX_IMAGE_BYTES"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    # Provisioning: the deployment creates the index pinned to the configured model version.
    ensure_index(settings, build_backend(settings))
    worker_services(None)  # the handlers build their services from this environment
    return settings


class RunningWatcher:
    """``imgsearch watch`` in a background thread, recording every change it handled."""

    def __init__(self, services: Services) -> None:
        self.changes: list[Change] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.watcher = BlobWatcher(services, on_change=self._record)
        self.thread = threading.Thread(target=self._run, name="watch", daemon=True)

    def _record(self, change: Change) -> None:
        with self.lock:
            self.changes.append(change)

    def _run(self) -> None:
        try:
            self.watcher.run(interval=0.2, stop=self.stop)
        except BaseException as exc:  # noqa: BLE001 - surfaced by handled()
            self.error = exc

    def handled(self, kind: str, blob: str) -> bool:
        assert self.error is None, f"the watcher died: {self.error!r}"
        with self.lock:
            return any(c.kind == kind and c.blob_name == blob and not c.error for c in self.changes)

    def __enter__(self) -> RunningWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def search(function_app, **params) -> list[dict]:
    request = func.HttpRequest(
        method="GET",
        url="http://localhost/api/search",
        headers={},
        params={k: str(v) for k, v in params.items()},
        body=b"",
    )
    response = function_app.indexed_functions["search"].get_user_function()(request)
    body = json.loads(response.get_body())
    assert response.status_code == 200, body
    return body["results"]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def image_calls(vision_server) -> int:
    return sum(1 for r in vision_server.requests.all() if r.path.endswith("vectorizeImage"))


def test_upload_search_reupload_delete_and_a_corrupt_blob(
    azure_like_environment, function_app, blob_container, vision_server, search_double, search_index_name
):
    services = get_services()
    backend = services.backend
    tags = labels()
    for name in PHOTOS:
        blob_container.upload_blob(
            f"photos/{name}", (SAMPLES / name).read_bytes(), metadata={"tags": ",".join(tags[name])}
        )

    with RunningWatcher(services) as watcher:
        wait_until(lambda: backend.count() == len(PHOTOS), "the photos to be indexed")

        # The documents went through the real SDK into the search double.
        assert search_double.requests_for(search_index_name, "index")
        cat_key = blob_key(blob_container, "photos/cat.jpg")
        cat = backend.get(cat_key)
        assert cat["tags"] == tags["cat.jpg"] and cat["model_version"] == OFFLINE_MULTILINGUAL

        # Text search through the Function's HTTP endpoint.
        results = search(function_app, text="a cat", k=3)
        assert results[0]["fields"]["file_name"] == "cat.jpg"
        assert results[0]["source"] == blob_container.get_blob_client("photos/cat.jpg").url
        assert all(-1.0 <= r["score"] <= 1.0 for r in results)
        assert [r["fields"]["file_name"] for r in search(function_app, text="a cup", filter="tags=coffee")] == [
            "coffee.jpg"
        ]

        # The same bytes uploaded again under the same name: a new ETag, the same document. It is
        # vectorized again: a stored document of another version of the blob cannot vouch for the
        # bytes while the index may still be showing older writes (the pipeline module's doc).
        calls = image_calls(vision_server)
        uploaded = blob_container.upload_blob(
            "photos/cat.jpg",
            (SAMPLES / "cat.jpg").read_bytes(),
            overwrite=True,
            metadata={"tags": ",".join(tags["cat.jpg"])},
        )
        wait_until(lambda: watcher.handled("changed", "photos/cat.jpg"), "the re-upload to be handled")
        assert image_calls(vision_server) == calls + 1
        new_version = uploaded.get_blob_properties().last_modified
        wait_until(lambda: instant(backend.get(cat_key)["last_modified"]) == new_version, "the new version")
        assert backend.count() == len(PHOTOS)
        # A redelivered event of that version, once its document is visible: no Vision call.
        redelivered = handlers.index_blob(f"{blob_container.container_name}/photos/cat.jpg", services)
        assert redelivered.status == "unchanged"
        assert image_calls(vision_server) == calls + 1

        # Deleting a blob removes its document (visible a moment after, as on Azure).
        blob_container.delete_blob("photos/dog.jpg")
        wait_until(lambda: watcher.handled("deleted", "photos/dog.jpg"), "the deletion to be handled")
        wait_until(lambda: backend.count() == len(PHOTOS) - 1, "the deletion to be visible")
        assert "dog.jpg" not in [r["fields"]["file_name"] for r in search(function_app, text="a dog", k=10)]

        # A corrupt blob is recorded as failed; a good one uploaded with it is indexed.
        blob_container.upload_blob("photos/corrupt.jpg", b"\xff\xd8\xff\xe0 truncated")
        blob_container.upload_blob("photos/bus.jpg", (SAMPLES / "bus.jpg").read_bytes())
        wait_until(
            lambda: watcher.handled("created", "photos/corrupt.jpg") and watcher.handled("created", "photos/bus.jpg"),
            "the new uploads to be handled",
        )

    wait_until(lambda: backend.count() == len(PHOTOS), "bus.jpg to be visible")  # 6 - dog + bus, not the corrupt one
    corrupt_key = blob_key(blob_container, "photos/corrupt.jpg")
    assert backend.get(corrupt_key) is None
    record = services.failures.get(corrupt_key)
    assert record is not None and "InvalidImageError" in record.reason
    assert [r["fields"]["file_name"] for r in search(function_app, text="a bus", k=1)] == ["bus.jpg"]
