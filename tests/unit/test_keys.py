"""Document keys: the push path's key of a blob is the key Azure AI Search's blob indexer makes
for it with the ``base64Encode`` field-mapping function (indexer.keys).

The reference values come from "Field mappings and transformations" (search-indexer-field-
mappings, "base64 encoding options"): for the string ``00>00?00`` the padded URL-safe form is
``MDA-MDA_MDA=`` and the unpadded one ``MDA-MDA_MDA``; with the default
``useHttpServerUtilityUrlTokenEncode: true`` the function "behaves like
HttpServerUtility.UrlTokenEncode", which drops the padding and appends its count as a digit.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.backends.schema_rules import key_problem
from indexer.keys import (
    DIGEST_PREFIX,
    MAX_KEY_LENGTH,
    blob_identity,
    blob_url_parts,
    document_key,
    identity_from_key,
    url_token_decode,
    url_token_encode,
)

# The service's rule for document keys (naming rules): letters, digits, '-', '_', '='; at most
# 1024 characters; not starting with '_'.
KEY_RULE = re.compile(r"^(?!_)[A-Za-z0-9_\-=]{1,1024}$")


def test_the_documented_example_encodes_as_url_token_encode():
    assert base64.urlsafe_b64encode(b"00>00?00").decode() == "MDA-MDA_MDA="  # the docs' padded form
    assert url_token_encode("00>00?00") == "MDA-MDA_MDA1"  # padding dropped, its count appended
    assert url_token_decode("MDA-MDA_MDA1") == "00>00?00"


@pytest.mark.parametrize(("text", "padding"), [("abc", "0"), ("abcd", "2"), ("abcde", "1")])
def test_the_appended_digit_counts_the_padding_removed(text, padding):
    token = url_token_encode(text)
    assert token.endswith(padding) and "=" not in token
    assert url_token_decode(token) == text


def test_the_padded_urlsafe_form_of_earlier_versions_is_not_a_key_any_more():
    # Keys made before pull mode (padded URL-safe Base64 of "container/name") are no URL tokens:
    # `imgsearch reconcile` replaces their documents (README, "Pull mode").
    legacy = base64.urlsafe_b64encode(b"images/cat.jpg").decode()
    assert legacy.endswith("=")
    with pytest.raises(ValueError):
        url_token_decode(legacy)


@given(st.text(min_size=1, max_size=300))
def test_every_identity_round_trips_through_a_valid_key(identity):
    key = document_key(identity)
    assert KEY_RULE.match(key)
    assert identity_from_key(key) == identity


def test_identities_too_long_for_a_key_use_a_digest_that_cannot_collide():
    identity = "https://a.blob.core.windows.net/images/" + "x" * 1000
    key = document_key(identity)
    assert key.startswith(DIGEST_PREFIX) and KEY_RULE.match(key)
    assert identity_from_key(key) is None
    assert not url_token_encode("anything").startswith("=")


def test_a_blob_identity_is_its_url_without_query_or_fragment():
    url = "https://acct.blob.core.windows.net/images/a%20b.jpg"
    assert blob_identity(url + "?sv=2024&sig=secret") == url
    assert blob_identity(url + "#frag") == url


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("https://acct.blob.core.windows.net/images/holiday/dunes%20one.jpg", ("images", "holiday/dunes one.jpg")),
        ("http://127.0.0.1:10000/devstoreaccount1/images/cat.jpg", ("images", "cat.jpg")),
        ("http://localhost:10000/devstoreaccount1/c/%C3%BC.png", ("c", "ü.png")),
        ("https://acct.blob.core.windows.net/images", ("", "")),
        ("not a url", ("", "")),
    ],
)
def test_blob_url_parts(url, parts):
    assert blob_url_parts(url) == parts


# --- the 1024-character limit, at its edges ---------------------------------------------------


def test_the_key_limit_is_the_services():
    assert MAX_KEY_LENGTH == 1024


def test_the_longest_identity_that_fits_keeps_the_token_form():
    # 765 bytes -> 1020 Base64 characters, no padding, plus the digit: 1021; 767 bytes -> 1023
    # characters with one '=' dropped, plus the digit: 1024, the limit itself.
    identity = "a" * 767
    key = document_key(identity)
    assert len(key) == MAX_KEY_LENGTH and key.endswith("1")
    assert not key.startswith(DIGEST_PREFIX) and identity_from_key(key) == identity
    assert key_problem(key) is None


@pytest.mark.parametrize(
    "identity",
    [
        "a" * 768,  # one byte more: 1024 characters and the digit, 1025
        "é" * 400,  # 400 characters but 800 UTF-8 bytes: the limit is on the key, not the identity
        "c/" + "x" * 5000,
    ],
)
def test_identities_past_the_limit_fall_back_to_a_sha256_digest(identity):
    key = document_key(identity)
    assert key == DIGEST_PREFIX + hashlib.sha256(identity.encode("utf-8")).hexdigest()
    assert len(key) == len(DIGEST_PREFIX) + 64
    assert key_problem(key) is None  # still a valid Azure AI Search key
    assert identity_from_key(key) is None  # the digest cannot be read back
    assert document_key(identity + "b") != key


# --- the edges of the token form and of blob URLs ---------------------------------------------


def test_the_empty_identity_is_the_empty_token_both_ways():
    assert url_token_encode("") == "" and url_token_decode("") == ""


def test_only_the_padding_is_stripped_never_a_character_of_the_token():
    assert base64.urlsafe_b64encode(b"\x00\x00\x17").decode() == "AAAX"  # Base64 that ends in X
    assert url_token_encode("\x00\x00\x17") == "AAAX0"
    assert url_token_encode("X") == "WA2" and url_token_decode("WA2") == "X"


@pytest.mark.parametrize("token", ["abcX", "abc3", "abc=", "X"])
def test_a_token_must_end_in_its_padding_count(token):
    with pytest.raises(ValueError, match=r"its last character must be 0, 1 or 2"):
        url_token_decode(token)


def test_a_refused_token_is_quoted_to_forty_characters():
    token = "A" * 39 + "BCDEFG" + "x"
    with pytest.raises(ValueError) as caught:
        url_token_decode(token)
    assert repr(token[:40]) in str(caught.value) and token[:41] not in str(caught.value)


def test_a_token_that_is_no_base64_says_so():
    with pytest.raises(ValueError, match=r"^not a URL token: "):
        url_token_decode("A0")  # one character of Base64 cannot be decoded


def test_a_blob_identity_cuts_at_the_first_question_mark_and_hash():
    url = "https://acct.blob.core.windows.net/images/a.jpg"
    assert blob_identity(url + "?sv=1?x=2") == url
    assert blob_identity(url + "#one#two") == url
    assert blob_identity(url + "?a=1#b?c") == url


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("https://acct.blob.core.windows.net/Xmas/XX.jpg", ("Xmas", "XX.jpg")),  # no character but '/' is stripped
        ("http://[::1]:10000/devstoreaccount1/images/cat.jpg", ("images", "cat.jpg")),  # IPv6 loopback: path style
        ("/images/cat.jpg", ("images", "cat.jpg")),  # no host: the path as it stands
    ],
)
def test_blob_url_parts_at_the_edges(url, parts):
    assert blob_url_parts(url) == parts
