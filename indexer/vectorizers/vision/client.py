"""``VisionClient``: the Azure AI Vision multimodal-embeddings REST API, on azure-core.

It talks to Azure and to the local Vision stand-in alike (only the endpoint and credential
differ). An azure-core ``PipelineClient`` does the authentication (a resource key, or Microsoft
Entra ID with a fresh token after a plain 401) and the logging; retries are ``dispatch``'s, so
they share the bulk runs' pace. Inputs are checked against the documented limits before
anything is sent, redirects are never followed, and each ``Embedding`` carries the model
version the service reported. (design: docs/design.md#the-vision-client)
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import requests
from azure.core import PipelineClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import (
    AzureKeyCredentialPolicy,
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest, HttpResponse
from requests.adapters import HTTPAdapter

from indexer import __version__
from indexer.call_log import CallLogPolicy
from indexer.documents import Embedding
from indexer.errors import InvalidImageError, VisionAuthenticationError, VisionServiceError
from indexer.limits import WORD_CHECKS, WordCheck, check_text, inspect_image
from indexer.ratelimit import RateLimiter
from indexer.retry import RetryPolicy, is_retriable_status, retry_after_from_headers
from indexer.vectorizers.vision.contract import (
    API_VERSION_GA,
    COGNITIVE_SERVICES_SCOPE,
    JSON,
    OCTET_STREAM,
    SUBSCRIPTION_KEY_HEADER,
    VECTORIZE_IMAGE_PATH,
    VECTORIZE_TEXT_PATH,
    query_parameters,
)
from indexer.vectorizers.vision.dispatch import DEFAULT_THROTTLE_BUDGET, Gate, Retriable, dispatch
from indexer.vectorizers.vision.errors import error_from_response

logger = logging.getLogger(__name__)

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class _FreshTokenOn401Policy(BearerTokenCredentialPolicy):
    """azure-core's bearer policy, plus: a 401 is retried once with a token fetched anew.

    azure-core drops its cached token on any 401 but resends the request only after a
    ``WWW-Authenticate`` challenge that asks for claims (Continuous Access Evaluation). A
    cached token can also be refused plainly (revoked, or the identity's role changed since it
    was issued): then the request is authorized again with a fresh token and sent once more.
    A second 401 is final (``VisionAuthenticationError``)."""

    def on_challenge(self, request: Any, response: Any) -> bool:
        if super().on_challenge(request, response):  # a claims challenge (CAE)
            return True
        self.authorize_request(request, *self._scopes)  # any other challenge: a fresh token, once
        return True

    def send(self, request: Any) -> Any:
        response = super().send(request)  # with a challenge header, on_challenge had its one retry
        if response.http_response.status_code == 401 and "WWW-Authenticate" not in response.http_response.headers:
            self.authorize_request(request, *self._scopes)
            try:
                response = self.next.send(request)
            except Exception:
                self.on_exception(request)
                raise
            self.on_response(request, response)
        return response


def _credential_policy(credential: Any) -> Any:
    """Pick the authentication policy for ``credential``; anything else is refused."""
    if isinstance(credential, AzureKeyCredential):
        return AzureKeyCredentialPolicy(credential, SUBSCRIPTION_KEY_HEADER)
    if callable(getattr(credential, "get_token", None)):
        return _FreshTokenOn401Policy(credential, COGNITIVE_SERVICES_SCOPE)
    raise TypeError(
        "credential must be an azure.core.credentials.AzureKeyCredential (a Vision resource key) or an "
        "azure-identity TokenCredential such as DefaultAzureCredential; got "
        f"{type(credential).__name__}"
    )


class VisionClient:
    """Client for ``retrieval:vectorizeImage`` and ``retrieval:vectorizeText``.

    ``endpoint`` is ``https://<name>.cognitiveservices.azure.com`` or the stand-in's base URL;
    ``credential`` an ``AzureKeyCredential`` (resource key) or a ``TokenCredential`` (Entra ID).
    ``api_version`` ``2024-02-01`` is GA (``2023-02-01-preview`` sends ``modelVersion`` as older
    clients did); ``model_version`` ``2023-04-15`` is multilingual, ``2022-04-11`` English only.
    A ``rate_limiter`` paces every attempt, retries included, and pauses every caller on a 429
    (share one across threads); paced, throttling is pacing for up to ``throttle_budget`` seconds.
    ``word_check``: where a text's word limit is checked (``indexer.limits``). ``timeout`` is per
    attempt (connect and read); ``transport`` an azure-core transport."""

    def __init__(  # noqa: PLR0913 (a constructor takes its options as keywords)
        self,
        endpoint: str,
        credential: Any,
        *,
        api_version: str = API_VERSION_GA,
        model_version: str = "2023-04-15",
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        rate_limiter: RateLimiter | None = None,
        throttle_budget: float = DEFAULT_THROTTLE_BUDGET,
        word_check: WordCheck = "auto",
        transport: Any = None,
    ) -> None:
        if not endpoint or not endpoint.lower().startswith(("http://", "https://")):
            raise ValueError(
                f"endpoint must be an http(s) URL such as https://<resource>.cognitiveservices.azure.com, "
                f"got {endpoint!r}"
            )
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if word_check not in WORD_CHECKS:
            raise ValueError(f"word_check must be one of {', '.join(WORD_CHECKS)}, got {word_check!r}")
        self.word_check: WordCheck = word_check
        self.endpoint = endpoint.rstrip("/")
        self.api_version = api_version
        self.model_version = model_version
        self.timeout = timeout
        self.rate_limiter = rate_limiter
        self.throttle_budget = throttle_budget
        self._retry = RetryPolicy(max_retries=max_retries, backoff_factor=backoff_factor, backoff_max=backoff_max)
        # This resource's own pace and pause (a pool holds one gate per resource).
        self.gate = Gate(self.endpoint, rate_limiter)
        credential_policy = _credential_policy(credential)
        # Entra ID tokens travel only over TLS, except to a stand-in on this machine.
        self._send_options: dict[str, Any] = {"connection_timeout": timeout, "read_timeout": timeout}
        if isinstance(credential_policy, BearerTokenCredentialPolicy):  # (and its subclass above)
            self._send_options["enforce_https"] = (urlsplit(self.endpoint).hostname or "") not in _LOOPBACK_HOSTS
        if transport is None:
            session = requests.Session()
            # Room for a bulk run's worker threads to keep their connections alive.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            transport = RequestsTransport(session=session, session_owner=True)
        self._client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            self.endpoint,
            transport=transport,
            policies=[
                HeadersPolicy({"Accept": JSON}),
                UserAgentPolicy(sdk_moniker=f"imgsearch/{__version__}"),
                credential_policy,
                CallLogPolicy(),
                HttpLoggingPolicy(),
            ],
        )

    # --- the Vectorizer protocol ---------------------------------------------------------

    def vectorize_image(self, image: bytes) -> Embedding:
        """Vectorize raw image bytes (sent as ``application/octet-stream``)."""
        path, data, body = self.prepare(image)
        return self._call(path, data=data, json_body=body)

    def vectorize_image_url(self, url: str) -> Embedding:
        """Vectorize an image the service downloads from ``url`` (sent as ``{"url": ...}``)."""
        path, data, body = self.prepare(url=url)
        return self._call(path, data=data, json_body=body)

    def vectorize_text(self, text: str) -> Embedding:
        """Vectorize a query text of 1 to 70 words (sent as ``{"text": ...}``)."""
        path, data, body = self.prepare(text=text)
        return self._call(path, data=data, json_body=body)

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> VisionClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"VisionClient(endpoint={self.endpoint!r}, api_version={self.api_version!r}, "
            f"model_version={self.model_version!r})"
        )

    # --- internals -------------------------------------------------------------------------

    def _call(self, path: str, *, data: bytes | None = None, json_body: dict[str, Any] | None = None) -> Embedding:
        return dispatch(
            [self.gate],
            lambda gate: self.attempt(path, data=data, json_body=json_body),
            policy=self._retry,
            operation=path.rsplit(":", 1)[-1],
            spread=False,
            throttle_budget=self.throttle_budget,
        )

    def prepare(self, image: bytes | None = None, *, url: str | None = None, text: str | None = None) -> tuple:
        """Check an input against the documented limits once, before any resource is asked:
        ``(path, data, json_body)`` for ``attempt``."""
        if text is not None:
            check_text(text, word_check=self.word_check)
            return VECTORIZE_TEXT_PATH, None, {"text": text}
        if url is not None:
            if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
                raise InvalidImageError(f"the image URL must be an http or https URL the service can reach: {url!r}")
            return VECTORIZE_IMAGE_PATH, None, {"url": url}
        if not isinstance(image, (bytes, bytearray)):
            raise TypeError(
                f"vectorize_image takes the image bytes, got {type(image).__name__}; use vectorize_image_url for a URL"
            )
        inspect_image(bytes(image))
        return VECTORIZE_IMAGE_PATH, bytes(image), None

    def attempt(self, path: str, *, data: bytes | None = None, json_body: dict[str, Any] | None = None) -> Embedding:
        """One HTTP attempt, no pacing and no waiting: the embedding, a final typed error, or
        ``Retriable`` for an answer (408/429/5xx) or a failure that may pass if tried again."""
        operation = path.rsplit(":", 1)[-1]
        request = HttpRequest(
            "POST",
            self.endpoint + path,
            params=query_parameters(self.api_version, self.model_version),
            headers={"Content-Type": OCTET_STREAM if data is not None else JSON},
            content=data,
            json=json_body,
        )
        started = time.monotonic()
        try:
            response = self._client.send_request(request, **self._send_options)
        except ClientAuthenticationError as exc:
            # The credential could not produce a token (no az login, no managed identity):
            # asking again will not help, and the fix is a setting.
            # DefaultAzureCredential's message lists every credential it tried, one per line;
            # its first line says what failed, and azure.identity's log has the rest.
            text = (exc.message or str(exc)).strip()
            reason = text.splitlines()[0] if text else "no credential answered"
            raise VisionAuthenticationError(
                f"{operation} was not sent: no Microsoft Entra ID token for {self.endpoint} ({reason}). "
                f"Set VISION_KEY to the resource's key, or sign in (az login) with an identity that has the "
                f"'Cognitive Services User' role on the Vision resource.",
                code="CredentialUnavailable",
                status_code=None,
            ) from None
        except (ServiceRequestError, ServiceResponseError, HttpResponseError) as exc:
            if isinstance(exc, HttpResponseError) and exc.response is not None:
                raise  # pragma: no cover - send_request returns answers, it does not raise them
            # No answer, or an answer cut off: the request may never have reached the service.
            reason = _short_reason(exc)

            def unreachable(attempts: int) -> Exception:
                return VisionServiceError(
                    f"{operation} failed: no answer from {self.endpoint} after {attempts} attempt(s) "
                    f"({reason}). Check VISION_ENDPOINT and the network (for the local stand-in, that it "
                    f"runs: `imgsearch serve-vision` or `imgsearch dev` starts it), or raise VISION_TIMEOUT_SECONDS "
                    f"(now {self.timeout:g}).",
                    code="ServiceUnreachable",
                    status_code=None,
                )

            raise Retriable(unreachable, unanswered=True, reason=type(exc).__name__) from None
        if response.status_code < 300:
            return _embedding_from(response, operation=operation)
        if not is_retriable_status(response.status_code):
            raise error_from_response(response, operation=operation)
        raise Retriable(
            lambda attempts: error_from_response(response, operation=operation, attempts=attempts),
            retry_after=retry_after_from_headers(response.headers),
            throttled=response.status_code == 429,
            reason=f"HTTP {response.status_code} after {time.monotonic() - started:.2f}s",
        )


def _embedding_from(response: HttpResponse, *, operation: str) -> Embedding:
    """Check the success answer's shape; a malformed answer is the service's fault, named."""

    def bad(problem: str) -> VisionServiceError:
        return VisionServiceError(
            f"{operation} answered HTTP {response.status_code} but {problem}",
            code="InvalidResponse",
            status_code=response.status_code,
        )

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


def _short_reason(exc: Exception) -> str:
    """What went wrong on the wire, in a few words (urllib3's messages run to 300 characters)."""
    text = str(getattr(exc, "message", None) or exc)
    for known in ("Connection refused", "timed out", "Name or service not known", "Connection reset"):
        if known.lower() in text.lower():
            return f"{type(exc).__name__}: {known.lower()}"
    return f"{type(exc).__name__}: {text[:160]}"
