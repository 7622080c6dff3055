"""Turn what the search service (or the SDK talking to it) raises into this package's errors.

Every SDK call of the backend and of pull mode goes through ``call_service``: an error answer
becomes a ``SearchServiceError`` with the service's code and message, no answer at all one that
names the endpoint to check. Only what a 404 means differs between calls (an index that is
gone, a pull-mode resource not created yet, a document that is simply absent), so the caller
says it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError, ServiceResponseError

from indexer.errors import SearchServiceError

T = TypeVar("T")

# How the service says "that index already exists" to a create: 400 with these codes (the live
# answer in azure-sdk-for-net#38026), or 409 (ResourceExistsError) as HTTP would have it.
INDEX_EXISTS_CODES = frozenset({"ResourceNameAlreadyInUse", "CannotCreateExistingIndex"})


def call_service(
    operation: Callable[[], T], what: str, endpoint: str, *, not_found: Callable[[str], Exception] | None
) -> T:
    """Run one SDK call; ``what`` it does goes into the messages. A 404 raises what
    ``not_found(what)`` makes; with None the SDK's ``ResourceNotFoundError`` passes, for a caller
    to whom a 404 is an answer ("absent"). Other error answers and an unreachable service raise
    ``SearchServiceError``."""
    try:
        return operation()
    except ResourceNotFoundError:
        if not_found is None:
            raise
        raise not_found(what) from None
    except HttpResponseError as exc:
        raise service_error(exc, what) from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise unreachable_error(exc, what, endpoint) from None


def service_error(exc: HttpResponseError, what: str) -> SearchServiceError:
    """What the search service refused, as this package's error: its code and message."""
    hint = ""
    if exc.status_code in (401, 403):
        hint = (
            " (check SEARCH_KEY, or the identity's role assignment: Search Index Data Contributor / "
            "Search Service Contributor)"
        )
    return SearchServiceError(
        f"cannot {what}: {error_message(exc)}{hint}",
        code=error_code(exc),
        status_code=exc.status_code,
        response=exc.response,
    )


def unreachable_error(exc: Exception, what: str, endpoint: str) -> SearchServiceError:
    """The search service did not answer (connection refused, timed out, reset)."""
    return SearchServiceError(
        f"cannot {what}: the search service at {endpoint} does not answer ({_first_line(exc)}); check "
        f"SEARCH_ENDPOINT, and for the local double that it runs (`imgsearch dev` starts it)",
        code="ServiceUnreachable",
        status_code=None,
    )


def index_already_exists(exc: HttpResponseError) -> bool:
    """Whether a create-index error says the index exists: 409, or 400 with one of
    ``INDEX_EXISTS_CODES`` as the code or a detail's code."""
    if exc.status_code == 409:
        return True
    if exc.status_code != 400:
        return False
    error = getattr(exc, "error", None)
    codes = {getattr(error, "code", None)} | {getattr(d, "code", None) for d in getattr(error, "details", None) or []}
    return bool(codes & INDEX_EXISTS_CODES)


def error_code(exc: HttpResponseError) -> str:
    """The service's error code (``exc.error.code``), else the HTTP reason or status."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    return code or (exc.reason or f"HTTP{exc.status_code}")


def error_message(exc: HttpResponseError) -> str:
    """The service's error message on one line, else the HTTP status and reason."""
    error = getattr(exc, "error", None)
    message = getattr(error, "message", None)
    if message:
        return " ".join(str(message).split())
    return f"HTTP {exc.status_code} {exc.reason or ''}".strip()


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "message", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
