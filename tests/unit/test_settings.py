"""``load_settings``: a value that is not valid is a ``ConfigurationError`` naming its
environment variable and the problem, with the value unless it is a secret; a variable that
looks like a misspelled setting is named in a warning."""

from __future__ import annotations

import logging

import pytest

from indexer.errors import ConfigurationError
from indexer.settings import load_settings, misspelled_settings, setting_names


def test_a_bad_value_names_its_variable_and_the_problem(monkeypatch):
    monkeypatch.setenv("VISION_TIMEOUT_SECONDS", "soon")
    monkeypatch.setenv("VISION_WORD_CHECK", "never")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "VISION_TIMEOUT_SECONDS='soon': Input should be a valid number" in message
    assert "VISION_WORD_CHECK='never': Input should be 'auto', 'strict' or 'service'" in message


def test_an_override_by_field_name_is_named_by_its_variable():
    with pytest.raises(ConfigurationError, match=r"^invalid setting: VISION_CONCURRENCY=0: .* greater than or equal"):
        load_settings(vision_concurrency=0)


def test_a_secrets_value_is_never_shown():
    with pytest.raises(ConfigurationError) as caught:
        load_settings(search_key=12345678, storage_connection_string=["AccountKey=abc"])
    message = str(caught.value)
    assert "SEARCH_KEY: Input should be a valid string" in message and "IMAGES_STORAGE: " in message
    assert "12345678" not in message and "AccountKey" not in message


def test_a_misspelled_setting_is_named_with_the_setting_it_resembles(monkeypatch, caplog):
    monkeypatch.setenv("VISON_ENDPOINT", "http://x")
    monkeypatch.setattr("indexer.settings._warned", set())
    with caplog.at_level(logging.WARNING, logger="indexer.settings"):
        settings = load_settings()
        load_settings()
    warnings = [r.getMessage() for r in caplog.records if "VISON_ENDPOINT" in r.getMessage()]
    assert warnings == ["VISON_ENDPOINT is not a setting and is ignored; did you mean VISION_ENDPOINT?"]
    assert settings.uses_offline_model


def test_settings_and_variables_read_by_others_are_not_misspellings():
    others = [
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "IMAGES_STORAGE__credential",
        "IMGSEARCH_MODEL_CACHE",
        "SEARCH_DOUBLE_KEYS",
    ]
    unrelated = ["PATH", "HOME", "VISION_SERVER_KEYS", "SEARCH", "PYTHONUNBUFFERED", "HF_HUB_OFFLINE"]
    assert misspelled_settings([*setting_names(), *others, *unrelated]) == {}
    assert misspelled_settings(["search_key", "Images_Storage__BlobServiceUri"]) == {}


def test_the_azd_outputs_of_settings_are_not_misspellings():
    # `eval "$(azd env get-values)"` (README, "Use it") and the azd hooks put these in the environment.
    outputs = ["AZURE_SEARCH_INDEX_NAME", "AZURE_VISION_MODEL_VERSION", "AZURE_SEARCH_VECTOR_COMPRESSION"]
    assert misspelled_settings(outputs) == {}


def test_near_misses_of_each_shape_are_reported():
    found = misspelled_settings(["SEARCH_KEYS", "IMGSEARCH_DATADIR", "VISION_ENDPIONT", "IMAGES_CONTAINERS"])
    assert found == {
        "SEARCH_KEYS": "SEARCH_KEY",
        "IMGSEARCH_DATADIR": "IMGSEARCH_DATA_DIR",
        "VISION_ENDPIONT": "VISION_ENDPOINT",
        "IMAGES_CONTAINERS": "IMAGES_CONTAINER",
    }
