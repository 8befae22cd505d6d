"""Whitespace in currency (annual): unlicensed seats, unowned products, next-tier headroom.

Estimates come from what similar accounts actually reached at the same snapshot, not
from headcount alone (headcount alone says "10x" everywhere):

- seats: addressable seats = employees × the 90th percentile of seats per employee
  among accounts of the same segment and industry (segment only when that peer group
  has fewer than 5 accounts), never more than the headcount; the gap to
  the licensed seats is priced at the account's own MRR per seat.
- products: for each product the account does not hold, its attach rate among
  accounts of the same segment × the mean MRR of that product among those holders.
- tier: for each product held, (list price per seat of the next tier − that of the
  current tier) × seats; null without the ``products`` catalog, 0 at the top tier.
- total: the sum of the three (missing parts count as 0), capped at
  ``Settings.whitespace_cap_multiple`` × current ARR.
"""

from __future__ import annotations

import ibis
from ibis.expr.types import Table

from features.config import Settings

PEER_PERCENTILE = 0.9
MIN_PEERS = 5
MONTHS_PER_YEAR = 12.0
KEYS = ["account_id", "as_of_day"]


def _peer_ratio(ratios: Table, group: list[str], name: str) -> Table:
    """The ``PEER_PERCENTILE`` point of seats per employee within each group, and the group size."""
    w = ibis.window(group_by=[ratios[g] for g in group], order_by=ratios.ratio)
    ranked = ratios.mutate(pr=ibis.percent_rank().over(w))
    # percent_rank never reaches the percentile in a group of one: the group's maximum stands in.
    return ranked.group_by(group).aggregate(
        **{
            name: ibis.coalesce(ranked.ratio.min(where=ranked.pr >= PEER_PERCENTILE), ranked.ratio.max()),
            f"{name}_peers": ranked.count(),
        }
    )


def _seat_whitespace(people: Table) -> Table:
    """``people`` has account_id, as_of_day, segment, industry, employees, seats, mrr."""
    ratios = people.filter((people.employees > 0) & (people.seats > 0))
    ratios = ratios.mutate(ratio=ratios.seats / ratios.employees)
    fine = _peer_ratio(ratios, ["as_of_day", "segment", "industry"], "fine")
    coarse = _peer_ratio(ratios, ["as_of_day", "segment"], "coarse")
    t = people.left_join(fine, ["as_of_day", "segment", "industry"]).left_join(coarse, ["as_of_day", "segment"])
    ratio = ibis.ifelse(t.fine_peers.fill_null(0) >= MIN_PEERS, t.fine, t.coarse)
    # Engines differ on NULL inside least/greatest, so unknowns are handled explicitly.
    addressable = ibis.ifelse(ratio > 1.0, t.employees, t.employees * ratio)
    gap = ibis.cases(
        (addressable.isnull(), ibis.null("float64")), (addressable > t.seats, addressable - t.seats), else_=0.0
    )
    per_seat = ibis.ifelse(t.seats > 0, t.mrr / t.seats, ibis.null("float64"))
    return t.select(*KEYS, whitespace_seats_usd=(gap * per_seat * MONTHS_PER_YEAR).cast("float64"))


def _product_whitespace(people: Table, periods: Table) -> Table:
    owned = periods.filter(periods.mrr > 0).group_by([*KEYS, "product_id"]).aggregate(product_mrr=ibis._.mrr.sum())
    seg = people.select(*KEYS, "segment")
    owned_seg = owned.join(seg, KEYS)
    sizes = seg.group_by(["as_of_day", "segment"]).aggregate(n_accounts=seg.count())
    stats = owned_seg.group_by(["as_of_day", "segment", "product_id"]).aggregate(
        owners=owned_seg.count(), mean_mrr=owned_seg.product_mrr.mean()
    )
    stats = stats.join(sizes, ["as_of_day", "segment"])
    stats = stats.mutate(value=stats.owners / stats.n_accounts * stats.mean_mrr * MONTHS_PER_YEAR)
    candidates = seg.join(stats.select("as_of_day", "segment", "product_id", "value"), ["as_of_day", "segment"])
    held = owned.select(*KEYS, "product_id", held=ibis.literal(1))
    c = candidates.left_join(held, [*KEYS, "product_id"])
    c = c.filter(c.held.isnull())
    return c.group_by(KEYS).aggregate(whitespace_products_usd=c.value.sum().cast("float64"))


def _tier_whitespace(periods: Table, products: Table) -> Table:
    cat = products.select("product_id", "plan", "tier_rank", price="list_price_per_seat")
    cur = periods.filter(periods.mrr > 0).join(cat, ["product_id", "plan"])
    nxt = cat.select(n_product="product_id", n_rank="tier_rank", n_price="price")
    j = cur.left_join(nxt, [cur.product_id == nxt.n_product, nxt.n_rank == cur.tier_rank + 1])
    step = (j.n_price - j.price).fill_null(0.0)
    headroom = ibis.ifelse(step > 0, step, 0.0) * j.seats * MONTHS_PER_YEAR
    j = j.mutate(headroom=headroom)
    return j.group_by(KEYS).aggregate(whitespace_tier_usd=j.headroom.sum().cast("float64"))


def whitespace_features(
    base: Table, accounts: Table, periods: Table, products: Table | None, settings: Settings
) -> Table:
    """Whitespace features per spine row; ``base`` has ``account_id, as_of_day, mrr, seats``."""
    a = accounts.select("account_id", "segment", "industry", employees=accounts.employees.cast("float64"))
    people = base.select(*KEYS, "mrr", "seats").join(a, "account_id")
    t = base.select(*KEYS, "mrr").left_join(_seat_whitespace(people), KEYS)
    t = t.left_join(_product_whitespace(people, periods), KEYS)
    if products is not None:
        t = t.left_join(_tier_whitespace(periods, products), KEYS)
        tier = t.whitespace_tier_usd.fill_null(0.0)
    else:
        tier = ibis.null("float64")
    products_usd = t.whitespace_products_usd.fill_null(0.0)
    total = t.whitespace_seats_usd.fill_null(0.0) + products_usd + tier.fill_null(0.0)
    cap = t.mrr * MONTHS_PER_YEAR * settings.whitespace_cap_multiple
    return t.select(
        *KEYS,
        whitespace_seats_usd=t.whitespace_seats_usd,
        whitespace_products_usd=products_usd,
        whitespace_tier_usd=tier,
        whitespace_usd=ibis.ifelse(total > cap, cap, total).cast("float64"),
    )
