"""Adoption features: breadth of plan features used, new features, products and tier, gated use.

``plan_features`` and ``products`` are optional: the features that need them are null
when they are absent. A feature key is *gated* for an account when the catalog lists it
under some plan of a product the account holds but not under the plan(s) it is on:
using it (trials, previews, grace access) signals appetite for a higher tier.
"""

from __future__ import annotations

import ibis
from ibis.expr.types import Table

from features.spine import day_number
from features.usage import in_window

ADOPTION_WINDOW_DAYS = 30


def feature_use_30d(usage: Table, snap_days: Table) -> Table:
    """Events per account, snapshot and feature key over the 30 days to ``as_of``: ``account_id, as_of_day, feature_key, events``."""
    rows = usage.select("account_id", "feature_key", "events", day=day_number(usage.date))
    j = in_window(rows, snap_days, "day", ADOPTION_WINDOW_DAYS)
    return j.group_by(["account_id", "as_of_day", "feature_key"]).aggregate(events=j.events.sum().cast("float64"))


def first_use(usage: Table) -> Table:
    """The first day each account used each feature key: ``account_id, feature_key, first_day``.

    The first use of a key is the same whatever happens later, so a global minimum is
    point-in-time safe: a snapshot only asks whether that day falls in its window.
    """
    return usage.group_by(["account_id", "feature_key"]).aggregate(first_day=day_number(usage.date.min()))


def _new_features(first: Table, snap_days: Table) -> Table:
    j = in_window(first, snap_days, "first_day", ADOPTION_WINDOW_DAYS)
    return j.group_by(["account_id", "as_of_day"]).aggregate(features_new_30d=j.count().cast("float64"))


def _tier_rank(periods: Table, products: Table) -> Table:
    j = periods.join(products.select("product_id", "plan", "tier_rank"), ["product_id", "plan"])
    return j.group_by(["account_id", "as_of_day"]).aggregate(plan_tier_rank=j.tier_rank.max().cast("float64"))


def adoption_features(
    used: Table, first: Table, base: Table, periods: Table, snap_days: Table,
    plan_features: Table | None, products: Table | None,
) -> Table:
    """Adoption features per spine row.

    ``used`` is ``feature_use_30d``, ``first`` is ``first_use`` (both computed once from
    raw usage by the caller); ``base`` has ``account_id, as_of_day, products_owned``.
    """
    counts = used.group_by(["account_id", "as_of_day"]).aggregate(features_used_30d=used.count().cast("float64"))
    t = base.select("account_id", "as_of_day", "products_owned").left_join(counts, ["account_id", "as_of_day"])
    t = t.left_join(_new_features(first, snap_days), ["account_id", "as_of_day"])
    zero = ibis.literal(0.0)
    cols = {
        "features_used_30d": t.features_used_30d.fill_null(zero),
        "features_new_30d": t.features_new_30d.fill_null(zero),
        "products_owned": t.products_owned,
    }
    if plan_features is not None:
        t = t.left_join(_breadth(used, periods, plan_features), ["account_id", "as_of_day"])
        cols["feature_breadth_pct"] = t.feature_breadth_pct
        cols["gated_feature_events_30d"] = t.gated_feature_events_30d.fill_null(zero)
    else:
        cols["feature_breadth_pct"] = ibis.null("float64")
        cols["gated_feature_events_30d"] = ibis.null("float64")
    if products is not None:
        t = t.left_join(_tier_rank(periods, products), ["account_id", "as_of_day"])
        cols["plan_tier_rank"] = t.plan_tier_rank
    else:
        cols["plan_tier_rank"] = ibis.null("float64")
    return t.select("account_id", "as_of_day", **cols)


def _breadth(used: Table, periods: Table, plan_features: Table) -> Table:
    """Share of unlocked keys used in 30 days, and events on keys the current plan does not unlock.

    Used keys are matched to the small (product, plan, key) catalog first and then
    semi-joined to the plans held, so no per-snapshot list of unlocked or catalog keys is
    built and de-duplicated (3.4 M rows on a 10k-account company).
    """
    keys = ["account_id", "as_of_day"]
    held = periods.select(*keys, "product_id", "plan").distinct()
    pairs = used.select(*keys, "feature_key")
    by_plan = pairs.join(plan_features.select("product_id", "plan", "feature_key"), "feature_key")
    in_plan = used.semi_join(by_plan.semi_join(held, [*keys, "product_id", "plan"]), [*keys, "feature_key"])
    by_product = pairs.join(plan_features.select("product_id", "feature_key").distinct(), "feature_key")
    by_product = by_product.semi_join(held.select(*keys, "product_id"), [*keys, "product_id"])
    in_catalog = used.semi_join(by_product, [*keys, "feature_key"])
    gated = in_catalog.anti_join(in_plan, [*keys, "feature_key"])
    unlocked = held.join(plan_features, ["product_id", "plan"])
    b = unlocked.group_by(keys).aggregate(available=unlocked.feature_key.nunique())
    b = b.left_join(in_plan.group_by(keys).aggregate(used_in_plan=in_plan.count()), keys)
    b = b.left_join(gated.group_by(keys).aggregate(gated_feature_events_30d=gated.events.sum()), keys)
    return b.select(
        *keys,
        feature_breadth_pct=(b.used_in_plan.fill_null(0) / b.available * 100.0).cast("float64"),
        gated_feature_events_30d=b.gated_feature_events_30d.cast("float64"),
    )
