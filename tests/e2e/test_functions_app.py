"""The Azure Functions app: its declared bindings, its lean imports, and each function called
the way the Functions host calls it (``azure.functions`` InputStream, EventGridEvent and
HttpRequest objects), against Azurite, the local vectorizer server over HTTP and a numpy index.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob_ext
import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum
from azure.storage.blob import BlobClient as StorageBlobClient
from azure.storage.blob import BlobServiceClient
from azurefunctions.extensions.base import Datum as SdkDatum
from azurefunctions.extensions.bindings.blob.blobClientConverter import BlobClientConverter
from PIL import Image

from indexer.entrypoints import blob_events as handlers
from indexer.errors import ConfigurationError
from indexer.indexing.failures import BlobFailureLog, JsonlFailureLog
from indexer.indexing.pipeline import Outcome
from indexer.model_versions import DEFAULT_MODEL_VERSION, OFFLINE_MULTILINGUAL
from indexer.services import build_services
from indexer.settings import Settings
from tests.fixtures.azurite import blob_key

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTION_APP = REPO_ROOT / "functions" / "function_app.py"

PHOTO_NAMES = ("cat.jpg", "dog.jpg", "fire_truck.jpg", "coffee.jpg")

BLOB_CREATED = "Microsoft.Storage.BlobCreated"  # an event type remove_image ignores


@pytest.fixture(scope="module")
def photos(samples_dir: Path) -> dict[str, bytes]:
    """Four real photos from samples/ by file name."""
    return {name: (samples_dir / name).read_bytes() for name in PHOTO_NAMES}


def load_function_app():
    spec = importlib.util.spec_from_file_location("function_app_under_test", FUNCTION_APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def function_app():
    module = load_function_app()
    # What the host's indexing does once per worker (get_functions() may run only once per app).
    module.indexed_functions = {f.get_function_name(): f for f in module.app.get_functions()}
    return module


def functions_by_name(module) -> dict:
    return module.indexed_functions


def jpeg(color=(90, 90, 90), size=(64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG")
    return out.getvalue()


# --------------------------------------------------------------------------- declarations


def test_the_app_declares_exactly_its_functions(function_app):
    assert sorted(functions_by_name(function_app)) == [
        "index_deferred",
        "index_image",
        "info",
        "page",
        "remove_image",
        "search",
        "thumbnail",
        "vectorize",
    ]


@pytest.mark.parametrize("name", ["search", "info", "thumbnail", "page", "vectorize"])
def test_every_http_function_needs_the_function_key(function_app, name):
    trigger = functions_by_name(function_app)[name].get_trigger()
    assert trigger.get_binding_name() == "httpTrigger" and trigger.auth_level == func.AuthLevel.FUNCTION


def test_index_image_is_an_event_grid_blob_trigger_on_the_configured_container(function_app):
    fn = functions_by_name(function_app)["index_image"]
    trigger = fn.get_trigger()
    binding = json.loads(fn.get_function_json())["bindings"][0]
    assert trigger.get_binding_name() == "blobTrigger"
    assert binding["source"] == "EventGrid"
    assert binding["path"] == "%IMAGES_CONTAINER%/{name}"  # app-setting expression, not a fixed name
    assert binding["connection"] == "IMAGES_STORAGE"
    assert binding["direction"] == "IN" and binding["name"] == "client"
    # The SDK-type binding: the host hands over a BlobClient and reads none of the blob.
    annotation = list(fn.get_user_function().__annotations__.values())[0]
    assert annotation in (blob_ext.BlobClient, "blob.BlobClient")
    assert BlobClientConverter.check_input_type_annotation(blob_ext.BlobClient)


def test_index_deferred_is_a_queue_trigger_on_the_deferred_queue(function_app):
    fn = functions_by_name(function_app)["index_deferred"]
    binding = json.loads(fn.get_function_json())["bindings"][0]
    assert binding["type"] == "queueTrigger"
    assert binding["queueName"] == "imgsearch-deferred" and binding["connection"] == "IMAGES_STORAGE"


def test_remove_image_is_an_event_grid_trigger(function_app):
    fn = functions_by_name(function_app)["remove_image"]
    binding = json.loads(fn.get_function_json())["bindings"][0]
    assert binding["type"] == "eventGridTrigger" and binding["name"] == "event"


def test_search_is_an_http_route_with_function_keys(function_app):
    fn = functions_by_name(function_app)["search"]
    bindings = json.loads(fn.get_function_json())["bindings"]
    trigger = next(b for b in bindings if b["type"] == "httpTrigger")
    assert trigger["route"] == "search"
    assert sorted(trigger["methods"]) == ["GET", "POST"]
    assert trigger["authLevel"] == "FUNCTION"
    assert any(b["type"] == "http" and b["direction"] == "OUT" for b in bindings)


def test_vectorize_is_a_post_route_with_function_keys(function_app):
    # Azure AI Search sends the custom Web API payload with POST (or PUT, as a skill may be set
    # to); with auth level FUNCTION the key travels in the vectorizer's and skill's httpHeaders.
    fn = functions_by_name(function_app)["vectorize"]
    bindings = json.loads(fn.get_function_json())["bindings"]
    trigger = next(b for b in bindings if b["type"] == "httpTrigger")
    assert trigger["route"] == "vectorize"
    assert sorted(trigger["methods"]) == ["POST", "PUT"]
    assert trigger["authLevel"] == "FUNCTION"


def test_vectorize_answers_the_documented_vectorizer_payload_through_the_function(
    function_app, local_index, worker_services
):
    from indexer.vectorizers.offline import get_offline_vectorizer

    services = build_services(
        Settings(),
        vectorizer=get_offline_vectorizer(OFFLINE_MULTILINGUAL),
        backend=local_index,
        storage=False,
    )
    worker_services(services)
    body = json.dumps({"values": [{"recordId": "0", "data": {"text": "a cat"}}]}).encode()
    request = func.HttpRequest("POST", "/api/vectorize", body=body, headers={"content-type": "application/json"})
    response = call(function_app, "vectorize", request)
    assert response.status_code == 200 and response.mimetype == "application/json"
    record = json.loads(response.get_body())["values"][0]
    assert record["recordId"] == "0" and record["errors"] is None and record["warnings"] is None
    assert len(record["data"]["vector"]) == local_index.get_pin().dimensions


def test_host_json_sets_bundle_retries_and_concurrency():
    host = json.loads((REPO_ROOT / "functions" / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    assert host["extensionBundle"]["version"].startswith("[4.")
    blobs = host["extensions"]["blobs"]
    assert blobs["poisonBlobThreshold"] >= 1 and blobs["maxDegreeOfParallelism"] >= 1


def test_local_settings_name_every_setting_the_app_reads_and_hold_no_secrets():
    values = json.loads((REPO_ROOT / "functions" / "local.settings.example.json").read_text())["Values"]
    for name in (
        "IMAGES_STORAGE",
        "IMAGES_CONTAINER",
        "VISION_ENDPOINT",
        "VISION_KEY",
        "VISION_MODEL_VERSION",
        "SEARCH_ENDPOINT",
        "SEARCH_KEY",
        "SEARCH_INDEX_NAME",
        "SEARCH_VECTOR_COMPRESSION",
        "MAX_IMAGE_BYTES",
        "AZURE_CLIENT_ID",
        "VISION_REQUESTS_PER_SECOND",
        "VISION_CONCURRENCY",
        "FUNCTIONS_WORKER_RUNTIME",
    ):
        assert name in values, name
    assert values["VISION_KEY"] == "" and values["SEARCH_KEY"] == ""
    assert values["IMAGES_STORAGE"] == "UseDevelopmentStorage=true"


def test_local_settings_point_at_what_imgsearch_dev_starts_with_productions_model_version():
    from standins.dev import DevPorts

    values = json.loads((REPO_ROOT / "functions" / "local.settings.example.json").read_text())["Values"]
    ports = DevPorts()
    assert values["VISION_ENDPOINT"] == f"http://127.0.0.1:{ports.vision}"
    assert values["SEARCH_ENDPOINT"] == f"http://127.0.0.1:{ports.search}"
    assert ports.blob == 10000  # what UseDevelopmentStorage=true means
    assert values["VISION_MODEL_VERSION"] == DEFAULT_MODEL_VERSION == "2023-04-15"
    Settings(**{k: v for k, v in values.items() if v != ""})  # every value parses


def locked_requirements() -> dict[str, tuple[str, list[str]]]:
    """``{name: (version, hashes)}`` of functions/requirements.txt, the deployed build's lock."""
    from packaging.utils import canonicalize_name

    text = (REPO_ROOT / "functions" / "requirements.txt").read_text()
    locked: dict[str, tuple[str, list[str]]] = {}
    for entry in text.replace("\\\n", " ").splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        requirement, *options = entry.split()
        name, separator, version = requirement.partition("==")
        assert separator, f"{requirement} is not pinned to one version (==)"
        locked[canonicalize_name(name)] = (version, [o.removeprefix("--hash=") for o in options])
    return locked


def test_requirements_are_a_lock_of_pyprojects_dependencies():
    """Every runtime dependency of the package and of its [functions] extra is in the lock, at a
    version its specifier allows, with hashes; nothing the tests or the local tools need is."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    locked = locked_requirements()
    for spec in [*project["dependencies"], *project["optional-dependencies"]["functions"]]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is a dependency but not in functions/requirements.txt: run make lock"
        version, hashes = locked[name]
        assert requirement.specifier.contains(version), f"{name}=={version} breaks {spec}: run make lock"
    for name, (version, hashes) in locked.items():
        assert hashes and all(h.startswith("sha256:") for h in hashes), f"{name}=={version} has no hashes"

    def names(specs: list[str]) -> set[str]:
        return {canonicalize_name(Requirement(spec).name) for spec in specs}

    extras = project["optional-dependencies"]
    deployed = names(project["dependencies"]) | names(extras["functions"])
    elsewhere_only = names([s for s in extras["dev"] + extras["local"] if not s.startswith("indexer[")]) - deployed
    assert not elsewhere_only & set(locked), "test-only or local-only packages are in the deployed lock"


def test_the_lock_is_compiled_for_the_python_the_function_app_runs_on():
    import re

    header = (REPO_ROOT / "functions" / "requirements.txt").read_text()
    bicep = (REPO_ROOT / "infra" / "app" / "function.bicep").read_text()
    runtime = re.search(r"name: 'python'\s+version: '([0-9.]+)'", bicep)
    assert runtime is not None
    assert f"by pip-compile with Python {runtime.group(1)}\n" in header


def test_requirements_stay_lean():
    locked = locked_requirements()
    assert "azure-functions" in locked and "azure-storage-blob" in locked
    assert not {"torch", "fastapi", "uvicorn", "starlette"} & set(locked)


def test_the_real_local_settings_are_never_committed():
    """functions/local.settings.json holds a developer's keys: git ignores it; the example is
    what is committed (and what func start's settings are copied from)."""
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "functions/local.settings.json"], cwd=REPO_ROOT, capture_output=True
    )
    assert ignored.returncode == 0, "functions/local.settings.json is not ignored by git"
    tracked = subprocess.run(
        ["git", "ls-files", "functions/local.settings.json"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert tracked.stdout == ""
    assert (REPO_ROOT / "functions" / "local.settings.example.json").is_file()


HEAVY = ("torch", "fastapi", "uvicorn", "starlette", "pillow_heif")


def heavy_modules(modules: list[str]) -> list[str]:
    return [
        m
        for m in modules
        if m.split(".")[0] in HEAVY
        or m == "indexer.vectorizers.offline"
        or m.startswith("indexer.vectorizers.offline.")
    ]


@pytest.mark.parametrize("build_services", [False, True], ids=["import", "first-invocation-setup"])
def test_the_app_in_a_fresh_process_loads_no_heavy_modules(build_services):
    """Importing function_app, and building what the first invocation builds (settings,
    Vision client, Search backend, Blob clients: no request is sent), loads no torch, no
    FastAPI/uvicorn/Starlette and nothing of the offline model."""
    code = ["import json, sys", "sys.path.insert(0, sys.argv[1])", "import function_app"]
    if build_services:
        code.append("from indexer.services import get_services; get_services()")
    code.append("print(json.dumps(sorted(sys.modules)))")
    unreachable = "http://127.0.0.1:9"  # never contacted: building clients sends nothing
    env = {
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "IMAGES_STORAGE": "UseDevelopmentStorage=true",
        "VISION_ENDPOINT": unreachable,
        "VISION_KEY": "k",
        "SEARCH_ENDPOINT": unreachable,
        "SEARCH_KEY": "k",
    }
    result = subprocess.run(
        [sys.executable, "-c", "; ".join(code), str(FUNCTION_APP.parent)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=FUNCTION_APP.parent,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert "function_app" in modules and "indexer.entrypoints.blob_events" in modules
    if build_services:
        assert "indexer.vectorizers.vision.client" in modules and "indexer.backends.azure_search" in modules
    assert heavy_modules(modules) == []


# --------------------------------------------------------------------------- calling the functions


@pytest.fixture
def failures_container(blob_service):
    container = blob_service.get_container_client(f"failures{uuid.uuid4().hex[:12]}")
    yield container
    try:
        container.delete_container()
    except Exception:  # noqa: BLE001 - never created when nothing failed
        pass


def make_services(azurite, container, vision, index, failures_container, tmp_path, **overrides):
    settings = Settings(
        IMAGES_STORAGE=azurite.connection_string,
        IMAGES_CONTAINER=container.container_name,
        VISION_ENDPOINT=vision.url,
        VISION_KEY=vision.key or "",
        VISION_MODEL_VERSION=OFFLINE_MULTILINGUAL,
        IMGSEARCH_DATA_DIR=str(tmp_path),
        **overrides,
    )
    return build_services(settings, backend=index, failures=BlobFailureLog(failures_container))


@pytest.fixture(autouse=True)
def _binding_connection(azurite, monkeypatch):
    """The app setting the SDK-type binding builds its client from (as the host has it)."""
    monkeypatch.setenv("IMAGES_STORAGE", azurite.connection_string)


@pytest.fixture
def services(azurite, blob_container, vision_server, local_index, failures_container, tmp_path, worker_services):
    built = make_services(azurite, blob_container, vision_server, local_index, failures_container, tmp_path)
    worker_services(built)  # what get_services() hands every invocation in this worker
    yield built


def blob_binding(container, name: str, data: bytes | None = None):
    """The blob trigger's argument as the worker builds it for the SDK-type binding: the host
    sends model binding data (the connection's name, the container and the blob), never the
    content, and the extension's converter turns it into an azure-storage-blob ``BlobClient``
    from the connection's app setting (``IMAGES_STORAGE``, set by the ``services`` fixture)."""
    del data  # what the InputStream binding used to carry; the SDK-type binding carries none
    content = json.dumps({"Connection": "IMAGES_STORAGE", "ContainerName": container.container_name, "BlobName": name})
    binding_data = SimpleNamespace(
        version="1.0", source="AzureStorageBlobs", content_type="application/json", content=content
    )
    return BlobClientConverter.decode(
        SdkDatum(value=binding_data, type="model_binding_data"), trigger_metadata={}, pytype=blob_ext.BlobClient
    )


def blob_event(container, name: str, event_type: str = handlers.BLOB_DELETED, *, cloud_events: bool = False):
    """An event as Blob Storage publishes it through Event Grid, decoded by the worker's own
    converter (Event Grid schema, or CloudEvents 1.0 schema)."""
    data = {"api": "DeleteBlob", "blobType": "BlockBlob", "url": container.get_blob_client(name).url}
    subject = f"/blobServices/default/containers/{container.container_name}/blobs/{name}"
    topic = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if cloud_events:
        body = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": topic,
            "type": event_type,
            "subject": subject,
            "time": now,
            "data": data,
        }
    else:
        body = {
            "id": str(uuid.uuid4()),
            "topic": topic,
            "subject": subject,
            "eventType": event_type,
            "eventTime": now,
            "data": data,
            "dataVersion": "",
            "metadataVersion": "1",
        }
    return EventGridEventInConverter.decode(Datum(json.dumps(body), "json"), trigger_metadata={})


def key_of(container, name: str) -> str:
    return blob_key(container, name)


def call(function_app, name: str, *args):
    return functions_by_name(function_app)[name].get_user_function()(*args)


def test_index_image_indexes_the_blob_with_its_metadata(function_app, services, blob_container, photos):
    data = photos["cat.jpg"]
    blob_container.upload_blob("pets/cat.jpg", data, metadata={"tags": "cat,pet"})

    assert call(function_app, "index_image", blob_binding(blob_container, "pets/cat.jpg", data)) is None

    doc = services.backend.get(key_of(blob_container, "pets/cat.jpg"))
    assert doc is not None
    assert doc["container"] == blob_container.container_name
    assert doc["blob_path"] == "pets/cat.jpg" and doc["file_name"] == "cat.jpg"
    assert doc["tags"] == ["cat", "pet"]
    assert doc["source"] == blob_container.get_blob_client("pets/cat.jpg").url
    assert doc["content_type"] == "image/jpeg"
    assert doc["model_version"] == OFFLINE_MULTILINGUAL
    assert services.backend.count() == 1


def test_the_function_reads_each_image_once_through_the_size_guard(
    azurite,
    blob_container,
    vision_server,
    local_index,
    failures_container,
    tmp_path,
    function_app,
    photos,
    worker_services,
):
    # Every request of the handler's storage client, counted on the wire.
    seen: list[tuple[str, str, str]] = []

    def record(response) -> None:
        request = response.http_request
        seen.append((request.method, request.url.split("?")[0], request.headers.get("x-ms-range", "")))

    counted = BlobServiceClient.from_connection_string(azurite.connection_string, raw_response_hook=record)
    settings = Settings(
        IMAGES_STORAGE=azurite.connection_string,
        IMAGES_CONTAINER=blob_container.container_name,
        VISION_ENDPOINT=vision_server.url,
        VISION_KEY=vision_server.key or "",
        VISION_MODEL_VERSION=OFFLINE_MULTILINGUAL,
        IMGSEARCH_DATA_DIR=str(tmp_path),
    )
    worker_services(
        build_services(settings, backend=local_index, failures=BlobFailureLog(failures_container), blob_service=counted)
    )
    blob_container.upload_blob("one-read.jpg", photos["dog.jpg"])
    argument = blob_binding(blob_container, "one-read.jpg")
    assert isinstance(argument, StorageBlobClient)  # what the host hands over: a client, no bytes
    call(function_app, "index_image", argument)
    url = blob_container.get_blob_client("one-read.jpg").url
    reads = [(method, rng) for method, where, rng in seen if where == url and method == "GET"]
    # One download, ranged to the size guard; the other calls are property reads (HEAD).
    assert len(reads) == 1 and reads[0][1].startswith("bytes=0-"), seen
    assert local_index.get(key_of(blob_container, "one-read.jpg")) is not None


def test_a_blob_still_throttled_is_deferred_to_the_queue_and_indexed_from_it_later(
    storage_with_queues,
    blob_container,
    faulty_vision_server,
    local_index,
    failures_container,
    tmp_path,
    function_app,
    worker_services,
):
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy

    throttling = faulty_vision_server(fault_rate=1.0, fault_statuses=(429,), fault_retry_after=0)
    settings = dict(
        IMAGES_STORAGE=storage_with_queues,
        IMAGES_CONTAINER=blob_container.container_name,
        VISION_KEY="any",
        VISION_MODEL_VERSION=OFFLINE_MULTILINGUAL,
        VISION_MAX_RETRIES=1,
        IMGSEARCH_DATA_DIR=str(tmp_path),
    )
    queue = QueueClient.from_connection_string(
        storage_with_queues, "imgsearch-deferred", message_decode_policy=TextBase64DecodePolicy()
    )
    throttled = build_services(
        Settings(VISION_ENDPOINT=throttling.url, **settings),
        backend=local_index,
        failures=BlobFailureLog(failures_container),
    )
    worker_services(throttled)
    blob_container.upload_blob("busy.jpg", jpeg())
    assert call(function_app, "index_image", blob_binding(blob_container, "busy.jpg")) is None  # no raise
    assert handlers.index_blob(f"{blob_container.container_name}/busy.jpg").status == "deferred"
    assert local_index.count() == 0 and throttled.failures.get(key_of(blob_container, "busy.jpg")) is None
    # Two messages (two events), each invisible for at least the second Retry-After asks for.
    assert queue.peek_messages(max_messages=32) == []
    deadline = time.monotonic() + 30
    messages = []
    while len(messages) < 2 and time.monotonic() < deadline:
        messages += list(queue.receive_messages(max_messages=32, visibility_timeout=60))
        time.sleep(0.2)
    assert len(messages) == 2
    body = json.loads(messages[0].content)
    assert body == {"container": blob_container.container_name, "blob": "busy.jpg", "deferrals": 1}

    # The queue trigger, once Vision has room again: the blob is indexed as it is now.
    recovered = faulty_vision_server()
    worker_services(
        build_services(
            Settings(VISION_ENDPOINT=recovered.url, **settings), backend=local_index, failures=throttled.failures
        )
    )
    for message in messages:  # at least once: the second message finds it unchanged
        call(function_app, "index_deferred", func.QueueMessage(body=message.content.encode("utf-8")))
        queue.delete_message(message)
    assert local_index.get(key_of(blob_container, "busy.jpg")) is not None
    assert len([r for r in recovered.requests.all() if r.path.endswith("vectorizeImage")]) == 1


def test_a_message_that_is_not_ours_is_dropped_not_retried(function_app, services):
    assert call(function_app, "index_deferred", func.QueueMessage(body=b"not json")) is None
    assert handlers.index_deferred('{"container": "images"}') is None


def test_a_second_trigger_for_unchanged_bytes_makes_no_vision_call(
    function_app, services, blob_container, vision_server
):
    blob_container.upload_blob("a.jpg", jpeg())
    call(function_app, "index_image", blob_binding(blob_container, "a.jpg"))
    before = len(vision_server.requests.all())

    outcome = handlers.index_blob(f"{blob_container.container_name}/a.jpg")

    assert outcome.status == "unchanged"
    assert len(vision_server.requests.all()) == before
    assert services.backend.count() == 1


def test_a_corrupt_blob_is_recorded_and_the_function_returns_normally(
    function_app, services, blob_container, failures_container
):
    blob_container.upload_blob("broken.jpg", b"\xff\xd8\xff this is not a jpeg")

    call(function_app, "index_image", blob_binding(blob_container, "broken.jpg"))  # does not raise

    key = key_of(blob_container, "broken.jpg")
    assert services.backend.get(key) is None
    record = services.failures.get(key)
    assert record is not None and "InvalidImageError" in record.reason
    assert record.source.endswith("/broken.jpg") and record.etag
    # One JSON blob per failed key, readable with any storage tool.
    assert [b.name for b in failures_container.list_blobs()] == [f"{key}.json"]

    # Uploading a good image under the same name indexes it and clears the record.
    blob_container.upload_blob("broken.jpg", jpeg(), overwrite=True)
    call(function_app, "index_image", blob_binding(blob_container, "broken.jpg"))
    assert services.backend.get(key) is not None
    assert services.failures.get(key) is None


def test_a_blob_over_the_size_limit_is_recorded_without_a_vision_call(
    azurite, blob_container, vision_server, local_index, failures_container, tmp_path, function_app, worker_services
):
    small_limit = make_services(
        azurite, blob_container, vision_server, local_index, failures_container, tmp_path, MAX_IMAGE_BYTES=2000
    )
    worker_services(small_limit)
    blob_container.upload_blob("huge.jpg", jpeg(size=(400, 400)))
    before = len(vision_server.requests.all())
    call(function_app, "index_image", blob_binding(blob_container, "huge.jpg"))
    record = small_limit.failures.get(key_of(blob_container, "huge.jpg"))
    assert record is not None and "InputLimitError" in record.reason and "2,000" in record.reason
    assert len(vision_server.requests.all()) == before


def test_a_transient_vision_failure_raises_so_the_host_retries(
    azurite,
    blob_container,
    faulty_vision_server,
    local_index,
    failures_container,
    tmp_path,
    function_app,
    worker_services,
):
    down = faulty_vision_server(keys=["test-key"], fault_rate=1.0, fault_statuses=(503,), fault_retry_after=None)
    flaky = make_services(
        azurite, blob_container, down, local_index, failures_container, tmp_path, VISION_MAX_RETRIES=0
    )
    worker_services(flaky)
    blob_container.upload_blob("a.jpg", jpeg())
    with pytest.raises(Exception) as caught:
        call(function_app, "index_image", blob_binding(blob_container, "a.jpg"))
    assert getattr(caught.value, "status_code", None) == 503
    assert flaky.failures.get(key_of(blob_container, "a.jpg")) is None  # not a permanent failure
    assert local_index.count() == 0


def test_index_image_for_a_blob_already_gone_does_nothing(function_app, services, blob_container):
    assert handlers.index_blob(f"{blob_container.container_name}/gone.jpg") is None
    call(function_app, "index_image", blob_binding(blob_container, "gone.jpg", b""))
    assert services.backend.count() == 0


def test_remove_image_removes_the_document_of_a_deleted_blob(function_app, services, blob_container):
    blob_container.upload_blob("old.jpg", jpeg())
    handlers.index_blob(f"{blob_container.container_name}/old.jpg")
    assert services.backend.count() == 1
    blob_container.delete_blob("old.jpg")

    call(function_app, "remove_image", blob_event(blob_container, "old.jpg"))

    assert services.backend.count() == 0
    # At-least-once delivery: the same event again (here in the CloudEvents schema) is harmless.
    call(function_app, "remove_image", blob_event(blob_container, "old.jpg", cloud_events=True))
    assert services.backend.count() == 0


def test_remove_image_accepts_the_cloud_events_schema(function_app, services, blob_container):
    blob_container.upload_blob("ce.jpg", jpeg())
    handlers.index_blob(f"{blob_container.container_name}/ce.jpg")
    blob_container.delete_blob("ce.jpg")

    call(function_app, "remove_image", blob_event(blob_container, "ce.jpg", cloud_events=True))

    assert services.backend.count() == 0


def test_remove_image_ignores_other_event_types(function_app, services, blob_container):
    blob_container.upload_blob("keep.jpg", jpeg())
    handlers.index_blob(f"{blob_container.container_name}/keep.jpg")
    blob_container.delete_blob("keep.jpg")

    call(function_app, "remove_image", blob_event(blob_container, "keep.jpg", BLOB_CREATED))

    assert services.backend.count() == 1


def test_a_late_delete_event_for_a_blob_uploaded_again_keeps_its_document(function_app, services, blob_container):
    blob_container.upload_blob("again.jpg", jpeg((10, 10, 200)))
    handlers.index_blob(f"{blob_container.container_name}/again.jpg")
    blob_container.delete_blob("again.jpg")
    blob_container.upload_blob("again.jpg", jpeg((200, 10, 10)))  # re-uploaded before the event arrived

    call(function_app, "remove_image", blob_event(blob_container, "again.jpg"))

    doc = services.backend.get(key_of(blob_container, "again.jpg"))
    assert doc is not None
    assert doc["size_bytes"] == blob_container.get_blob_client("again.jpg").get_blob_properties().size


def test_remove_image_ignores_events_of_other_containers(function_app, services, blob_container, failures_container):
    blob_container.upload_blob("same-name.jpg", jpeg())
    handlers.index_blob(f"{blob_container.container_name}/same-name.jpg")
    blob_container.delete_blob("same-name.jpg")

    # E.g. a failure record being cleared in the same account, or any other container.
    call(function_app, "remove_image", blob_event(failures_container, "same-name.jpg"))

    assert services.backend.count() == 1


@pytest.mark.parametrize(
    "subject, url, expected",
    [
        ("/blobServices/default/containers/images/blobs/a/b c.jpg", "", ("images", "a/b c.jpg")),
        ("", "https://acct.blob.core.windows.net/images/a/b%20c.jpg", ("images", "a/b c.jpg")),
        ("", "http://127.0.0.1:10000/devstoreaccount1/images/x.jpg", ("images", "x.jpg")),
        ("", "https://acct.blob.core.windows.net/devstoreaccount1/x.jpg", ("devstoreaccount1", "x.jpg")),
    ],
)
def test_blob_events_name_the_container_and_blob(subject, url, expected):
    event = handlers.parse_blob_event(handlers.BLOB_DELETED, subject, {"url": url})
    assert (event.container, event.blob_name) == expected


def test_an_event_without_a_blob_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="names no blob"):
        handlers.parse_blob_event(handlers.BLOB_DELETED, "/somewhere/else", {})


# --------------------------------------------------------------------------- search


@pytest.fixture
def indexed_sample_blobs(services, blob_container, photos):
    for name, data in photos.items():
        blob_container.upload_blob(name, data, metadata={"tags": name.split(".")[0]})
        assert handlers.index_blob(f"{blob_container.container_name}/{name}").status == "indexed"
    return services


def http(method: str = "GET", params: dict | None = None, body: bytes = b"", content_type: str | None = None):
    headers = {"content-type": content_type} if content_type else {}
    return func.HttpRequest(
        method=method, url="http://localhost/api/search", headers=headers, params=params or {}, body=body
    )


def search(function_app, request: func.HttpRequest) -> tuple[int, dict]:
    response = call(function_app, "search", request)
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_body())


def test_search_by_text_ranks_the_matching_image_first(function_app, indexed_sample_blobs):
    status, body = search(function_app, http(params={"text": "a cat", "k": "3"}))
    assert status == 200
    assert body["count"] == 3 and len(body["results"]) == 3
    assert body["results"][0]["fields"]["file_name"] == "cat.jpg"
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)


def test_search_by_posted_image_bytes_finds_the_same_image(function_app, indexed_sample_blobs, photos):
    as_bytes = search(function_app, http("POST", {"k": "1"}, photos["dog.jpg"], "image/jpeg"))
    # The same bytes inside JSON, in the least usual form accepted: a data: URL of URL-safe
    # Base64 without its padding (indexer.base64_image).
    encoded = base64.urlsafe_b64encode(photos["dog.jpg"]).decode().rstrip("=")
    payload = json.dumps({"image": f"data:image/jpeg;base64,{encoded}", "k": 1}).encode()
    in_json = search(function_app, http("POST", None, payload, "application/json"))
    for status, body in (as_bytes, in_json):
        assert status == 200
        assert body["results"][0]["fields"]["file_name"] == "dog.jpg"
        assert body["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_search_by_image_url_with_json_body_and_filters(function_app, indexed_sample_blobs, photos, image_url_server):
    url = image_url_server(f"q-{uuid.uuid4().hex}.jpg", photos["coffee.jpg"], "image/jpeg")
    payload = {"image_url": url, "k": 5, "filter": ["tags=coffee"]}
    status, body = search(
        function_app, http("POST", body=json.dumps(payload).encode(), content_type="application/json")
    )
    assert status == 200
    assert [r["fields"]["file_name"] for r in body["results"]] == ["coffee.jpg"]


def test_search_threshold_drops_weaker_results(function_app, indexed_sample_blobs):
    _, everything = search(function_app, http(params={"text": "a cat", "k": "10"}))
    cut = everything["results"][1]["score"]
    _, above = search(function_app, http(params={"text": "a cat", "k": "10", "threshold": str(cut)}))
    assert all(r["score"] >= cut for r in above["results"])
    assert len(above["results"]) < len(everything["results"])


@pytest.mark.parametrize(
    "request_args, code, words",
    [
        (dict(params={}), "BadRequest", "give a query"),
        (dict(params={"text": "cat", "image_url": "http://x/y.jpg"}), "BadRequest", "exactly one"),
        (dict(params={"text": "cat", "k": "0"}), "BadRequest", "between 1 and 1000"),
        (dict(params={"text": "cat", "k": "ten"}), "BadRequest", "whole number"),
        (dict(params={"text": "cat", "threshold": "2"}), "BadRequest", "between -1 and 1"),
        (dict(params={"text": "cat", "filter": "width >> 3"}), "InvalidFilter", "width"),
        (dict(params={"text": "cat", "filter": "colour=red"}), "InvalidFilter", "colour"),
        (dict(params={"text": " ".join(["word"] * 71)}), "InputLimitExceeded", "70 words"),
        (dict(params={"image_url": "file:///etc/passwd"}), "BadRequest", "http(s) URL"),
        (dict(method="POST", body=b"{not json", content_type="application/json"), "BadRequest", "not valid JSON"),
        (dict(method="POST", body=b'{"image": "!!!"}', content_type="application/json"), "InvalidImage", "Base64"),
        (
            dict(method="POST", body=b"\x00\x01garbage", content_type="image/png"),
            "InvalidImage",
            "not a readable image",
        ),
    ],
)
def test_bad_search_input_gets_400_with_a_clear_json_error(
    function_app, indexed_sample_blobs, request_args, code, words
):
    status, body = search(function_app, http(**request_args))
    assert status == 400
    assert body["error"]["code"] == code
    assert words in body["error"]["message"]


def test_unsupported_media_type_gets_415_and_other_methods_405(function_app, indexed_sample_blobs):
    status, body = search(function_app, http("POST", body=b"text=cat", content_type="text/plain"))
    assert status == 415 and "Content-Type" in body["error"]["message"]
    status, body = search(function_app, http("PUT", params={"text": "cat"}))
    assert status == 405 and body["error"]["code"] == "MethodNotAllowed"


def test_search_before_the_index_exists_answers_503(
    function_app, azurite, blob_container, vision_server, failures_container, tmp_path, worker_services
):
    from indexer.backends.numpy_index import NumpyIndex

    missing = NumpyIndex(tmp_path / "never-created", "images")
    worker_services(make_services(azurite, blob_container, vision_server, missing, failures_container, tmp_path))
    status, body = search(function_app, http(params={"text": "a cat"}))
    assert status == 503 and body["error"]["code"] == "IndexNotFound"


def test_a_bad_app_setting_is_named_by_the_functions(function_app, blob_container, monkeypatch, worker_services):
    monkeypatch.setenv("VISION_CONCURRENCY", "none")
    worker_services(None)  # a fresh worker: it reads its app settings on the first invocation

    status, body = search(function_app, http(params={"text": "a cat"}))
    with pytest.raises(ConfigurationError) as raised:  # the blob trigger: the host logs it and retries
        call(function_app, "index_image", blob_binding(blob_container, "a.jpg"))

    assert status == 500 and body["error"]["code"] == "Configuration"
    for message in (body["error"]["message"], str(raised.value)):
        assert message.startswith("invalid setting: VISION_CONCURRENCY='none': Input should be a valid integer")


def test_search_against_an_index_of_another_model_version_answers_500_and_names_both(
    function_app,
    azurite,
    blob_container,
    vision_server,
    failures_container,
    tmp_path,
    local_index_factory,
    worker_services,
):
    from indexer.model_versions import OFFLINE_ENGLISH

    english = local_index_factory(OFFLINE_ENGLISH, directory=tmp_path / "english")
    worker_services(make_services(azurite, blob_container, vision_server, english, failures_container, tmp_path))
    status, body = search(function_app, http(params={"text": "a cat"}))
    assert status == 500 and body["error"]["code"] == "ModelVersionMismatch"
    assert OFFLINE_ENGLISH in body["error"]["message"] and OFFLINE_MULTILINGUAL in body["error"]["message"]


def test_search_while_vision_throttles_answers_503_with_retry_after(
    function_app,
    azurite,
    blob_container,
    faulty_vision_server,
    local_index,
    failures_container,
    tmp_path,
    worker_services,
):
    throttled = faulty_vision_server(keys=["test-key"], fault_rate=1.0, fault_statuses=(429,), fault_retry_after=7)
    worker_services(
        make_services(
            azurite, blob_container, throttled, local_index, failures_container, tmp_path, VISION_MAX_RETRIES=0
        )
    )
    response = call(function_app, "search", http(params={"text": "a cat"}))
    assert response.status_code == 503
    assert json.loads(response.get_body())["error"]["code"] == "ServiceUnavailable"
    assert response.headers.get("Retry-After") == "7"


# --------------------------------------------------------------------------- failure logs


def test_blob_failure_log_records_replaces_lists_and_clears(failures_container):
    log = BlobFailureLog(failures_container)
    first = Outcome("k1", "http://x/a.jpg", "failed", reason="InvalidImageError: broken")
    log.record(first, etag="0x1")
    log.record(Outcome("k2", "http://x/b.jpg", "failed", reason="InputLimitError: too big"), etag="0x2")
    log.record(Outcome("k1", "http://x/a.jpg", "failed", reason="InvalidImageError: still broken"), etag="0x3")

    assert {r.key: (r.reason, r.etag) for r in log.records()} == {
        "k1": ("InvalidImageError: still broken", "0x3"),
        "k2": ("InputLimitError: too big", "0x2"),
    }
    log.clear("k1")
    log.clear("never-failed")
    assert [r.key for r in log.records()] == ["k2"]
    with pytest.raises(ValueError, match="only failed outcomes"):
        log.record(Outcome("k3", "http://x/c.jpg", "indexed"))


def test_jsonl_failure_log_survives_a_torn_line_and_reloads(tmp_path):
    path = tmp_path / "failures.jsonl"
    log = JsonlFailureLog(path)
    log.record(Outcome("k1", "/a.jpg", "failed", reason="bad"), etag="e1")
    log.record(Outcome("k2", "/b.jpg", "failed", reason="worse"))
    log.clear("k1")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"event": "failed", "key": "k3", "sou')  # a crash in the middle of a write

    reloaded = JsonlFailureLog(path)
    assert [(r.key, r.reason) for r in reloaded.records()] == [("k2", "worse")]
    assert reloaded.get("k1") is None
