"""``VisionPool``: several Azure AI Vision resources of one model version, used as one vectorizer.

Each resource has its own quota, so resources in several regions add up; ``services`` builds
one ``VisionClient`` per ``VISION_ENDPOINT`` entry, each with its own pace and backoff. Bulk
work spreads the calls over every resource, a single call takes the first healthy one, and a
resource that throttles or fails is paused on its own. The pin holds across the pool: a
resource that answers another model version (or vector length) than asked or than the others
answered is refused. (design: docs/design.md#vision-dispatch-and-the-pool)
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Sequence
from typing import Any

from indexer.documents import Embedding
from indexer.errors import ModelVersionMismatchError
from indexer.model_versions import answers_for
from indexer.vectorizers.vision.client import VisionClient
from indexer.vectorizers.vision.dispatch import Gate, NoResourceLeft, Retriable, dispatch

logger = logging.getLogger(__name__)


class VisionPool:
    """Several ``VisionClient``s of one model version behind the ``Vectorizer`` protocol.

    :param clients: one per resource, in order of preference (the first is used for single
        calls while it is healthy). Give each its own ``RateLimiter`` for bulk work.
    :keyword spread: True for bulk work (spread calls over every resource), False for single
        calls (the first healthy resource).
    """

    def __init__(self, clients: Sequence[VisionClient], *, spread: bool) -> None:
        if not clients:
            raise ValueError("a VisionPool needs at least one VisionClient")
        versions = {client.model_version for client in clients}
        if len(versions) != 1:
            raise ValueError(f"every resource of a pool must be asked for one model version, got {sorted(versions)}")
        self.clients = list(clients)
        self.spread = spread
        self.model_version = self.clients[0].model_version
        self._by_gate = {id(client.gate): client for client in self.clients}
        self._rotation = itertools.count()
        self._answered: tuple[str, int] | None = None  # (model version, dimensions) of the first answer
        self._lock = threading.Lock()

    # --- the Vectorizer protocol ---------------------------------------------------------

    def vectorize_image(self, image: bytes) -> Embedding:
        return self._call(*self.clients[0].prepare(image))

    def vectorize_image_url(self, url: str) -> Embedding:
        return self._call(*self.clients[0].prepare(url=url))

    def vectorize_text(self, text: str) -> Embedding:
        return self._call(*self.clients[0].prepare(text=text))

    # --- what the pool knows ---------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        return [client.endpoint for client in self.clients]

    @property
    def gates(self) -> list[Gate]:
        return [client.gate for client in self.clients]

    def refused(self) -> dict[str, str]:
        """Endpoint -> why it is not used (another model version)."""
        return {client.endpoint: client.gate.refused for client in self.clients if client.gate.refused}

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def __enter__(self) -> VisionPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "spread" if self.spread else "first healthy"
        return f"VisionPool({self.endpoints!r}, model_version={self.model_version!r}, {mode})"

    # --- internals -------------------------------------------------------------------------

    def _call(self, path: str, data: bytes | None, body: dict[str, Any] | None) -> Embedding:
        first = self.clients[0]
        try:
            return dispatch(
                self.gates,
                lambda gate: self._attempt(gate, path, data, body),
                policy=first._retry,
                operation=path.rsplit(":", 1)[-1],
                spread=self.spread,
                throttle_budget=first.throttle_budget,
                rotation=self._rotation,
            )
        except NoResourceLeft as exc:
            raise ModelVersionMismatchError(
                f"no Vision resource of VISION_ENDPOINT is usable for model version {self.model_version!r}: "
                f"{'; '.join(exc.reasons)}. Every endpoint must serve the same model version (the index's pin).",
                expected=self.model_version,
                actual=sorted(self.refused().values()),
            ) from None

    def _attempt(self, gate: Gate, path: str, data: bytes | None, body: dict[str, Any] | None) -> Embedding:
        client = self._by_gate[id(gate)]
        embedding = client.attempt(path, data=data, json_body=body)
        problem = self._problem(embedding)
        if problem:
            gate.refused = problem
            logger.error("refusing Vision resource %s for the rest of this run: it %s", client.endpoint, problem)
            raise Retriable(lambda attempts: RuntimeError(problem), refused=True, reason=problem)
        return embedding

    def _problem(self, embedding: Embedding) -> str:
        """Why an answer cannot be used, or "" when it can."""
        reported = (embedding.model_version, embedding.dimensions)
        if not answers_for(embedding.model_version, self.model_version):
            return f"answers model version {embedding.model_version!r} to a request for {self.model_version!r}"
        with self._lock:
            if self._answered is None:
                self._answered = reported
                return ""
            if reported != self._answered:
                return (
                    f"answers with model version {reported[0]!r} ({reported[1]} dimensions) where another resource "
                    f"answered {self._answered[0]!r} ({self._answered[1]} dimensions)"
                )
        return ""
