"""Pull mode end to end, every service over real HTTP: photos in Azurite -> the search double's
indexer (data source, skillset, indexer from ``schemas/``, created by ``ensure_indexer``) ->
its Web API skill calls ``/api/vectorize`` of ``imgsearch serve`` -> the pinned index. An app
then sends "a cat" as text to the search service through the SDK's ``VectorizableTextQuery``;
the index's Web API vectorizer calls the same endpoint, and cat.jpg comes first, whichever
mode built the index. A document indexed by one mode and updated by the other stays one
document with the other's fields. The double shows writes a second late, as Azure does
(``tests/e2e/conftest.py``), so reads wait for them with a bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.search.documents import SearchClient
from azure.search.documents.models import VectorizableTextQuery
from azure.storage.blob import ContainerClient, RetentionPolicy

from indexer.backends.azure_search import AzureSearchBackend
from indexer.backends.azure_search.pull import AzureSearchPull
from indexer.entrypoints import blob_events as handlers
from indexer.index_setup import ensure_index, ensure_indexer, indexer_name
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.services import Services, build_services
from indexer.settings import Settings
from tests.fixtures.azurite import blob_key

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "samples"
PHOTOS = ("cat.jpg", "dog.jpg", "coffee.jpg", "fire_truck.jpg", "penguin.jpg", "bicycle.jpg")


def eventually(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Wait for the index to show a write (a bound on a hang, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@dataclass
class World:
    settings: Settings
    services: Services
    backend: AzureSearchBackend
    pull: AzureSearchPull
    container: ContainerClient
    search: SearchClient
    endpoint: str

    @property
    def indexer(self) -> str:
        return indexer_name(self.settings)

    def upload(self, name: str, data: bytes, **options: Any) -> None:
        self.container.upload_blob(name, data, overwrite=True, **options)

    def text_query(self, text: str, k: int = 3) -> list[dict]:
        query = VectorizableTextQuery(text=text, k_nearest_neighbors=k, fields="image_vector")
        return list(self.search.search(search_text=None, vector_queries=[query], top=k))

    def documents(self) -> dict[str, dict]:
        return {row["id"]: row for row in self.search.search(search_text="*", top=1000)}

    def document_when(self, key: str, condition: Callable[[dict], bool]) -> dict | None:
        document = self.documents().get(key)
        return document if document is not None and condition(document) else None


@pytest.fixture
def world(
    azurite, blob_container, search_double, search_index_name, local_multilingual, local_host_factory
) -> Iterator[World]:
    """Settings as `imgsearch dev --pull` gives them: the offline model in-process behind
    `imgsearch serve`, whose /api/vectorize the double's vectorizer and skill call."""
    base = dict(
        SEARCH_ENDPOINT=search_double.endpoint,
        SEARCH_KEY=search_double.api_key,
        SEARCH_INDEX_NAME=search_index_name,
        IMAGES_STORAGE=azurite.connection_string,
        IMAGES_CONTAINER=blob_container.container_name,
    )
    # The endpoint needs its URL before the settings that name it: start it, then point at it.
    services = build_services(Settings(**base), vectorizer=local_multilingual)
    endpoint = local_host_factory(services) + "/api/vectorize"
    settings = Settings(**base, SEARCH_VECTORIZER_URI=endpoint)
    services.settings = settings
    pull = AzureSearchPull(search_double.endpoint, search_double.credential)
    search = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
    try:
        yield World(settings, services, services.backend, pull, blob_container, search, endpoint)  # type: ignore[arg-type]
    finally:
        search_double.service.wait_for_runs()
        with search_double.service.lock:
            for registry in (search_double.service.indexers, search_double.service.skillsets):
                for name in [n for n in registry if n.startswith(search_index_name)]:
                    registry.pop(name)
            search_double.service.data_sources.pop(f"{search_index_name}-blobs", None)
        pull.close()
        search.close()


def test_an_app_finds_the_cat_by_text_in_an_index_built_by_pull(world, search_double):
    for name in PHOTOS:
        world.upload(name, (SAMPLES / name).read_bytes())

    pin, name = ensure_indexer(world.settings, world.backend, world.pull)  # a new indexer runs at once
    run = world.pull.run(name)  # waits for the creation run, then runs again and waits

    assert pin.model_version == OFFLINE_MULTILINGUAL
    assert run.run_status == "success" and run.failed == 0, run
    eventually(lambda: len(world.documents()) == len(PHOTOS), "every photo to be searchable")
    hits = world.text_query("a cat")
    assert hits[0]["file_name"] == "cat.jpg"
    # The vectorizer's call is the documented one: one record, the text under data.text.
    assert any(call.uri == world.endpoint and call.records == 1 for call in search_double.service.web_api_calls)


def test_an_app_finds_the_cat_by_text_in_an_index_built_by_push(world):
    # The Function's path (its blob-trigger handler), into an index whose vectorizer points at
    # the same endpoint: apps query it the same way, whichever mode filled it.
    pin = ensure_index(world.settings, world.backend)
    for name in PHOTOS:
        world.upload(name, (SAMPLES / name).read_bytes())
        outcome = handlers.index_blob(f"{world.container.container_name}/{name}", world.services)
        assert outcome is not None and outcome.status == "indexed"
    eventually(lambda: len(world.documents()) == len(PHOTOS), "every photo to be searchable")

    hits = world.text_query("a cat")

    assert pin.model_version == OFFLINE_MULTILINGUAL
    assert hits[0]["file_name"] == "cat.jpg"
    # The same query through the query module's option answers the same ranking.
    from indexer.query import search_text

    ranked = search_text("a cat", vectorizer=None, backend=world.backend, k=3, vectorize="service")
    assert [h.key for h in ranked] == [h["id"] for h in hits]


def comparable(document: dict) -> dict:
    """A document's fields that say what was indexed (not when). Not ``content_hash``: pull mode
    vectorizes the service's normalized image (a JPEG re-encoding of the blob), so its hash is of
    those bytes, while the document describes the blob itself as push does (size, type, pixels)."""
    return {k: v for k, v in document.items() if k not in ("indexed_at", "@search.score", "content_hash")}


def test_a_document_indexed_by_push_and_updated_by_pull_stays_one_document(world):
    cat, dog = (SAMPLES / "cat.jpg").read_bytes(), (SAMPLES / "dog.jpg").read_bytes()
    world.upload("pets/one.jpg", cat, metadata={"tags": "pet, cat"})
    ensure_index(world.settings, world.backend)
    pushed = handlers.index_blob(f"{world.container.container_name}/pets/one.jpg", world.services)
    key = blob_key(world.container, "pets/one.jpg")
    assert pushed is not None and pushed.status == "indexed" and pushed.key == key
    by_push = eventually(lambda: world.documents().get(key), "the pushed document")

    # The same bytes through the indexer: the same key, and field for field the same document.
    _, name = ensure_indexer(world.settings, world.backend, world.pull)
    world.pull.run(name)
    same = eventually(lambda: world.document_when(key, lambda d: d["indexed_at"] != by_push["indexed_at"]), "the pull")
    assert list(world.documents()) == [key]
    assert comparable(same) == comparable(by_push)

    # Changed bytes and tags, picked up by the indexer: still one document, now the dog, no tags.
    world.upload("pets/one.jpg", dog)
    run = world.pull.run(name)
    assert run.run_status == "success" and run.failed == 0 and run.processed == 1
    updated = eventually(lambda: world.document_when(key, lambda d: d["size_bytes"] == len(dog)), "the pulled update")
    assert list(world.documents()) == [key]
    assert updated["tags"] is None and updated["file_name"] == "one.jpg" and updated["blob_path"] == "pets/one.jpg"
    assert world.text_query("a dog", k=1)[0]["id"] == key


def test_a_document_indexed_by_pull_and_updated_by_push_stays_one_document(world):
    cat, dog = (SAMPLES / "cat.jpg").read_bytes(), (SAMPLES / "dog.jpg").read_bytes()
    world.upload("a b/ü.jpg", cat, metadata={"tags": "x"})  # a name with characters that are escaped
    _, name = ensure_indexer(world.settings, world.backend, world.pull)
    world.pull.run(name)
    key = blob_key(world.container, "a b/ü.jpg")
    by_pull = eventually(lambda: world.documents().get(key), "the pulled document")
    assert by_pull["tags"] == ["x"] and by_pull["source"] == world.container.get_blob_client("a b/ü.jpg").url

    world.upload("a b/ü.jpg", dog, metadata={"tags": "y, z"})
    pushed = handlers.index_blob(f"{world.container.container_name}/a b/ü.jpg", world.services)
    assert pushed is not None and pushed.key == key and pushed.status == "indexed"
    updated = eventually(lambda: world.document_when(key, lambda d: d["tags"] == ["y", "z"]), "the pushed update")
    assert list(world.documents()) == [key]
    assert updated["size_bytes"] == len(dog)

    # And the indexer, seeing the same blob again, writes what push wrote (content_hash aside).
    world.pull.reset(name)
    world.pull.run(name)
    again = eventually(lambda: world.documents().get(key), "the pulled document")
    assert comparable(again) == comparable(updated)


def test_bad_blobs_are_per_item_errors_and_deletions_follow_soft_delete(world, blob_service):
    world.upload("cat.jpg", (SAMPLES / "cat.jpg").read_bytes())
    world.upload("notes.txt", b"not an image at all")  # not an indexed file name extension: left out
    world.upload("tiny.png", (SAMPLES / "gift_box.png").read_bytes()[:40])  # truncated: no normalized image
    _, name = ensure_indexer(world.settings, world.backend, world.pull)
    run = world.pull.wait(name)  # a new indexer runs at once

    assert run.run_status == "success"  # maxFailedItems -1: bad files never stop the run
    assert run.processed == 2, "notes.txt is not an image extension the indexer reads"
    # the skill gets no image input for tiny.png and answers it with an error: no document for it
    assert run.failed == 1 and {Path(e.item).name for e in run.errors} == {"tiny.png"}
    assert all(e.name == "Enrichment.WebApiSkill.vectorize" for e in run.errors)
    assert all(e.item.startswith(world.container.url) for e in run.errors)  # the blob's URL, as Azure reports it
    cat_key = blob_key(world.container, "cat.jpg")
    eventually(lambda: list(world.documents()) == [cat_key], "the one good image")

    # Without blob soft delete on the account, a deleted blob is simply gone to the indexer.
    blob_service.set_service_properties(delete_retention_policy=RetentionPolicy(enabled=False))
    world.container.delete_blob("cat.jpg")
    world.pull.run(name)
    assert list(world.documents()) == [cat_key]
    # With it (what infra/ enables in pull mode), the indexer removes the document.
    blob_service.set_service_properties(delete_retention_policy=RetentionPolicy(enabled=True, days=7))
    try:
        run = world.pull.run(name)
        assert run.run_status == "success"
        eventually(lambda: world.documents() == {}, "the deleted blob's document to go")
    finally:
        blob_service.set_service_properties(delete_retention_policy=RetentionPolicy(enabled=False))
