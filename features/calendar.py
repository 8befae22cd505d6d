"""Everything a feature build reads of its dates: the snapshot calendars and four literals.

The feature SQL depends on the snapshot dates and the data end in two ways only, and this
is the one place both are made:

* **the calendars**, small in-memory tables built from the dates in Python (the snapshots,
  the usage windows' segments, the adoption windows' segments); the SQL holds their names;
* **four literals**: the first and last raw-usage day a build reads (as dates, where the
  engine prunes the scan with them), the first one's day number, and the data end's day
  number (whether a label's horizon is complete).

So the SQL of two builds with different dates differs only in those names and literals, which
is what lets ``features.plans`` compile the SQL once and fill in each build's dates. A
calendar made with ``stand_in=True`` gives stand-in literals (``STAND_INS``, dates nine
centuries away, whose text nothing else in the SQL can hold) for that compilation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from ibis.expr.types import Table

from features.spine import snapshot_days, snapshots, to_day
from features.usage import MAX_WINDOW_DAYS, window_segments
from features.usage_pass import key_segments

#: The literals a compiled plan holds in place of a build's own: first and last usage day read, and the data end.
STAND_INS = {"first": dt.date(2901, 1, 9), "last": dt.date(2902, 3, 17), "data_end": dt.date(2903, 5, 21)}
#: The calendars' roles: the suffix of each in-memory table's name.
ROLES = ("snapshots", "window_days", "window_snapshots", "key_days", "key_snapshots")


@dataclass(frozen=True)
class Calendar:
    """The snapshot dates and data end of one build, as the feature expressions read them.

    ``prefix`` names the calendars (``<prefix><role>``); empty, Ibis makes up unique names.
    """

    dates: tuple[dt.date, ...]
    data_end: dt.date
    prefix: str = ""
    stand_in: bool = False

    @classmethod
    def of(cls, as_of_dates: Iterable[dt.date], data_end: dt.date, prefix: str = "", stand_in: bool = False) -> Calendar:
        return cls(tuple(snapshot_days(as_of_dates)), data_end, prefix, stand_in)

    def _literal(self, name: str, value: dt.date) -> dt.date:
        return STAND_INS[name] if self.stand_in else value

    @property
    def first(self) -> dt.date:
        """The first raw-usage day any window reads: ``MAX_WINDOW_DAYS`` before the first snapshot."""
        return self._literal("first", self.dates[0] - dt.timedelta(days=MAX_WINDOW_DAYS))

    @property
    def last(self) -> dt.date:
        """The last raw-usage day read: the newest snapshot."""
        return self._literal("last", self.dates[-1])

    @property
    def end(self) -> dt.date:
        """The data end: labels whose horizon passes it are null."""
        return self._literal("data_end", self.data_end)

    def literals(self) -> dict[str, tuple[object, str]]:
        """Each literal the SQL may hold, with its Ibis type: the plan's placeholders."""
        return {"first": (self.first, "date"), "last": (self.last, "date"),
                "first_day": (to_day(self.first), "int64"), "end_day": (to_day(self.end), "int64")}

    def name(self, role: str) -> str | None:
        return f"{self.prefix}{role}" if self.prefix else None

    @cached_property
    def days(self) -> list[int]:
        return [to_day(d) for d in self.dates]

    @cached_property
    def snapshots(self) -> Table:
        """``as_of, as_of_day, as_of_month, as_of_180d_ago`` per snapshot (``spine.snapshots``)."""
        return snapshots(self.dates, self.name("snapshots"))

    @cached_property
    def window_segments(self) -> tuple[Table, Table]:
        """The usage windows' segments (``usage.window_segments``)."""
        return window_segments(self.days, (self.name("window_days"), self.name("window_snapshots")))

    @cached_property
    def key_segments(self) -> tuple[Table, Table]:
        """The one raw pass's 30-day segments (``usage_pass.key_segments``)."""
        return key_segments(self.days, names=(self.name("key_days"), self.name("key_snapshots")))

    def tables(self) -> dict[str, Table]:
        """Every calendar by its name (a prefix is needed: the names are what a plan refers to)."""
        if not self.prefix:
            raise ValueError("a calendar without a prefix has no fixed table names")
        window, key = self.window_segments, self.key_segments
        made = {"snapshots": self.snapshots, "window_days": window[0], "window_snapshots": window[1],
                "key_days": key[0], "key_snapshots": key[1]}
        return {f"{self.prefix}{role}": made[role] for role in ROLES}
