"""Adoption features: breadth of plan features used, new features, products and tier, gated use.

``plan_features`` and ``products`` are optional: the features that need them are null
when they are absent. A feature key is *gated* for an account when the catalog lists it
under some plan of a product the account holds but not under the plan(s) it is on:
using it (trials, previews, grace access) signals appetite for a higher tier.
"""

from __future__ import annotations

import ibis
from ibis.expr.types import Table

from features.portable import ensure_bit_or
from features.spine import day_number
from features.usage import in_window

ADOPTION_WINDOW_DAYS = 30
MASK_BITS = 62  # bits per mask word: keeps every mask non-negative in a signed 64-bit integer


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


def catalog_key_bits(plan_features: Table) -> Table:
    """Each catalog feature key numbered into (``word``, ``bit``): ``feature_key, word, bit``.

    Keys become bits of 62-bit masks (one row per word, so any catalog size fits), and
    sets of keys per account and snapshot become a few integers: breadth and gated use
    are then bitwise operations on one row per account, snapshot and word instead of
    joins of every used key to every unlocked key.
    """
    keys = plan_features.select("feature_key").distinct()
    numbered = keys.mutate(kid=ibis.row_number().over(order_by=keys.feature_key).cast("int64"))
    return numbered.select("feature_key", word=numbered.kid // MASK_BITS, bit=numbered.kid % MASK_BITS)


def _bit(t: Table) -> ibis.Value:
    return ibis.literal(1, type="int64") << t.bit


# Octal masks of the 3-bit-group popcount (HAKMEM item 169), widened to 63 bits.
_OCT_3 = int("3" * 21, 8)
_OCT_1 = int("1" * 21, 8)
_OCT_07 = int("7" + "07" * 10, 8)


def with_popcounts(t: Table, counts: dict[str, str]) -> Table:
    """Add, for each ``{new: column}``, the number of set bits of a mask column (non-negative, under 2**62).

    Shifts, masks, additions and a modulo only (portable SQL): bit counts per 3-bit group,
    summed into 6-bit groups, whose values add up modulo 63 because 64 = 1 (mod 63); the
    count fits since a mask has at most 62 bits set.
    """
    t = t.mutate(**{new: t[col] - ((t[col] >> 1) & _OCT_3) - ((t[col] >> 2) & _OCT_1) for new, col in counts.items()})
    return t.mutate(**{new: ((t[new] + (t[new] >> 3)) & _OCT_07) % 63 for new in counts})


def _has_bit(mask: ibis.Value, bit: ibis.Value) -> ibis.Value:
    return ((mask >> bit) & 1) == 1


def _breadth(used: Table, periods: Table, plan_features: Table) -> Table:
    """Share of unlocked keys used in 30 days, and events on keys the current plan does not unlock.

    Per account, snapshot and mask word: ``unlocked`` (keys of the plans held),
    ``catalog`` (keys of any plan of the products held) and ``used`` (keys used in 30
    days). Gated keys are ``catalog`` and not ``unlocked``.
    """
    ensure_bit_or()
    keys = ["account_id", "as_of_day"]
    bits = catalog_key_bits(plan_features)
    catalog = plan_features.select("product_id", "plan", "feature_key").distinct().join(bits, "feature_key")
    plan_masks = catalog.group_by(["product_id", "plan", "word"]).aggregate(mask=_bit(catalog).sum())
    product_keys = catalog.select("product_id", "feature_key", "word", "bit").distinct()
    product_masks = product_keys.group_by(["product_id", "word"]).aggregate(mask=_bit(product_keys).sum())
    held = periods.select(*keys, "product_id", "plan").distinct()
    u = held.join(plan_masks, ["product_id", "plan"])
    unlocked = u.group_by([*keys, "word"]).aggregate(unlocked=u.mask.bit_or())
    c = held.select(*keys, "product_id").distinct().join(product_masks, "product_id")
    in_catalog = c.group_by([*keys, "word"]).aggregate(catalog=c.mask.bit_or())
    used_bits = used.join(bits, "feature_key")  # one row per used key: the sum of its bits is their union
    used_masks = used_bits.group_by([*keys, "word"]).aggregate(used=_bit(used_bits).sum())
    w = in_catalog.left_join(unlocked, [*keys, "word"]).left_join(used_masks, [*keys, "word"])
    w = w.select(
        *keys, "word", catalog=w.catalog, unlocked=w.unlocked.fill_null(0), used=w.used.fill_null(0),
    )
    w = w.mutate(gated=w.catalog - (w.catalog & w.unlocked))
    g = used_bits.join(w.select(*keys, "word", "gated"), [*keys, "word"])
    g = g.filter(_has_bit(g.gated, g.bit))
    gated = g.group_by(keys).aggregate(gated_feature_events_30d=g.events.sum())
    w = with_popcounts(w.mutate(in_plan=w.used & w.unlocked), {"n_unlocked": "unlocked", "n_in_plan": "in_plan"})
    b = w.group_by(keys).aggregate(available=w.n_unlocked.sum(), used_in_plan=w.n_in_plan.sum())
    b = b.filter(b.available > 0).left_join(gated, keys)
    return b.select(
        *keys,
        feature_breadth_pct=(b.used_in_plan / b.available * 100.0).cast("float64"),
        gated_feature_events_30d=b.gated_feature_events_30d.cast("float64"),
    )
