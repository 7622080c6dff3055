"""Which stored documents a blob source limited to a prefix may remove: only its own."""

from __future__ import annotations

from azure.storage.blob import ContainerClient

from indexer.keys import blob_identity, document_key
from indexer.sources.blob import BlobSource

# Building a client sends nothing: these tests never reach a storage account.
CONTAINER = ContainerClient("http://127.0.0.1:1/devstoreaccount1", "images")


def test_a_prefix_scopes_the_documents_of_its_own_blobs():
    source = BlobSource(CONTAINER, prefix="2024/")
    assert source.in_scope(document_key(blob_identity("images", "2024/cat.jpg")))
    assert not source.in_scope(document_key(blob_identity("images", "2023/cat.jpg")))
    assert not source.in_scope(document_key(blob_identity("other", "2024/cat.jpg")))
    assert BlobSource(CONTAINER).in_scope(document_key(blob_identity("images", "anything.jpg")))


def test_keys_it_cannot_place_are_left_alone():
    source = BlobSource(CONTAINER, prefix="2024/")
    assert not source.in_scope(document_key("images/2024/" + "x" * 2000))  # the digest form of a long name
    assert not source.in_scope("not-base64-at-all!")  # a key some other writer made
