"""What the CLI's -v flags do to library logging."""

from __future__ import annotations

import logging

import pytest

from indexer.entrypoints.cli.common import configure_logging


@pytest.fixture(autouse=True)
def restore_levels():
    loggers = [logging.getLogger(name) for name in ("azure.identity", "indexer", "")]
    saved = [(logger, logger.level, list(logger.handlers)) for logger in loggers]
    yield
    for logger, level, handlers in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers


def test_without_v_the_credential_chains_warnings_stay_quiet_and_vv_shows_them():
    # DefaultAzureCredential warns once per credential tried; the CLI's error already names
    # the failure, so without -v those 15 lines are not printed.
    configure_logging(0)
    assert not logging.getLogger("azure.identity").isEnabledFor(logging.WARNING)
    assert logging.getLogger("azure.identity").isEnabledFor(logging.ERROR)
    configure_logging(2)
    assert logging.getLogger("azure.identity").isEnabledFor(logging.DEBUG)
