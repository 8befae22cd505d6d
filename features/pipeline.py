"""Pipeline features: the expansion deal in flight at ``as_of`` and recent wins and losses.

Point in time: a deal counts at ``as_of`` when it was created on or before that day; it is
open when it had not closed by the end of that day (``outcome`` is never read, since it
says how an open deal later ended); its stage is the last one entered by then. Both
opportunity tables are optional: without them every pipeline feature is null.
"""

from __future__ import annotations

import ibis
from ibis.expr.types import Table

from features.spine import day_number

EXPANSION_KINDS = ("expansion", "cross_sell", "upsell")
WON_LOST_DAYS = 180
PIPELINE_FEATURES = ("open_expansion_opportunity", "open_expansion_amount_usd", "open_opportunity_stage_rank",
                     "open_opportunity_days_in_stage", "opportunities_won_180d", "opportunities_lost_180d")
KEYS = ["account_id", "as_of_day"]


def _stage_rank(stage: ibis.Value, order: tuple[str, ...]) -> ibis.Value:
    """1-based rank of a stage in the configured order; unlisted stages rank after every listed one."""
    return ibis.cases(*[(stage == name, i + 1) for i, name in enumerate(order)], else_=len(order) + 1)


def _open_deals(opps: Table, stages: Table, snap_days: Table, order: tuple[str, ...]) -> Table:
    """Per account and snapshot: open expansion deals, their value, and the most advanced one's stage and days in it."""
    o = opps.filter(opps.kind.isin(EXPANSION_KINDS)).select(
        "opportunity_id", "account_id", amount=opps.amount.cast("float64"),
        created_day=day_number(opps.created_at), closed_day=day_number(opps.closed_at),
    )
    j = o.join(snap_days, (o.created_day <= snap_days.as_of_day)
               & (o.closed_day.isnull() | (o.closed_day > snap_days.as_of_day)))
    s = stages.select(sid=stages.opportunity_id, entered_day=day_number(stages.entered_at),
                      rank=_stage_rank(stages.stage, order))
    js = j.join(s, (j.opportunity_id == s.sid) & (s.entered_day <= j.as_of_day))
    # the stage in force: the latest entry by as_of (ties on one day: the later stage in the order)
    current = js.group_by(["opportunity_id", "account_id", "as_of_day"]).aggregate(
        rank=js.rank.argmax(js.entered_day * 1000 + js.rank),
        entered_day=js.entered_day.max(),
    )
    deals = j.left_join(current, ["opportunity_id", "account_id", "as_of_day"])
    return deals.group_by(KEYS).aggregate(
        open_expansion_opportunity=ibis.literal(1.0),
        open_expansion_amount_usd=deals.amount.sum().cast("float64"),
        open_opportunity_stage_rank=deals.rank.max().cast("float64"),
        open_opportunity_days_in_stage=(deals.as_of_day - deals.entered_day).argmax(
            deals.rank * 100_000 - deals.entered_day).cast("float64"),
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
    """Every pipeline feature per spine row: null without the opportunity tables; 0 / null when no deal applies."""
    t = base.select(*KEYS)
    if "opportunities" not in tables or "opportunity_stages" not in tables:
        return t.select(*KEYS, **{name: ibis.null("float64") for name in PIPELINE_FEATURES})
    opps, stages = tables["opportunities"], tables["opportunity_stages"]
    t = t.left_join(_open_deals(opps, stages, snap_days, order), KEYS)
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
