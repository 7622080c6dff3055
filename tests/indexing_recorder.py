"""An ASGI recorder of every indexing action that passes through to the search double.

The double's index keeps only the last write of a document, so it cannot show a document
written twice; its request log counts requests, not documents. ``IndexingRecorder`` sits in
front of the unchanged double, reads each ``docs/search.index`` request body (the actions) and
the answer (one status per document) off the wire, and passes both through untouched. The
real ``azure-search-documents`` client still talks to the real double over HTTP, and a test or
benchmark can say "every key was written exactly once".
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_INDEXING_PATH = re.compile(r"^/indexes(?:\('(?P<quoted>(?:[^']|'')*)'\)|/(?P<plain>[^/()]+))/docs/search\.index$")


async def read_request_body(receive: Callable) -> bytes:
    """The whole body of an ASGI request, however many messages it comes in."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


@dataclass(frozen=True)
class RecordedAction:
    """One indexing action as sent, and what the service answered for it.

    ``http_status`` is the whole request's status: 200/207 carry per-document answers
    (``applied`` and ``document_status``); any other status means nothing was applied."""

    index: str
    action: str  # upload, merge, mergeOrUpload, delete
    key: str
    http_status: int
    applied: bool
    document_status: int | None


@dataclass
class IndexingRecorder:
    """ASGI middleware recording every indexing action passing through to ``app``."""

    app: Any
    _actions: list[RecordedAction] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        match = _INDEXING_PATH.match(scope.get("path", "")) if scope.get("type") == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        index = match["quoted"].replace("''", "'") if match["quoted"] is not None else match["plain"]
        body = await read_request_body(receive)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        answer: dict[str, Any] = {"status": 0, "body": b""}

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")
            await send(message)

        await self.app(scope, replay, capture)
        self._record(index, body, answer["status"], answer["body"])

    def _record(self, index: str, request_body: bytes, status: int, response_body: bytes) -> None:
        try:
            actions = json.loads(request_body)["value"]
        except (ValueError, KeyError, TypeError):
            return  # a malformed body: the double refused it whole, no action to record
        results: dict[str, dict] = {}
        if status in (200, 207):
            results = {r.get("key"): r for r in json.loads(response_body).get("value", [])}
        with self._lock:
            for action in actions:
                key = action.get("id")
                result = results.get(key)
                self._actions.append(
                    RecordedAction(
                        index=index,
                        action=action.get("@search.action", "upload"),
                        key=key,
                        http_status=status,
                        applied=bool(result and result.get("status")),
                        document_status=None if result is None else result.get("statusCode"),
                    )
                )

    def actions_for(self, index: str, action: str | None = None) -> list[RecordedAction]:
        with self._lock:
            return [a for a in self._actions if a.index == index and (action is None or a.action == action)]

    def applied_per_key(self, index: str, action: str = "upload") -> Counter:
        """Key -> how many times the service applied that action to it."""
        return Counter(a.key for a in self.actions_for(index, action) if a.applied)

    def sent_per_key(self, index: str, action: str = "upload") -> Counter:
        return Counter(a.key for a in self.actions_for(index, action))

    def uploads_per_key(self, index: str) -> dict[str, int]:
        """Key -> how many upload or mergeOrUpload actions the service applied to it."""
        counts = self.applied_per_key(index, "upload") + self.applied_per_key(index, "mergeOrUpload")
        return dict(counts)
