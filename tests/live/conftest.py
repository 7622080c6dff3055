"""The live tier: tests against a real deployment, found through ``azd env get-values``.

They settle what the stand-ins can only assume (each is linked from its row in
standins/FIDELITY.md). ``make test`` never runs them (``-m "not live"`` in pyproject.toml);
``make test-live`` does. With no deployment each one is skipped with a reason that says how to
get one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

# What a test needs from the deployment: outputs of infra/main.bicep in the azd environment.
REQUIRED = ("AZURE_SEARCH_ENDPOINT", "AZURE_SEARCH_INDEX_NAME", "AZURE_STORAGE_BLOB_ENDPOINT", "AZURE_IMAGES_CONTAINER")
HOW_TO_GET_ONE = (
    "no Azure deployment to test against: run `azd up` in this checkout (README, 'Deploy to Azure'); "
    "`azd env get-values` must then show {missing}; then `make test-live`"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this directory is a live test, marked or not, so `-m "not live"` leaves it out."""
    for item in items:
        if "tests/live/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.live)


def azd_values() -> dict[str, str]:
    """``azd env get-values`` of the default environment, or {} without azd or an environment."""
    if not shutil.which("azd"):
        return {}
    try:
        answer = subprocess.run(["azd", "env", "get-values"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if answer.returncode != 0:
        return {}
    values = {}
    for line in answer.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            values[name.strip()] = value.strip().strip('"')
    return values


@dataclass(frozen=True)
class Deployment:
    """A deployment's outputs, and the settings the indexer reads for it (as the hooks set them)."""

    values: dict[str, str]

    @property
    def pull_mode(self) -> bool:
        return self.values.get("AZURE_INGESTION_MODE", "push") == "pull"

    def settings_environment(self) -> dict[str, str]:
        v = self.values
        return {
            "SEARCH_ENDPOINT": v["AZURE_SEARCH_ENDPOINT"],
            "SEARCH_INDEX_NAME": v["AZURE_SEARCH_INDEX_NAME"],
            "VISION_ENDPOINT": v.get("AZURE_VISION_ENDPOINT", ""),
            "VISION_MODEL_VERSION": v.get("AZURE_VISION_MODEL_VERSION", "2023-04-15"),
            "SEARCH_VECTORIZER_URI": v.get("AZURE_SEARCH_VECTORIZER_URI", ""),
            "IMAGES_STORAGE__blobServiceUri": v["AZURE_STORAGE_BLOB_ENDPOINT"],
            "IMAGES_STORAGE_RESOURCE_ID": v.get("AZURE_STORAGE_ACCOUNT_ID", ""),
            "IMAGES_CONTAINER": v["AZURE_IMAGES_CONTAINER"],
            "AZURE_TOKEN_CREDENTIALS": "AzureDeveloperCliCredential",
        }


@pytest.fixture(scope="session")
def deployment() -> Deployment:
    values = {**azd_values(), **{k: v for k, v in os.environ.items() if k.startswith("AZURE_")}}
    missing = [name for name in REQUIRED if not values.get(name)]
    if missing:
        pytest.skip(HOW_TO_GET_ONE.format(missing=", ".join(missing)))
    return Deployment(values)


@pytest.fixture
def live_settings(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The indexer's settings for the deployment (azd's sign-in, no keys)."""
    for name in ("SEARCH_KEY", "VISION_KEY", "IMAGES_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in deployment.settings_environment().items():
        monkeypatch.setenv(name, value)
    from indexer.settings import load_settings

    yield load_settings()
