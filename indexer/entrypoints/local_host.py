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
import json
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
    """The ASGI app with the Function app's HTTP routes (``/api/search``, ``/api/vectorize``)
    over ``services``."""
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

    async def search(request: Request) -> Response:
        if not authorised(request):
            return Response(status_code=401)  # what the Functions host answers without a valid key
        body = await request.body()
        params = {k: v for k, v in request.query_params.items() if k != "code"}
        answer = await _off_the_loop(
            lambda: http.search_http(
                method=request.method,
                params=params,
                body=body,
                content_type=request.headers.get("content-type"),
                services=services,
            )
        )
        return _json(answer.body, answer.status, answer.headers)

    async def vectorize_endpoint(request: Request) -> Response:
        if not authorised(request):
            return Response(status_code=401)
        body = await request.body()
        answer = await _off_the_loop(
            lambda: vectorize.vectorize_http(
                method=request.method, body=body, content_type=request.headers.get("content-type"), services=services
            )
        )
        return _json(answer.body, answer.status, answer.headers)

    return Starlette(
        routes=[
            Route("/api/search", search, methods=["GET", "POST"]),
            Route("/api/vectorize", vectorize_endpoint, methods=["POST", "PUT"]),
        ]
    )


async def _off_the_loop(handler: Any) -> Any:
    """Run a blocking handler (a Vision call, a search) in a worker thread, off the event loop."""
    import anyio.to_thread

    return await anyio.to_thread.run_sync(handler)


def _json(body: Any, status: int, headers: dict[str, str]) -> Any:
    from starlette.responses import Response

    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )


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
