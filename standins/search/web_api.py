"""How the Azure AI Search double calls a custom Web API, as the service does for a
``customWebApi`` vectorizer at query time and for a ``WebApiSkill`` during indexing.

The contract is the documented one ("Custom Web API skill", cognitive-search-custom-skill-web-api,
"Sample input/output JSON structure"; "Custom Web API vectorizer", vector-search-vectorizer-
custom-web-api, "JSON payload structure"):

- the request is ``{"values": [{"recordId", "data": {...}}]}``, sent with the configured
  ``httpMethod`` and ``httpHeaders`` and the configured ``timeout``;
- a success status and a JSON body (``Content-Type`` checked) with a ``values`` array, one object
  per record sent, each with ``recordId``, ``data``, ``errors`` and ``warnings``; answers for
  records that were not sent are discarded, and a missing or repeated ``recordId`` makes that
  record invalid;
- the indexer "retries twice for certain standard HTTP status codes": 502, 503 and 429.

With ``authResourceId`` the service sends a Microsoft Entra token of its managed identity for
that resource; the double has no identity and sends ``Authorization: Bearer`` with a fixed
stand-in token instead (an assumption, in FIDELITY.md), which a local endpoint on loopback
accepts like any caller. This module shares nothing with the endpoint it calls
(``indexer.entrypoints.vectorize``): it is written from the documents above.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

RETRIED_STATUSES = frozenset({429, 502, 503})  # "retries twice for ... 502, 503, 429"
RETRIES = 2
STAND_IN_BEARER_TOKEN = "search-double-managed-identity-token"


@dataclass(frozen=True)
class WebApiTarget:
    """Where and how to call: the parameters a vectorizer or a skill definition holds."""

    uri: str
    http_method: str = "POST"
    http_headers: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 30.0
    auth_resource_id: str | None = None


class WebApiCallError(Exception):
    """The call as a whole failed. ``reason`` is ``unreachable`` (no answer in time),
    ``status`` (an error status, in ``status``) or ``invalid`` (the answer breaks the contract)."""

    def __init__(self, reason: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.message = message


@dataclass
class RecordAnswer:
    """One record's answer: its ``data`` unless it is invalid, and its errors and warnings as the
    endpoint wrote them (each a message string)."""

    data: dict[str, Any] | None
    errors: list[str]
    warnings: list[str]
    invalid: str = ""  # why the record's answer cannot be used, if it cannot


@dataclass(frozen=True)
class CallRecord:
    """A call the double made, for tests to inspect."""

    uri: str
    method: str
    headers: dict[str, str]
    records: int
    status: int | None


def call_web_api(
    target: WebApiTarget,
    records: list[tuple[str, dict[str, Any]]],
    *,
    log: Callable[[CallRecord], None] = lambda record: None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    retries: int = RETRIES,
) -> dict[str, RecordAnswer]:
    """Send ``(recordId, data)`` pairs in one request; return each sent record's answer by id.

    Raises ``WebApiCallError`` when the call as a whole fails (after ``retries``: the indexer's
    documented two for skills; a vectorizer at query time is given none, an assumption)."""
    body = json.dumps({"values": [{"recordId": rid, "data": data} for rid, data in records]})
    headers = {**target.http_headers, "Content-Type": "application/json", "Accept": "application/json"}
    if target.auth_resource_id:
        headers["Authorization"] = f"Bearer {STAND_IN_BEARER_TOKEN}"
    http = session or requests
    response = None
    for attempt in range(retries + 1):
        try:
            response = http.request(
                target.http_method,
                target.uri,
                data=body.encode("utf-8"),
                headers=headers,
                timeout=target.timeout_seconds,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            log(CallRecord(target.uri, target.http_method, headers, len(records), None))
            raise WebApiCallError("unreachable", f"{type(exc).__name__}") from None
        log(CallRecord(target.uri, target.http_method, headers, len(records), response.status_code))
        if response.status_code in RETRIED_STATUSES and attempt < retries:
            sleep(min(2.0, 0.1 * 2**attempt))
            continue
        break
    assert response is not None
    if not 200 <= response.status_code < 300:
        raise WebApiCallError("status", f"the endpoint answered {response.status_code}", status=response.status_code)
    if not response.headers.get("content-type", "").lower().startswith("application/json"):
        raise WebApiCallError("invalid", "the answer is not application/json")
    try:
        payload = response.json()
    except ValueError:
        raise WebApiCallError("invalid", "the answer is not valid JSON") from None
    values = payload.get("values") if isinstance(payload, dict) else None
    if not isinstance(values, list):
        raise WebApiCallError("invalid", "the answer has no 'values' array")
    sent = {rid for rid, _ in records}
    seen: dict[str, int] = {}
    for value in values:
        rid = value.get("recordId") if isinstance(value, dict) else None
        if isinstance(rid, str):
            seen[rid] = seen.get(rid, 0) + 1
    answers: dict[str, RecordAnswer] = {}
    for value in values:
        rid = value.get("recordId") if isinstance(value, dict) else None
        if not isinstance(rid, str) or rid not in sent:
            continue  # "any record in the response containing a recordId which wasn't part of the request is discarded"
        if seen[rid] > 1:
            answers[rid] = RecordAnswer(None, [], [], invalid=f"the recordId '{rid}' is repeated in the answer")
            continue
        answers[rid] = _record_answer(value)
    for rid in sent - answers.keys():
        answers[rid] = RecordAnswer(None, [], [], invalid=f"the answer has no record with recordId '{rid}'")
    return answers


def _record_answer(value: dict[str, Any]) -> RecordAnswer:
    missing = [name for name in ("data", "errors", "warnings") if name not in value]
    if missing:
        # "errors"/"warnings": "This property is required, but can have a null value."
        return RecordAnswer(None, [], [], invalid=f"the record's answer has no '{missing[0]}' property")
    data = value["data"]
    if not isinstance(data, dict):
        return RecordAnswer(None, [], [], invalid="the record's 'data' is not an object")
    errors = _messages(value["errors"])
    warnings = _messages(value["warnings"])
    if errors is None or warnings is None:
        return RecordAnswer(None, [], [], invalid="the record's 'errors' or 'warnings' is not an array of messages")
    return RecordAnswer(data, errors, warnings)


def _messages(items: Any) -> list[str] | None:
    if items is None:
        return []
    if not isinstance(items, list):
        return None
    messages = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("message"), str):
            messages.append(item["message"])
        elif isinstance(item, str):
            messages.append(item)
        else:
            return None
    return messages
