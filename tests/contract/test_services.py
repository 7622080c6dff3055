"""The composition root (``indexer.services``): which objects the settings build, and that
importing it stays cheap for the Azure Function."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from azure.core.credentials import AzureKeyCredential

from indexer.backends.numpy_index import NumpyIndex
from indexer.errors import ConfigurationError
from indexer.index_setup import describe_backend, describe_vectorizer
from indexer.model_versions import OFFLINE_ENGLISH, OFFLINE_MULTILINGUAL
from indexer.ratelimit import RateLimiter
from indexer.services import build_backend, build_credential, build_rate_limiter, build_vectorizer
from indexer.settings import Settings, pinned_model_version
from indexer.vectorizers import LazyVectorizer
from indexer.vectorizers.vision.client import VisionClient
from tests.fixtures.cli import clean_env


def settings(**values) -> Settings:
    """Settings from ``values`` only (field names), never from the developer's environment."""
    return Settings(**{"vision_endpoint": "", "search_endpoint": "", **values})


def test_importing_the_app_the_cli_and_bulk_does_not_import_torch_or_the_servers(tmp_path) -> None:
    code = (
        "import sys, indexer.services, indexer.indexing.bulk, indexer.entrypoints.cli\n"
        "from indexer.services import build_backend\n"
        "from indexer.settings import load_settings\n"
        "build_backend(load_settings(data_dir=sys.argv[1]))\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'fastapi', 'uvicorn', 'starlette'))\n"
        "print(','.join(heavy))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in clean_env()}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_without_endpoints_the_index_is_local_and_no_pacing_applies(tmp_path) -> None:
    chosen = settings(data_dir=tmp_path, search_index_name="photos")

    backend = build_backend(chosen)

    assert isinstance(backend, NumpyIndex) and backend.root == tmp_path / "photos"
    assert build_rate_limiter(chosen) is None
    assert "photos" in describe_backend(chosen) and str(tmp_path) in describe_backend(chosen)
    assert OFFLINE_MULTILINGUAL in describe_vectorizer(chosen)


def test_the_offline_model_stands_in_for_the_configured_azure_version() -> None:
    assert pinned_model_version(settings()) == OFFLINE_MULTILINGUAL
    assert pinned_model_version(settings(vision_model_version="2022-04-11")) == OFFLINE_ENGLISH
    assert (
        pinned_model_version(settings(vision_endpoint="https://x.example", vision_model_version="2022-04-11"))
        == "2022-04-11"
    )


def test_an_unknown_model_version_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="VISION_MODEL_VERSION"):
        build_vectorizer(settings(vision_model_version="1999-01-01"))


def test_a_vision_endpoint_with_a_key_builds_the_rest_client(vision_server) -> None:
    chosen = settings(
        vision_endpoint=vision_server.url,
        vision_key=vision_server.key,
        vision_model_version=OFFLINE_MULTILINGUAL,
        vision_timeout_seconds=7,
        vision_requests_per_second=3,
    )

    client = build_vectorizer(chosen)
    try:
        embedding = client.vectorize_text("a red bus")
    finally:
        client.close()

    assert isinstance(client, VisionClient) and client.timeout == 7
    assert embedding.model_version == OFFLINE_MULTILINGUAL
    limiter = build_rate_limiter(chosen)
    assert isinstance(limiter, RateLimiter) and limiter.limit_per_second == 3
    # Bulk work paces inside the client (retries included); a one-off call is not paced.
    assert client.rate_limiter is None
    paced = build_vectorizer(chosen, paced=True)
    try:
        assert isinstance(paced.rate_limiter, RateLimiter) and paced.rate_limiter.limit_per_second == 3
        assert paced.rate_limiter.adaptive and paced.rate_limiter.rate_per_second < 3  # never on the limit
    finally:
        paced.close()
    assert vision_server.key not in describe_vectorizer(chosen)


def test_a_bad_vision_endpoint_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="VISION_ENDPOINT"):
        build_vectorizer(settings(vision_endpoint="ftp://nope", vision_model_version="2023-04-15"))


def test_credentials_are_a_key_when_one_is_set_else_entra_id() -> None:
    from azure.identity import DefaultAzureCredential

    key = build_credential("the-key", settings())
    identity = build_credential("", settings(azure_client_id="00000000-0000-0000-0000-000000000001"))

    assert isinstance(key, AzureKeyCredential) and key.key == "the-key"
    assert isinstance(identity, DefaultAzureCredential)


def test_lazy_vectorizer_builds_once_on_first_use_only(local_multilingual) -> None:
    built = []

    def factory():
        built.append(1)
        return local_multilingual

    lazy = LazyVectorizer(factory)
    assert not lazy.loaded and built == []

    first = lazy.vectorize_text("a cat")
    second = lazy.vectorize_text("a cat")

    assert built == [1] and lazy.loaded
    assert first.model_version == OFFLINE_MULTILINGUAL and (first.vector == second.vector).all()
