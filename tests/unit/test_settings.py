"""``load_settings``: a value that is not valid is a ``ConfigurationError`` naming its
environment variable and the problem, with the value unless it is a secret."""

from __future__ import annotations

import pytest

from indexer.errors import ConfigurationError
from indexer.settings import load_settings


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
