"""How the Azure AI Search double calls a custom Web API, as the service does for a
``customWebApi`` vectorizer and a ``WebApiSkill``: the documented payload, method, headers,
timeout and retries (rows W1-W7 of ``standins/FIDELITY.md``). Written from those documents, it
shares nothing with the endpoint it calls.
"""

from __future__ import annotations

import http
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from standins.search.definitions import WebApiParameters
from standins.search.errors import SearchServiceError

RETRIED_STATUSES = frozenset({429, 502, 503})  # "retries twice for ... 502, 503, 429"
STAND_IN_BEARER_TOKEN = "search-double-managed-identity-token"


class WebApiCallError(Exception):
    """The call as a whole failed: ``reason`` is ``unreachable`` (no answer in time),
    ``status`` (an error status, in ``status``) or ``invalid`` (the answer breaks the contract)."""

    def __init__(self, reason: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.message = message


@dataclass
class RecordAnswer:
    """One record's answer: its ``data`` (None when ``invalid`` says why it cannot be used), and
    the messages of its errors and warnings."""

    data: dict[str, Any] | None
    errors: list[str]
    warnings: list[str]
    invalid: str = ""


@dataclass(frozen=True)
class CallRecord:
    """A call the double made, for tests to inspect."""

    uri: str
    method: str
    headers: dict[str, str]
    records: int
    status: int | None


def call_web_api(
    target: WebApiParameters,
    records: list[tuple[str, dict[str, Any]]],
    *,
    log: Callable[[CallRecord], None],
    retries: int = 2,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, RecordAnswer]:
    """Send ``(recordId, data)`` pairs in one request; each sent record's answer by id.

    ``WebApiCallError`` when the call as a whole fails after ``retries`` (the indexer's documented
    two for skills; a vectorizer at query time is given none, an assumption)."""
    body = json.dumps({"values": [{"recordId": rid, "data": data} for rid, data in records]}).encode("utf-8")
    headers = {**target.http_headers, "Content-Type": "application/json", "Accept": "application/json"}
    if target.auth_resource_id:
        headers["Authorization"] = f"Bearer {STAND_IN_BEARER_TOKEN}"
    for attempt in range(retries + 1):
        try:
            response = requests.request(
                target.http_method,
                target.uri,
                data=body,
                headers=headers,
                timeout=target.timeout_seconds,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            log(CallRecord(target.uri, target.http_method, headers, len(records), None))
            raise WebApiCallError("unreachable", type(exc).__name__) from None
        log(CallRecord(target.uri, target.http_method, headers, len(records), response.status_code))
        if response.status_code not in RETRIED_STATUSES or attempt == retries:
            break
        sleep(min(2.0, 0.1 * 2**attempt))
    if not 200 <= response.status_code < 300:
        raise WebApiCallError("status", f"the endpoint answered {response.status_code}", status=response.status_code)
    if not response.headers.get("content-type", "").lower().startswith("application/json"):
        raise WebApiCallError("invalid", "the answer is not application/json")
    try:
        values = response.json().get("values")
    except (ValueError, AttributeError):
        values = None
    if not isinstance(values, list):
        raise WebApiCallError("invalid", "the answer is not JSON with a 'values' array")
    ids = [value.get("recordId") if isinstance(value, dict) else None for value in values]
    seen = Counter(ids)
    answers = {}
    for rid, _ in records:
        # "any record in the response containing a recordId which wasn't part of the request is discarded"
        if seen[rid] != 1:
            problem = "is repeated in the answer" if seen[rid] else "has no record in the answer"
            answers[rid] = RecordAnswer(None, [], [], invalid=f"the recordId '{rid}' {problem}")
        else:
            answers[rid] = _record_answer(values[ids.index(rid)])
    return answers


def _record_answer(value: dict[str, Any]) -> RecordAnswer:
    missing = [name for name in ("data", "errors", "warnings") if name not in value]
    if missing:  # "errors"/"warnings": "This property is required, but can have a null value."
        return RecordAnswer(None, [], [], invalid=f"the record's answer has no '{missing[0]}' property")
    errors, warnings = _messages(value["errors"]), _messages(value["warnings"])
    if not isinstance(value["data"], dict) or errors is None or warnings is None:
        return RecordAnswer(None, [], [], invalid="the record's 'data', 'errors' or 'warnings' has the wrong shape")
    return RecordAnswer(value["data"], errors, warnings)


def _messages(items: Any) -> list[str] | None:
    """The messages of an ``errors`` or ``warnings`` array (null is none); None if malformed."""
    if items is None:
        return []
    if not isinstance(items, list):
        return None
    messages = [item.get("message") if isinstance(item, dict) else item for item in items]
    return [m for m in messages if isinstance(m, str)] if all(isinstance(m, str) for m in messages) else None


def vectorize_text(
    target: WebApiParameters, text: str, dimensions: int, log: Callable[[CallRecord], None]
) -> list[float]:
    """Vectorize a query's text as the service does: one record, ``recordId`` "0", the text
    under ``data.text``, the vector read from ``data.vector`` (the record's errors and warnings
    are ignored). Failures get the live texts with empty codes (Azure/azure-search-vector-samples
    #133, #325, #300)."""
    prefix = "Could not complete vectorization action."
    invalid = SearchServiceError(
        400, "", "Could not vectorize the query because the vectorization endpoint response is invalid."
    )
    try:
        answer = call_web_api(target, [("0", {"text": text})], log=log, retries=0)["0"]
    except WebApiCallError as error:
        if error.reason == "unreachable":
            raise SearchServiceError(400, "", f"{prefix} Could not reach the vectorization endpoint.") from None
        if error.reason == "status" and error.status is not None:
            phrase = http.HTTPStatus(error.status).phrase if error.status in list(http.HTTPStatus) else ""
            message = f"{prefix} The vectorization endpoint returned status code '{error.status}' ({phrase})."
            raise SearchServiceError(400, "", message) from None
        raise invalid from None
    vector = (answer.data or {}).get("vector")
    if not isinstance(vector, list) or len(vector) != dimensions or not all(type(x) in (int, float) for x in vector):
        raise invalid
    return [float(x) for x in vector]
