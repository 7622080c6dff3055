"""Which stored documents a blob source limited to a prefix may remove: only its own."""

from __future__ import annotations

from azure.storage.blob import ContainerClient

from indexer.keys import blob_identity, document_key
from indexer.sources.blob import BlobSource

# Building a client sends nothing: these tests never reach a storage account.
ACCOUNT_URL = "http://127.0.0.1:1/devstoreaccount1"
CONTAINER = ContainerClient(ACCOUNT_URL, "images")


def key_of(container: str, name: str) -> str:
    """The key the blob path gives a blob: from the SDK's own URL of it."""
    return document_key(blob_identity(ContainerClient(ACCOUNT_URL, container).get_blob_client(name).url))


def test_a_prefix_scopes_the_documents_of_its_own_blobs():
    source = BlobSource(CONTAINER, prefix="2024/")
    assert source.in_scope(key_of("images", "2024/cat.jpg"))
    assert not source.in_scope(key_of("images", "2023/cat.jpg"))
    assert not source.in_scope(key_of("other", "2024/cat.jpg"))
    assert BlobSource(CONTAINER).in_scope(key_of("images", "anything.jpg"))


def test_keys_it_cannot_place_are_left_alone():
    source = BlobSource(CONTAINER, prefix="2024/")
    assert not source.in_scope(key_of("images", "2024/" + "x" * 2000))  # the digest form of a long name
    assert not source.in_scope("not-base64-at-all!")  # a key some other writer made
