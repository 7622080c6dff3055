"""One log line per HTTP call to an Azure service (or its stand-in), for ``imgsearch -v``.

An azure-core pipeline policy in the Vision client, and the same line from the Azure SDK
clients' ``raw_response_hook`` (Search, Blob Storage):
``POST https://<host>/computervision/retrieval:vectorizeText -> 200 (84 ms)``.
The query string is left out (it can carry a SAS token or a function key) and no header is
logged, so a key can never reach the log this way.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from azure.core.pipeline.policies import SansIOHTTPPolicy

from indexer.redact import without_query

log = logging.getLogger("indexer.calls")


class CallLogPolicy(SansIOHTTPPolicy):
    """Logs each request's method, URL without query, status and duration at DEBUG."""

    def on_request(self, request: Any) -> None:
        request.context["imgsearch_started"] = time.perf_counter()

    def on_response(self, request: Any, response: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            started = request.context.get("imgsearch_started")
            took = f" ({(time.perf_counter() - started) * 1000:.0f} ms)" if started else ""
            log.debug(
                "%s %s -> %d%s",
                request.http_request.method,
                without_query(request.http_request.url),
                response.http_response.status_code,
                took,
            )

    def on_exception(self, request: Any) -> None:
        log.debug("%s %s -> no answer", request.http_request.method, without_query(request.http_request.url))


def log_response(response: Any) -> None:
    """The same line from an Azure SDK client's ``raw_response_hook`` (Search, Blob Storage)."""
    if log.isEnabledFor(logging.DEBUG):
        request = response.http_request
        log.debug("%s %s -> %d", request.method, without_query(request.url), response.http_response.status_code)
