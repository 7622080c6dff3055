"""Document keys (``indexer.keys``): URL-safe Base64 of the identity, a SHA-256 fallback past
Azure AI Search's 1024-character limit, and the way back from a key to its identity."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.backends.schema_rules import key_problem
from indexer.keys import MAX_KEY_LENGTH, blob_identity, document_key, identity_from_key


def test_the_key_limit_is_the_services():
    assert MAX_KEY_LENGTH == 1024


@pytest.mark.parametrize(
    "identity,key",
    [
        ("photos/cat.jpg", "cGhvdG9zL2NhdC5qcGc="),
        # Standard Base64 would write '+' and '/' here, which keys may not hold.
        ("c/~~~???", "Yy9-fn4_Pz8="),
        # UTF-8, not Latin-1 (which would give "6Q==").
        ("é", "w6k="),
    ],
)
def test_the_key_is_url_safe_base64_of_the_utf8_identity(identity, key):
    assert document_key(identity) == key
    assert identity_from_key(key) == identity


def test_the_longest_identity_that_fits_keeps_the_base64_form():
    identity = "a" * 768  # 768 bytes -> exactly 1024 Base64 characters
    key = document_key(identity)
    assert len(key) == MAX_KEY_LENGTH
    assert not key.startswith("=")
    assert identity_from_key(key) == identity
    assert key_problem(key) is None


@pytest.mark.parametrize(
    "identity",
    [
        "a" * 769,  # one byte more: 1028 Base64 characters
        "é" * 400,  # 400 characters but 800 UTF-8 bytes: the limit is on the key, not the identity
        "c/" + "x" * 5000,
    ],
)
def test_identities_too_long_for_the_limit_fall_back_to_a_sha256_digest(identity):
    key = document_key(identity)
    assert key == "=sha256=" + hashlib.sha256(identity.encode("utf-8")).hexdigest()
    assert len(key) == 8 + 64
    assert key_problem(key) is None  # still a valid Azure AI Search key
    assert identity_from_key(key) is None  # the digest cannot be read back


def test_different_long_identities_get_different_digests():
    assert document_key("a" * 769) != document_key("a" * 770)
    assert document_key("a" * 769) == document_key("a" * 769)


@given(st.text())
def test_every_identity_gives_a_valid_key_that_reads_back(identity):
    key = document_key(identity)
    if identity == "":
        # The empty identity encodes to the empty string, which is no valid key; no source
        # produces it (a blob identity always has a container and a name).
        assert key == ""
        return
    assert key_problem(key) is None
    assert len(key) <= MAX_KEY_LENGTH
    back = identity_from_key(key)
    if len(identity.encode("utf-8")) <= 768:
        assert back == identity
    else:
        assert back is None and key.startswith("=sha256=")


@given(st.text(min_size=1), st.text(min_size=1))
def test_different_identities_never_share_a_key(a, b):
    if a != b:
        assert document_key(a) != document_key(b)


@pytest.mark.parametrize("key", ["é", "abc", "_w=="])
def test_a_key_document_key_cannot_have_made_is_a_value_error(key):
    # Not ASCII, not Base64 (bad padding), not UTF-8 underneath.
    with pytest.raises(ValueError):
        identity_from_key(key)


def test_blob_identity_is_container_slash_name():
    assert blob_identity("photos", "2024/cat.jpg") == "photos/2024/cat.jpg"
    assert document_key(blob_identity("photos", "cat.jpg")) == document_key("photos/cat.jpg")
