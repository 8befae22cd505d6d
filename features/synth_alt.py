"""A second synthetic company, written from a different description than ``features.synth``, to test transfer.

The description it was written from: *a seat-based B2B tool sold on annual contracts. Each
account's team (the users who need the tool) grows or shrinks at its own pace, pushed by a
company-wide budget climate that changes every quarter. Seats are trued up to the team at
the contract anniversary; mid-term, an account whose users overrun its seats by 15 % buys
seats at once; an account at 90 % of its plan's event quota for two months upgrades. Churn
and seat trims happen only at renewal, and follow how much of what was bought is used. In a
good quarter more accounts expand, each by less (many small true-ups); in a tight quarter few
expand, by more (consolidations).*

Where it differs from ``features.synth`` (a latent momentum and health random walk per
account with monthly hazards of seat growth, upgrade, cross-sell, contraction and churn):
events are tied to the renewal calendar; churn and contraction happen only at renewal and
are set by seat utilisation, not by a latent health; one product, no cross-sell, no
opportunities, tickets or plan-feature trials; a common quarterly shock moves the *count*
of expanders and their *size* in opposite directions. Only the contract is shared
(``features.contract``, written through ``features.synth.writer``).
``generate_alt(out, accounts, months, seed, as_of)`` writes every table it has.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features.synth.writer import TableWriters

PLANS = ("team", "business", "scale")
PRICE = np.array([30.0, 55.0, 90.0])  # per seat per month
QUOTA = np.array([1500.0, 4000.0, np.nan])  # events per seat per month; scale is unlimited
FEATURES = (("core", 0), ("reports", 1), ("api", 2))  # feature key, first plan that unlocks it
EVENTS_PER_USER = 900.0
SEGMENTS = ("smb", "mid_market", "enterprise")
SEATS0 = np.array([6.0, 40.0, 220.0])
CHURN_SHIFT = np.array([0.7, 0.0, -1.0])


def _month_starts(as_of: dt.date, months: int) -> list[dt.date]:
    end = pd.Timestamp(as_of).to_period("M")
    return [(end - (months - 1 - i)).to_timestamp().date() for i in range(months)]


def _accounts(rng: np.random.Generator, n: int, starts: list[dt.date]) -> pd.DataFrame:
    seg = rng.choice(3, n, p=[0.6, 0.3, 0.1])
    # a third of the book signed inside the window, the rest up to three years before it
    first = pd.Timestamp(starts[0])
    offset = np.where(rng.random(n) < 0.67, -rng.integers(1, 37, n), rng.integers(0, max(len(starts) - 3, 1), n))
    day = np.where(offset < 0, rng.integers(0, 27, n), 0)  # an account signed inside the window starts on the 1st
    since = [(first + pd.DateOffset(months=int(o)) + pd.Timedelta(days=int(d))).date() for o, d in zip(offset, day)]
    return pd.DataFrame({
        "account_id": [f"ALT{i:06d}" for i in range(n)], "name": [f"Alt Customer {i}" for i in range(n)],
        "segment": [SEGMENTS[s] for s in seg], "industry": rng.choice(["logistics", "retail", "media", "health"], n),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "employees": (SEATS0[seg] * rng.uniform(3, 9, n)).astype(int),
        "acquisition_channel": rng.choice(["direct", "partner", "self_serve"], n, p=[0.5, 0.2, 0.3]),
        "customer_since": since, "csm_owner": [f"alt_csm_{s}_{k}" for s, k in zip(seg, rng.integers(0, 4, n))],
        "fiscal_year_start_month": rng.choice([1, 4, 7, 10], n),
        "_seg": seg,
    })


def simulate_alt(n: int, months: int, seed: int, as_of: dt.date) -> dict[str, pd.DataFrame]:
    """Every table of the alternative company as frames (``generate_alt`` writes them)."""
    rng = np.random.default_rng(seed)
    starts = _month_starts(as_of, months)
    acc = _accounts(rng, n, starts)
    seg = acc["_seg"].to_numpy()
    since = pd.to_datetime(acc["customer_since"])
    start_idx = np.array([max(0, (s.year - starts[0].year) * 12 + s.month - starts[0].month) for s in since])
    anniversary = since.dt.month.to_numpy()
    growth = rng.normal(0.012, 0.02, n)  # the account's own pace
    seats = np.maximum(1, np.round(SEATS0[seg] * rng.lognormal(0, 0.5, n)))
    users = seats * rng.uniform(0.7, 1.05, n)
    plan = rng.choice(3, n, p=[0.5, 0.35, 0.15])
    active = np.zeros(n, bool)
    over_quota = np.zeros(n, int)
    climate = rng.normal(0, 1, (months + 2) // 3 + 1)
    subs, usage, acts, pays, surveys = [], [], [], [], []
    state = {"seats": seats.copy(), "plan": plan.copy()}
    for t, month in enumerate(starts):
        c = climate[t // 3]
        joining = (start_idx == t) & ~active
        active |= joining
        changed = joining.copy()
        users = users * np.exp(growth + 0.015 * c + rng.normal(0, 0.04, n))
        util = users / state["seats"]
        events = users * EVENTS_PER_USER * rng.lognormal(0, 0.15, n)
        quota = QUOTA[state["plan"]] * state["seats"]
        over_quota = np.where(np.isfinite(quota) & (events >= 0.9 * np.where(np.isfinite(quota), quota, 1)), over_quota + 1, 0)
        renew = active & ~joining & (anniversary == month.month)
        # renewal: churn and trims follow utilisation; true-ups follow the team, buffer set by the climate
        p_churn = 1 / (1 + np.exp(-(-2.6 - 4.0 * (util - 0.8) + CHURN_SHIFT[seg] - 0.25 * c)))
        churn = renew & (rng.random(n) < p_churn)
        trim = renew & ~churn & (util < 0.65) & (rng.random(n) < 0.6)
        true_up = renew & ~churn & (util > 1.0 - 0.06 * c)
        buffer = np.clip(0.12 - 0.07 * c, 0.0, 0.3)
        new_seats = state["seats"].copy()
        new_seats[trim] = np.maximum(1, np.ceil(users[trim] * 1.1))
        new_seats[true_up] = np.ceil(users[true_up] * (1 + buffer))
        addon = active & ~renew & (util > 1.15) & (rng.random(n) < 0.5)
        new_seats[addon] = np.ceil(users[addon] * 1.05)
        upgrade = active & (over_quota >= 2) & (state["plan"] < 2) & (rng.random(n) < 0.4)
        new_plan = state["plan"] + upgrade
        changed |= (new_seats != state["seats"]) | (new_plan != state["plan"]) | churn
        state["seats"], state["plan"] = new_seats, new_plan
        over_quota[upgrade] = 0
        for i in np.flatnonzero(changed & active):
            subs.append((i, t, 0 if churn[i] else int(state["seats"][i]), int(state["plan"][i])))
        live = np.flatnonzero(active & ~churn)
        usage.append((t, live, events[live], users[live], state["plan"][live].copy()))
        exec_p = np.clip(0.08 + 0.3 * (util[live] > 0.85), 0, 1)
        acts.append((t, live, rng.random(len(live)) < exec_p, rng.poisson(1.0, len(live))))
        fail = rng.random(len(live)) < 0.01 + 0.08 * (util[live] < 0.6)
        pays.append((t, live, state["seats"][live] * PRICE[state["plan"][live]], fail))
        if t % 6 == 3:
            surveys.append((t, live, np.clip(np.round(8 + 5 * (np.minimum(util[live], 1.2) - 0.8)
                                                      + rng.normal(0, 1.5, len(live))), 0, 10)))
        active &= ~churn
    return _tables(acc, starts, as_of, subs, usage, acts, pays, surveys, rng)


def _tables(acc, starts, as_of, subs, usage, acts, pays, surveys, rng) -> dict[str, pd.DataFrame]:  # noqa: ANN001
    ids = acc["account_id"].to_numpy()
    anniv = pd.to_datetime(acc["customer_since"])
    s = pd.DataFrame(subs, columns=["i", "t", "seats", "plan"]).sort_values(["i", "t"], kind="stable")
    s["valid_from"] = [starts[t] for t in s["t"]]
    nxt = s.groupby("i")["valid_from"].shift(-1)
    s = s.loc[s["seats"] > 0].assign(valid_to=nxt.loc[s["seats"] > 0])
    renewal = []
    for i, vf in zip(s["i"], s["valid_from"]):
        a = anniv.iloc[i]
        day = dt.date(vf.year, a.month, min(a.day, 28))
        renewal.append(day if day > vf else dt.date(vf.year + 1, a.month, min(a.day, 28)))
    subscriptions = pd.DataFrame({
        "account_id": ids[s["i"]], "product_id": "core", "plan": [PLANS[p] for p in s["plan"]], "seats": s["seats"],
        "mrr": s["seats"] * PRICE[s["plan"]], "usage_limit": s["seats"] * QUOTA[s["plan"]],
        "valid_from": s["valid_from"], "valid_to": s["valid_to"].astype(object).where(s["valid_to"].notna(), None),
        "renewal_date": renewal})
    u_rows = []
    for t, live, events, users, plan in usage:
        days = pd.bdate_range(starts[t], min(pd.Timestamp(starts[t]) + pd.offsets.MonthEnd(0), pd.Timestamp(as_of)))
        for key, first in FEATURES:
            own = live[plan >= first]
            share = (0.6 if key == "core" else 0.2) * events[plan >= first] / max(len(days), 1)
            au = users[plan >= first] * (0.5 if key == "core" else 0.2)
            for d in days:
                u_rows.append(pd.DataFrame({"account_id": ids[own], "date": d.date(), "feature_key": key,
                                            "events": rng.poisson(share).astype(int),
                                            "active_users": rng.poisson(au).astype(int)}))
    usage_daily = pd.concat(u_rows, ignore_index=True)
    usage_daily = usage_daily.loc[usage_daily["events"] > 0]
    a_rows = []
    for t, live, execs, touches in acts:
        when = pd.Timestamp(starts[t]) + pd.Timedelta(days=10)
        a_rows.append(pd.DataFrame({"account_id": ids[live[execs]], "occurred_at": when, "kind": "meeting",
                                    "with_executive": True}))
        rep = np.repeat(live, touches)
        a_rows.append(pd.DataFrame({"account_id": ids[rep], "occurred_at": when + pd.Timedelta(days=5), "kind": "email",
                                    "with_executive": False}))
    p_rows = []
    for t, live, amount, fail in pays:
        due = pd.Timestamp(starts[t]) + pd.Timedelta(days=14)
        p_rows.append(pd.DataFrame({"account_id": ids[live], "due_date": due.date(), "amount": amount,
                                    "paid_at": [None if f else due + pd.Timedelta(days=2) for f in fail],
                                    "status": np.where(fail, "failed", "paid")}))
    payments = pd.concat(p_rows, ignore_index=True)
    payments.insert(0, "invoice_id", [f"ALTINV{i:08d}" for i in range(len(payments))])
    s_rows = [pd.DataFrame({"account_id": ids[live], "responded_at": pd.Timestamp(starts[t]) + pd.Timedelta(days=20),
                            "kind": "nps", "score": score, "respondent_role": "admin"}) for t, live, score in surveys]
    products = pd.DataFrame({"product_id": "core", "plan": list(PLANS), "tier_rank": [1, 2, 3], "list_price_per_seat": PRICE,
                             "usage_limit": QUOTA})
    plan_features = pd.DataFrame([{"product_id": "core", "plan": PLANS[p], "feature_key": k}
                                  for p in range(3) for k, first in FEATURES if p >= first])
    return {"accounts": acc.drop(columns="_seg"), "subscriptions": subscriptions, "usage_daily": usage_daily,
            "activities": pd.concat(a_rows, ignore_index=True), "payments": payments,
            "surveys": pd.concat(s_rows, ignore_index=True) if s_rows else None,
            "products": products, "plan_features": plan_features}


def generate_alt(out_dir: str | Path, accounts: int = 3000, months: int = 24, seed: int = 1,
                 as_of: dt.date | None = None) -> dict[str, int]:
    """Write the alternative company's tables as ``<table>.parquet`` under ``out_dir``; return rows per table."""
    if as_of is None:
        raise ValueError("generate_alt: as_of is required (the window ends there)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writers = TableWriters(out)
    try:
        for name, frame in simulate_alt(accounts, months, seed, as_of).items():
            if frame is not None:
                writers.write(name, pa.Table.from_pandas(frame, preserve_index=False))
    finally:
        rows = writers.close()
    return rows


__all__ = ["generate_alt", "simulate_alt"]
