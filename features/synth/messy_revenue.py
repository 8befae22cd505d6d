"""The messy mode's revenue: same-day cancellations, trials at MRR 0, mid-month changes and pauses.

Each function takes one block's ``subscriptions`` as a frame (dates as timestamps) and
returns it reshaped; every period stays a valid type-2 period of the contract.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OPEN = pd.Timestamp("2200-01-01")  # stands for a null valid_to while splitting periods


def same_day_cancellations(subs: pd.DataFrame, accounts: list) -> pd.DataFrame:
    """Each account keeps only its first period, ended the day after it began (signed up and cancelled)."""
    if not accounts:
        return subs
    mine = subs["account_id"].isin(accounts)
    first = subs[mine].sort_values("valid_from").groupby("account_id").head(1).copy()
    first["valid_to"] = first["valid_from"] + pd.Timedelta(days=1)
    first["renewal_date"] = pd.NaT
    return pd.concat([subs[~mine], first], ignore_index=True)


def trials(subs: pd.DataFrame, acc: pd.DataFrame, accounts: list, days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A period at MRR 0 on the first plan for ``days`` days before the first paid day; the customer since then."""
    if not accounts:
        return subs, acc
    first = subs[subs["account_id"].isin(accounts)].sort_values("valid_from").groupby("account_id").head(1).copy()
    first["valid_to"] = first["valid_from"]
    first["valid_from"] = first["valid_from"] - pd.Timedelta(days=days)
    first["mrr"] = 0.0
    first["renewal_date"] = pd.NaT
    since = first.set_index("account_id")["valid_from"]
    acc = acc.assign(customer_since=acc["account_id"].map(since).fillna(acc["customer_since"]))
    return pd.concat([subs, first], ignore_index=True), acc


def midmonth(subs: pd.DataFrame, rng: np.random.Generator, share: float, as_of: pd.Timestamp) -> pd.DataFrame:
    """Move a share of MRR changes (a period following another of the same product) to a later day of the month."""
    s = subs.sort_values(["account_id", "product_id", "valid_from"]).reset_index(drop=True)
    same = (s["account_id"] == s["account_id"].shift()) & (s["product_id"] == s["product_id"].shift())
    change = same & (s["valid_to"].shift() == s["valid_from"]) & (s["mrr"] != s["mrr"].shift())
    shift = pd.to_timedelta(rng.integers(1, 21, len(s)), unit="D")
    new = s["valid_from"] + shift
    limit = s["valid_to"].fillna(as_of + pd.Timedelta(days=1))  # a current period may start at the latest on as_of
    move = change & (rng.random(len(s)) < share) & (new < limit)
    s.loc[move, "valid_from"] = new[move]
    prev = move.shift(-1, fill_value=False)
    s.loc[prev, "valid_to"] = new.shift(-1)[prev]
    return s


def pauses(subs: pd.DataFrame, accounts: list, rng: np.random.Generator, as_of: pd.Timestamp,
            days: int) -> tuple[pd.DataFrame, dict]:
    """Every product of each account at MRR 0 over [p, p + days): periods split at both ends."""
    pauses = {}
    if not accounts:
        return subs, pauses
    rows = [subs[~subs["account_id"].isin(accounts)]]
    for account in accounts:
        p = as_of - pd.Timedelta(days=int(rng.integers(days + 30, 200)))
        q = p + pd.Timedelta(days=days)
        pauses[account] = (p, q)
        mine = subs[subs["account_id"] == account]
        for _, r in mine.iterrows():
            end = r["valid_to"] if pd.notna(r["valid_to"]) else OPEN
            pieces = [(r["valid_from"], min(end, p), r["mrr"]), (max(r["valid_from"], p), min(end, q), 0.0),
                      (max(r["valid_from"], q), end, r["mrr"])]
            for lo, hi, money in pieces:
                if lo < hi:
                    rows.append(pd.DataFrame([{**r.to_dict(), "valid_from": lo, "mrr": money,
                                               "valid_to": pd.NaT if hi == OPEN else hi}]))
    return pd.concat(rows, ignore_index=True), pauses
