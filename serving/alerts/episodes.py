"""Episodes and who gets told: pure functions shared by the live run, the dry run and the backtest.

An episode starts when an account enters a rule's condition: in it at a snapshot and not
at the previous one. Staying in the condition fires nothing; leaving and entering again
starts a new episode. An account that re-enters within ``alerts_rearm_days`` of its last episode's start (a
value hovering around a threshold) starts no new episode. Each new episode is then decided once: ``snoozed`` (a snooze on the
account and rule is in force), ``withheld`` (the rule is not sent on this company: its
backtest shows it does not anticipate its outcome, ``serving.alerts.backtest.sending``),
``unrouted`` (no channel for its CSM), ``queued`` (within the CSM's weekly cap, highest
expected value first) or ``held`` (over the cap, reported).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

STATUSES = ("queued", "held", "snoozed", "unrouted", "withheld")


def week_start(day: dt.date) -> dt.date:
    """Monday of ``day``'s ISO week: the cap counts alerts from there."""
    return day - dt.timedelta(days=day.weekday())


def episode_id(account_id: str, rule: str, started: dt.date) -> str:
    """Stable id of an episode: the same account, rule and start date always give the same id."""
    return hashlib.sha256(f"{account_id}|{rule}|{started.isoformat()}".encode()).hexdigest()[:24]


def entering(current: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``current`` (account_id, rule, ...) whose (account_id, rule) is not in ``previous``."""
    before = set(zip(previous["account_id"].astype(str), previous["rule"].astype(str)))
    keys = zip(current["account_id"].astype(str), current["rule"].astype(str))
    new = np.fromiter((k not in before for k in keys), dtype=bool, count=len(current))
    return current.loc[new].reset_index(drop=True)


def entering_over(conditions: pd.DataFrame, dates: list[dt.date]) -> pd.DataFrame:
    """Episodes over an ordered snapshot calendar: rows of ``conditions`` (account_id, as_of, rule) in the condition
    at a date and not at the calendar's previous date; the first date has no previous, so it starts none."""
    stamps = pd.to_datetime(pd.Series(sorted(set(dates))))
    index = {ts: i for i, ts in enumerate(stamps)}
    step = pd.to_datetime(conditions["as_of"]).map(index)
    keyed = set(zip(conditions["account_id"].astype(str), conditions["rule"].astype(str), step))
    prev_in = np.fromiter(((a, r, s - 1) in keyed for a, r, s in zip(conditions["account_id"].astype(str),
                                                                   conditions["rule"].astype(str), step)),
                          dtype=bool, count=len(conditions))
    return conditions.loc[(step > 0).to_numpy() & ~prev_in].reset_index(drop=True)


def not_rearmed(new: pd.DataFrame, recent: set[tuple[str, str]]) -> np.ndarray:
    """Rows of ``new`` whose (account_id, rule) started an episode within the re-arm window: a flicker, not news."""
    keys = zip(new["account_id"].astype(str), new["rule"].astype(str))
    return np.fromiter((k in recent for k in keys), dtype=bool, count=len(new))


def expected_value(rules_money: pd.Series, rates: Mapping[str, float], rule: pd.Series) -> np.ndarray:
    """Money at stake times the rule's track record (the mean of known records when it has none; 1 without any)."""
    known = [v for v in rates.values() if v == v]
    fallback = float(np.mean(known)) if known else 1.0
    rate = rule.astype(str).map(lambda r: rates.get(r, fallback)).astype(float).fillna(fallback).to_numpy()
    money = pd.to_numeric(rules_money, errors="coerce").fillna(0.0).to_numpy(dtype=float)
    return rate * np.maximum(money, 0.0)


def decide(new: pd.DataFrame, *, snoozed: set[tuple[str, str]], routed: set[str] | None,
           sent_this_week: Mapping[str, int], cap: int, withheld: set[str] | frozenset[str] = frozenset()) -> pd.DataFrame:
    """``new`` episodes (account_id, rule, csm_owner, expected_value) with a ``status`` each.

    ``routed`` is the set of CSMs with a channel (None: every CSM, as in a dry run without
    routing); ``sent_this_week`` counts alerts already queued per CSM this ISO week; ``withheld`` names the rules
    not sent on this company (recorded, never queued, never counted against the cap).
    """
    out = new.copy()
    csm = out["csm_owner"].astype("string").fillna("")
    status = np.full(len(out), "queued", dtype=object)
    keys = zip(out["account_id"].astype(str), out["rule"].astype(str))
    status[np.fromiter((k in snoozed for k in keys), dtype=bool, count=len(out))] = "snoozed"
    status[(status == "queued") & out["rule"].astype(str).isin(list(withheld)).to_numpy()] = "withheld"
    if routed is not None:
        status[(status == "queued") & ~csm.isin(list(routed)).to_numpy()] = "unrouted"
    out["status"] = status
    # Highest expected value first within each CSM; ties broken by account and rule so runs are repeatable.
    order = out.assign(_csm=csm, _neg=-out["expected_value"].astype(float)).sort_values(
        ["_csm", "_neg", "account_id", "rule"], kind="stable")
    candidates = order[order["status"] == "queued"]
    rank = candidates.groupby("_csm").cumcount().to_numpy()
    room = candidates["_csm"].map(lambda c: max(cap - int(sent_this_week.get(c, 0)), 0)).to_numpy()
    out.loc[candidates.index[rank >= room], "status"] = "held"
    return out
