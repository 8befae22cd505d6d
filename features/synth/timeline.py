"""The generator's calendar: simulated months, the observation window and per-block random streams.

Accounts are simulated month by month from up to ``PRE_WINDOW_MONTHS`` before the
window so that tenure varies. Every change to an account happens on its anniversary
day of the month, so account-month ``t`` runs from day ``anniversary`` of calendar
month ``t`` to the same day of the next month.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

PRE_WINDOW_MONTHS = 60
BLOCK_ACCOUNTS = 1000  # fixed block size: results do not depend on how blocks are grouped for writing

# Sub-streams of one block, so that adding draws to one table never shifts another.
STREAM_ACCOUNTS, STREAM_LIFECYCLE, STREAM_USAGE, STREAM_ENGAGEMENT = 1, 2, 3, 4
STREAM_OPPORTUNITIES = 5


def add_months(day: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` after the month of ``day``."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Timeline:
    """Simulated months (pre-window history plus the window) ending with the month that holds ``as_of``."""

    as_of: dt.date
    months: int
    pre_months: int = PRE_WINDOW_MONTHS

    def __post_init__(self) -> None:
        if self.months < 1:
            raise ValueError(f"months must be >= 1, got {self.months}")

    @property
    def total_months(self) -> int:
        return self.pre_months + self.months

    @property
    def window_start(self) -> dt.date:
        """First day of the observation window (usage and engagement start here)."""
        return add_months(self.as_of, -(self.months - 1))

    @property
    def first_window_month(self) -> int:
        return self.pre_months

    def month_starts(self) -> np.ndarray:
        """datetime64[D] first day of every simulated month, plus one month past the end."""
        first = add_months(self.as_of, -(self.total_months - 1))
        return np.array([add_months(first, k) for k in range(self.total_months + 1)], dtype="datetime64[D]")

    def anniversary_dates(self, day_of_month: np.ndarray) -> np.ndarray:
        """[accounts, months + 1] datetime64[D]: the day each account-month starts."""
        starts = self.month_starts()
        return starts[None, :] + (day_of_month[:, None] - 1).astype("timedelta64[D]")

    def clip_to_window(self, day_of_month: np.ndarray, account: np.ndarray, month: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Day numbers (since 1970) [lo, hi) of account-months, clipped to the window start and as-of."""
        bounds = self.anniversary_dates(day_of_month).astype(np.int64)
        lo = np.maximum(bounds[account, month], np.datetime64(self.window_start, "D").astype(np.int64))
        hi = np.minimum(bounds[account, month + 1], self.as_of64.astype(np.int64) + 1)
        return lo, hi

    @property
    def as_of64(self) -> np.datetime64:
        return np.datetime64(self.as_of, "D")


def block_rng(seed: int, block: int, stream: int) -> np.random.Generator:
    """An independent random stream for one block of accounts and one purpose."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, block, stream])))
