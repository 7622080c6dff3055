"""The fast tier: tests of one module at a time, with neither Azurite nor the offline models
(torch) nor a server. ``make test-fast`` runs only these; this file keeps them honest."""

from __future__ import annotations

import sys
import time

import pytest

# Fixtures that start a stand-in, load a model or need Node.js.
SLOW_FIXTURES = frozenset(
    {
        "azurite",
        "blob_container",
        "blob_service",
        "azurite_queue",
        "storage_with_queues",
        "vision_server",
        "faulty_vision_server",
        "local_multilingual",
        "local_english",
        "search_double",
        "azure_search_backend",
        "azure_backend_factory",
        "indexed_samples",
        "run_cli",
    }
)


@pytest.fixture(autouse=True)
def _no_slow_fixture(request: pytest.FixtureRequest) -> None:
    used = SLOW_FIXTURES & set(request.fixturenames)
    assert not used, f"a unit test may not use {sorted(used)}: move it to tests/contract or tests/e2e"


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch):
    """Run in a local time zone far from UTC (a fixed UTC+05:45, given as a POSIX TZ string so
    no time zone database is needed), so that a date read or written as local time instead
    of UTC shows. The machines that run the tests are usually on UTC, where it would not."""
    monkeypatch.setenv("TZ", "XYZ-05:45")
    time.tzset()
    assert time.localtime().tm_gmtoff == 5 * 3600 + 45 * 60
    yield
    monkeypatch.undo()
    time.tzset()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """When only the fast tier ran, nothing may have imported torch (it costs seconds)."""
    items = getattr(session, "items", [])
    only_unit = items and all("/tests/unit/" in str(item.path) for item in items)
    if only_unit and "torch" in sys.modules:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\nerror: the fast tier imported torch; a unit test must not load the offline models", file=sys.stderr)
