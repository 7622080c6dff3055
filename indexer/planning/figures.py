"""A number with where it comes from: the page, its address and its date, or ``None`` for an
assumption of this project. Every figure a plan uses is one of these, so a plan can list them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Source:
    """A page (or a file of this project) a figure is read from, with the date the page carries."""

    title: str
    url: str
    date: str  # ISO date of the page's own last update, as read (ms.date for learn.microsoft.com)
    note: str = ""  # how the figure was read, when not plainly from the page


@dataclass(frozen=True)
class Figure:
    """``value`` in ``unit``, named for a person; ``source`` None marks an assumption."""

    name: str
    value: float
    unit: str
    source: Source | None

    @property
    def is_assumption(self) -> bool:
        return self.source is None

    def to_dict(self) -> dict[str, Any]:
        cited: dict[str, Any] = {"figure": self.name, "value": self.value, "unit": self.unit}
        if self.source is None:
            cited["assumption"] = True
        else:
            cited.update(page=self.source.title, url=self.source.url, date=self.source.date)
            if self.source.note:
                cited["note"] = self.source.note
        return cited
