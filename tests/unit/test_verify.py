"""``indexer.verify``'s judgement, without a deployment: where the Function is, and which service a
failed stage is blamed on (tests/e2e/test_dev.py runs the stages against ``imgsearch dev``)."""

from __future__ import annotations

import socket

import pytest

from indexer.errors import EXIT_FAILED, EXIT_USAGE, ConfigurationError, SearchServiceError
from indexer.settings import load_settings
from indexer.verify.diagnosis import Service, StageFailed, diagnose, function_url, services_for
from indexer.verify.run import _vectorizer_failure

VECTORIZE = "https://func-abc.azurewebsites.net/api/vectorize"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_function_is_found_by_its_own_setting_or_by_the_vectorizer_the_search_service_calls():
    assert function_url(load_settings(function_url="http://127.0.0.1:7071/")) == "http://127.0.0.1:7071"
    assert function_url(load_settings(search_vectorizer_uri=VECTORIZE)) == "https://func-abc.azurewebsites.net"
    with pytest.raises(ConfigurationError, match="set IMGSEARCH_FUNCTION_URL"):
        function_url(load_settings())
    with pytest.raises(ConfigurationError, match="IMGSEARCH_FUNCTION_URL must be an http"):
        function_url(load_settings(function_url="func-abc.azurewebsites.net"))


def test_a_stage_that_times_out_blames_the_first_service_it_needs_that_does_not_answer():
    down = f"http://127.0.0.1:{closed_port()}"
    settings = load_settings(
        vision_endpoint=down, search_endpoint="http://127.0.0.1:1", search_vectorizer_uri=VECTORIZE
    )
    services = services_for(settings, "http://127.0.0.1:10000/devstoreaccount1")
    # the Function answers (any HTTP answer counts); Vision behind it refuses
    services["function"] = Service(services["function"].label, None)
    failure = diagnose("searchable", services, StageFailed("the probe was not found within 10 s"))
    assert failure.service == f"Vision (VISION_ENDPOINT {down})"
    assert failure.message.startswith("refused the connection (the probe was not found")
    assert failure.exit_code == EXIT_FAILED
    assert str(failure).startswith(f"stage 'searchable': Vision (VISION_ENDPOINT {down}) refused the connection")


def test_a_401_from_the_vectorizer_is_named_as_such_and_is_a_setting_to_fix():
    settings = load_settings(search_endpoint="https://srch.search.windows.net", search_vectorizer_uri=VECTORIZE)
    refused = SearchServiceError(
        "Could not complete vectorization action. The vectorization endpoint returned status code '401' "
        "(Unauthorized).",
        code="",
        status_code=400,
    )
    failure = diagnose(
        "vectorizer", services_for(settings, "https://st.blob.core.windows.net"), _vectorizer_failure(refused)
    )
    assert failure.service == f"the index's vectorizer (SEARCH_VECTORIZER_URI {VECTORIZE})"
    assert "refused the search service's key" in failure.message and "SEARCH_VECTORIZER_KEY" in failure.message
    assert failure.exit_code == EXIT_USAGE


def test_a_search_error_that_is_not_about_the_vectorizer_blames_the_search_service():
    settings = load_settings(search_endpoint="https://srch.search.windows.net", search_vectorizer_uri=VECTORIZE)
    throttled = SearchServiceError("too many requests", code="Throttled", status_code=503)
    failure = diagnose(
        "vectorizer", services_for(settings, "https://st.blob.core.windows.net"), _vectorizer_failure(throttled)
    )
    assert failure.service == "Azure AI Search (SEARCH_ENDPOINT https://srch.search.windows.net)"
    assert failure.message.startswith("answered HTTP 503")


def test_a_vision_error_the_function_answered_is_blamed_on_vision_whether_or_not_this_machine_reaches_it():
    down = f"http://127.0.0.1:{closed_port()}"
    settings = load_settings(
        vision_endpoint=down, search_endpoint="https://srch.search.windows.net", search_vectorizer_uri=VECTORIZE
    )
    services = services_for(settings, "https://st.blob.core.windows.net")
    answer = "GET /api/search answered HTTP 500: retrieval:vectorizeText was refused: the key is wrong"
    behind = StageFailed(f"failed behind the Function: {answer}", service="vision", behind=True)
    failure = diagnose("searchable", services, behind)
    assert failure.service == f"Vision (VISION_ENDPOINT {down})"
    assert failure.message == f"refused the connection (failed behind the Function: {answer})"
    # Vision answers this machine (here: nothing to ask); the Function's words are the reason
    services["vision"] = Service(services["vision"].label, None)
    assert diagnose("searchable", services, behind).message == f"failed behind the Function: {answer}"
