"""The Azure Functions app (Python v2 programming model): thin functions.

Each function unpacks what the host hands it and calls ``indexer.entrypoints`` (``blob_events``,
``http``, ``vectorize``); settings and clients are built once per worker
(``services.get_services``). What each function does and what fails how is the README's "The
Function app" and "The vectorize endpoint". ``index_image`` uses the Event Grid source, the
only blob trigger Flex Consumption supports, and binds the SDK's ``BlobClient``, so the host
reads no bytes and the handler reads the blob once, through the size guard.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob  # SDK-type blob bindings (no host-side read)

try:
    import indexer  # noqa: F401  - deployed: the azd prepackage hook copies indexer/ next to this file
except ImportError:  # pragma: no cover - depends on how the app is launched
    # In the repository (tests, `func start` from functions/) the package lives one level up
    # and may not be installed in the interpreter the host uses; make it importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.entrypoints import blob_events as handlers  # noqa: E402
from indexer.entrypoints import http  # noqa: E402
from indexer.entrypoints import vectorize as vectorize_handler  # noqa: E402

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.function_name(name="index_image")
@app.blob_trigger(
    arg_name="client", path="%IMAGES_CONTAINER%/{name}", connection="IMAGES_STORAGE", source=func.BlobSource.EVENT_GRID
)
def index_image(client: blob.BlobClient) -> None:
    # The SDK's client names the blob; the handler reads it (once) through the size guard.
    handlers.index_blob(f"{client.container_name}/{client.blob_name}")


@app.function_name(name="index_deferred")
@app.queue_trigger(arg_name="message", queue_name="imgsearch-deferred", connection="IMAGES_STORAGE")
def index_deferred(message: func.QueueMessage) -> None:
    handlers.index_deferred(message.get_body().decode("utf-8"))


@app.function_name(name="remove_image")
@app.event_grid_trigger(arg_name="event")
def remove_image(event: func.EventGridEvent) -> None:
    # The worker hands an EventGridEvent (Event Grid schema) or a CloudEvent (CloudEvents
    # schema), depending on the subscription's delivery schema; both carry the same parts.
    event_type = getattr(event, "event_type", None) or getattr(event, "type", "")
    handlers.handle_blob_event(event_type, event.subject or "", event.get_json())


@app.function_name(name="search")
@app.route(route="search", methods=[func.HttpMethod.GET, func.HttpMethod.POST], auth_level=func.AuthLevel.FUNCTION)
def search(req: func.HttpRequest) -> func.HttpResponse:
    answer = http.search_http(
        method=req.method, params=req.params, body=req.get_body(), content_type=req.headers.get("content-type")
    )
    return _respond("search", answer)


@app.function_name(name="info")
@app.route(route="info", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def info(req: func.HttpRequest) -> func.HttpResponse:
    return _respond("info", http.info_http())


@app.function_name(name="thumbnail")
@app.route(route="thumbnail", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def thumbnail(req: func.HttpRequest) -> func.HttpResponse:
    return _respond("thumbnail", http.thumbnail_http(req.params, if_none_match=req.headers.get("if-none-match")))


@app.function_name(name="page")
@app.route(route="page", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def page(req: func.HttpRequest) -> func.HttpResponse:
    # The same key (?code=) the page was opened with goes with its API calls.
    return _respond("page", http.page_http())


def _respond(name: str, answer: http.HttpAnswer) -> func.HttpResponse:
    if answer.status >= 400 and answer.body is not None:
        logging.info("%s: %d %s", name, answer.status, answer.body["error"]["message"])
    media_type, _, charset = answer.media_type.partition("; charset=")
    return func.HttpResponse(
        answer.payload(),
        status_code=answer.status,
        headers=answer.headers,
        mimetype=media_type,
        charset=charset or "utf-8",
    )


@app.function_name(name="vectorize")
@app.route(route="vectorize", methods=[func.HttpMethod.POST, func.HttpMethod.PUT], auth_level=func.AuthLevel.FUNCTION)
def vectorize(req: func.HttpRequest) -> func.HttpResponse:
    answer = vectorize_handler.vectorize_http(
        method=req.method, body=req.get_body(), content_type=req.headers.get("content-type")
    )
    return _respond("vectorize", answer)
