"""Typed errors. Each one names what was wrong so that a person can act on it.

Service errors build on azure-core's ``HttpResponseError`` (Azure SDK convention), so
callers that already handle Azure SDK errors handle ours too.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import HttpResponseError


class ImageSearchError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(ImageSearchError):
    """A setting is missing or invalid; the message names the environment variable."""


class InputLimitError(ImageSearchError, ValueError):
    """An input breaks one of the service's documented limits (size, dimensions, words).

    ``limit`` is a short stable name of the broken limit, e.g. ``"image_bytes"``.
    """

    def __init__(self, message: str, *, limit: str, value: Any = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value


class InvalidImageError(ImageSearchError, ValueError):
    """The bytes are not an image the service can decode (empty, truncated, not an image)."""


class ModelVersionMismatchError(ImageSearchError):
    """A vector's model version or dimension count differs from the index's pin.

    Raised before anything is written or searched, so the index is never mixed.
    """

    def __init__(self, message: str, *, expected: Any, actual: Any) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class IndexNotFoundError(ImageSearchError):
    """The index does not exist yet; run ``imgsearch index`` or the provisioning hook."""


class ServiceError(HttpResponseError):
    """An Azure-style error answer: ``{"error": {"code": ..., "message": ...}}`` + status.

    ``code``, ``message`` and ``status_code`` are always set. ``retriable`` tells callers
    whether trying again later can help (429, 5xx) or not (other 4xx).
    """

    def __init__(self, message: str, *, code: str, status_code: int | None, response: Any = None) -> None:
        super().__init__(message=f"({code}) {message}", response=response)
        # HttpResponseError derives these from the response; set them explicitly so the
        # error carries them even when it was built without a response object.
        self.code = code
        self.error_message = message
        self.status_code = status_code

    @property
    def retriable(self) -> bool:
        return self.status_code is None or self.status_code == 429 or self.status_code >= 500


class VisionServiceError(ServiceError):
    """The Vision service (Azure or the local stand-in) answered with an error."""


class VisionAuthenticationError(VisionServiceError):
    """401/403 from the Vision service: the key or token is missing, wrong or lacks a role."""


class VisionRequestError(VisionServiceError):
    """A 4xx validation error (bad image, bad text, bad parameter). Never retried."""


class VisionThrottledError(VisionServiceError):
    """429 after the retries ran out. ``retry_after`` is the server's last hint in seconds."""

    def __init__(self, message: str, *, code: str, status_code: int | None, retry_after: float | None = None,
                 response: Any = None) -> None:
        super().__init__(message, code=code, status_code=status_code, response=response)
        self.retry_after = retry_after
