"""The blob path (the Function's trigger handler, as ``imgsearch dev`` runs it) indexes a folder
of real photos in full against the Vision stand-in with production's model version, and the
thumbnails the search page shows are JPEGs, the right way up."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from indexer.entrypoints import blob_events as handlers
from indexer.entrypoints.document_images import find_document_image, thumbnail
from indexer.indexing.failures import JsonlFailureLog
from indexer.services import build_services
from indexer.settings import Settings
from tests.fixtures.azurite import blob_key


@pytest.fixture
def production_like_services(azurite, blob_container, vision_server, local_index, tmp_path):
    settings = Settings(
        IMAGES_STORAGE=azurite.connection_string,
        IMAGES_CONTAINER=blob_container.container_name,
        VISION_ENDPOINT=vision_server.url,
        VISION_KEY=vision_server.key,
        VISION_MODEL_VERSION="2023-04-15",
        IMGSEARCH_DATA_DIR=str(tmp_path),
    )
    services = build_services(settings, backend=local_index, failures=JsonlFailureLog(tmp_path / "failures.jsonl"))
    yield services
    services.vectorizer.close()


def test_every_real_photo_uploaded_is_indexed_and_shown_upright(production_like_services, blob_container, real_photos):
    folder, expected = real_photos
    container = blob_container.container_name
    for name, described in expected.items():
        blob_container.upload_blob(name, (folder / name).read_bytes())
        outcome = handlers.index_blob(f"{container}/{name}", production_like_services)
        assert outcome.status == "indexed", (name, outcome)
        document = production_like_services.backend.get(blob_key(blob_container, name))
        assert {field: document[field] for field in described} == described, name

    for name in ("iphone.heic", "portrait.jpg"):
        image = find_document_image(blob_key(blob_container, name), production_like_services).load()
        with Image.open(io.BytesIO(thumbnail(image, 320))) as shown:
            assert shown.format == "JPEG"
            width, height = expected[name]["width"], expected[name]["height"]
            assert (shown.width > shown.height) == (width > height), name  # the right way up
