"""``imgsearch serve``: the Function app's HTTP endpoints on this machine, as ``func start``
would host them (Starlette under uvicorn), with the host's function keys. Short keys are
refused at start; a foreign ``Host`` (400), a foreign ``Origin`` (403) and a body over the
Functions host's limit (413) are refused before any handler runs.
(design: docs/design.md#imgsearch-serve)
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from indexer.entrypoints import http, vectorize
from indexer.errors import ConfigurationError
from indexer.services import Services

log = logging.getLogger(__name__)

KEY_HEADER = "x-functions-key"
MIN_KEY_LENGTH = 16
MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's default request body limit
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now, so a busy port is a clear configuration error before
    anything starts (uvicorn would exit with a code of its own)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); is another server already using the port? "
            f"choose another with --port"
        ) from None
    return sock


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header (or a name the user allowed), without port or brackets,
    lower case: ``[::1]:7071`` is ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:  # name:port (more colons: a bare IPv6 address)
        return host.partition(":")[0]
    return host


def listened_names(host: str) -> list[str]:
    """The address listened on, as a name callers may use, unless it is a wildcard (0.0.0.0,
    ::), which names no one: those who reach it by another name allow it with --allow-host."""
    name = host_name(host)
    try:
        return [] if ipaddress.ip_address(name).is_unspecified else [name]
    except ValueError:
        return [name]


def foreign_request(headers: Mapping[str, str], hosts: frozenset[str]) -> tuple[int, str, str] | None:
    """``(status, code, message)`` refusing a request a browser on another site could have sent
    (see the module doc), or None."""
    host = headers.get("host", "")
    if host_name(host) not in hosts:
        return (
            400,
            "InvalidHostHeader",
            f"the Host header {host[:100]!r} is not a name this server answers to: use 127.0.0.1, localhost or "
            f"[::1], or start imgsearch serve with --allow-host <name>",
        )
    origin = headers.get("origin")
    if origin is not None and origin.lower() not in (f"http://{host.lower()}", f"https://{host.lower()}"):
        return (
            403,
            "ForeignOrigin",
            f"a request from the page at {origin[:100]!r} is refused: only this server's own pages may call it",
        )
    return None


async def read_capped_body(request: Any, max_bytes: int) -> bytes | None:
    """The request's body, or None as soon as it is over ``max_bytes`` (by its declared
    ``Content-Length`` or by what arrived): the rest is never read into memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    services: Services,
    *,
    keys: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Any:
    """The ASGI app with the Function app's HTTP routes over ``services``: the search page at
    ``/`` (and ``/api/page``, its route in the Function app), ``/api/search``, ``/api/info``,
    ``/api/thumbnail`` and ``/api/vectorize`` (Azure AI Search's custom skill and vectorizer).
    ``allowed_hosts``: names beside the loopback ones a ``Host`` header may carry."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    check_keys(keys)
    accepted = [k.encode() for k in keys]
    hosts = frozenset([*LOOPBACK_NAMES, *(host_name(name) for name in allowed_hosts if name.strip())])

    def authorised(request: Request) -> bool:
        if not accepted:
            return True
        given = (request.headers.get(KEY_HEADER) or request.query_params.get("code") or "").encode()
        return any(hmac.compare_digest(given, key) for key in accepted)

    def refusal(status: int, code: str, message: str) -> Response:
        answer = http.HttpAnswer(status, http.error_body(code, message))
        return Response(answer.payload(), status_code=status, media_type=answer.media_type)

    def endpoint(handle: Any) -> Any:
        async def serve(request: Request) -> Response:
            refused = foreign_request(request.headers, hosts)
            if refused is not None:
                return refusal(*refused)
            if not authorised(request):
                return Response(status_code=401)  # what the Functions host answers without a valid key
            body = await read_capped_body(request, max_body_bytes)
            if body is None:
                return refusal(
                    413,
                    "RequestEntityTooLarge",
                    f"the request body is over {max_body_bytes:,} bytes, the most this endpoint accepts "
                    f"(the Functions host's limit)",
                )
            params = {k: v for k, v in request.query_params.items() if k != "code"}
            # The handlers block (a Vision call, a search, a blob read): keep them off the loop.
            import anyio.to_thread

            answer = await anyio.to_thread.run_sync(lambda: handle(request, params, body))
            return Response(
                answer.payload(), status_code=answer.status, headers=answer.headers, media_type=answer.media_type
            )

        return serve

    def search(request: Request, params: dict[str, str], body: bytes) -> http.HttpAnswer:
        return http.search_http(
            method=request.method,
            params=params,
            body=body,
            content_type=request.headers.get("content-type"),
            services=services,
        )

    def info(request: Request, params: dict[str, str], body: bytes) -> http.HttpAnswer:
        return http.info_http(services)

    def thumbnail(request: Request, params: dict[str, str], body: bytes) -> http.HttpAnswer:
        return http.thumbnail_http(params, if_none_match=request.headers.get("if-none-match"), services=services)

    def page(request: Request, params: dict[str, str], body: bytes) -> http.HttpAnswer:
        return http.page_http()

    def vectorize_records(request: Request, params: dict[str, str], body: bytes) -> http.HttpAnswer:
        return vectorize.vectorize_http(
            method=request.method, body=body, content_type=request.headers.get("content-type"), services=services
        )

    return Starlette(
        routes=[
            Route("/", endpoint(page), methods=["GET"]),
            Route("/api/page", endpoint(page), methods=["GET"]),
            Route("/api/search", endpoint(search), methods=["GET", "POST"]),
            Route("/api/info", endpoint(info), methods=["GET"]),
            Route("/api/thumbnail", endpoint(thumbnail), methods=["GET"]),
            Route("/api/vectorize", endpoint(vectorize_records), methods=["POST", "PUT"]),
        ]
    )


def check_keys(keys: Sequence[str]) -> None:
    """Refuse a key that any caller could guess: an empty one lets every caller in."""
    for key in keys:
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigurationError(
                f"a function key of {len(key)} characters is too short: use at least {MIN_KEY_LENGTH} random "
                f"characters, e.g. from python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if key != key.strip():
            raise ConfigurationError("a function key starts or ends with white space; remove it")


def page_url(host: str, port: int) -> str:
    """The search page's address, the one to open in a browser (``/api/search`` answers 400
    without a query). A wildcard host is shown as loopback, the address a browser here can open."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def check_exposure(host: str, keys: Sequence[str]) -> None:
    """Refuse a guessable key, and to open the endpoints to a network without a key."""
    check_keys(keys)
    if not keys and not is_loopback(host):
        raise ConfigurationError(
            f"serving on {host} opens the search and vectorize endpoints to the network: give a key with "
            f"--key-file or IMGSEARCH_SERVE_KEY (callers send it as {KEY_HEADER} or ?code=), or listen on 127.0.0.1"
        )


def run(
    services: Services,
    host: str,
    port: int,
    *,
    keys: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
    log_level: str = "warning",
) -> None:
    """Serve until interrupted (the ``imgsearch serve`` command)."""
    check_exposure(host, keys)
    try:
        import uvicorn
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"`imgsearch serve` needs the [local] extra ({exc.name} is not installed): pip install 'indexer[local]'"
        ) from None
    sock = bind(host, port)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(services, keys=keys, allowed_hosts=[*allowed_hosts, *listened_names(host)]),
            log_level=log_level,
            lifespan="off",
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
