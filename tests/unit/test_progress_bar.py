"""The bulk commands' progress bar: no ETA until the first image is vectorized, and a rate
measured from then on, so the model's loading time is never read as the pace of the run."""

from __future__ import annotations

import io
from types import SimpleNamespace

from indexer.entrypoints.cli.progress import ProgressBar


def a_bar(total: int) -> ProgressBar:
    progress = ProgressBar("indexing", file=io.StringIO(), disable=False)
    progress.total = total
    return progress


def test_no_eta_is_shown_before_the_first_image_is_vectorized():
    progress = a_bar(total=100)
    progress.update(3)  # unchanged images: no vector needed
    assert "<" not in str(progress.bar) and "3/100" in str(progress.bar)


def test_the_clock_starts_when_the_first_image_is_vectorized_and_the_count_stays():
    progress = a_bar(total=100)
    progress.update(3)
    progress.bar.start_t -= 40 * 60  # forty minutes spent loading the model
    progress.outcome(SimpleNamespace(status="unchanged"))
    assert not progress.clock_started

    progress.outcome(SimpleNamespace(status="indexed"))
    progress.update(1)

    assert progress.clock_started and progress.bar.n == 4
    assert progress.bar.format_dict["elapsed"] < 5  # the load is not counted
    assert "<" in str(progress.bar)  # the ETA shows from now on
    progress.bar.start_t -= 1000
    progress.outcome(SimpleNamespace(status="indexed"))  # only the first restarts the clock
    assert progress.bar.format_dict["elapsed"] >= 1000
