"""BlobSource and the storage client factory against Azurite, with the real azure-storage-blob SDK."""

from __future__ import annotations

import io
import re

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings
from PIL import Image

from indexer.errors import ConfigurationError, InputLimitError
from indexer.keys import document_key, url_token_decode, url_token_encode
from indexer.services import blob_service_client, blob_source
from indexer.settings import Settings
from indexer.sources.blob import BlobSource, parse_tags


def jpeg_bytes(color=(200, 30, 30), size=(32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


class RequestRecorder:
    """Collects (method, url) of every HTTP request a client sends (azure-core's
    ``raw_request_hook``), to prove what was or was not downloaded."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request) -> None:
        http = request.http_request
        self.requests.append((http.method, http.url))

    def gets_of(self, blob_url: str) -> list[str]:
        return [url for method, url in self.requests if method == "GET" and url.split("?")[0] == blob_url]


@pytest.fixture
def recorded_container(azurite, blob_container: ContainerClient) -> tuple[ContainerClient, RequestRecorder]:
    recorder = RequestRecorder()
    service = BlobServiceClient.from_connection_string(azurite.connection_string, raw_request_hook=recorder)
    return service.get_container_client(blob_container.container_name), recorder


def test_lists_only_blobs_under_the_prefix_with_keys_sources_and_fields(blob_container: ContainerClient):
    data = jpeg_bytes()
    for name in ("holiday/beach.jpg", "holiday/2024/dunes one.jpg", "work/desk.jpg", "holidays.jpg"):
        blob_container.upload_blob(name, data)

    items = {item.blob_name: item for item in BlobSource(blob_container, prefix="holiday/").list_items()}

    assert sorted(items) == ["holiday/2024/dunes one.jpg", "holiday/beach.jpg"]
    item = items["holiday/2024/dunes one.jpg"]
    container = blob_container.container_name
    url = blob_container.get_blob_client("holiday/2024/dunes one.jpg").url
    # The identity is the URL, and the key its UrlTokenEncode: what an Azure AI Search indexer
    # derives from metadata_storage_path with base64Encode (indexer.keys).
    assert item.identity == url
    assert item.key == document_key(url) == url_token_encode(url)
    assert url_token_decode(item.key) == url
    assert item.source == url
    assert item.source.endswith(f"/{container}/holiday/2024/dunes%20one.jpg")
    assert item.fields["container"] == container
    assert item.fields["blob_path"] == "holiday/2024/dunes one.jpg"
    assert item.fields["file_name"] == "dunes one.jpg"
    assert item.fields["size_bytes"] == len(data)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", item.fields["last_modified"])
    assert item.etag and item.size == len(data)
    assert item.read() == data


def test_whole_container_is_listed_without_a_prefix(blob_container: ContainerClient):
    for name in ("a.jpg", "b/c.jpg"):
        blob_container.upload_blob(name, b"x")
    assert sorted(i.blob_name for i in BlobSource(blob_container).list_items()) == ["a.jpg", "b/c.jpg"]


def test_content_type_and_tags_come_from_the_blob_properties(blob_container: ContainerClient):
    blob_container.upload_blob(
        "cat.png",
        b"png",
        content_settings=ContentSettings(content_type="image/png"),
        metadata={"Tags": " cat, pet,, cat ,indoor", "camera": "x100"},
    )
    blob_container.upload_blob("plain.jpg", b"jpg")  # default application/octet-stream, no metadata

    source = BlobSource(blob_container)
    listed = {item.blob_name: item for item in source.list_items()}
    fetched = source.get_item("cat.png")

    for item in (listed["cat.png"], fetched):
        assert item.fields["content_type"] == "image/png"
        assert item.fields["tags"] == ["cat", "pet", "indoor"]
        assert "camera" not in item.fields  # only the documented metadata entry becomes a field
    # A non-image declared type is left out, so the type sniffed from the bytes is indexed.
    assert "content_type" not in listed["plain.jpg"].fields
    assert "tags" not in listed["plain.jpg"].fields


def test_parse_tags_trims_drops_empty_and_duplicates():
    assert parse_tags(" a ,b,,a, c ") == ["a", "b", "c"]
    assert parse_tags("") == [] and parse_tags(None) == []


def test_a_blob_over_the_limit_is_refused_before_any_download(recorded_container):
    container, recorder = recorded_container
    container.upload_blob("big.jpg", b"\xff" * 5000)
    container.upload_blob("small.jpg", b"\xff" * 500)
    source = BlobSource(container, max_bytes=1000)

    big = source.get_item("big.jpg")
    with pytest.raises(InputLimitError) as caught:
        big.read()

    assert caught.value.limit == "image_bytes"
    assert caught.value.value == 5000
    assert "big.jpg" in str(caught.value) and "1,000" in str(caught.value)
    assert recorder.gets_of(big.source) == []  # properties only (HEAD), never the content
    small = source.get_item("small.jpg")
    assert len(small.read()) == 500
    assert len(recorder.gets_of(small.source)) == 1


def test_the_limit_is_exclusive(blob_container: ContainerClient):
    blob_container.upload_blob("edge.jpg", b"\x00" * 1000)
    with pytest.raises(InputLimitError):
        BlobSource(blob_container, max_bytes=1000).get_item("edge.jpg").read()
    assert len(BlobSource(blob_container, max_bytes=1001).get_item("edge.jpg").read()) == 1000


def test_a_blob_that_grew_after_listing_is_refused_on_download(blob_container: ContainerClient):
    blob_container.upload_blob("grows.jpg", b"\x00" * 100)
    source = BlobSource(blob_container, max_bytes=1000)
    [item] = list(source.list_items())
    blob_container.upload_blob("grows.jpg", b"\x00" * 3000, overwrite=True)

    with pytest.raises(InputLimitError) as caught:
        item.read()
    assert caught.value.value == 3000  # the blob's full size, from Content-Range


def test_empty_blob_reads_as_empty(blob_container: ContainerClient):
    blob_container.upload_blob("empty.jpg", b"")
    assert BlobSource(blob_container).get_item("empty.jpg").read() == b""


def test_get_item_of_a_missing_blob_raises_not_found(blob_container: ContainerClient):
    with pytest.raises(ResourceNotFoundError):
        BlobSource(blob_container).get_item("nope.jpg")


def test_storage_client_from_a_connection_string_reaches_azurite(azurite, blob_container: ContainerClient):
    blob_container.upload_blob("x.jpg", b"x")
    settings = Settings(IMAGES_STORAGE=azurite.connection_string, IMAGES_CONTAINER=blob_container.container_name)

    source = blob_source(settings)

    assert [item.blob_name for item in source.list_items()] == ["x.jpg"]


def test_a_missing_container_is_a_configuration_error_naming_the_setting(azurite):
    settings = Settings(IMAGES_STORAGE=azurite.connection_string, IMAGES_CONTAINER="no-such-container")
    with pytest.raises(ConfigurationError, match="IMAGES_CONTAINER"):
        blob_source(settings)


def test_development_storage_shorthand_points_at_the_default_azurite_endpoint():
    client = blob_service_client(Settings(IMAGES_STORAGE="UseDevelopmentStorage=true"))
    assert client.account_name == "devstoreaccount1"
    assert client.url.startswith("http://127.0.0.1:10000/devstoreaccount1")


def test_identity_based_connection_uses_the_blob_service_uri_and_the_given_credential():
    class UnusedCredential:  # building a client sends no request, so no token is ever asked for
        def get_token(self, *scopes, **kwargs):
            raise AssertionError("no request was expected")

    credential = UnusedCredential()
    settings = Settings(IMAGES_STORAGE__blobServiceUri="https://acct.blob.core.windows.net")
    client = blob_service_client(settings, credential=credential)
    assert client.url.startswith("https://acct.blob.core.windows.net")
    assert client.credential is credential


def test_identity_based_connection_defaults_to_the_managed_identity_of_azure_client_id():
    from azure.identity import DefaultAzureCredential

    settings = Settings(
        IMAGES_STORAGE__blobServiceUri="https://acct.blob.core.windows.net",
        AZURE_CLIENT_ID="00000000-0000-0000-0000-000000000001",
    )
    client = blob_service_client(settings)
    assert isinstance(client.credential, DefaultAzureCredential)


@pytest.mark.parametrize(
    "settings, named",
    [
        (Settings(IMAGES_STORAGE="", IMAGES_STORAGE__blobServiceUri=""), "IMAGES_STORAGE"),
        (Settings(IMAGES_STORAGE__blobServiceUri="acct.blob.core.windows.net"), "IMAGES_STORAGE__blobServiceUri"),
        (Settings(IMAGES_STORAGE="this is not a connection string"), "IMAGES_STORAGE"),
    ],
)
def test_missing_or_bad_storage_settings_name_the_setting(settings, named, monkeypatch):
    with pytest.raises(ConfigurationError, match=re.escape(named)):
        blob_service_client(settings)
