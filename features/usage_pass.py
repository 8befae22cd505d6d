"""One raw pass over ``usage_daily`` for every snapshot of a run.

The usage and adoption families read raw usage in three shapes: per account and day
(``usage.daily_usage``), per account, snapshot and feature key over 30 days
(``adoption.feature_use_30d``) and per account and key, the first day of use
(``adoption.first_use``). Those three definitions stay the reference; this module
computes the same three tables from a single scan of the raw rows, a
``GROUP BY GROUPING SETS`` with two groupings:

* ``(account_id, day)``: the daily roll-up, over the days some window of the run reads;
* ``(account_id, feature_key, seg_end)``: events per key and *segment*, a span of days
  that no 30-day window boundary crosses (``seg_end`` null outside every window), with
  the first day of use; summed per snapshot by joining each segment to the snapshots
  whose window holds it, and reduced to the first use per key.

The SQL text is the same for every run (``RAW_PASS_SQL``): the snapshot dates reach it
as data (the segment calendar), not as literals. ``tests/features/test_usage_pass.py``
checks the three tables equal the reference on DuckDB and on Spark.

It is not the default (``feature_table(raw_pass=True)`` turns it on): on DuckDB it measured
slower and larger than the three reference reads, both for 24 month ends and for one
(``benchmarks/README.md``, "One raw pass"); the hashing of 11.8 M rows into the daily and
per-key groups costs the same in one operator as in three, and the one pass also joins every
raw row to the calendar and keeps a wider table.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import ibis
from ibis.expr.types import Table

from features.adoption import ADOPTION_WINDOW_DAYS
from features.portable import named_memtable, sql_over
from features.spine import day_number

PASS_NAME = "usage_raw_pass_input"
# grouping(feature_key) is 1 in the grouping that leaves the key out (grouping_id would do, but DataFusion lacks it)
DAILY, PER_KEY = 1, 0
RAW_PASS_SQL = f"""
SELECT CAST(grouping(feature_key) AS BIGINT) AS grain,
       account_id, daily_day, feature_key, seg_end,
       CAST(sum(events) AS BIGINT) AS events, CAST(max(active_users) AS BIGINT) AS active_users,
       min(use_day) AS first_day
FROM {PASS_NAME}
GROUP BY GROUPING SETS ((account_id, daily_day), (account_id, feature_key, seg_end))
"""


def key_segments(
    as_of_days: Iterable[int], days: int = ADOPTION_WINDOW_DAYS, names: tuple[str, str] | tuple[None, None] = (None, None),
) -> tuple[Table, Table]:
    """``day -> seg_end`` for every day in some snapshot's ``days``-day window, and ``(as_of_day, seg_end)`` per window segment.

    ``names`` names the two in-memory tables (default: names Ibis makes up).
    """
    snaps = sorted(set(as_of_days))
    edges = sorted({d - w for d in snaps for w in (0, days)})
    covered = sorted({d - age for d in snaps for age in range(days)})
    seg_end = [edges[bisect.bisect_left(edges, x)] for x in covered]
    pairs = [(d, e) for d in snaps for e in edges if d - days < e <= d]
    day_map = named_memtable({"day": covered, "seg_end": seg_end}, names[0], {"day": "int64", "seg_end": "int64"})
    seg_snaps = named_memtable(
        {"as_of_day": [p[0] for p in pairs], "seg_end": [p[1] for p in pairs]}, names[1], {"as_of_day": "int64", "seg_end": "int64"},
    )
    return day_map, seg_snaps


def raw_usage_pass(usage: Table, first_day: int, day_map: Table) -> Table:
    """The one scan: ``grain, account_id, daily_day, feature_key, seg_end, events, active_users, first_day``.

    ``usage`` is the raw rows up to the last snapshot (``usage.usage_between``);
    ``first_day`` is the first day (number) the daily roll-up needs; ``day_map`` is
    ``key_segments``' first table.
    """
    use_day = day_number(usage.date)
    rows = usage.select(
        "account_id", "feature_key", "events", "active_users", use_day=use_day,
        daily_day=ibis.ifelse(use_day >= first_day, use_day, ibis.null("int64")),
    )
    segs = day_map.rename(map_day="day")
    rows = rows.left_join(segs, rows.use_day == segs.map_day).drop("map_day")
    s = rows.schema()
    schema = {"grain": "int64", "account_id": s["account_id"], "daily_day": "int64", "feature_key": s["feature_key"],
              "seg_end": "int64", "events": "int64", "active_users": "int64", "first_day": "int64"}
    return sql_over(rows, PASS_NAME, RAW_PASS_SQL, schema)


def daily_from_pass(raw_pass: Table) -> Table:
    """``usage.daily_usage`` of the rows since ``first_day``: ``account_id, day, events, active_users``."""
    t = raw_pass.filter((raw_pass.grain == DAILY) & raw_pass.daily_day.notnull())
    return t.select(
        "account_id", day=t.daily_day, events=t.events.cast("float64"),
        active_users=t.active_users.cast("float64"),
    )


def key_use_from_pass(raw_pass: Table, seg_snaps: Table) -> Table:
    """``adoption.feature_use_30d``: ``account_id, as_of_day, feature_key, events``."""
    t = raw_pass.filter((raw_pass.grain == PER_KEY) & raw_pass.seg_end.notnull())
    j = t.join(seg_snaps, t.seg_end == seg_snaps.seg_end)
    return j.group_by(["account_id", "as_of_day", "feature_key"]).aggregate(events=j.events.sum().cast("float64"))


def first_use_from_pass(raw_pass: Table) -> Table:
    """``adoption.first_use``: ``account_id, feature_key, first_day``."""
    t = raw_pass.filter(raw_pass.grain == PER_KEY)
    return t.group_by(["account_id", "feature_key"]).aggregate(first_day=t.first_day.min().cast("int64"))
