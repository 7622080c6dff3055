"""``VisionClient``: the Azure AI Vision multimodal-embeddings REST API over ``requests``.

The same client talks to Azure and to the local vectorizer server (``indexer.vision.server``);
only the endpoint and credential differ. It implements ``indexer.vectorizers.Vectorizer``.

What it guarantees:
- inputs are checked against the service's documented limits before anything is sent, so a
  bad image costs no call (and no money) and the error names the broken limit;
- 429/5xx/connection failures are retried with bounded attempts (see ``retry.py``); other
  4xx are never retried;
- every failure surfaces as a typed error from ``indexer.errors``; keys and tokens never
  appear in a message or a log record;
- the returned ``Embedding`` carries the model version the *service reported*, which is what
  the index pin is checked against.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable, Iterator

import numpy as np
import requests
from requests.adapters import HTTPAdapter

from indexer.errors import InvalidImageError, VisionServiceError
from indexer.limits import check_text, inspect_image
from indexer.ratelimit import RateLimiter
from indexer.types import Embedding
from indexer.vision.auth import auth_for
from indexer.vision.contract import (API_VERSION_GA, JSON, OCTET_STREAM, VECTORIZE_IMAGE_PATH,
                                     VECTORIZE_TEXT_PATH, query_parameters)
from indexer.vision.errors import error_from_response, retry_after_of
from indexer.vision.retry import RetryPolicy, is_retriable_status

logger = logging.getLogger(__name__)

# Failures where the request may never have reached the service, or its answer was cut off:
# trying again is safe because vectorizing has no side effects.
_TRANSIENT_EXCEPTIONS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class VisionClient:
    """Client for ``retrieval:vectorizeImage`` and ``retrieval:vectorizeText``.

    :param endpoint: the resource endpoint, e.g. ``https://<name>.cognitiveservices.azure.com``
        or the local server's base URL.
    :param credential: ``AzureKeyCredential`` (resource key) or an azure-identity
        ``TokenCredential`` (Microsoft Entra ID).
    :keyword api_version: ``2024-02-01`` (GA); ``2023-02-01-preview`` sends ``modelVersion``
        as the older clients did (pass ``model_version="latest"`` to mimic them exactly).
    :keyword model_version: ``2023-04-15`` (multilingual) or ``2022-04-11`` (English only).
    :keyword timeout: seconds for each HTTP attempt (connect and read).
    :keyword max_retries: retries after the first attempt, for 429/5xx/connection failures.
    :keyword backoff_factor: base of the exponential backoff, in seconds.
    :keyword backoff_max: cap of one backoff delay, in seconds.
    :keyword session: a ``requests.Session`` to use (not closed by ``close``).
    :keyword rate_limiter: paces every HTTP attempt of every call (retries included) and is
        slowed down for all callers when the service answers 429; share one across threads.
    """

    def __init__(self, endpoint: str, credential: Any, *, api_version: str = API_VERSION_GA,
                 model_version: str = "2023-04-15", timeout: float = 30.0, max_retries: int = 5,
                 backoff_factor: float = 0.5, backoff_max: float = 30.0,
                 session: requests.Session | None = None, rate_limiter: RateLimiter | None = None) -> None:
        if not endpoint or not endpoint.lower().startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http(s) URL such as https://<resource>.cognitiveservices.azure.com, "
                             f"got {endpoint!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.endpoint = endpoint.rstrip("/")
        self.api_version = api_version
        self.model_version = model_version
        self.timeout = timeout
        self._auth = auth_for(credential)
        self._retry = RetryPolicy(max_retries=max_retries, backoff_factor=backoff_factor, backoff_max=backoff_max)
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # Room for vectorize_many's worker threads to keep their connections alive.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session
        self.rate_limiter = rate_limiter

    # --- the Vectorizer protocol ---------------------------------------------------------

    def vectorize_image(self, image: bytes) -> Embedding:
        """Vectorize raw image bytes (sent as ``application/octet-stream``)."""
        return self._vectorize_image_bytes(image, rate_limiter=self.rate_limiter)

    def vectorize_image_url(self, url: str) -> Embedding:
        """Vectorize an image the service downloads from ``url`` (sent as ``{"url": ...}``)."""
        return self._vectorize_image_url(url, rate_limiter=self.rate_limiter)

    def vectorize_text(self, text: str) -> Embedding:
        """Vectorize a query text of 1 to 70 words (sent as ``{"text": ...}``)."""
        check_text(text)
        return self._call(VECTORIZE_TEXT_PATH, json_body={"text": text}, rate_limiter=self.rate_limiter)

    # --- bulk ------------------------------------------------------------------------------

    def vectorize_many(self, images: Iterable[bytes | str], *, concurrency: int = 8,
                       rate_limiter: RateLimiter | None = None) -> Iterator[Embedding | Exception]:
        """Vectorize many images (bytes, or URL strings) with ``concurrency`` calls in flight.

        Results come back in input order, one per input: the ``Embedding``, or the exception
        that item raised (so one bad image does not stop a batch). The Vision API has no batch
        call; ``rate_limiter`` (default: the client's) paces every attempt, retries included,
        and is slowed down for everyone when the service answers 429. At most ``2 * concurrency`` inputs are read
        ahead, so a lazy iterable of a million images is never held in memory.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if rate_limiter is None:
            rate_limiter = self.rate_limiter

        def one(item: bytes | str) -> Embedding:
            if isinstance(item, (bytes, bytearray, memoryview)):
                return self._vectorize_image_bytes(bytes(item), rate_limiter=rate_limiter)
            if isinstance(item, str):
                return self._vectorize_image_url(item, rate_limiter=rate_limiter)
            raise TypeError(f"vectorize_many takes image bytes or URL strings, got {type(item).__name__}")

        window = 2 * concurrency
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vision") as pool:
            pending: deque[Future[Embedding]] = deque()
            for item in images:
                pending.append(pool.submit(one, item))
                if len(pending) >= window:
                    yield _outcome(pending.popleft())
            while pending:
                yield _outcome(pending.popleft())

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> "VisionClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"VisionClient(endpoint={self.endpoint!r}, api_version={self.api_version!r}, "
                f"model_version={self.model_version!r})")

    # --- internals -------------------------------------------------------------------------

    def _vectorize_image_bytes(self, image: bytes, *, rate_limiter: RateLimiter | None) -> Embedding:
        if not isinstance(image, (bytes, bytearray)):
            raise TypeError(f"vectorize_image takes the image bytes, got {type(image).__name__}; "
                            f"use vectorize_image_url for a URL")
        inspect_image(bytes(image))
        return self._call(VECTORIZE_IMAGE_PATH, data=bytes(image), rate_limiter=rate_limiter)

    def _vectorize_image_url(self, url: str, *, rate_limiter: RateLimiter | None) -> Embedding:
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise InvalidImageError(f"the image URL must be an http or https URL the service can reach: {url!r}")
        return self._call(VECTORIZE_IMAGE_PATH, json_body={"url": url}, rate_limiter=rate_limiter)

    def _call(self, path: str, *, data: bytes | None = None, json_body: dict[str, Any] | None = None,
              rate_limiter: RateLimiter | None) -> Embedding:
        operation = path.rsplit(":", 1)[-1]
        url = self.endpoint + path
        params = query_parameters(self.api_version, self.model_version)
        content_type = OCTET_STREAM if data is not None else JSON
        retry_number = 0
        while True:
            if rate_limiter is not None:
                rate_limiter.acquire()
            headers = {"Content-Type": content_type, "Accept": JSON, **self._auth.headers()}
            started = time.monotonic()
            try:
                # No redirects: Azure never redirects these calls, and requests would forward the
                # Ocp-Apim-Subscription-Key header (it strips only Authorization) to another host.
                response = self._session.request("POST", url, params=params, headers=headers, data=data,
                                                 json=json_body, timeout=self.timeout, allow_redirects=False)
            except _TRANSIENT_EXCEPTIONS as exc:
                delay = self._retry.delay(retry_number, None)
                reason = f"{type(exc).__name__}: {exc}"
                if delay is None:
                    raise VisionServiceError(
                        f"{operation} failed: no answer from {self.endpoint} after {retry_number + 1} attempt(s) "
                        f"({reason}). Check the endpoint and the network, or raise the timeout "
                        f"(currently {self.timeout:g}s).", code="ServiceUnreachable", status_code=None) from None
                logger.warning("vision %s: %s; retry %d/%d in %.2fs", operation, type(exc).__name__,
                               retry_number + 1, self._retry.max_retries, delay)
            else:
                if response.status_code < 300:
                    return _embedding_from(response, operation=operation)
                if not is_retriable_status(response.status_code):
                    raise error_from_response(response, operation=operation)
                retry_after = retry_after_of(response)
                if response.status_code == 429 and rate_limiter is not None:
                    rate_limiter.penalize(retry_after if retry_after is not None else 1.0)
                delay = self._retry.delay(retry_number, retry_after)
                if delay is None:
                    raise error_from_response(response, operation=operation, attempts=retry_number + 1)
                logger.warning("vision %s: HTTP %d after %.2fs; retry %d/%d in %.2fs%s", operation,
                               response.status_code, time.monotonic() - started, retry_number + 1,
                               self._retry.max_retries, delay,
                               " (server's Retry-After)" if retry_after is not None else "")
                response.close()
            if delay > 0:
                time.sleep(delay)
            retry_number += 1


def _outcome(future: Future[Embedding]) -> Embedding | Exception:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - per-item failures are results, by contract
        return exc


def _embedding_from(response: requests.Response, *, operation: str) -> Embedding:
    """Check the success answer's shape; a malformed answer is the service's fault, named."""
    def bad(problem: str) -> VisionServiceError:
        return VisionServiceError(f"{operation} answered HTTP {response.status_code} but {problem}",
                                  code="InvalidResponse", status_code=response.status_code)

    try:
        payload = response.json()
    except ValueError:
        raise bad("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise bad("the body is not a JSON object")
    model_version = payload.get("modelVersion")
    if not isinstance(model_version, str) or not model_version:
        raise bad("'modelVersion' is missing or empty")
    vector = payload.get("vector")
    if not isinstance(vector, list) or not vector:
        raise bad("'vector' is missing or empty")
    try:
        array = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError):
        raise bad("'vector' holds values that are not numbers") from None
    if array.ndim != 1:
        raise bad("'vector' is not a flat list of numbers")
    if not np.all(np.isfinite(array)):
        raise bad("'vector' holds NaN or infinite values")
    return Embedding(vector=array, model_version=model_version)

