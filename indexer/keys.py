"""Document keys derived from an image's identity, so re-indexing the same image overwrites.

A key is the ``HttpServerUtility.UrlTokenEncode`` form of the identity (URL-safe Base64, the
padding replaced by its count): what Azure AI Search's ``base64Encode`` field mapping makes of
``metadata_storage_path``, so push and pull mode address the same document. A blob's identity
is its URL, a folder image's its absolute path; an identity too long for the 1024-character
limit gets a digest form starting with ``=``. (design and sources: docs/design.md#document-keys)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from urllib.parse import unquote, urlsplit

MAX_KEY_LENGTH = 1024
DIGEST_PREFIX = "=sha256="


def url_token_encode(text: str) -> str:
    """``HttpServerUtility.UrlTokenEncode`` of the UTF-8 bytes of ``text``: URL-safe Base64
    without padding, followed by the number of padding characters removed (0, 1 or 2):
    ``url_token_encode("00>00?00") == "MDA-MDA_MDA1"``."""
    data = text.encode()  # UTF-8
    if not data:
        return ""
    encoded = base64.urlsafe_b64encode(data).decode()
    stripped = encoded.rstrip("=")
    return f"{stripped}{len(encoded) - len(stripped)}"


def url_token_decode(token: str) -> str:
    """The inverse of ``url_token_encode``; ``ValueError`` for anything it cannot have made."""
    if not token:
        return ""
    body, padding = token[:-1], token[-1]
    if padding not in "012":
        raise ValueError(f"not a URL token (its last character must be 0, 1 or 2): {token[:40]!r}")
    try:
        return base64.urlsafe_b64decode(body + "=" * int(padding)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"not a URL token: {exc}") from None


def document_key(identity: str) -> str:
    """The document key of an identity (see the module doc); a digest for very long ones."""
    encoded = url_token_encode(identity)
    if len(encoded) <= MAX_KEY_LENGTH:
        return encoded
    return DIGEST_PREFIX + hashlib.sha256(identity.encode()).hexdigest()


def identity_from_key(key: str) -> str | None:
    """The identity a key was made from, or None for the digest form."""
    if key.startswith(DIGEST_PREFIX):
        return None
    return url_token_decode(key)


def blob_identity(blob_url: str) -> str:
    """A blob's identity: its URL without query string or fragment (a SAS never becomes part
    of a key). Pass the Storage SDK's ``BlobClient.url``, which is what Azure AI Search's
    blob indexer reports as ``metadata_storage_path`` for the same blob."""
    return blob_url.partition("?")[0].partition("#")[0]


def blob_url_parts(url: str) -> tuple[str, str]:
    """``(container, blob name)`` of a blob URL: ``https://<account>.blob.core.windows.net/
    <container>/<name>``, or the path-style ``http://127.0.0.1:10000/<account>/<container>/<name>``
    of Azurite (an IP address or localhost). The name is percent-decoded. ``("", "")`` when the
    URL names no blob."""
    parts = urlsplit(url)
    path = unquote(parts.path).lstrip("/")
    host = parts.hostname
    if host is not None and (host == "localhost" or host.replace(".", "").isdigit() or ":" in host):
        path = path.partition("/")[2]  # drop the account segment
    container, _, name = path.partition("/")
    return (container, name) if container and name else ("", "")
