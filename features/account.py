"""Account context: firmographics, tenure, revenue, renewal and fiscal timing, movement history.

Only relative timing is used (months to renewal, to the customer's fiscal-year start,
since the last expansion): the calendar position of the snapshot itself would not
transfer from one company to another.
"""

from __future__ import annotations

import ibis
from ibis.expr.types import Table

from features.movements import account_mrr_at
from features.spine import day_number

DAYS_PER_MONTH = 30.4375
KEYS = ["account_id", "as_of_day"]
CATEGORICAL = ("segment", "industry", "acquisition_channel", "region")


def next_renewal(periods: Table) -> Table:
    """``account_id, as_of_day, next_renewal_day``: the nearest ``renewal_date`` on or after each snapshot among the
    subscription periods in force then (``features.spine.active_periods``)."""
    upcoming = periods.filter(periods.renewal_day >= periods.as_of_day)
    return upcoming.group_by(KEYS).aggregate(next_renewal_day=upcoming.renewal_day.min())


def _history(moves: Table, snap_days: Table) -> Table:
    """Expansions and contractions dated on or before each snapshot, and the day of the last expansion."""
    m = moves.select("account_id", "movement", day=day_number(moves.date))
    j = m.join(snap_days, m.day <= snap_days.as_of_day)
    return j.group_by(KEYS).aggregate(
        expansions_past=(j.movement == "expansion").sum().cast("float64"),
        contractions_past=(j.movement == "contraction").sum().cast("float64"),
        last_expansion_day=j.day.max(where=j.movement == "expansion"),
    )


def _mrr_180d_ago(subscriptions: Table, snaps: Table) -> Table:
    then = account_mrr_at(subscriptions, snaps.select(as_of="as_of_180d_ago"))
    keyed = then.join(snaps.select("as_of_day", "as_of_180d_ago"), then.as_of == snaps.as_of_180d_ago)
    return keyed.select("account_id", "as_of_day", mrr_180d_ago=keyed.mrr.cast("float64"))


def account_features(
    base: Table, accounts: Table, periods: Table, moves: Table, subscriptions: Table, snaps: Table
) -> Table:
    """Account context per spine row; ``base`` has ``account_id, as_of_day, as_of_month, mrr, seats``.

    Besides the features it returns ``csm_owner`` (nullable), a context column that is
    not a model feature: the serving layer ranks a CSM's book of accounts by it.
    """
    snap_days = snaps.select("as_of_day")
    a = accounts.select(
        "account_id", "csm_owner", *CATEGORICAL,
        employees=accounts.employees.cast("float64"),
        since_day=day_number(accounts.customer_since),
        fy_month=accounts.fiscal_year_start_month.cast("int64"),
    )
    t = base.left_join(a, "account_id").left_join(next_renewal(periods), KEYS)
    t = t.left_join(_history(moves, snap_days), KEYS).left_join(_mrr_180d_ago(subscriptions, snaps), KEYS)
    tenure_days = t.as_of_day - t.since_day
    return t.select(
        "account_id",
        "as_of_day",
        t.csm_owner.cast("string").name("csm_owner"),
        *(t[c].cast("string").name(c) for c in CATEGORICAL),
        employees=t.employees,
        tenure_months=ibis.ifelse(tenure_days >= 0, tenure_days / DAYS_PER_MONTH, ibis.null("float64")),
        mrr=t.mrr,
        arr=t.mrr * 12.0,
        seats=t.seats,
        months_to_renewal=((t.next_renewal_day - t.as_of_day) / DAYS_PER_MONTH).cast("float64"),
        months_to_fiscal_year_start=((t.fy_month - t.as_of_month + 12) % 12).cast("float64"),
        expansions_past=t.expansions_past.fill_null(0.0),
        contractions_past=t.contractions_past.fill_null(0.0),
        months_since_last_expansion=((t.as_of_day - t.last_expansion_day) / DAYS_PER_MONTH).cast("float64"),
        mrr_growth_180d_pct=ibis.ifelse(
            t.mrr_180d_ago > 0, (t.mrr - t.mrr_180d_ago) / t.mrr_180d_ago * 100.0, ibis.null("float64")
        ),
    )


# Families whose windowed features are null before the window fits in the account's life; pipeline deals
# are dated events of their own (a deal won in the account's first month is still a deal won).
TENURE_FAMILIES = ("usage", "adoption", "engagement", "account")


def account_starts(subscriptions: Table, first_use: Table, snap_days: Table) -> Table:
    """Per account and snapshot, the first day of its life each kind of feature measures from.

    ``sub_start_day``: its first subscription day on or before ``as_of`` (rows starting later
    are never read); ``usage_start_day``: its first usage day when it has used the product by
    ``as_of``, else ``sub_start_day``. ``first_use`` is ``features.adoption.first_use``.
    """
    subs = subscriptions.select("account_id", from_day=day_number(subscriptions.valid_from))
    j = subs.join(snap_days, subs.from_day <= snap_days.as_of_day)
    first_sub = j.group_by(KEYS).aggregate(sub_start_day=j.from_day.min())
    used = first_use.group_by("account_id").aggregate(first_use_day=first_use.first_day.min())
    t = first_sub.left_join(used, "account_id")
    used_by_then = t.first_use_day.notnull() & (t.first_use_day <= t.as_of_day)
    return t.select(*KEYS, "sub_start_day",
                    usage_start_day=ibis.ifelse(used_by_then, t.first_use_day, t.sub_start_day))


def within_tenure(t: Table, names: list[str]) -> dict[str, ibis.Value]:
    """The ``names`` columns of ``t`` (which carries :func:`account_starts`), each windowed feature null
    where its window reaches before the account's first day: a window longer than the account's life
    is not a measurement (a 12-week slope of a 5-week-old account), and a trend needs both its windows."""
    from features.registry import full_window_days, get, measures_usage

    out: dict[str, ibis.Value] = {}
    for name in names:
        spec = get(name)
        days = full_window_days(spec) if spec.family in TENURE_FAMILIES else None
        if days is None:
            out[name] = t[name]
            continue
        start = t.usage_start_day if measures_usage(spec) else t.sub_start_day
        out[name] = ibis.ifelse(t.as_of_day - start + 1 >= days, t[name], ibis.null(t[name].type()))
    return out
