"""Expansion behaviour over account tenure: penetration curves, time to first expansion, frequency, kinds.

All functions build Ibis expressions over ``features.movements`` and return small pandas
frames, one row per group (and tenure month where it applies). ``as_of`` bounds what is
seen: movements after it are ignored and accounts are followed only as long as observed.
Tenure months are days since ``customer_since`` / 30.4375 (an average calendar month).
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir
import pandas as pd

from features.metrics import MetricTables, account_groups, benchmark_band
from features.movements import account_mrr_at, movements
from features.spine import month_ends

DAYS_PER_MONTH = 30.4375
FREQUENCY_CLASSES = ("none", "once", "2-3", "4+")
TENURE_BUCKETS = ((0, 3, "0-3"), (3, 6, "3-6"), (6, 12, "6-12"), (12, 18, "12-18"), (18, 24, "18-24"))


def _expansions(tables: MetricTables, as_of: dt.date) -> ir.Table:
    m = movements(tables.subscriptions, tables.products)
    return m.filter((m.movement == "expansion") & (m.date <= as_of))


def account_expansion_history(tables: MetricTables, as_of: dt.date, by: str | None = None) -> ir.Table:
    """One row per account that signed up by ``as_of``: group, tenure observed, expansions and the first one."""
    a = tables.accounts
    accounts = a.filter(a.customer_since.cast("date") <= as_of).select(
        account_id=a.account_id.cast("string"), since=a.customer_since.cast("date")
    )
    accounts = accounts.join(account_groups(tables.accounts, by), "account_id")
    e = _expansions(tables, as_of)
    per_account = e.group_by(e.account_id).aggregate(expansions=e.account_id.count(), first_expansion=e.date.min())
    j = accounts.left_join(per_account, accounts.account_id == per_account.account_id)
    observed = ibis.literal(as_of).delta(j.since, unit="day") / DAYS_PER_MONTH
    to_first = j.first_expansion.delta(j.since, unit="day") / DAYS_PER_MONTH
    return j.select(
        account_id=j.account_id, group=j.group, since=j.since, observed_months=observed,
        expansions=j.expansions.fill_null(0), months_to_first_expansion=to_first,
    )


def cohort_expansion_curve(
    tables: MetricTables, as_of: dt.date, by: str | None = "cohort", max_months: int = 24
) -> pd.DataFrame:
    """Share of each group expanded within k tenure months, k = 0..max_months (Kaplan-Meier).

    Accounts are followed for the whole months observed by ``as_of``; an account not yet
    observed for k months leaves the risk set instead of counting as "not expanded", so
    a young cohort is never read as one that did not expand. With every account observed
    to k, the figure is the plain share expanded within k months.
    """
    h = account_expansion_history(tables, as_of, by)
    h = h.mutate(observed=h.observed_months.floor(), first=h.months_to_first_expansion.ceil())
    ks = ibis.memtable({"months": list(range(max_months + 1))}, schema={"months": "int64"})
    grid = h.cross_join(ks).filter(lambda t: t.observed >= t.months)
    at_risk = grid.first.isnull() | (grid.first >= grid.months)
    out = grid.group_by(["group", "months"]).aggregate(
        accounts=grid.account_id.count(),
        at_risk=at_risk.cast("int64").sum(),
        expanded_in_month=(grid.first == grid.months).fill_null(False).cast("int64").sum(),
    ).execute().sort_values(["group", "months"]).reset_index(drop=True)
    hazard = (out["expanded_in_month"] / out["at_risk"].where(out["at_risk"] > 0)).fillna(0.0)
    out["expanded_pct"] = (1 - (1 - hazard).groupby(out["group"]).cumprod()) * 100
    return out


def time_to_first_expansion(tables: MetricTables, as_of: dt.date, by: str | None = None) -> pd.DataFrame:
    """Distribution of tenure months at the first expansion, per group: quartiles, mean, and shares by bucket."""
    h = account_expansion_history(tables, as_of, by)
    t = h.months_to_first_expansion
    buckets = {
        f"first_in_{label}_pct": ((t >= lo) & (t < hi)).cast("int64").sum() / t.count() * 100
        for lo, hi, label in TENURE_BUCKETS
    }
    buckets["first_in_24+_pct"] = (t >= 24).cast("int64").sum() / t.count() * 100
    out = h.group_by("group").aggregate(
        accounts=h.account_id.count(),
        expanded_accounts=t.count(),
        months_p25=t.quantile(0.25),
        months_median=t.quantile(0.5),
        months_p75=t.quantile(0.75),
        months_mean=t.mean(),
        **buckets,
    ).execute()
    out["expansion_penetration_pct"] = out["expanded_accounts"] / out["accounts"] * 100
    return out.sort_values("group").reset_index(drop=True)


def expansion_frequency(tables: MetricTables, as_of: dt.date, by: str | None = None) -> pd.DataFrame:
    """How often accounts expanded up to ``as_of``: share of accounts never, once, 2-3 times and 4+ times."""
    h = account_expansion_history(tables, as_of, by)
    n = h.expansions
    cls = ibis.cases((n == 0, "none"), (n == 1, "once"), (n <= 3, "2-3"), else_="4+")
    out = h.group_by("group").aggregate(
        accounts=h.account_id.count(),
        **{f"{c}_pct": (cls == c).cast("int64").sum() / h.account_id.count() * 100 for c in FREQUENCY_CLASSES},
        expansions_per_expanded_account=n.sum() / (n > 0).cast("int64").sum(),
    ).execute()
    return out.rename(columns={f"{c}_pct": f"expanded_{c.replace('-', '_to_').replace('+', '_plus')}_pct"
                               for c in FREQUENCY_CLASSES}).sort_values("group").reset_index(drop=True)


def expansion_by_kind(
    tables: MetricTables, start: dt.date, end: dt.date, by: str | None = None
) -> pd.DataFrame:
    """Expansion movements dated in ``[start, end]`` per group and kind: count, total and average MRR added."""
    m = movements(tables.subscriptions, tables.products)
    m = m.filter((m.movement == "expansion") & (m.date >= start) & (m.date <= end))
    m = m.join(account_groups(tables.accounts, by), "account_id")
    out = m.group_by(["group", "expansion_kind"]).aggregate(
        expansions=m.account_id.count(), expansion_mrr=m.mrr_delta.sum(), avg_expansion_mrr=m.mrr_delta.mean()
    ).execute()
    out["share_of_expansion_mrr_pct"] = out["expansion_mrr"] / out.groupby("group")["expansion_mrr"].transform("sum") * 100
    return out.sort_values(["group", "expansion_mrr"], ascending=[True, False]).reset_index(drop=True)


def cohort_nrr(tables: MetricTables, as_of: dt.date, by: str | None = "cohort", max_months: int = 24) -> pd.DataFrame:
    """NRR by cohort age: MRR k months after the signup month / MRR at the end of the signup month.

    The base is each account's MRR at the end of its signup month (accounts paying then);
    at age k only accounts whose k-th month end lies on or before ``as_of`` count.
    """
    first = tables.accounts.customer_since.cast("date").min().execute()
    first_day = pd.Timestamp(first).date()
    ends = month_ends(first_day, as_of) if as_of >= first_day else []
    if not ends:
        return pd.DataFrame(columns=["group", "months", "accounts", "base_mrr", "mrr", "nrr_pct", "nrr_band"])
    mrr = account_mrr_at(tables.subscriptions, ends)
    a = tables.accounts
    acc = a.select(account_id=a.account_id.cast("string"), since=a.customer_since.cast("date"))
    acc = acc.join(account_groups(tables.accounts, by), "account_id")
    month_index = lambda d: d.year() * 12 + d.month()  # noqa: E731
    base = acc.join(mrr, [acc.account_id == mrr.account_id, month_index(acc.since) == month_index(mrr.as_of)])
    base = base.filter(base.mrr > 0).select("account_id", "group", "since", base_mrr=base.mrr)
    days = ibis.memtable({"as_of": ends}, schema={"as_of": "date"})
    grid = base.cross_join(days)
    grid = grid.mutate(months=month_index(grid.as_of) - month_index(grid.since))
    grid = grid.filter((grid.months >= 0) & (grid.months <= max_months))
    later = mrr.select(l_account="account_id", l_day="as_of", l_mrr="mrr")
    j = grid.left_join(later, [grid.account_id == later.l_account, grid.as_of == later.l_day])
    out = j.group_by(["group", "months"]).aggregate(
        accounts=j.account_id.count(), base_mrr=j.base_mrr.sum(), mrr=j.l_mrr.fill_null(0.0).sum()
    ).execute()
    out["nrr_pct"] = out["mrr"] / out["base_mrr"] * 100
    out["nrr_band"] = [benchmark_band(v) for v in out["nrr_pct"]]
    return out.sort_values(["group", "months"]).reset_index(drop=True)
