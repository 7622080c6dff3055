"""The local vectorizer server: Azure AI Vision's multimodal-embeddings contract, offline.

It answers ``retrieval:vectorizeImage`` and ``retrieval:vectorizeText`` with Azure's parameters,
headers, bodies, status codes, error shapes and input limits (``contract``, ``answers``), so
``VisionClient`` and the seed's curl commands work against it unchanged. A real offline model
answers and reports its own name in ``modelVersion``; what Azure accepts is accepted
(``pixels``), a limit of the stand-in's own is a 503 that says so, and tests can inject faults,
latency and a rate limit. (rules and sources: standins/FIDELITY.md; docs/design.md#stand-ins)
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from indexer.documents import Embedding
from indexer.errors import ConfigurationError, InputLimitError, InvalidImageError
from indexer.model_versions import MODEL_VERSIONS, offline_model_for
from standins.vision import answers as errors
from standins.vision.answers import ErrorAnswer
from standins.vision.contract import (
    IMAGE_BYTES_LIMIT,
    IMAGE_PATH,
    JSON,
    KEY_HEADER,
    MODEL_PARAMETER,
    OCTET_STREAM,
    PREVIEW_API_VERSION,
    PREVIEW_LATEST_MODEL,
    TEXT_PATH,
    ImageHeader,
    Refused,
    check_image,
    check_image_bytes,
    check_text,
)
from standins.vision.faults import FaultInjector
from standins.vision.fetch import UrlRefused, fetch_image
from standins.vision.pixels import DEFAULT_MAX_DECODE_PIXELS, StandInLimit, fit_for_model
from standins.vision.throttle import FixedWindow, TokenBucket

logger = logging.getLogger(__name__)

# JSON bodies carry one URL or up to 70 words; anything near this size is not a real request.
# A limit of the stand-in (Azure's own is not documented): answered with its 503.
MAX_JSON_BYTES = 1024 * 1024
# The offline model reads at most this many characters of a text (its encoder does not
# truncate, and time and memory grow with length). Azure limits words, not characters, so the
# stand-in vectorizes the first MODEL_TEXT_CHARS characters rather than refuse the text.
MODEL_TEXT_CHARS = 4096
# An oversized image body is read (and discarded) up to here so the client gets Azure's 400
# rather than a reset connection; beyond it the server stops reading.
MAX_DRAIN_BYTES = 64 * 1024 * 1024

ModelLookup = Callable[[str], Any]  # local model name -> object with vectorize_image / vectorize_text


@dataclass
class ServerConfig:
    """Options of the local vectorizer server; ``imgsearch serve-vision`` exposes them as flags.

    The comment above each option says what it does: who may call, the faults and throttling
    injected for tests, and how the stand-in meets inputs Azure accepts."""

    # Accepted ``Ocp-Apim-Subscription-Key`` values. Empty (and no bearer tokens): every caller.
    keys: Sequence[str] = ()
    # Accepted ``Authorization: Bearer`` tokens: opaque strings agreed with the caller (no Entra ID offline).
    bearer_tokens: Sequence[str] = ()
    # The share of requests (0..1) that fail on purpose, answered with one of ``fault_statuses``
    # (429 and/or 5xx), with ``fault_retry_after`` seconds of ``Retry-After`` on a 429 or 503.
    fault_rate: float = 0.0
    fault_statuses: Sequence[int] = (429, 500, 503)
    fault_retry_after: float | None = 1.0
    # Also inject connections dropped mid-answer, and (when > 0) answers delayed this long, to trip timeouts.
    drop_connection: bool = False
    slow_seconds: float = 0.0
    # The fault draw's seed, so a run can be replayed; ``fault_first`` always fails the first N requests.
    fault_seed: int | None = 0
    fault_first: int = 0
    # Above ``rate_limit_per_second`` answer 429 with ``Retry-After``. ``rate_limit_burst`` None counts
    # as Azure's gateway does, at most rate x ``rate_limit_window`` requests in each fixed interval
    # (default 1 s for 1/s or more, as S1; 60 s below, as F0: ``throttle.FixedWindow``); a number is
    # a token bucket of that many at once (1: no burst at all, the strictest: ``throttle.TokenBucket``).
    rate_limit_per_second: float | None = None
    rate_limit_burst: int | None = None
    rate_limit_window: float | None = None
    # Milliseconds added to every call, to mimic a remote service.
    latency_ms: float = 0.0
    # Answer ``api-version=2023-02-01-preview`` as the preview once did, for old samples (Azure: 410 Gone).
    serve_retired_preview: bool = False
    # Fetch image URLs on loopback, private and link-local hosts (Azurite); Azure fetches public URLs only.
    allow_private_urls: bool = False
    # The most pixels of a non-JPEG image decoded at full size; beyond, a 503 naming the stand-in.
    max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS
    # Model calls running at once (each one uses the CPU fully).
    inference_threads: int = 2
    # Answer vectors of this many dimensions (Azure's 1024): the offline vector followed by zeros,
    # which change no cosine; ``modelVersion`` still names the offline model.
    pad_to: int | None = None

    def __post_init__(self) -> None:
        if self.pad_to is not None and not 2 <= self.pad_to <= 4096:
            raise ValueError(f"pad_to must be between 2 and 4096 dimensions, got {self.pad_to}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, got {self.latency_ms}")
        if self.inference_threads < 1:
            raise ValueError(f"inference_threads must be at least 1, got {self.inference_threads}")
        if self.rate_limit_per_second is not None and self.rate_limit_per_second <= 0:
            raise ValueError(f"rate_limit_per_second must be positive, got {self.rate_limit_per_second}")
        if self.rate_limit_burst is not None and self.rate_limit_burst < 1:
            raise ValueError(f"rate_limit_burst must be at least 1, got {self.rate_limit_burst}")
        if self.rate_limit_window is not None and self.rate_limit_window <= 0:
            raise ValueError(f"rate_limit_window must be positive, got {self.rate_limit_window}")
        if self.max_decode_pixels < 1_000_000:
            raise ValueError(f"max_decode_pixels must be at least 1,000,000, got {self.max_decode_pixels}")


# --- instrumentation for tests ---------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names, as received (kept in memory only, never logged)
    status: int


@dataclass
class RequestLog:
    """Every request the server answered, in order. Lets tests count calls (e.g. that a
    client-side limit check sent nothing) and see the headers the server received."""

    _items: list[RecordedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def last(self) -> RecordedRequest:
        with self._lock:
            if not self._items:
                raise LookupError("the server has answered no request yet")
            return self._items[-1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# --- model lookup ----------------------------------------------------------------------------


def default_model_lookup(name: str) -> Any:
    """The offline model for a local model name; imported lazily (torch lives behind [local])."""
    from indexer.vectorizers.offline import get_offline_vectorizer

    return get_offline_vectorizer(name)


class _ModelCache:
    """Load each model once, even when the first requests for it arrive together."""

    def __init__(self, lookup: ModelLookup) -> None:
        self._lookup = lookup
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Any:
        model = self._models.get(name)
        if model is None:
            with self._lock:
                model = self._models.get(name)
                if model is None:
                    model = self._lookup(name)
                    self._models[name] = model
        return model


# --- request parsing helpers -----------------------------------------------------------------


def _matches(secret: str, accepted: Sequence[str]) -> bool:
    """Constant-time comparison, so response timing says nothing about a key's prefix."""
    given = secret.encode("utf-8", "surrogateescape")
    return any(hmac.compare_digest(given, candidate.encode("utf-8")) for candidate in accepted)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _lenient_json(raw: bytes) -> Any:
    """Parse a JSON body as Azure's .NET parser does, which also takes single-quoted strings:
    the seed's own curl commands send ``{'url':'...'}``, and Azure answers them."""
    text = raw.decode("utf-8-sig")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':  # copy a double-quoted string verbatim
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif ch == "'":  # re-quote a single-quoted string
            j, chunk = i + 1, []
            while j < n and text[j] != "'":
                if text[j] == "\\" and j + 1 < n:
                    chunk.append(text[j + 1])
                    j += 2
                else:
                    chunk.append(text[j])
                    j += 1
            if j >= n:
                raise ValueError("unterminated single-quoted string")
            out.append(json.dumps("".join(chunk)))
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return json.loads("".join(out))


async def _read_body(request: Request, *, limit: int) -> tuple[bytes, int]:
    """Read at most ``limit`` bytes; return them and the body's full size (drained up to
    ``MAX_DRAIN_BYTES``), so an oversized body gets a 400 rather than a reset connection."""
    chunks: list[bytes] = []
    kept = total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if kept < limit:
            piece = chunk[: limit - kept]
            chunks.append(piece)
            kept += len(piece)
        if total > MAX_DRAIN_BYTES:
            break
    return b"".join(chunks), total


# --- responses -------------------------------------------------------------------------------


def _error_response(error: ErrorAnswer, request_id: str, detail: str | None = None) -> JSONResponse:
    headers = {**error.headers(), "apim-request-id": request_id}
    if detail:  # the stand-in's own reason, where Azure's body gives none (kept out of the body)
        headers["x-standin-detail"] = detail.encode("ascii", "replace").decode("ascii")[:500]
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


class _DroppedConnection(Exception):
    """Raised after a partial answer, so the ASGI server cuts the connection (a fault)."""


class _DropResponse(Response):
    """Start an answer that promises more bytes than it sends, then break off: the client sees
    the connection die mid-answer, as when a load balancer or the service drops it."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"modelVersion": "', "more_body": True})
        raise _DroppedConnection("injected fault: connection dropped mid-answer")


class _ForcedResponse(Exception):
    """Carries a response that bypasses normal handling (an injected dropped connection)."""

    def __init__(self, response: Response) -> None:
        super().__init__("forced response")
        self.response = response


class _QuietDroppedConnections(logging.Filter):
    """Keep injected drops out of the server's error log; they are on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, _DroppedConnection):
                return False
            exc = (
                exc.__cause__
                or exc.__context__
                or (exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) and exc.exceptions else None)
            )
        return True


# --- the app ---------------------------------------------------------------------------------


class _VisionService:
    """The request handling behind both routes; one instance per app."""

    def __init__(self, config: ServerConfig, model_lookup: ModelLookup, request_log: RequestLog | None) -> None:
        self.config = config
        self.models = _ModelCache(model_lookup)
        self.log = request_log
        self.faults = FaultInjector(
            rate=config.fault_rate,
            statuses=config.fault_statuses,
            drop_connection=config.drop_connection,
            slow_seconds=config.slow_seconds,
            seed=config.fault_seed,
            first=config.fault_first,
        )
        self.rate_limiter: FixedWindow | TokenBucket | None = None
        if config.rate_limit_per_second:
            if config.rate_limit_burst is None:
                self.rate_limiter = FixedWindow(config.rate_limit_per_second, config.rate_limit_window)
            else:
                self.rate_limiter = TokenBucket(config.rate_limit_per_second, config.rate_limit_burst)
        self._limiter: anyio.CapacityLimiter | None = None

    def _inference_limiter(self) -> anyio.CapacityLimiter:
        # Created on first use: an anyio limiter belongs to the running event loop.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.config.inference_threads)
        return self._limiter

    # The two routes share every step except reading the input and calling the model.
    async def vectorize_image(self, request: Request) -> Response:
        return await self._handle(request, self._image_embedding)

    async def vectorize_text(self, request: Request) -> Response:
        return await self._handle(request, self._text_embedding)

    async def _handle(self, request: Request, embed: Callable[[Request, str], Any]) -> Response:
        request_id = str(uuid.uuid4())
        try:
            model_name = await self._admit(request)
            embedding: Embedding = await embed(request, model_name)
            response: Response = JSONResponse(
                {"modelVersion": embedding.model_version, "vector": self._padded(embedding.vector).tolist()},
                headers={"apim-request-id": request_id},
            )
        except UrlRefused as refused:
            logger.info("image URL refused: %s", refused.reason)
            response = _error_response(refused.error, request_id, refused.reason)
        except Refused as refused:
            response = _error_response(refused.error, request_id)
        except _ForcedResponse as forced:
            response = forced.response
        except ClientDisconnect:
            # The caller gave up (e.g. its timeout expired) before its body was read: nobody is
            # left to answer, and it is no failure of this server. 499 is nginx's "client closed
            # request"; it only shows in the request log.
            response = Response(status_code=499)
        except Exception:  # a bug here must still answer in Azure's shape, and be logged
            logger.exception("the local vectorizer server failed on %s", request.url.path)
            response = _error_response(errors.server_error(500), request_id)
        self._record(request, response.status_code)
        return response

    def _padded(self, vector: Any) -> Any:
        size = self.config.pad_to
        if size is None or size == len(vector):
            return vector
        if size < len(vector):
            raise ValueError(f"cannot pad a {len(vector)}-dimension vector to {size}")
        return np.concatenate([vector, np.zeros(size - len(vector), dtype=vector.dtype)])

    def _record(self, request: Request, status: int) -> None:
        if self.log is not None:
            self.log.add(
                RecordedRequest(
                    method=request.method,
                    path=request.url.path,
                    query=dict(request.query_params),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    status=status,
                )
            )

    async def _admit(self, request: Request) -> str:
        """Everything Azure checks before looking at the input, in the gateway's order:
        route (api-version), authentication, throttling; then the model version. Returns the
        name of the local model that will answer."""
        config = self.config
        # The added latency is the request's way to a remote gateway: it reaches the gateway,
        # and is counted by its rate limit, that long after it left (not whenever this event
        # loop happens to wake up from the sleep that stands for it).
        arrived = time.monotonic() + config.latency_ms / 1000.0
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000.0)
        api_version = request.query_params.get("api-version")
        if api_version not in MODEL_PARAMETER:
            raise Refused(errors.resource_not_found())
        if api_version == PREVIEW_API_VERSION and not config.serve_retired_preview:
            raise Refused(errors.api_version_gone(api_version))
        self._authenticate(request)
        if self.rate_limiter is not None:
            wait = self.rate_limiter.take(arrived)
            if wait > 0:
                raise Refused(errors.too_many_requests(request.url.path, wait, precise=True))
        await self._maybe_fault(request)
        return self._model_name(request, api_version)

    def _authenticate(self, request: Request) -> None:
        config = self.config
        if not config.keys and not config.bearer_tokens:
            return
        key = request.headers.get(KEY_HEADER)
        if key is not None:
            if _matches(key, config.keys):
                return
            raise Refused(errors.invalid_key())
        authorization = request.headers.get("authorization", "")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and _matches(token.strip(), config.bearer_tokens):
                return
            raise Refused(errors.invalid_token())
        raise Refused(errors.missing_key())

    async def _maybe_fault(self, request: Request) -> None:
        fault = self.faults.draw()
        if fault is None:
            return
        if fault.kind == "slow":
            await asyncio.sleep(self.config.slow_seconds)
            return  # then answer normally: too late for a client with a shorter timeout
        if fault.kind == "drop":
            raise _ForcedResponse(_DropResponse())
        assert fault.status is not None
        raise Refused(errors.injected(fault.status, request.url.path, self.config.fault_retry_after))

    @staticmethod
    def _model_name(request: Request, api_version: str) -> str:
        parameter = MODEL_PARAMETER[api_version]
        requested = request.query_params.get(parameter)
        if api_version == PREVIEW_API_VERSION:
            # The preview's model parameter was optional and "latest" meant the then-newest model.
            requested = requested or request.query_params.get("model-version") or "latest"
            if requested == "latest":
                requested = PREVIEW_LATEST_MODEL
        if not requested:
            raise Refused(errors.missing_model_version(parameter))
        try:
            return offline_model_for(requested).name
        except ConfigurationError:
            raise Refused(errors.unsupported_model_version(requested, sorted(MODEL_VERSIONS))) from None

    # --- inputs and the model ---

    async def _image_embedding(self, request: Request, model_name: str) -> Embedding:
        media_type = _media_type(request)
        if media_type == OCTET_STREAM:
            data, size = await _read_body(request, limit=IMAGE_BYTES_LIMIT)
            check_image_bytes(size)
        elif media_type == JSON:
            payload = await self._json_payload(request)
            url = payload.get("url")
            if not isinstance(url, str) or not url.strip():
                raise Refused(errors.malformed_body("The body must be a JSON object with a 'url' string."))
            data = await self._download(url.strip())
        else:
            raise Refused(errors.unsupported_media_type(request.headers.get("content-type"), [OCTET_STREAM, JSON]))
        header = check_image(data)
        model = await self._model(model_name)
        fitted = await self._fit(data, header)
        return await self._infer(model.vectorize_image, fitted)

    async def _text_embedding(self, request: Request, model_name: str) -> Embedding:
        if _media_type(request) != JSON:
            raise Refused(errors.unsupported_media_type(request.headers.get("content-type"), [JSON]))
        payload = await self._json_payload(request)
        if "text" not in payload:
            raise Refused(errors.malformed_body("The body must be a JSON object with a 'text' string."))
        text = check_text(payload["text"])
        model = await self._model(model_name)
        return await self._infer(model.vectorize_text, text[:MODEL_TEXT_CHARS])

    @staticmethod
    async def _json_payload(request: Request) -> dict[str, Any]:
        raw, size = await _read_body(request, limit=MAX_JSON_BYTES)
        if size > MAX_JSON_BYTES:
            raise Refused(
                errors.stand_in_limit(
                    f"the JSON body is {size:,} bytes, and the stand-in reads at most {MAX_JSON_BYTES:,}."
                )
            )
        try:
            payload = _lenient_json(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise Refused(errors.malformed_body(f"The body is not valid JSON ({exc}).")) from None
        if not isinstance(payload, dict):
            raise Refused(errors.malformed_body("The body must be a JSON object."))
        return payload

    async def _download(self, url: str) -> bytes:
        allow_private = self.config.allow_private_urls
        return await anyio.to_thread.run_sync(lambda: fetch_image(url, allow_private=allow_private))

    async def _fit(self, data: bytes, header: ImageHeader) -> bytes:
        """The image as the offline model can take it (``pixels``), decoded in a worker thread
        under the inference limiter, so at most ``inference_threads`` large decodes run at once."""
        budget = self.config.max_decode_pixels
        try:
            return await anyio.to_thread.run_sync(
                lambda: fit_for_model(data, header, max_decode_pixels=budget), limiter=self._inference_limiter()
            )
        except StandInLimit as exc:
            raise Refused(errors.stand_in_limit(str(exc))) from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise Refused(errors.invalid_image_format(f"Input data is not a valid image: {exc}.")) from None

    async def _model(self, name: str) -> Any:
        return await anyio.to_thread.run_sync(self.models.get, name, limiter=self._inference_limiter())

    async def _infer(self, fn: Callable[[Any], Embedding], value: Any) -> Embedding:
        try:
            return await anyio.to_thread.run_sync(fn, value, limiter=self._inference_limiter())
        except InputLimitError as exc:
            # A limit of the offline model's own that the preparation above did not avoid: the
            # input is valid on Azure, so this is the stand-in's limit, never Azure's 400.
            raise Refused(errors.stand_in_limit(f"the offline model refused it ({exc}).")) from None
        except InvalidImageError as exc:
            raise Refused(errors.invalid_image_format(f"Input data is not a valid image: {exc}.")) from None
        except Exception:
            logger.exception("the local model failed")
            raise Refused(errors.server_error(500)) from None


async def _not_found(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods get the gateway's 404, as on Azure."""
    return _error_response(errors.resource_not_found(), str(uuid.uuid4()))


def create_app(
    config: ServerConfig | None = None,
    *,
    model_lookup: ModelLookup | None = None,
    request_log: RequestLog | None = None,
) -> Starlette:
    """Build the ASGI app. ``model_lookup`` maps a local model name to its vectorizer
    (default: ``indexer.vectorizers.offline.get_offline_vectorizer``); ``request_log`` records every answer."""
    service = _VisionService(config or ServerConfig(), model_lookup or default_model_lookup, request_log)
    routes = [
        Route(IMAGE_PATH, service.vectorize_image, methods=["POST"]),
        Route(TEXT_PATH, service.vectorize_text, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    app.state.service = service
    return app


# --- running it ------------------------------------------------------------------------------


def _install_log_filter() -> None:
    log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDroppedConnections) for f in log.filters):
        log.addFilter(_QuietDroppedConnections())


def run_server(
    config: ServerConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    model_lookup: ModelLookup | None = None,
    log_level: str = "info",
) -> None:
    """Serve until interrupted (the ``imgsearch serve-vision`` command)."""
    import uvicorn

    _install_log_filter()
    uvicorn.run(
        create_app(config, model_lookup=model_lookup), host=host, port=port, log_level=log_level, lifespan="off"
    )


@contextmanager
def serve_in_thread(
    config: ServerConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    model_lookup: ModelLookup | None = None,
    request_log: RequestLog | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[str]:
    """Run the server in a background thread and yield its base URL (``port=0``: a free port).

    For tests and benchmarks; the server stops when the ``with`` block ends."""
    import uvicorn

    _install_log_filter()
    app = create_app(config, model_lookup=model_lookup, request_log=request_log)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="vision-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the local vectorizer server did not start on {host}:{bound_port}")
        time.sleep(0.01)
    shown_host = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{shown_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
