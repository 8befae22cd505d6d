"""Where the data ends: the newest usage day, or the last complete one when the newest is only partly loaded.

Every nightly export holds a last day that is still arriving (late events, a job that cut
off mid-day). A day counts as partly loaded when its events fall below
``PARTIAL_DAY_SHARE`` of the median of the same weekday over the four weeks before it
(same weekday, so a quiet Sunday is not mistaken for a partial day). The newest day is
checked, then the one before it, at most ``MAX_PARTIAL_DAYS`` days back; with fewer than
two reference days nothing is judged and the newest day stands.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from ibis.expr.types import Table

PARTIAL_DAY_SHARE = 0.5
MAX_PARTIAL_DAYS = 3
REFERENCE_WEEKS = 4


@dataclass(frozen=True)
class DataEnd:
    """The last complete usage day (``day``), the newest usage day, and the share of a usual day the newest held."""

    day: dt.date
    newest: dt.date
    newest_share: float | None = None  # events of the newest day / its usual; None when not judged

    @property
    def partial(self) -> bool:
        return self.day < self.newest

    def describe(self) -> str:
        """How the day was chosen, in words, for the commands to print."""
        if not self.partial:
            return "the data end: the newest usage_daily day"
        share = f"{self.newest_share:.0%} of" if self.newest_share is not None else "far fewer events than"
        return (f"the data end: the last complete usage_daily day; {self.newest} holds only {share} a usual "
                f"{self.newest:%A}'s events (partly loaded), pass --as-of {self.newest} to use it anyway")


def daily_events(usage: Table, first: dt.date, last: dt.date) -> pd.Series:
    """Events per day over [first, last], every calendar day present (0 where nothing was recorded)."""
    day = usage.date.cast("date")
    rows = usage.filter((day >= first) & (day <= last)).group_by(d=day).aggregate(events=usage.events.sum()).execute()
    per_day = pd.Series(rows["events"].to_numpy(dtype=float), index=pd.to_datetime(rows["d"]).dt.date)
    days = [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]
    return per_day.groupby(level=0).sum().reindex(days, fill_value=0.0)


def _share_of_usual(per_day: pd.Series, day: dt.date) -> float | None:
    refs = [per_day.get(day - dt.timedelta(weeks=k)) for k in range(1, REFERENCE_WEEKS + 1)]
    refs = [r for r in refs if r is not None and r > 0]
    if len(refs) < 2:
        return None
    usual = float(pd.Series(refs).median())
    return float(per_day.get(day, 0.0)) / usual


def complete_data_end(usage: Table, newest: dt.date) -> DataEnd:
    """The last complete day on or before ``newest`` (the newest ``usage_daily`` date)."""
    first = newest - dt.timedelta(weeks=REFERENCE_WEEKS, days=MAX_PARTIAL_DAYS)
    per_day = daily_events(usage, first, newest)
    newest_share = _share_of_usual(per_day, newest)
    day = newest
    for _ in range(MAX_PARTIAL_DAYS):
        share = _share_of_usual(per_day, day)
        if share is None or share >= PARTIAL_DAY_SHARE:
            return DataEnd(day, newest, newest_share)
        day -= dt.timedelta(days=1)
    return DataEnd(newest, newest, newest_share)  # no complete day nearby: something else is wrong, keep the newest

