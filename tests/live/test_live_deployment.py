"""What only a real deployment can answer (``make test-live``; skipped without one).

Each test settles a rule that standins/FIDELITY.md marks as an assumption or that the stand-ins
cannot show, and is named in that row. The probes are blobs under ``live-probe/`` and indexes
named ``<index>-live-...``; every test removes what it made.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.live.conftest import Deployment

pytestmark = pytest.mark.live
SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "samples")
WAIT_SECONDS = 15 * 60  # pull mode: the indexer's 5-minute schedule, and a run on demand


def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(5)


def sample(name: str = "cat.jpg") -> bytes:
    with open(os.path.join(SAMPLES, name), "rb") as f:
        return f.read()


@dataclass
class Probes:
    """The images container, and the probe blobs a test made there (deleted after it)."""

    client: Any
    made: list[str] = field(default_factory=list)

    def delete_blob(self, name: str) -> None:
        self.client.delete_blob(name)
        self.made.remove(name)


@pytest.fixture
def container(deployment: Deployment, live_settings: Any) -> Iterator[Probes]:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient(deployment.values["AZURE_STORAGE_BLOB_ENDPOINT"], DefaultAzureCredential())
    probes = Probes(service.get_container_client(deployment.values["AZURE_IMAGES_CONTAINER"]))
    yield probes
    for name in list(probes.made):
        try:
            probes.client.delete_blob(name)
        except ResourceNotFoundError:
            pass


@pytest.fixture
def backend(live_settings: Any) -> Iterator[Any]:
    from indexer.services import build_backend

    with build_backend(live_settings) as opened:
        yield opened


def upload(container: Probes, name: str, data: bytes, **metadata: str) -> str:
    """Upload a probe blob; its document key, made as the push path makes it."""
    from indexer.keys import blob_identity, document_key

    blob = container.client.upload_blob(name, data, overwrite=True, metadata=metadata or None)
    container.made.append(name)
    return document_key(blob_identity(blob.url))


def run_indexer(live_settings: Any) -> None:
    from indexer.index_setup import indexer_name
    from indexer.services import build_pull

    pull = build_pull(live_settings)
    try:
        pull.run(indexer_name(live_settings), wait=True, timeout=WAIT_SECONDS)
    finally:
        pull.close()


def indexed(deployment: Deployment, live_settings: Any, backend: Any, key: str) -> dict[str, Any]:
    """The document of ``key`` once it is there (pull mode runs the indexer for it)."""
    if deployment.pull_mode:
        run_indexer(live_settings)
    return eventually(lambda: backend.get(key), f"the document {key}")


def test_push_and_pull_give_the_same_key_for_a_name_with_spaces_parentheses_and_non_ascii(
    deployment, live_settings, container, backend
):
    # FIDELITY.md P8: base64Encode behaves like UrlTokenEncode on the blob's URL, as indexer.keys does.
    if not deployment.pull_mode:
        pytest.skip("the deployment is in push mode: `azd env set INGESTION_MODE pull`, `azd up`, then test again")
    key = upload(container, f"live-probe/{uuid.uuid4().hex} a (1) ü.jpg", sample())
    document = indexed(deployment, live_settings, backend, key)
    assert document["blob_path"].endswith(" a (1) ü.jpg")


def test_two_processes_creating_the_index_at_once_both_succeed(deployment, live_settings):
    # FIDELITY.md D14: the loser of a create race gets 400 ResourceNameAlreadyInUse and checks the winner's pin.
    from indexer.services import build_backend

    name = f"{deployment.values['AZURE_SEARCH_INDEX_NAME']}-live-race-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **deployment.settings_environment(), "SEARCH_INDEX_NAME": name}
    command = [sys.executable, "-m", "indexer", "ensure-index"]
    try:
        racers = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outcomes = [(racer.wait(timeout=300), racer.stderr.read() if racer.stderr else "") for racer in racers]
        assert [code for code, _ in outcomes] == [0, 0], outcomes
    finally:
        from indexer.settings import load_settings

        with build_backend(load_settings(search_index_name=name)) as made:
            made.delete_index()


def test_a_blob_with_tags_metadata_is_indexed_in_pull_mode(deployment, live_settings, container, backend):
    # FIDELITY.md P9: the blob's `tags` metadata (a string) beside the skill's image_tags node,
    # with the explicit output mapping, gives the index's string collection and no type conflict.
    if not deployment.pull_mode:
        pytest.skip("the deployment is in push mode: `azd env set INGESTION_MODE pull`, `azd up`, then test again")
    key = upload(container, f"live-probe/{uuid.uuid4().hex}.jpg", sample(), tags="pet, cat")
    assert indexed(deployment, live_settings, backend, key)["tags"] == ["pet", "cat"]


def test_the_index_vectorizer_authenticates_as_deployed(deployment, live_settings, backend):
    # FIDELITY.md W5 and W6: the search service calls /api/vectorize with the function key the
    # post-deploy hook gave it; a missing or wrong key would fail the query (401 from the Function).
    if not deployment.values.get("AZURE_SEARCH_VECTORIZER_URI"):
        pytest.skip("the deployment has no AZURE_SEARCH_VECTORIZER_URI output: `azd up` with this checkout")
    hits = backend.search_by_text("a photo", k=1)
    assert isinstance(hits, list)


def test_a_deleted_blob_leaves_the_index(deployment, live_settings, container, backend):
    # FIDELITY.md P4: in pull mode native blob soft delete tells the indexer; in push mode Event
    # Grid's BlobDeleted reaches remove_image.
    name = f"live-probe/{uuid.uuid4().hex}.jpg"
    key = upload(container, name, sample())
    indexed(deployment, live_settings, backend, key)
    container.delete_blob(name)

    def gone() -> bool:
        if deployment.pull_mode:
            run_indexer(live_settings)
        return backend.get(key) is None

    eventually(gone, f"the document of the deleted {name} to leave the index")


def test_an_image_blob_reaches_the_skill_as_its_normalized_image(deployment, live_settings, container, backend):
    # FIDELITY.md P15: imageAction generateNormalizedImages gives /document/normalized_images/0 for a
    # PNG larger than 2000 pixels; the document keeps the blob's own size.
    if not deployment.pull_mode:
        pytest.skip("the deployment is in push mode: `azd env set INGESTION_MODE pull`, `azd up`, then test again")
    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(sample())).convert("RGB").resize((2400, 1600)).save(out, format="PNG")
    key = upload(container, f"live-probe/{uuid.uuid4().hex}.png", out.getvalue())
    document = indexed(deployment, live_settings, backend, key)
    assert (document["width"], document["height"]) == (2400, 1600)
    assert document["content_type"] == "image/png"
