"""``imgsearch serve``: the Function app's HTTP endpoints on this machine, as ``func start``
would host them, for users without Azure Functions Core Tools (and for this project's tests,
which cannot install them).

The routes and their handlers are the Function app's own: ``/api/search``
(``indexer.entrypoints.http``) and ``/api/vectorize`` (``indexer.entrypoints.vectorize``, the
custom Web API skill and vectorizer endpoint) answer exactly what the deployed ``search`` and
``vectorize`` functions answer. What differs is only the host: a Starlette app under uvicorn
instead of the Functions runtime.

Keys work as the Functions host's do: a request carries one in the ``x-functions-key``
header or the ``code`` query parameter. On loopback no key is needed (as ``func start``
lets every local caller in); listening on any other address needs ``--key``, so a search
endpoint is never opened to a network by accident.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from collections.abc import Sequence
from typing import Any

from indexer.entrypoints import http, vectorize
from indexer.errors import ConfigurationError
from indexer.services import Services

log = logging.getLogger(__name__)

KEY_HEADER = "x-functions-key"


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


def create_app(services: Services, *, keys: Sequence[str] = ()) -> Any:
    """The ASGI app with the Function app's HTTP routes over ``services``: the search page at
    ``/`` (and ``/api/page``, its route in the Function app), ``/api/search``, ``/api/info``,
    ``/api/thumbnail`` and ``/api/vectorize`` (Azure AI Search's custom skill and vectorizer)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    accepted = [k.encode() for k in keys]

    def authorised(request: Request) -> bool:
        if not accepted:
            return True
        given = (request.headers.get(KEY_HEADER) or request.query_params.get("code") or "").encode()
        return any(hmac.compare_digest(given, key) for key in accepted)

    def endpoint(handle: Any) -> Any:
        async def serve(request: Request) -> Response:
            if not authorised(request):
                return Response(status_code=401)  # what the Functions host answers without a valid key
            body = await request.body()
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


def page_url(host: str, port: int) -> str:
    """The search page's address, the one to open in a browser (``/api/search`` answers 400
    without a query). A wildcard host is shown as loopback, the address a browser here can open."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def check_exposure(host: str, keys: Sequence[str]) -> None:
    """Refuse to open the endpoints to a network without a key."""
    if not keys and not is_loopback(host):
        raise ConfigurationError(
            f"serving on {host} opens the search and vectorize endpoints to the network: give --key (callers "
            f"send it as {KEY_HEADER} or ?code=), or listen on 127.0.0.1"
        )


def run(services: Services, host: str, port: int, *, keys: Sequence[str] = (), log_level: str = "warning") -> None:
    """Serve until interrupted (the ``imgsearch serve`` command)."""
    check_exposure(host, keys)
    try:
        import uvicorn
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"`imgsearch serve` needs the [local] extra ({exc.name} is not installed): pip install 'indexer[local]'"
        ) from None
    sock = bind(host, port)
    server = uvicorn.Server(uvicorn.Config(create_app(services, keys=keys), log_level=log_level, lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
