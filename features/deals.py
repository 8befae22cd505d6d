"""Expansion deals at a date: the one definition of an open deal, and the deal features built on it.

**An open expansion deal at ``as_of``** (:func:`open_deals`, used by the deal features
below, the deal report :mod:`features.deal_metrics`, the account and leadership pages and
the alerts):

* its ``kind`` is one of :data:`features.contract.EXPANSION_KINDS`;
* it was created on or before ``as_of`` and had not closed by the end of that day
  (``outcome`` is never read, since it says how an open deal later ended);
* its stage is the last one entered on or before ``as_of`` (two stages entered on one day:
  the later in the ``opportunity_stages`` setting); a deal with no stage yet has none;
* its **stage rank** is the 1-based position of that stage in the ``opportunity_stages``
  setting (1 = first); a stage the setting does not list ranks after every listed one;
* its **days in stage** are whole days from the day it entered that stage to ``as_of``
  (0 on the day it entered).

Per account, the deal features read the **most advanced** open deal (highest stage rank;
among equals, the one longest in its stage). Both opportunity tables are optional: without
them every deal feature is null.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import ibis
import pandas as pd
from ibis.expr.types import Table

from features.contract import EXPANSION_KINDS
from features.spine import EPOCH, day_number, snapshots

WON_LOST_DAYS = 180
PIPELINE_FEATURES = ("open_expansion_opportunity", "open_expansion_amount_usd", "open_opportunity_stage_rank",
                     "open_opportunity_days_in_stage", "opportunities_won_180d", "opportunities_lost_180d")
KEYS = ["account_id", "as_of_day"]
DEAL_COLUMNS = ("opportunity_id", "account_id", "kind", "amount", "expected_close_date", "owner", "stage",
                "stage_rank", "stage_entered_day", "days_in_stage")


def _stage_rank(stage: ibis.Value, order: tuple[str, ...]) -> ibis.Value:
    """1-based rank of a stage in the configured order; unlisted stages rank after every listed one."""
    return ibis.cases(*[(stage == name, i + 1) for i, name in enumerate(order)], else_=len(order) + 1)


def stage_ranks(stages: pd.Series, order: tuple[str, ...]) -> pd.Series:
    """:func:`_stage_rank` for a pandas column of stage names (the same 1-based meaning)."""
    rank = {name: i + 1 for i, name in enumerate(order)}
    return pd.Series([rank.get(v, len(order) + 1) for v in stages], index=stages.index, dtype="int64")


def open_deals(opps: Table, stages: Table, snap_days: Table, order: tuple[str, ...]) -> Table:
    """One row per open expansion deal and snapshot day (``as_of_day``): the columns of :data:`DEAL_COLUMNS`."""
    o = opps.filter(opps.kind.isin(EXPANSION_KINDS)).select(
        "opportunity_id", "account_id", "kind", "expected_close_date", "owner", amount=opps.amount.cast("float64"),
        created_day=day_number(opps.created_at), closed_day=day_number(opps.closed_at),
    )
    j = o.join(snap_days, (o.created_day <= snap_days.as_of_day)
               & (o.closed_day.isnull() | (o.closed_day > snap_days.as_of_day)))
    s = stages.select(sid=stages.opportunity_id, stage=stages.stage, entered_day=day_number(stages.entered_at),
                      rank=_stage_rank(stages.stage, order))
    js = j.join(s, (j.opportunity_id == s.sid) & (s.entered_day <= j.as_of_day))
    # the stage in force: the latest entry by as_of (ties on one day: the later stage in the order)
    order_key = js.entered_day * 1000 + js.rank
    current = js.group_by(["opportunity_id", "as_of_day"]).aggregate(
        stage=js.stage.argmax(order_key), stage_rank=js.rank.argmax(order_key),
        stage_entered_day=js.entered_day.max(),
    )
    d = j.left_join(current, ["opportunity_id", "as_of_day"])
    return d.select(*DEAL_COLUMNS[:6], "as_of_day", stage=d.stage, stage_rank=d.stage_rank.cast("int64"),
                    stage_entered_day=d.stage_entered_day,
                    days_in_stage=(d.as_of_day - d.stage_entered_day).cast("int64"))


def open_deals_at(opps: Table, stages: Table, as_of_dates: Iterable[dt.date], order: tuple[str, ...],
                  backend: ibis.BaseBackend | None = None) -> pd.DataFrame:
    """:func:`open_deals` for a few dates, as pandas (``as_of`` a date column, ``stage_entered_at`` a date);
    runs on ``backend`` (the default backend when None)."""
    snaps = snapshots(as_of_dates).select("as_of_day", "as_of")
    deals = open_deals(opps, stages, snaps.select("as_of_day"), order)
    deals = deals.join(snaps, "as_of_day")
    frame = (backend.execute(deals) if backend is not None else deals.execute())
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    frame["stage_entered_at"] = [None if pd.isna(v) else EPOCH + dt.timedelta(days=int(v))
                                 for v in frame["stage_entered_day"]]
    return frame.sort_values(["as_of", "account_id", "opportunity_id"]).reset_index(drop=True)


def open_deal_features(deals: Table) -> Table:
    """Per account and snapshot: open deals, their value, and the most advanced one's stage rank and days in it."""
    return deals.group_by(KEYS).aggregate(
        open_expansion_opportunity=ibis.literal(1.0),
        open_expansion_amount_usd=deals.amount.sum().cast("float64"),
        open_opportunity_stage_rank=deals.stage_rank.max().cast("float64"),
        open_opportunity_days_in_stage=deals.days_in_stage.argmax(
            deals.stage_rank * 100_000 - deals.stage_entered_day).cast("float64"),
    )


def _closed_counts(opps: Table, snap_days: Table) -> Table:
    """Expansion deals won and lost in the 180 days to ``as_of`` (closed by its end)."""
    o = opps.filter(opps.kind.isin(EXPANSION_KINDS) & opps.closed_at.notnull())
    o = o.select("account_id", "outcome", closed_day=day_number(o.closed_at))
    j = o.join(snap_days, (o.closed_day <= snap_days.as_of_day) & (o.closed_day > snap_days.as_of_day - WON_LOST_DAYS))
    return j.group_by(KEYS).aggregate(
        opportunities_won_180d=(j.outcome == "won").sum().cast("float64"),
        opportunities_lost_180d=(j.outcome == "lost").sum().cast("float64"),
    )


def pipeline_features(base: Table, tables: dict[str, Table], snap_days: Table, order: tuple[str, ...]) -> Table:
    """Every deal feature per spine row: null without the opportunity tables; 0 / null when no deal applies."""
    t = base.select(*KEYS)
    if "opportunities" not in tables or "opportunity_stages" not in tables:
        return t.select(*KEYS, **{name: ibis.null("float64") for name in PIPELINE_FEATURES})
    opps, stages = tables["opportunities"], tables["opportunity_stages"]
    t = t.left_join(open_deal_features(open_deals(opps, stages, snap_days, order)), KEYS)
    t = t.left_join(_closed_counts(opps, snap_days), KEYS)
    return t.select(
        *KEYS,
        open_expansion_opportunity=t.open_expansion_opportunity.fill_null(0.0),
        open_expansion_amount_usd=t.open_expansion_amount_usd.fill_null(0.0),
        open_opportunity_stage_rank=t.open_opportunity_stage_rank,
        open_opportunity_days_in_stage=t.open_opportunity_days_in_stage,
        opportunities_won_180d=t.opportunities_won_180d.fill_null(0.0),
        opportunities_lost_180d=t.opportunities_lost_180d.fill_null(0.0),
    )
