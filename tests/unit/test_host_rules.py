"""The host stand-ins' retry rules (``standins.host_rules``): the limits come from
``functions/host.json``, a bad value there is named, and the ``watch`` runner gives a blob up
after the blob trigger's limit, until the blob changes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from indexer.errors import ConfigurationError
from standins import watch
from standins.host_rules import HOST_JSON, HostRules
from standins.watch import BlobWatcher

UNREACHABLE = "storage unreachable"
REPO_HOST_JSON = Path(__file__).resolve().parents[2] / "functions" / "host.json"


def host_json(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "host.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_limits_are_those_the_function_apps_host_json_states():
    assert HOST_JSON == REPO_HOST_JSON
    extensions = json.loads(REPO_HOST_JSON.read_text())["extensions"]
    assert HostRules.from_host_json() == HostRules(
        poison_blob_threshold=extensions["blobs"]["poisonBlobThreshold"],
        max_dequeue_count=extensions["queues"]["maxDequeueCount"],
    )


def test_other_limits_in_host_json_are_followed(tmp_path):
    path = host_json(tmp_path, {"extensions": {"blobs": {"poisonBlobThreshold": 2}, "queues": {"maxDequeueCount": 7}}})
    rules = HostRules.from_host_json(path)
    assert [rules.gives_up("blob", runs) for runs in (1, 2)] == [False, True]
    assert [rules.gives_up("queue", runs) for runs in (6, 7)] == [False, True]


@pytest.mark.parametrize("content", [{"version": "2.0"}, {"extensions": {"blobs": {}}}])
def test_an_unstated_limit_is_the_hosts_default(tmp_path, content):
    assert HostRules.from_host_json(host_json(tmp_path, content)) == HostRules(5, 5)


def test_without_a_host_json_the_hosts_defaults_apply(tmp_path):
    assert HostRules.from_host_json(tmp_path / "absent.json") == HostRules(5, 5)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ({"extensions": {"blobs": {"poisonBlobThreshold": 0}}}, "extensions.blobs.poisonBlobThreshold"),
        ({"extensions": {"queues": {"maxDequeueCount": "5"}}}, "extensions.queues.maxDequeueCount"),
        ({"extensions": {"queues": []}}, "extensions.queues must be a JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_host_json_is_a_configuration_error_naming_the_setting(tmp_path, content, named):
    with pytest.raises(ConfigurationError, match=named.replace(".", r"\.")):
        HostRules.from_host_json(host_json(tmp_path, content))


def test_limits_given_in_code_must_be_whole_numbers_of_at_least_one():
    with pytest.raises(ValueError, match="poison_blob_threshold"):
        HostRules(poison_blob_threshold=0)


class Container:
    """The listing and URLs the watcher reads from a container client; ``blobs`` is name -> ETag."""

    def __init__(self) -> None:
        self.blobs: dict[str, str] = {}

    def list_blobs(self, name_starts_with: str | None = None) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=n, etag=e) for n, e in self.blobs.items() if n.startswith(name_starts_with or "")]

    def get_blob_client(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(url=f"http://127.0.0.1/images/{name}")


def test_the_watcher_gives_a_failing_blob_up_after_the_blob_triggers_limit_until_it_changes(monkeypatch):
    container = Container()
    services = SimpleNamespace(
        settings=SimpleNamespace(images_container="images"),
        source=lambda name: SimpleNamespace(container_client=container),
    )
    calls: list[str] = []

    def index_blob(path: str, services: object) -> None:
        calls.append(path)
        raise ConnectionError(UNREACHABLE)

    monkeypatch.setattr(watch.handlers, "index_blob", index_blob)
    watcher = BlobWatcher(services, rules=HostRules(poison_blob_threshold=3))
    container.blobs["a.jpg"] = "etag-1"
    for _ in range(5):
        watcher.poll_once()
    assert calls == ["images/a.jpg"] * 3  # three runs, then given up

    container.blobs["a.jpg"] = "etag-2"  # a new version is tried again
    changes = watcher.poll_once()
    assert calls == ["images/a.jpg"] * 4
    assert [(c.kind, c.etag, c.error) for c in changes] == [
        ("created", "etag-2", "ConnectionError: storage unreachable")
    ]
