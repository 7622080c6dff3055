"""Document keys derived from an image's identity, so re-indexing the same image overwrites.

Azure AI Search keys allow only letters, digits, ``-``, ``_`` and ``=`` (at most 1024
characters, not starting with ``_``). Identities hold other characters, so they are Base64
encoded, and in exactly the form Azure AI Search's own ``base64Encode`` field-mapping function
produces with its default parameters (``useHttpServerUtilityUrlTokenEncode: true``, which
"behaves like HttpServerUtility.UrlTokenEncode": URL-safe alphabet, the ``=`` padding dropped
and its count appended as one digit; "Field mappings and transformations", search-indexer-
field-mappings, "base64 encoding options"). ``url_token_encode("00>00?00") == "MDA-MDA_MDA1"``.

Why that form: the two ways into the index must address the same document.

- **Push** (the Function's blob trigger, backfill, reconcile, watch) computes the key here.
- **Pull** (an Azure AI Search indexer over the container, ``schemas/indexer.json``) can only
  compute a key with a field mapping, from what the blob indexer knows about a blob *before*
  any skill runs: ``metadata_storage_path``, "the full URI of the blob, including the storage
  account", through ``base64Encode``. Native soft-delete detection needs that too ("Document
  keys ... must be mapped to either be a blob property or blob metadata").

So a blob's identity is its URL (as the Storage SDK gives it: the account's blob endpoint,
the container, the percent-encoded blob name, no query string), and every key is the
UrlTokenEncode of an identity. A folder image's identity is its absolute path.

UrlTokenEncode output never starts with ``=``, so a digest form with that prefix marks
identities too long for the limit (pull mode cannot reproduce it: the indexer refuses such
keys, see README "Pull mode").
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
    without padding, followed by the number of padding characters removed (0, 1 or 2)."""
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
