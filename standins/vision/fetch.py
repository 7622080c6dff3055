"""Download the image of a ``{"url": ...}`` request, as the service does, with its size limit
applied while streaming so a huge or endless body never fills memory."""

from __future__ import annotations

import requests

from standins.vision import answers
from standins.vision.contract import IMAGE_BYTES_LIMIT, Refused


def fetch_image(url: str, *, timeout: float = 15.0) -> bytes:
    if not url.lower().startswith(("http://", "https://")):
        raise Refused(answers.invalid_image_url(f"The image URL must be http or https: {url!r}."))
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code >= 400:
                raise Refused(answers.invalid_image_url(f"The image URL answered HTTP {response.status_code}: {url}"))
            chunks: list[bytes] = []
            total = 0
            for chunk in response.iter_content(chunk_size=64 * 1024):
                total += len(chunk)
                if total >= IMAGE_BYTES_LIMIT:
                    raise Refused(
                        answers.invalid_image_size(
                            f"The image at {url} is {IMAGE_BYTES_LIMIT:,} bytes or more; the limit is under "
                            f"{IMAGE_BYTES_LIMIT:,} bytes (20 MB)."
                        )
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except requests.RequestException as exc:
        raise Refused(answers.invalid_image_url(f"Cannot download the image at {url}: {exc}")) from None
