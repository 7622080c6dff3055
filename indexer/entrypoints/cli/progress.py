"""The progress bar of bulk commands, whose clock starts when the first image is vectorized.

The offline model loads on the first image that needs a vector (seconds to a minute), and a
Vision client's first call pays for its connection. Counted into the rate, that wait made the
bar promise tens of minutes for a run of seconds. So the bar shows no ETA until the first image
is vectorized, and then measures its rate from there.
"""

from __future__ import annotations

import sys
from typing import Any

# tqdm's default layout without the remaining time and the rate.
_WITHOUT_ETA = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}]"


class ProgressBar:
    """A tqdm bar for ``RunOptions.progress`` plus ``vectorized()``: the moment the rate and
    ETA start to mean something. Use as a context manager, as tqdm."""

    def __init__(self, desc: str, unit: str = "image", *, file: Any = None, disable: bool | None = None) -> None:
        """``disable=None``: no bar where ``file`` (default stderr) is no terminal, as tqdm."""
        from tqdm import tqdm

        self.bar = tqdm(
            unit=unit,
            desc=desc,
            file=file or sys.stderr,
            disable=disable,
            dynamic_ncols=True,
            bar_format=_WITHOUT_ETA,
            mininterval=0 if disable is False else 0.1,
        )
        self.clock_started = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    @property
    def total(self) -> Any:
        return self.bar.total

    @total.setter
    def total(self, value: Any) -> None:
        self.bar.total = value

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def write(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)

    def outcome(self, outcome: Any) -> None:
        """``RunOptions.on_outcome``: an image indexed was vectorized just now."""
        if outcome.status == "indexed":
            self.vectorized()

    def vectorized(self) -> None:
        """An image got its vector: the first time, restart the clock (keeping the count) and
        show the ETA from now on."""
        if self.clock_started:
            return
        self.clock_started = True
        bar, done = self.bar, self.bar.n
        bar.bar_format = None  # tqdm's default, with the remaining time and the rate
        bar.reset(total=bar.total)  # the clock and the rate's average start now
        bar.n = bar.last_print_n = bar.initial = done  # the rate counts from here
        bar.refresh()
