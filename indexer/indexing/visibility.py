"""Waiting until an index shows a run's own writes.

Azure AI Search makes written documents searchable "a few seconds after" it answers
(search-howto-reindex, "Responses"), so a bulk run ends with this bounded poll: what runs
next, a search or another run whose skips and removals rest on a listing, then sees what it
wrote. The blob trigger never waits; the numpy index shows every write at once.
(design: docs/design.md#reads-that-lag-behind-writes)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from indexer.backends.base import IndexBackend

log = logging.getLogger(__name__)

# Azure's "a few seconds", with room for a busy service. A run that times out still succeeded;
# its writes are only not confirmed visible yet, which the log says.
DEFAULT_TIMEOUT_SECONDS = 60.0
_FIRST_PAUSE, _LONGEST_PAUSE = 0.1, 2.0


def wait_until_visible(
    backend: IndexBackend,
    expected: Mapping[str, str | None],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> set[str]:
    """Poll until ``backend`` shows every write in ``expected`` (key -> the ``content_hash``
    written, or None for a delete), or ``timeout`` seconds pass. Returns the keys still not
    shown (empty when all are). ``timeout=0`` checks once."""
    remaining = dict(expected)
    deadline = clock() + max(0.0, timeout)
    pause = _FIRST_PAUSE
    while remaining:
        pending = backend.not_yet_visible(remaining)
        remaining = {key: remaining[key] for key in pending}
        left = deadline - clock()
        if not remaining or left <= 0:
            break
        sleep(min(pause, left))
        pause = min(pause * 2, _LONGEST_PAUSE)
    if remaining:
        log.warning(
            "%d write(s) are not visible in the index after %.0fs (e.g. %s); searches and listings may miss "
            "them for a while longer",
            len(remaining),
            timeout,
            next(iter(remaining)),
        )
    return set(remaining)
