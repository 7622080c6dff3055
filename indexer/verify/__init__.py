"""Prove a deployment end to end (``imgsearch verify``): upload a probe image, find it through
the Function and through the search service's vectorizer (after an indexer run in pull mode),
delete it and see it leave the index. Each stage is timed, the probe is removed whatever
happens, and a failed stage names the service to blame. (design: docs/design.md#imgsearch-verify)
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
