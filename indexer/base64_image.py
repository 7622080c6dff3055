"""An image sent inside JSON as Base64, in any of the forms its senders use.

The search page sends a dropped file as a ``data:`` URL or as bare standard Base64; Azure AI
Search sends ``imageBinary`` and skill inputs in standard Base64, and other callers may send the
URL-safe alphabet (``-_``), often without its ``=`` padding. One decoder accepts them all, so
the search endpoint and the vectorize endpoint take the same inputs and refuse the same ones.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from indexer.errors import InvalidImageError

_URL_SAFE = str.maketrans("-_", "+/")


def decode_base64_image(value: Any, *, what: str = "the image") -> bytes:
    """The bytes of ``value``: standard or URL-safe Base64, padded or not, or a ``data:`` URL
    of either. Anything else raises ``InvalidImageError`` naming ``what`` and the problem."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidImageError(f"{what} must be a non-empty Base64 string (or a data: URL)")
    text = value.strip()
    if text[:5].lower() == "data:":
        header, comma, text = text.partition(",")
        if not comma or not header.lower().endswith(";base64"):
            raise InvalidImageError(f"{what} is a data: URL without Base64 data; expected data:<type>;base64,<data>")
        if not text:
            raise InvalidImageError(f"{what} is a data: URL with no data")
    if ("-" in text or "_" in text) and ("+" in text or "/" in text):
        raise InvalidImageError(f"{what} is not valid Base64: it mixes the standard (+/) and URL-safe (-_) alphabets")
    unpadded = text.translate(_URL_SAFE).rstrip("=")
    try:
        data = base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"{what} is not valid Base64 ({exc})") from None
    if not data:
        raise InvalidImageError(f"{what} holds no bytes")
    return data
