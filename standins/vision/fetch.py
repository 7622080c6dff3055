"""Download the image of a ``{"url": ...}`` request as the service does: only from publicly
reachable hosts, with the size limit applied while streaming.

Azure fetches from its own network, so a URL on loopback or a private network works offline
and fails on Azure ("Make sure the image URL is valid and publicly accessible", Image Analysis
4.0 errors): such hosts are refused before connecting and on every redirect, unless
``allow_private``. Every failure is Azure's one 400; the reason goes to the log and the
``x-standin-detail`` header only.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import urljoin, urlsplit

import requests

from standins.vision import answers
from standins.vision.contract import IMAGE_BYTES_LIMIT, Refused

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5


class UrlRefused(Refused):
    """Azure's URL answer, with the stand-in's reason for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(answers.image_url_not_accessible())
        self.reason = reason


def private_address(host: str) -> str | None:
    """The first address of ``host`` that is not publicly routable (loopback, private,
    link-local, reserved...), or None when every address is public. A host that does not
    resolve is refused too (as unreachable)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"the host {host!r} does not resolve ({exc})") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global:
            return str(address)
    return None


def _check_url(url: str, *, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UrlRefused(f"the image URL must be an absolute http or https URL: {url!r}")
    if not allow_private:
        address = private_address(parts.hostname)
        if address is not None:
            raise UrlRefused(
                f"{parts.hostname} ({address}) is not publicly reachable, and Azure AI Vision fetches only public "
                f"URLs; start the stand-in with --allow-private-urls to fetch it anyway"
            )


def fetch_image(url: str, *, allow_private: bool = False, timeout: float = 15.0) -> bytes:
    try:
        for _ in range(MAX_REDIRECTS + 1):
            _check_url(url, allow_private=allow_private)
            with requests.get(url, stream=True, timeout=timeout, allow_redirects=False) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code >= 400:
                    raise UrlRefused(f"the image URL answered HTTP {response.status_code}")
                chunks: list[bytes] = []
                total = 0
                for chunk in response.iter_content(chunk_size=64 * 1024):
                    total += len(chunk)
                    if total >= IMAGE_BYTES_LIMIT:
                        raise Refused(answers.image_bytes_not_allowed())
                    chunks.append(chunk)
                return b"".join(chunks)
        raise UrlRefused(f"more than {MAX_REDIRECTS} redirects")
    except requests.RequestException as exc:
        raise UrlRefused(f"cannot download the image: {exc}") from None
