"""URLs without their secrets, for every message and log line that names one.

A caller's image URL can carry a SAS token (``?sv=...&sig=...``), an Azure Function's URL a
key (``?code=...``), and any URL a user and password (``https://user:pass@host``). Errors reach
answers (a vectorize record's error lands in the indexer's execution history) and logs, so a
URL in a message keeps its scheme, host and path, which say what was meant, and loses its
query, fragment and user info, which may be a credential. This is the one place that cuts them.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# A URL of any scheme inside free text (a refused ftp:// URL is echoed too): up to the first
# space, quote or angle bracket that ends it. Square brackets stay in: [::1] is a host.
_URL_IN_TEXT = re.compile(r"""[a-z][a-z0-9+.-]*://[^\s'"<>]+""", re.IGNORECASE)
# A query string after a path with no scheme and host, as an HTTP library words its errors:
# "Max retries exceeded with url: /photos/cat.jpg?sv=...&sig=...". "?name=" right after a
# path character; a "?key=..." standing alone in a sentence (usage advice) stays.
_QUERY_AFTER_PATH = re.compile(r"""(?<=[\w/.%~-])\?[\w.~%+-]+=[^\s'"<>]*""")
_TRAILING = ".,;:!?)]}"
CUT = "?…"  # marks where a query string was cut, so a reader knows one was there


def without_query(url: str) -> str:
    """``url`` with no query string, fragment or user info (``?…`` marks a cut query)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not parseable (a bad port, say): keep what precedes any query
        return url.split("?", 1)[0].split("#", 1)[0] + (CUT if "?" in url else "")
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{netloc}{parts.path}" + (CUT if parts.query else "")


def redact_urls(text: str) -> str:
    """``text`` with every URL in it cut by ``without_query``, and every query string that
    follows a bare path."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(_cut, text)
    if "?" in text:
        text = _QUERY_AFTER_PATH.sub(_cut_query, text)
    return text


def _cut_query(match: re.Match[str]) -> str:
    query = match.group(0)
    stripped = query.rstrip(_TRAILING)
    return CUT + query[len(stripped) :]


def _cut(match: re.Match[str]) -> str:
    url = match.group(0)
    stripped = url.rstrip(_TRAILING)  # the sentence's punctuation, not the URL's: "...?sig=x: 404"
    return without_query(stripped) + url[len(stripped) :]
