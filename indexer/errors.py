"""Every exception this package raises on purpose, and ``classify``: the one map from an error to
what every edge needs (the CLI's exit code, the HTTP status and error code, and whether trying
again later can help), so edges never test exception types themselves.

Each error names what was wrong so that a person can act on it. Service errors build on
azure-core's ``HttpResponseError`` (Azure SDK convention), so callers that handle Azure SDK
errors handle ours too. (the hierarchy and the design: docs/design.md#errors)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError

# Exit codes of the ``imgsearch`` CLI (documented in its --help and the README).
EXIT_FAILED = 1  # a run or service failure
EXIT_USAGE = 2  # bad settings or arguments (click also uses 2 for usage errors)
EXIT_PIN_MISMATCH = 3  # the index is pinned to another model version
EXIT_INTERRUPTED = 130


class ImageSearchError(Exception):
    """Base class of every error this package raises on purpose."""

    error_code = "ImageSearchError"


class ConfigurationError(ImageSearchError):
    """A setting is missing or invalid; the message names the environment variable."""

    error_code = "Configuration"


class InvalidInputError(ImageSearchError, ValueError):
    """The caller's own input (an image, a query, a filter, a document, a request) cannot be
    used. Trying the same input again cannot help."""

    error_code = "InvalidInput"


class InputLimitError(InvalidInputError):
    """An input breaks one of the service's documented limits (size, dimensions, words).

    ``limit`` is a short stable name of the broken limit, e.g. ``"image_bytes"``.
    """

    error_code = "InputLimitExceeded"

    def __init__(self, message: str, *, limit: str, value: Any = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value


class InvalidImageError(InvalidInputError):
    """The bytes are not an image the service can decode (empty, truncated, not an image)."""

    error_code = "InvalidImage"


class FilterError(InvalidInputError):
    """A filter expression that cannot be understood; the message says which and why."""

    error_code = "InvalidFilter"


class InvalidQueryError(InvalidInputError):
    """A query option the index cannot use (k, threshold, select, a query vector)."""

    error_code = "InvalidQuery"


class InvalidDocumentError(InvalidInputError):
    """A document that breaks the index schema (a field's type, an unknown field, a key)."""

    error_code = "InvalidDocument"


class FolderNotFoundError(InvalidInputError):
    """The folder to index does not exist or is not a folder."""

    error_code = "FolderNotFound"


class BadRequest(InvalidInputError):
    """An HTTP request the search endpoint cannot read; ``status`` is its answer (400, 405
    for a wrong method, 415 for a wrong body type)."""

    def __init__(self, message: str, *, code: str = "BadRequest", status: int = 400) -> None:
        super().__init__(message)
        self.error_code = code
        self.status = status


class ModelVersionMismatchError(ImageSearchError):
    """A vector's model version or dimension count differs from the index's pin.

    Raised before anything is written or searched, so the index is never mixed.
    """

    error_code = "ModelVersionMismatch"

    def __init__(self, message: str, *, expected: Any, actual: Any) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class VectorCompressionMismatchError(ModelVersionMismatchError):
    """The index's vector field is compressed otherwise than ``SEARCH_VECTOR_COMPRESSION``
    asks. Like the pin, the compression is fixed when the field is created, so it is
    reported (and exits) as a pin mismatch does; nothing is changed."""

    error_code = "VectorCompressionMismatch"


# How a person creates a missing index: named in every "does not exist" message.
CREATE_INDEX_REMEDY = (
    "create it with `imgsearch ensure-index` (an empty index, for a container: then `imgsearch backfill` "
    "or `upload`) or `imgsearch index PATH` (a folder)"
)


class IndexNotFoundError(ImageSearchError):
    """The index does not exist yet; run ``imgsearch ensure-index`` or the provisioning hook."""

    error_code = "IndexNotFound"


class DocumentNotFoundError(ImageSearchError, LookupError):
    """No document with that key in the index, or its image is no longer where it was indexed
    from (answered 404 by the HTTP endpoints)."""

    error_code = "DocumentNotFound"


class CorruptIndexError(ImageSearchError):
    """The numpy index's files do not match its manifest (edited or damaged by hand). The
    message names the file; restore it from a backup or delete the index folder and backfill."""

    error_code = "CorruptIndex"


class BulkIndexingAborted(ImageSearchError):
    """Too many items in a row failed with transient errors; the service looks unavailable.

    Items already written stay written; the rest are picked up by the next run.
    """

    error_code = "BulkIndexingAborted"


class ServiceError(ImageSearchError, HttpResponseError):
    """An Azure-style error answer: ``{"error": {"code": ..., "message": ...}}`` + status,
    or no answer at all (``status_code`` None: unreachable, timed out).

    ``code``, ``error_message`` and ``status_code`` are always set. ``retriable`` tells
    callers whether trying again later can help (429, 5xx, no answer) or not (other 4xx).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status_code: int | None,
        response: Any = None,
        retry_after: float | None = None,
    ) -> None:
        HttpResponseError.__init__(self, message=f"({code}) {message}", response=response)
        # HttpResponseError derives these from the response; set them explicitly so the
        # error carries them even when it was built without a response object.
        self.code = code
        self.error_code = code
        self.error_message = message
        self.status_code = status_code
        self.retry_after = retry_after

    @property
    def retriable(self) -> bool:
        return self.status_code is None or self.status_code in (408, 429) or self.status_code >= 500


class VisionServiceError(ServiceError):
    """The Vision service (Azure or the local stand-in) answered with an error."""


class VisionAuthenticationError(VisionServiceError):
    """401/403 from the Vision service, or no token to send: the key or token is missing,
    wrong or lacks a role. Never worth retrying as it is."""

    @property
    def retriable(self) -> bool:
        return False


class VisionRequestError(VisionServiceError):
    """A 4xx validation error (bad image, bad text, bad parameter). Never retried."""


class VisionThrottledError(VisionServiceError):
    """429 after the retries ran out. ``retry_after`` is the server's last hint in seconds."""


class SearchServiceError(ServiceError):
    """Azure AI Search refused a request (after retries, where retrying could help), or could
    not be reached."""


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class Classification:
    """What an edge needs to know about an error.

    ``kind``: ``"input"`` (the caller's own input, including a Vision 4xx about it: never retried;
    a bulk run records it and goes on); ``"configuration"`` (a wrong setting or refused
    credential), ``"pin"`` (a model version mismatch) and ``"failed"`` (anything else raised on
    purpose), which stop a bulk run; ``"unavailable"`` (throttled, failing, unreachable, or no
    index yet: the only retriable kind); ``"interrupted"`` (Ctrl-C); ``"bug"`` (not ours)."""

    kind: str
    exit_code: int
    http_status: int
    code: str

    @property
    def retriable(self) -> bool:
        return self.kind == "unavailable"


def classify(exc: BaseException) -> Classification:
    """The one map from an error to exit code, HTTP status, error code and retry decision."""
    code = getattr(exc, "error_code", None) or type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        return Classification("interrupted", EXIT_INTERRUPTED, 500, "Interrupted")
    if isinstance(exc, BadRequest):
        return Classification("input", EXIT_USAGE, exc.status, code)
    if isinstance(exc, InvalidInputError):
        return Classification("input", EXIT_USAGE, 400, code)
    if isinstance(exc, ModelVersionMismatchError):
        return Classification("pin", EXIT_PIN_MISMATCH, 500, code)
    if isinstance(exc, ConfigurationError):
        return Classification("configuration", EXIT_USAGE, 500, code)
    if isinstance(exc, IndexNotFoundError):
        # A set-up step not taken, for a person (exit 2, as a missing container); a service
        # caller sees 503 and a bulk run retries (another process may be creating it).
        return Classification("unavailable", EXIT_USAGE, 503, code)
    if isinstance(exc, DocumentNotFoundError):
        return Classification("failed", EXIT_FAILED, 404, code)
    if isinstance(exc, VisionAuthenticationError):
        return Classification("configuration", EXIT_USAGE, 500, "VisionAuthentication")
    if isinstance(exc, VisionRequestError):
        return Classification("input", EXIT_USAGE, 400, exc.code or "InvalidRequest")
    if isinstance(exc, ServiceError):
        if exc.retriable:
            return Classification("unavailable", EXIT_FAILED, 503, "ServiceUnavailable")
        if exc.status_code in (401, 403):
            return Classification("configuration", EXIT_USAGE, 500, code)
        return Classification("failed", EXIT_FAILED, 500, code)
    if isinstance(exc, ImageSearchError):
        return Classification("failed", EXIT_FAILED, 500, code)
    if isinstance(exc, HttpResponseError):  # an Azure SDK's own error answer
        status = exc.status_code or 0
        if status in (408, 429) or status >= 500:
            return Classification("unavailable", EXIT_FAILED, 503, "ServiceUnavailable")
        if status in (401, 403):
            return Classification("configuration", EXIT_USAGE, 500, "Unauthorized")
        return Classification("failed", EXIT_FAILED, 500, "ServiceError")
    if isinstance(exc, (AzureError, OSError)):  # no answer: network, DNS, a file read
        return Classification("unavailable", EXIT_FAILED, 503, "ServiceUnavailable")
    return Classification("bug", EXIT_FAILED, 500, "InternalServerError")


def describe(exc: BaseException) -> str:
    """One line about ``exc`` for a person (the first line of its message)."""
    if isinstance(exc, ServiceError):
        text = f"({exc.code}) {exc.error_message}"
    elif isinstance(exc, AzureError):
        text = f"{type(exc).__name__}: {exc.message}"
    else:
        text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
