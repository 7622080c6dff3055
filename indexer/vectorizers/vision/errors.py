"""Turn a Vision error answer into the typed exception callers handle.

Azure's body is ``{"error": {"code", "message", "innererror"?: {"code", "message"}}}``. The
inner code is the one that names the problem (``InvalidImageFormat`` rather than the generic
``InvalidRequest``), so it becomes the exception's ``code``; both messages are kept. A body
that is not Azure's shape (a proxy's HTML page, an empty 502) still yields a typed error,
with the ``x-ms-error-code`` header or the HTTP status as its code.
"""

from __future__ import annotations

from typing import Any

from indexer.errors import VisionAuthenticationError, VisionRequestError, VisionServiceError, VisionThrottledError
from indexer.retry import retry_after_from_headers


def _body_text(response: Any) -> str:
    """The body as text from an azure-core ``HttpResponse`` (``text()``) or a requests one."""
    text = response.text
    return (text() if callable(text) else text) or ""


def _error_fields(response: Any) -> tuple[str, str]:
    """(code, message) from Azure's error body, falling back to header and status."""
    header_code = response.headers.get("x-ms-error-code")
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or header_code or response.status_code)
        message = str(error.get("message") or response.reason or "")
        inner = error.get("innererror")
        if isinstance(inner, dict) and inner.get("code"):
            code = str(inner["code"])
            inner_message = inner.get("message")
            if inner_message and inner_message != message:
                message = f"{message} {inner_message}".strip()
        return code, message
    text = _body_text(response).strip().replace("\n", " ")
    detail = f": {text[:200]}" if text else ""
    return str(
        header_code or response.status_code
    ), f"HTTP {response.status_code} {response.reason or ''}".strip() + detail


def error_from_response(response: Any, *, operation: str, attempts: int = 1) -> VisionServiceError:
    """The typed error for a final (not-to-be-retried, or out-of-retries) error answer."""
    code, message = _error_fields(response)
    status = response.status_code
    text = f"{operation} failed with HTTP {status}: {message}"
    if attempts > 1:
        text += f" (gave up after {attempts} attempts)"
    if status in (401, 403):
        text += (
            " Check the key (Ocp-Apim-Subscription-Key) or, with Microsoft Entra ID, that the identity has "
            "the 'Cognitive Services User' role on the Vision resource, and that the endpoint is right."
        )
        return VisionAuthenticationError(text, code=code, status_code=status, response=None)
    if status == 429:
        return VisionThrottledError(
            text, code=code, status_code=status, retry_after=retry_after_from_headers(response.headers), response=None
        )
    if 400 <= status < 500:
        return VisionRequestError(text, code=code, status_code=status, response=None)
    return VisionServiceError(text, code=code, status_code=status, response=None)
