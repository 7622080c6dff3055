"""Document keys derived from an image's identity, so re-indexing the same blob overwrites.

Azure AI Search keys allow only letters, digits, ``-``, ``_`` and ``=`` (at most 1024
characters, not starting with ``_``). Blob paths hold other characters, so the service's own
guidance applies: URL-safe Base64 of the identity. UTF-8 never starts with a byte >= 0xF8, so
the encoding never starts with ``-`` or ``_``. Identities too long for the limit fall back to
a SHA-256 digest with a prefix that cannot collide with the Base64 form.
"""

from __future__ import annotations

import base64
import hashlib

MAX_KEY_LENGTH = 1024


def document_key(identity: str) -> str:
    data = identity.encode()  # UTF-8 (str.encode's default, whatever the locale)
    encoded = base64.urlsafe_b64encode(data).decode()
    if len(encoded) <= MAX_KEY_LENGTH:
        return encoded
    # '=' never appears at the start of Base64, so this prefix marks the digest form.
    return "=sha256=" + hashlib.sha256(data).hexdigest()


def blob_identity(container: str, blob_name: str) -> str:
    return f"{container}/{blob_name}"


def identity_from_key(key: str) -> str | None:
    """The identity a key was made from, or None for the digest form."""
    if key.startswith("=sha256="):
        return None
    # A str argument must be ASCII (else ValueError), as every key document_key makes is.
    return base64.urlsafe_b64decode(key).decode()
