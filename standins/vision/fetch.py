"""Download the image of a ``{"url": ...}`` request as the service does: only from publicly
reachable hosts, with the size limit applied while streaming.

Azure fetches from its own network, so a URL on loopback or a private network works offline
and fails on Azure ("Make sure the image URL is valid and publicly accessible", Image Analysis
4.0 errors). The stand-in fetches through the project's one safe fetcher (``indexer.safe_fetch``):
private hosts are refused after one lookup and on every redirect hop, unless ``allow_private``
(``serve-vision --allow-private-urls``, ``IMGSEARCH_ALLOW_PRIVATE_URLS``). Every failure is
Azure's one 400; the reason goes to the log and the ``x-standin-detail`` header only.
"""

from __future__ import annotations

import logging

from indexer.errors import InputLimitError, InvalidImageError
from indexer.safe_fetch import MAX_REDIRECTS, UrlNotFetched, fetch_url, resolve_checked
from standins.vision import answers
from standins.vision.contract import IMAGE_BYTES_LIMIT, Refused

logger = logging.getLogger(__name__)

__all__ = ["MAX_REDIRECTS", "UrlRefused", "fetch_image", "resolve_checked"]


class UrlRefused(Refused):
    """Azure's URL answer, with the stand-in's reason for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(answers.image_url_not_accessible())
        self.reason = reason


def fetch_image(url: str, *, allow_private: bool = False, deadline: float = 15.0) -> bytes:
    try:
        return fetch_url(url, allow_private=allow_private, max_bytes=IMAGE_BYTES_LIMIT, deadline_seconds=deadline)
    except UrlNotFetched as exc:
        hint = "" if allow_private else "; start the stand-in with --allow-private-urls to fetch private hosts"
        raise UrlRefused(f"{exc.reason}{hint}") from None
    except InputLimitError:
        raise Refused(answers.image_bytes_not_allowed()) from None
    except InvalidImageError as exc:  # not an absolute http(s) URL
        raise UrlRefused(str(exc)) from None
