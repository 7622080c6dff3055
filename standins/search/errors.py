"""The error answers of the Azure AI Search double: the service's envelope
``{"error": {"code", "message", "details"?}}``, its "The request is invalid" 400, and the
double's own 400 for what imgsearch never sends (``not_served``)."""

from __future__ import annotations

from typing import Any


class SearchServiceError(Exception):
    """An error answer: ``status`` and ``{"error": {"code", "message", "details"}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def invalid_request(
    parameter: str, detail: str, *, code: str = "InvalidRequestParameter", detail_code: str = "InvalidField"
) -> SearchServiceError:
    """The service's 400 shape: ``The request is invalid. Details: <parameter> : <detail>``."""
    return SearchServiceError(
        400,
        code,
        f"The request is invalid. Details: {parameter} : {detail}",
        details=[{"code": detail_code, "message": f"{detail} Parameters: {parameter}"}],
    )


def invalid_definition(detail: str) -> SearchServiceError:
    """A definition the service refuses: ``The request is invalid. Details: definition : ...``."""
    return invalid_request("definition", detail)


def not_served(what: str) -> SearchServiceError:
    """The one answer to a request imgsearch never sends, whether Azure would take it or not:
    the double serves the product's traffic and nothing more (``standins/FIDELITY.md``)."""
    return SearchServiceError(
        400,
        "NotSupportedByStandIn",
        f"The search double does not serve {what}: it serves only what imgsearch sends "
        f"(standins/FIDELITY.md). Use a real search service for anything else.",
    )
