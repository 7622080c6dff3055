"""The Functions host's retry rules, shared by the stand-ins that play the host
(``functions_host.SimulatedHost`` and the ``watch`` runner), so that both give an input up
after the same number of runs.

A trigger whose function raises is run again until the input has run its limit, then the host
gives it up ("poisoned"). The limits are ``functions/host.json``'s
(``extensions.blobs.poisonBlobThreshold``, ``extensions.queues.maxDequeueCount``) where that
file states them, else the host's own defaults (5 each).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from indexer.errors import ConfigurationError

# The Function app's host.json in a checkout; an installed package without it uses the defaults.
HOST_JSON = Path(__file__).resolve().parent.parent / "functions" / "host.json"
DEFAULT_POISON_BLOB_THRESHOLD = 5
DEFAULT_MAX_DEQUEUE_COUNT = 5

Trigger = Literal["blob", "queue"]


@dataclass(frozen=True)
class HostRules:
    """How many runs of a failing input the host makes before it gives the input up."""

    poison_blob_threshold: int = DEFAULT_POISON_BLOB_THRESHOLD
    max_dequeue_count: int = DEFAULT_MAX_DEQUEUE_COUNT

    def __post_init__(self) -> None:
        for name in ("poison_blob_threshold", "max_dequeue_count"):
            if not _is_limit(getattr(self, name)):
                raise ValueError(f"{name} must be a whole number of at least 1, not {getattr(self, name)!r}")

    @classmethod
    def from_host_json(cls, path: Path = HOST_JSON) -> HostRules:
        """The limits ``path`` states; a missing file or setting keeps the host's default."""
        try:
            host = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except ValueError as exc:
            raise ConfigurationError(f"{path} is not valid JSON: {exc}") from None
        return cls(
            poison_blob_threshold=_limit(
                host, "extensions.blobs.poisonBlobThreshold", DEFAULT_POISON_BLOB_THRESHOLD, path
            ),
            max_dequeue_count=_limit(host, "extensions.queues.maxDequeueCount", DEFAULT_MAX_DEQUEUE_COUNT, path),
        )

    def gives_up(self, trigger: Trigger, runs: int) -> bool:
        """After the ``runs``-th run of an input raised: True to poison it, False to run it again."""
        limit = self.poison_blob_threshold if trigger == "blob" else self.max_dequeue_count
        return runs >= limit


def _limit(host: Any, setting: str, default: int, path: Path) -> int:
    """The whole number at ``setting`` (a dotted path) of host.json, or ``default`` if unstated."""
    keys = setting.split(".")
    value = host
    for depth, key in enumerate(keys):
        if not isinstance(value, dict):
            raise ConfigurationError(f"{path}: {'.'.join(keys[:depth]) or 'the file'} must be a JSON object")
        value = value.get(key)
        if value is None:
            return default
    if not _is_limit(value):
        raise ConfigurationError(f"{path}: {setting} must be a whole number of at least 1, not {value!r}")
    return value


def _is_limit(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
