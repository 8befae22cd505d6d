"""What a generated company truly earns, read straight from the subscription rows the generator wrote.

A plain pandas reading of the type-2 history (a period counts on day d when
``valid_from <= d < valid_to``), written apart from ``features.movements`` and
``features.metrics`` on purpose: the tests check the product's MRR per account and month,
NRR and labels against it, so it must not share their code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd


def _periods(subscriptions: pd.DataFrame) -> pd.DataFrame:
    s = subscriptions[["account_id", "mrr", "valid_from", "valid_to"]].copy()
    s["valid_from"] = pd.to_datetime(s["valid_from"])
    s["valid_to"] = pd.to_datetime(s["valid_to"])
    return s


def mrr_at(subscriptions: pd.DataFrame, days: Iterable[dt.date]) -> pd.DataFrame:
    """``account_id, day, mrr``: every account with a subscription row, on every day (0 when nothing runs)."""
    s = _periods(subscriptions)
    out = []
    for day in days:
        ts = pd.Timestamp(day)
        on = (s["valid_from"] <= ts) & (s["valid_to"].isna() | (s["valid_to"] > ts))
        money = s.loc[on].groupby("account_id")["mrr"].sum()
        frame = pd.DataFrame({"account_id": s["account_id"].unique()})
        frame["day"] = day
        frame["mrr"] = frame["account_id"].map(money).fillna(0.0)
        out.append(frame)
    return pd.concat(out, ignore_index=True)


def nrr_pct(subscriptions: pd.DataFrame, first_day: dt.date, last_day: dt.date) -> float:
    """NRR of the period [first_day, last_day]: ending MRR of the accounts paying the day before, over their MRR then."""
    start = mrr_at(subscriptions, [first_day - dt.timedelta(days=1)]).set_index("account_id")["mrr"]
    end = mrr_at(subscriptions, [last_day]).set_index("account_id")["mrr"]
    paying = start[start > 0]
    return float(end.reindex(paying.index).fillna(0.0).sum() / paying.sum() * 100)


def labels(subscriptions: pd.DataFrame, as_of: dt.date, horizon_days: int) -> pd.DataFrame:
    """``account_id, expanded, churned`` for accounts paying at ``as_of``: MRR rose from above 0 / fell to 0 in (as_of, as_of + H]."""
    s = _periods(subscriptions)
    end = pd.Timestamp(as_of + dt.timedelta(days=horizon_days))
    # MRR changes only on period boundaries: checking the day before and the day of each boundary is enough
    bounds = pd.concat([s["valid_from"], s["valid_to"].dropna()])
    bounds = sorted({d.date() for d in bounds if pd.Timestamp(as_of) < d <= end})
    paying = mrr_at(s, [as_of]).query("mrr > 0").set_index("account_id")["mrr"]
    series = mrr_at(s, [as_of, *bounds]).pivot(index="account_id", columns="day", values="mrr").loc[paying.index]
    values = series.to_numpy()
    before, after = values[:, :-1], values[:, 1:]
    expanded = ((after > before + 1e-6) & (before > 0)).any(axis=1)
    churned = ((after <= 1e-9) & (before > 0)).any(axis=1)
    return pd.DataFrame({"account_id": series.index, "expanded": expanded, "churned": churned})
