"""No key, token or connection string reaches a log, at any level.

One full run with every logger at DEBUG (the root logger, ``azure`` with azure-core's HTTP
logging policy, ``urllib3``, ``uvicorn``, ours) and its output captured: blobs uploaded to
Azurite through a connection string carrying its ``AccountKey``; the Function handlers index
and remove them, calling the Vision service with ``Ocp-Apim-Subscription-Key`` (through
injected 429/503s, so the retry path logs too) and Azure AI Search with an ``api-key``; a
search through the HTTP handler; failing calls with wrong keys (Vision, Search, Storage) whose
exceptions are logged with their tracebacks, as a host does; and the CLI with ``-vv``. Then
the captured text (logs, exception messages, CLI output, the process's stdout and stderr) is
searched for every secret value and for credential headers with a value that is not
azure-core's ``REDACTED``.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import uuid

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.storage.blob import BlobServiceClient

from indexer.backends.azure_search import AzureSearchBackend
from indexer.entrypoints import blob_events as handlers
from indexer.entrypoints.http import search_http
from indexer.indexing.failures import BlobFailureLog
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.schema import load_schema
from indexer.services import build_services
from indexer.settings import Settings
from indexer.vectorizers.vision.client import VisionClient
from standins.azurite import ACCOUNT_KEY
from tests.fixtures.azurite import blob_key
from tests.fixtures.bad_images import good_jpeg, truncated_jpeg

LOGGERS = (
    "",
    "azure",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.storage",
    "urllib3",
    "uvicorn",
    "uvicorn.error",
    "indexer",
    "starlette",
)
log = logging.getLogger("tests.secrets")


@pytest.fixture
def captured_logs():
    """Every record of every logger at DEBUG, formatted with tracebacks, into one buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(threadName)s: %(message)s"))
    saved = {name: (logging.getLogger(name).level, logging.getLogger(name).disabled) for name in LOGGERS}
    root = logging.getLogger()
    root.addHandler(handler)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger(name).disabled = False
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        for name, (level, disabled) in saved.items():
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).disabled = disabled


def credential_headers_with_values(text: str) -> list[str]:
    """Credential headers shown with anything but azure-core's ``REDACTED`` as their value, in
    the forms a header can be logged: ``Name: value``, ``'Name': 'value'``, ``Name=value``."""
    names = r"(?:Ocp-Apim-Subscription-Key|api-key|Authorization|x-ms-encryption-key)"
    pattern = re.compile(rf"{names}['\"]?\s*[:=]\s*['\"]?(?!REDACTED\b)(?!['\"])(\S+)", re.IGNORECASE)
    return [m.group(0) for m in pattern.finditer(text)]


def test_no_secret_reaches_a_log_in_a_full_run(
    captured_logs,
    capfd,
    azurite,
    blob_service,
    faulty_vision_server,
    search_double,
    search_index_name,
    run_cli,
    restore_logging,
    tmp_path,
):
    vision_key, wrong_vision_key = secrets.token_hex(16), secrets.token_hex(16)
    wrong_search_key = secrets.token_urlsafe(24)
    wrong_account_key = "V3JvbmdBY2NvdW50S2V5VGhhdElzTG9uZ0Vub3VnaFRvTG9va1JlYWwxMjM0NTY3ODkwYWJjZGVmZ2g="
    secret_values = {
        "vision key": vision_key,
        "wrong vision key": wrong_vision_key,
        "search admin key": search_double.api_key,
        "search bearer token": search_double.bearer_token,
        "wrong search key": wrong_search_key,
        "storage account key": ACCOUNT_KEY,
        "wrong account key": wrong_account_key,
        "connection string": azurite.connection_string,
    }
    texts: list[str] = []  # exception messages and CLI output, searched with the logs

    # The first two Vision calls fail (429, then 503) so the retry path logs as well.
    vision = faulty_vision_server(keys=[vision_key], fault_first=2, fault_statuses=(429, 503), fault_retry_after=0)
    container = blob_service.create_container(f"s{uuid.uuid4().hex[:20]}")
    failures_container = blob_service.get_container_client(f"f{uuid.uuid4().hex[:20]}")
    env = {
        "IMAGES_STORAGE": azurite.connection_string,
        "IMAGES_CONTAINER": container.container_name,
        "VISION_ENDPOINT": vision.url,
        "VISION_KEY": vision_key,
        "VISION_MODEL_VERSION": OFFLINE_MULTILINGUAL,
        "VISION_MAX_RETRIES": "3",
        "SEARCH_ENDPOINT": search_double.endpoint,
        "SEARCH_KEY": search_double.api_key,
        "SEARCH_INDEX_NAME": search_index_name,
        "IMGSEARCH_DATA_DIR": str(tmp_path / "data"),
    }
    try:
        settings = Settings(**env)
        log.debug("settings of this run: %r", settings)  # a host may well log its settings object
        services = build_services(settings, failures=BlobFailureLog(failures_container))
        log.debug("services: %r", services)
        services.backend.ensure_index(load_schema(OFFLINE_MULTILINGUAL))

        # The Function handlers: index two photos and a broken one, remove one, search.
        for name, data in {"a.jpg": good_jpeg(1), "b.jpg": good_jpeg(2), "broken.jpg": truncated_jpeg()}.items():
            container.upload_blob(name, data)
            handlers.index_blob(f"{container.container_name}/{name}", services)
        assert services.failures.get(blob_key(container, "broken.jpg"))
        container.delete_blob("b.jpg")
        handlers.handle_blob_event(
            handlers.BLOB_DELETED,
            f"/blobServices/default/containers/{container.container_name}/blobs/b.jpg",
            {"url": container.get_blob_client("b.jpg").url},
            services,
        )
        answer = search_http(method="GET", params={"text": "a photo"}, body=None, content_type=None, services=services)
        assert answer.status == 200 and answer.body["count"] == 1

        # Failing calls with wrong credentials, logged the way a host logs what it catches.
        with VisionClient(vision.url, AzureKeyCredential(wrong_vision_key)) as wrong_vision:
            failing = [lambda: wrong_vision.vectorize_text("a cat")]
            wrong_search = AzureSearchBackend(
                search_double.endpoint,
                search_index_name,
                AzureKeyCredential(wrong_search_key),
                retry_backoff_factor=0.001,
            )
            failing.append(wrong_search.count)
            wrong_services = build_services(
                settings, vectorizer=services.vectorizer, backend=wrong_search, failures=services.failures
            )
            refused = search_http(
                method="GET", params={"text": "a cat"}, body=None, content_type=None, services=wrong_services
            )
            assert refused.status == 500
            log.error("search answered %d: %s", refused.status, refused.body)
            texts.append(json.dumps(refused.body))
            wrong_storage = BlobServiceClient.from_connection_string(
                azurite.connection_string.replace(ACCOUNT_KEY, wrong_account_key)
            )
            failing.append(lambda: wrong_storage.get_container_client(container.container_name).exists())
            for call in failing:
                with pytest.raises(Exception) as caught:
                    call()
                log.exception("a call failed: %s", caught.value)
                texts.extend([str(caught.value), repr(caught.value)])
            wrong_search.close()

        # The CLI with every library's debug logging on (-vv), against the same services.
        for args in (("-vv", "search", "a photo", "--json"), ("-vv", "backfill", "--json"), ("-vv", "info")):
            result = run_cli(*args, env=env)
            assert result.exit_code == 0, result.output
            texts.append(result.output)
            texts.append(result.stderr)
        services.vectorizer.close()
        services.backend.close()
    finally:
        container.delete_container()
        if failures_container.exists():
            failures_container.delete_container()

    out, err = capfd.readouterr()
    everything = "\n".join([captured_logs.getvalue(), out, err, *texts])

    # The capture really saw the libraries' request logging and our retries, at debug level.
    logs = captured_logs.getvalue()
    assert "azure.core.pipeline.policies.http_logging_policy" in logs and "Request headers" in logs
    assert "'api-key': 'REDACTED'" in logs and "'Authorization': 'REDACTED'" in logs
    assert "urllib3" in logs and re.search(r"vision vectorizeImage: HTTP (429|503) .*; retry 1/3", logs)
    assert "DEBUG indexer" in everything

    leaked = {what: value for what, value in secret_values.items() if value in everything}
    assert leaked == {}, f"secrets in the captured output: {sorted(leaked)}"
    assert credential_headers_with_values(everything) == []
    assert "SharedKey devstoreaccount1:" not in everything  # a request signature, replayable for minutes
