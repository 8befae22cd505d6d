"""MRR movements derived from the type-2 subscriptions history: the one definition.

Every function takes Ibis tables and returns an Ibis expression, so the same code runs
on DuckDB and on other Ibis backends (PySpark). Nothing is executed here.

A subscription period is ``valid_from <= day < valid_to`` (``valid_to`` null = current).
A product's MRR can change only at a period boundary: when a period starts (the value
before is the previous period's when that one ends the same day, else 0) and when a
period ends with no period starting that day (the value after is 0). Account MRR is the
sum over products; a movement is a day on which it changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

# Cumulative sums of float MRR leave residues like 1e-13 where an account is really at 0.
_MONEY_DECIMALS = 6


def _typed(subscriptions: ir.Table) -> ir.Table:
    s = subscriptions
    return s.select(
        account_id=s.account_id.cast("string"),
        product_id=s.product_id.cast("string"),
        plan=s.plan.cast("string"),
        seats=s.seats.cast("int64"),
        mrr=s.mrr.cast("float64"),
        valid_from=s.valid_from.cast("date"),
        valid_to=s.valid_to.cast("date"),
    )


def account_mrr_at(subscriptions: ir.Table, dates: ir.Table | Sequence[dt.date]) -> ir.Table:
    """MRR, seats and paying products of each account at each date (periods with valid_from <= as_of < valid_to).

    ``dates`` is a sequence of dates or a table with an ``as_of`` column. Accounts with
    no period covering a date have no row for it (their MRR is 0).
    """
    if not isinstance(dates, ir.Table):
        dates = ibis.memtable({"as_of": list(dates)}, schema={"as_of": "date"})
    d = dates.select(as_of=dates.as_of.cast("date")).distinct()
    s = _typed(subscriptions)
    covering = s.join(d, (s.valid_from <= d.as_of) & (s.valid_to.isnull() | (d.as_of < s.valid_to)))
    return covering.group_by(["account_id", "as_of"]).aggregate(
        mrr=covering.mrr.sum(),
        seats=covering.seats.sum(),
        products_owned=covering.product_id.nunique(where=covering.mrr > 0),
    )


def _product_changes(subscriptions: ir.Table) -> ir.Table:
    """One row per account, product and boundary day: plan, seats and MRR just before and from that day."""
    s = _typed(subscriptions)
    w = ibis.window(group_by=[s.account_id, s.product_id], order_by=s.valid_from)
    s = s.mutate(
        prev_valid_to=s.valid_to.lag().over(w),
        prev_plan=s.plan.lag().over(w),
        prev_seats=s.seats.lag().over(w),
        prev_mrr=s.mrr.lag().over(w),
        next_valid_from=s.valid_from.lead().over(w),
    )
    contiguous = (s.prev_valid_to == s.valid_from).fill_null(False)
    starts = s.select(
        account_id=s.account_id,
        product_id=s.product_id,
        date=s.valid_from,
        plan_before=contiguous.ifelse(s.prev_plan, ibis.null("string")),
        plan_after=s.plan,
        seats_before=contiguous.ifelse(s.prev_seats, 0),
        seats_after=s.seats,
        mrr_before=contiguous.ifelse(s.prev_mrr, 0.0),
        mrr_after=s.mrr,
    )
    # A period that ends with no successor that day drops the product to 0 (a churn when it was the last one).
    ending = s.filter(s.valid_to.notnull() & (s.next_valid_from.isnull() | (s.next_valid_from != s.valid_to)))
    ends = ending.select(
        account_id=ending.account_id,
        product_id=ending.product_id,
        date=ending.valid_to,
        plan_before=ending.plan,
        plan_after=ibis.null("string"),
        seats_before=ending.seats,
        seats_after=ibis.literal(0, "int64"),
        mrr_before=ending.mrr,
        mrr_after=ibis.literal(0.0, "float64"),
    )
    return starts.union(ends)


def _classify(t: ir.Table, keys: list[str]) -> ir.Table:
    """Add ``movement`` (new / reactivation / churn / expansion / contraction) from mrr_before and mrr_after."""
    first_paid = t.date.min(where=t.mrr_after > 0).over(ibis.window(group_by=[t[k] for k in keys]))
    starts_paying = (t.mrr_before <= 0) & (t.mrr_after > 0)
    movement = ibis.cases(
        (starts_paying & (t.date == first_paid), "new"),
        (starts_paying, "reactivation"),
        ((t.mrr_before > 0) & (t.mrr_after <= 0), "churn"),
        (t.mrr_after > t.mrr_before, "expansion"),
        else_="contraction",
    )
    return t.mutate(movement=movement, mrr_delta=t.mrr_after - t.mrr_before)


def _account_changes(changes: ir.Table) -> ir.Table:
    """Account MRR just before and from each boundary day, from the summed product deltas."""
    per_day = changes.group_by(["account_id", "date"]).aggregate(
        delta=(changes.mrr_after - changes.mrr_before).sum()
    )
    w = ibis.window(group_by=per_day.account_id, order_by=per_day.date)
    after = per_day.mutate(mrr_after=per_day.delta.cumsum().over(w).round(_MONEY_DECIMALS))
    return after.select(
        "account_id",
        "date",
        mrr_before=after.mrr_after.lag(default=0.0).over(w),
        mrr_after=after.mrr_after,
    )


def _tier(products: ir.Table | None) -> ir.Table | None:
    if products is None:
        return None
    return products.select(
        product_id=products.product_id.cast("string"),
        plan=products.plan.cast("string"),
        tier_rank=products.tier_rank.cast("int64"),
    )


def _product_kind(p: ir.Table, account_mrr_before: ir.Value) -> ir.Value:
    """Expansion kind of one product change with MRR up; null when it is not an expansion."""
    plan_changed = p.plan_after != p.plan_before
    tier_known = p.tier_before.notnull() & p.tier_after.notnull()
    # With a catalog an upgrade is a higher tier; without one, a plan change that raises MRR.
    plan_up = plan_changed & tier_known.ifelse(p.tier_after > p.tier_before, True)
    seats_up = p.seats_after > p.seats_before
    return ibis.cases(
        (p.mrr_after <= p.mrr_before, ibis.null("string")),
        ((p.mrr_before <= 0) & (account_mrr_before > 0), "cross_sell"),
        (p.mrr_before <= 0, ibis.null("string")),
        (plan_up & seats_up, "mixed"),
        (plan_up, "plan_upgrade"),
        (seats_up, "seats"),
        else_="price",
    )


def product_movements(subscriptions: ir.Table, products: ir.Table | None = None) -> ir.Table:
    """Movements at account x product grain, with the plan and seats on both sides and the expansion kind.

    ``movement`` is relative to the product (``churn`` = this product's MRR went to 0);
    ``expansion_kind`` is set on changes that raise MRR of an account already paying
    (``cross_sell`` for a product going 0 -> >0). ``products`` (optional) supplies tier_rank.
    """
    changes = _product_changes(subscriptions)
    accounts = _account_changes(changes).select("account_id", "date", account_mrr_before="mrr_before")
    p = changes.filter(changes.mrr_before != changes.mrr_after)
    p = p.join(accounts, ["account_id", "date"], how="left")
    tiers = _tier(products)
    if tiers is None:
        p = p.mutate(tier_before=ibis.null("int64"), tier_after=ibis.null("int64"))
    else:
        before = tiers.select(pb="product_id", plan_b="plan", tier_before="tier_rank")
        after = tiers.select(pa="product_id", plan_a="plan", tier_after="tier_rank")
        p = p.left_join(before, [p.product_id == before.pb, p.plan_before == before.plan_b])
        p = p.left_join(after, [p.product_id == after.pa, p.plan_after == after.plan_a])
        p = p.drop("pb", "plan_b", "pa", "plan_a")
    p = p.mutate(expansion_kind=_product_kind(p, p.account_mrr_before.fill_null(0.0)))
    p = _classify(p, ["account_id", "product_id"])
    return p.select(
        "account_id", "product_id", "date", "movement", "mrr_before", "mrr_after", "mrr_delta",
        "expansion_kind", "plan_before", "plan_after", "seats_before", "seats_after",
    )


def movements(subscriptions: ir.Table, products: ir.Table | None = None) -> ir.Table:
    """One row per account and day on which its total MRR changes, with the movement and expansion kind.

    ``expansion_kind`` is the kind of the product changes that raised MRR that day
    (``mixed`` when they differ); null for movements other than ``expansion``.
    """
    changes = _product_changes(subscriptions)
    accounts = _account_changes(changes)
    accounts = accounts.filter(accounts.mrr_before != accounts.mrr_after)
    accounts = _classify(accounts, ["account_id"])
    kinds = product_movements(subscriptions, products)
    kinds = kinds.filter(kinds.expansion_kind.notnull())
    kinds = kinds.group_by(["account_id", "date"]).aggregate(
        kind_min=kinds.expansion_kind.min(), kind_max=kinds.expansion_kind.max()
    )
    m = accounts.left_join(kinds, ["account_id", "date"])
    kind = ibis.cases(
        (m.movement != "expansion", ibis.null("string")),
        (m.kind_min == m.kind_max, m.kind_min),
        (m.kind_min.isnull(), ibis.null("string")),
        else_="mixed",
    )
    return m.select(
        "account_id", "date", "movement", "mrr_before", "mrr_after", "mrr_delta", expansion_kind=kind
    )
