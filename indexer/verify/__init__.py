"""Prove a deployment end to end (``imgsearch verify``): the whole path a user's photo takes,
against whatever the settings point at (an azd environment, or ``imgsearch dev``'s dev.env).

Stages, each timed: ``upload`` a probe image under a unique name (``imgsearch-verify/...``);
in pull mode ``indexer`` (run the indexer, wait for the probe's document); ``searchable`` (the
Function's ``/api/search`` finds it by text); ``vectorizer`` (the search service finds it by
text through the index's Web API vectorizer, a ``kind: text`` vector query); ``delete`` (the
blob goes; in pull mode the indexer runs again); ``gone`` (the document leaves the index).
Whatever happens, the probe's blob and document are removed at the end (``run``). A stage that
fails names the service to blame (``diagnosis``).
"""

from __future__ import annotations

from indexer.verify.diagnosis import Failure, function_url
from indexer.verify.run import (
    DEFAULT_INDEXER_TIMEOUT,
    DEFAULT_QUERY,
    DEFAULT_SAMPLE,
    DEFAULT_STAGE_TIMEOUT,
    PROBE_PREFIX,
    StageResult,
    VerifyOptions,
    VerifyReport,
    check_settings,
    verify,
)

__all__ = [
    "DEFAULT_INDEXER_TIMEOUT",
    "DEFAULT_QUERY",
    "DEFAULT_SAMPLE",
    "DEFAULT_STAGE_TIMEOUT",
    "PROBE_PREFIX",
    "Failure",
    "StageResult",
    "VerifyOptions",
    "VerifyReport",
    "check_settings",
    "function_url",
    "verify",
]
