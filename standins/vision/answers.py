"""The error answers Azure AI Vision gives, as the Vision stand-in must reproduce them.

Every error is ``{"error": {"code", "message", "innererror"?}}`` with the outer code also in the
``x-ms-error-code`` header. Each answer is confirmed against Microsoft's material (SDK
troubleshooting sections, the REST reference, issues quoting live answers) or, where no live
answer was found, is our choice in Azure's envelope and naming style: ``standins/FIDELITY.md``
(rows V1 to V18 and E1) gives each one's source. A limit of the stand-in itself is never one
of Azure's permanent 4xx but a 503 that names the stand-in (``stand_in_limit``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    code: str
    message: str
    inner_code: str | None = None
    inner_message: str | None = None
    retry_after: float | None = None  # seconds; sent as an integer ``Retry-After`` header
    # Also send the exact wait as ``retry-after-ms`` (the rate limit's own 429s do).
    precise_retry_after: bool = False

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner_code:
            error["innererror"] = {"code": self.inner_code, "message": self.inner_message or self.message}
        return {"error": error}

    def headers(self) -> dict[str, str]:
        headers = {"x-ms-error-code": self.code}
        if self.retry_after is not None:
            # HTTP's Retry-After is whole seconds; round up so a client never comes back early.
            headers["Retry-After"] = str(max(0, math.ceil(self.retry_after)))
            if self.precise_retry_after:
                # Whole seconds say "1" for a wait of 3 ms; Azure AI services' finer hint (the
                # header azure-core's retry policy reads first) tells the wait to the millisecond.
                headers["retry-after-ms"] = str(max(1, math.ceil(self.retry_after * 1000)))
        return headers


# --- authentication ------------------------------------------------------------------------


def missing_key() -> ErrorAnswer:
    return ErrorAnswer(
        401,
        "401",
        "Access denied due to missing subscription key. Make sure to include "
        "subscription key when making requests to an API.",
    )


def invalid_key() -> ErrorAnswer:
    return ErrorAnswer(
        401,
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. "
        "Make sure to provide a valid key for an active subscription and use a "
        "correct regional API endpoint for your resource.",
    )


def invalid_token() -> ErrorAnswer:
    return ErrorAnswer(401, "PermissionDenied", "Principal does not have access to API/Operation.")


# --- routing and parameters ----------------------------------------------------------------


def resource_not_found() -> ErrorAnswer:
    return ErrorAnswer(404, "404", "Resource not found")


def api_version_gone(api_version: str) -> ErrorAnswer:
    return ErrorAnswer(
        410,
        "Gone",
        f"Computer Vision {api_version} has been deprecated. Please upgrade to the latest Computer Vision GA service.",
    )


def missing_model_version(parameter: str) -> ErrorAnswer:
    return ErrorAnswer(
        400,
        "InvalidRequest",
        "The request is invalid.",
        "ParameterMissing",
        f"The query parameter '{parameter}' is required.",
    )


def unsupported_model_version(requested: str, supported: list[str]) -> ErrorAnswer:
    return ErrorAnswer(
        400,
        "InvalidRequest",
        "The request is invalid.",
        "InvalidModel",
        f"Model version '{requested}' is not supported. Supported model versions: {', '.join(supported)}.",
    )


def unsupported_media_type(content_type: str | None, allowed: list[str]) -> ErrorAnswer:
    shown = content_type or "(none)"
    return ErrorAnswer(
        415,
        "InvalidRequest",
        "Unsupported media type.",
        "UnsupportedMediaType",
        f"Content-Type {shown} is not supported. Supported media types: {', '.join(allowed)}.",
    )


def malformed_body(detail: str) -> ErrorAnswer:
    return ErrorAnswer(400, "InvalidRequest", "Request body is invalid.", "BadArgument", detail)


# --- input limits --------------------------------------------------------------------------


def invalid_image_format(detail: str = "Input data is not a valid image.") -> ErrorAnswer:
    return ErrorAnswer(400, "InvalidRequest", "Image format is not valid.", "InvalidImageFormat", detail)


IMAGE_BYTES_MESSAGE = "The image size is not allowed to be zero or larger than 20971520 bytes."
IMAGE_URL_MESSAGE = "Image URL is badly formatted or not accessible."


def image_bytes_not_allowed() -> ErrorAnswer:
    """An empty image, or one of 20 MB or more: Azure's answer has no inner code."""
    return ErrorAnswer(400, "InvalidRequest", IMAGE_BYTES_MESSAGE)


def image_url_not_accessible() -> ErrorAnswer:
    """A URL the service cannot fetch (bad, unreachable, private, failing): no inner code."""
    return ErrorAnswer(400, "InvalidRequest", IMAGE_URL_MESSAGE)


def invalid_image_size(detail: str) -> ErrorAnswer:
    """Pixel dimensions outside (10, 16,000): inner code ``InvalidImageSize``."""
    return ErrorAnswer(400, "InvalidRequest", "Image size is not valid.", "InvalidImageSize", detail)


def stand_in_limit(detail: str) -> ErrorAnswer:
    """A resource limit of this stand-in, not of Azure: transient-shaped (503), so no client
    records an image Azure accepts as permanently refused."""
    return ErrorAnswer(
        503,
        "ServiceUnavailable",
        f"The local Vision stand-in cannot take this input: {detail} This is a limit of the stand-in, "
        f"not of Azure AI Vision, which accepts it.",
    )


def invalid_text(detail: str) -> ErrorAnswer:
    return ErrorAnswer(400, "InvalidRequest", "Text is not valid.", "InvalidParameter", detail)


# --- throttling and service faults ---------------------------------------------------------


def _operation_name(path: str) -> str:
    return "Vectorize Text" if path.endswith("vectorizeText") else "Vectorize Image"


def too_many_requests(path: str, retry_after: float, *, precise: bool = False) -> ErrorAnswer:
    seconds = max(0, math.ceil(retry_after))
    return ErrorAnswer(
        429,
        "429",
        f"Requests to the {_operation_name(path)} Operation under Computer Vision API "
        f"(v4.0) have exceeded rate limit of your current pricing tier. Please retry "
        f"after {seconds} second{'s' if seconds != 1 else ''}. Please contact Azure "
        f"support service if you would like to further increase the default rate limit.",
        retry_after=retry_after,
        precise_retry_after=precise,
    )


def server_error(status: int, *, retry_after: float | None = None) -> ErrorAnswer:
    if status == 503:
        return ErrorAnswer(503, "ServiceUnavailable", "A transient error occurred. Try again.", retry_after=retry_after)
    if status == 502:
        return ErrorAnswer(502, "BadGateway", "The upstream service answered with an error.", retry_after=retry_after)
    if status == 504:
        return ErrorAnswer(
            504, "GatewayTimeout", "The upstream service did not answer in time.", retry_after=retry_after
        )
    return ErrorAnswer(
        status,
        "InternalServerError",
        "An unexpected error occurred.",
        "Unknown",
        "Unknown error.",
        retry_after=retry_after,
    )


def injected(status: int, path: str, retry_after: float | None) -> ErrorAnswer:
    """The answer for a fault the server injects on purpose (tests, benchmarks)."""
    if status == 429:
        return too_many_requests(path, retry_after if retry_after is not None else 1.0)
    if status >= 500:
        return server_error(status, retry_after=retry_after if status == 503 else None)
    if status == 408:
        return ErrorAnswer(408, "408", "The request timed out (injected fault).")
    return ErrorAnswer(status, str(status), "Injected fault.")
