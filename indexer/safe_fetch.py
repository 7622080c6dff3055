"""Fetch the image at a caller's URL without letting the caller reach what this server can, as
Azure's own fetcher refuses: http(s) only, one lookup whose checked address is the one
connected to, no loopback/private/link-local/... address in any form, each redirect hop checked
again, one deadline and a byte cap, and one text (``NOT_FETCHED``) for every failure.
``allow_private`` (``IMGSEARCH_ALLOW_PRIVATE_URLS``) lets private addresses through for
development. (design: docs/design.md#fetching-a-callers-url)
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from urllib.parse import urljoin, urlsplit

import urllib3

from indexer.errors import InputLimitError, InvalidImageError
from indexer.limits import MAX_IMAGE_BYTES

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
DEADLINE_SECONDS = 10.0
NOT_FETCHED = "the image URL could not be fetched"
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
# The most telling name first: 169.254.169.254 is link-local before it is private.
_KINDS = ("loopback", "link_local", "unspecified", "multicast", "reserved", "private")


class UrlNotFetched(InvalidImageError):
    """An image URL that was not fetched. The message is always ``NOT_FETCHED``; ``reason``
    says why, for logs only (a caller would learn from it what answered at that address)."""

    def __init__(self, reason: str) -> None:
        super().__init__(NOT_FETCHED)
        self.reason = reason


def refusal_reason(address: IPAddress) -> str | None:
    """Why a connection to ``address`` is refused (it is not publicly routable), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = refusal_reason(embedded)
            return f"{address} embeds {inner}" if inner else None
        if address in _NAT64_LOCAL or address.teredo is not None:
            return f"{address} is a translated address"
    for kind in _KINDS:
        if getattr(address, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    if not address.is_global:
        return f"{address} is not a global address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def resolve_checked(host: str, port: int, *, allow_private: bool = False) -> str:
    """The address to connect to for ``host``: resolved once, every address checked."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UrlNotFetched(f"the host does not resolve ({exc})") from None
    if not infos:
        raise UrlNotFetched("the host resolves to no address")
    targets = [str(info[4][0]) for info in infos]
    if not allow_private:
        for target in targets:
            reason = refusal_reason(ipaddress.ip_address(target.split("%", 1)[0]))
            if reason is not None:
                raise UrlNotFetched(f"the host resolves to {reason}")
    return targets[0]


def fetch_url(
    url: str,
    *,
    allow_private: bool = False,
    max_bytes: int = MAX_IMAGE_BYTES,
    deadline_seconds: float = DEADLINE_SECONDS,
    max_redirects: int = MAX_REDIRECTS,
) -> bytes:
    """The body at ``url`` under the rules of the module doc. Raises ``InvalidImageError`` for
    a URL that is not absolute http(s), ``UrlNotFetched`` for any failure to fetch it, and
    ``InputLimitError`` (``image_bytes``) for a body of ``max_bytes`` or more."""
    if not _is_http(url):
        raise InvalidImageError("the image URL must be an absolute http or https URL")
    deadline = time.monotonic() + deadline_seconds
    try:
        for _hop in range(max_redirects + 1):
            if not _is_http(url):
                raise UrlNotFetched("a redirect to a URL that is not http or https")
            pool, response = _get(url, allow_private=allow_private, deadline=deadline)
            try:
                if response.status in _REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise UrlNotFetched(f"HTTP {response.status} without a Location")
                    url = urljoin(url, location)
                    continue
                if response.status != 200:
                    raise UrlNotFetched(f"HTTP {response.status}")
                return _read_capped(response, max_bytes=max_bytes, deadline=deadline)
            finally:
                response.release_conn()
                pool.close()
        raise UrlNotFetched(f"more than {max_redirects} redirects")
    except UrlNotFetched as exc:
        logger.debug("an image URL was not fetched: %s", exc.reason)
        raise
    except InputLimitError:  # a ValueError too, but the caller's to hear: the body is too large
        raise
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        logger.debug("an image URL was not fetched: %s: %s", type(exc).__name__, exc)
        raise UrlNotFetched(f"{type(exc).__name__}: {exc}") from None


def _is_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is no number, a broken IPv6 literal
        return False


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise UrlNotFetched("the deadline passed")
    return remaining


def _get(
    url: str, *, allow_private: bool, deadline: float
) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    """One GET of ``url``, on a connection to the checked address, not following redirects."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)
    address = resolve_checked(host, port, allow_private=allow_private)
    remaining = _remaining(deadline)
    timeout = urllib3.Timeout(connect=remaining, read=remaining)
    pool: urllib3.HTTPConnectionPool
    if https:
        # TLS checks the certificate against the name in the URL, not the address connected to.
        pool = urllib3.HTTPSConnectionPool(
            address, port, timeout=timeout, retries=False, server_hostname=host, assert_hostname=host
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False)
    host_header = f"[{host}]" if ":" in host else host
    if parts.port:
        host_header += f":{parts.port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        response = pool.urlopen(
            "GET",
            target,
            # identity: a compressed body would be inflated past the byte cap before it is counted.
            headers={"Host": host_header, "Accept": "image/*", "Accept-Encoding": "identity"},
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
            assert_same_host=False,
        )
    except BaseException:
        pool.close()
        raise
    return pool, response


def _read_capped(response: urllib3.BaseHTTPResponse, *, max_bytes: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        # Each read waits at most until the deadline, so a body sent a byte at a time ends there.
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if sock is not None:
            sock.settimeout(_remaining(deadline))
        chunk = response.read1(_CHUNK, decode_content=False)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total >= max_bytes:
            raise InputLimitError(
                f"the image at the URL is {max_bytes:,} bytes or more; the limit is under {max_bytes:,} bytes",
                limit="image_bytes",
                value=total,
            )
        chunks.append(chunk)
        _remaining(deadline)
