"""One Base64 decoder for images sent inside JSON (``indexer.base64_image``): the search
endpoint and the vectorize endpoint accept the same forms and refuse the same ones."""

from __future__ import annotations

import base64

import pytest

from indexer.base64_image import decode_base64_image
from indexer.errors import InvalidImageError

# Bytes whose Base64 holds the characters that differ between the alphabets (+/ and -_) and
# needs padding.
DATA = bytes([0xFB, 0xEF, 0xFF, 0x00, 0x3E])


@pytest.mark.parametrize(
    "encoded",
    [
        base64.b64encode(DATA).decode(),  # standard, padded
        base64.b64encode(DATA).decode().rstrip("="),  # standard, unpadded
        base64.urlsafe_b64encode(DATA).decode(),  # URL-safe, padded
        base64.urlsafe_b64encode(DATA).decode().rstrip("="),  # URL-safe, unpadded
        "data:image/png;base64," + base64.b64encode(DATA).decode(),  # a data: URL of either
        "DATA:image/png;BASE64," + base64.urlsafe_b64encode(DATA).decode().rstrip("="),
        "  " + base64.b64encode(DATA).decode() + "\n",  # surrounding whitespace
    ],
)
def test_every_form_decodes_to_the_same_bytes(encoded):
    assert decode_base64_image(encoded) == DATA


@pytest.mark.parametrize(
    "value, problem",
    [
        (None, "must be a non-empty Base64 string"),
        (42, "must be a non-empty Base64 string"),
        ("  ", "must be a non-empty Base64 string"),
        ("data:image/png,rawbytes", "without Base64 data"),
        ("data:image/png;base64,", "with no data"),
        ("+-/_", "mixes the standard (+/) and URL-safe (-_) alphabets"),
        ("!!!", "not valid Base64"),
        ("%%% not base64 %%%", "not valid Base64"),
        ("QUJDR", "not valid Base64"),  # one character past a whole group of four
        ("====", "holds no bytes"),
    ],
)
def test_what_is_no_base64_image_is_refused_naming_the_problem(value, problem):
    with pytest.raises(InvalidImageError, match="^the input 'x' .*") as caught:
        decode_base64_image(value, what="the input 'x'")
    assert problem in str(caught.value)
