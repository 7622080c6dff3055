"""Download an image from a URL with a size guard, for ``{"url": ...}`` requests served
offline (the local vectorizer server and the in-process model)."""

from __future__ import annotations

import requests

from indexer.errors import InputLimitError, InvalidImageError
from indexer.limits import MAX_IMAGE_BYTES


def fetch_image(url: str, *, max_bytes: int = MAX_IMAGE_BYTES, timeout: float = 15.0) -> bytes:
    """GET ``url`` and return its bytes; refuse bodies of ``max_bytes`` or more while streaming,
    so a huge or endless body never fills memory."""
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidImageError(f"the image URL must be http or https: {url!r}")
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code >= 400:
                raise InvalidImageError(f"the image URL answered HTTP {response.status_code}: {url}")
            chunks: list[bytes] = []
            total = 0
            for chunk in response.iter_content(chunk_size=64 * 1024):
                total += len(chunk)
                if total >= max_bytes:
                    raise InputLimitError(
                        f"the image at {url} is {max_bytes:,} bytes or more; the limit is "
                        f"under {max_bytes:,} bytes (20 MB)",
                        limit="image_bytes",
                        value=total,
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except requests.RequestException as exc:
        raise InvalidImageError(f"cannot download the image at {url}: {exc}") from None
