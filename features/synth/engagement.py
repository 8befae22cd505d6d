"""Support tickets, surveys, CRM activities and invoices, driven by the same latent state.

Signals reflect the current month's health and momentum while outcomes react to the
previous months', so these tables lead expansions and churn without deciding them:
unhealthy accounts file more bugs and urgent tickets, fail payments, answer NPS as
detractors and lose executive contact; growing accounts ask for features and meet
executives. Every timestamp lies inside an active period and on or before as-of.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from features.contract import ACTIVITY_KINDS, RESPONDENT_ROLES, TICKET_CATEGORIES, TICKET_PRIORITIES
from features.synth.accounts import AccountBlock
from features.synth.lifecycle import History, mrr, quota_utilization, sigmoid
from features.synth.timeline import Timeline

US_PER_DAY = 86_400_000_000
TICKET_RATE = np.array([0.12, 0.35, 0.8])  # per account-month at neutral health, by segment
NPS_RATE, CSAT_RATE = np.array([0.10, 0.2, 0.35]), np.array([0.06, 0.1, 0.15])
TOUCH_RATE = {  # kind: per account-month by segment
    "email": np.array([0.5, 2.0, 4.0]),
    "call": np.array([0.15, 0.7, 1.4]),
    "meeting": np.array([0.08, 0.45, 1.1]),
    "training": np.array([0.04, 0.15, 0.35]),
    "qbr": np.array([0.0, 0.25, 0.33]),
}
EXEC_BASE = {"email": -3.0, "call": -2.0, "meeting": -0.6, "training": -3.0, "qbr": 0.2}


@dataclass
class Months:
    """Active account-months inside the window: account row, month, latent state and day span."""

    account: np.ndarray
    month: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    health: np.ndarray
    momentum: np.ndarray
    quota: np.ndarray


def active_months(b: AccountBlock, h: History, timeline: Timeline) -> Months:
    """Every active account-month overlapping the window, with its day span [lo, hi)."""
    first = max(timeline.first_window_month - 1, 0)
    ai, t = np.nonzero(h.active[:, first:])
    t = t + first
    lo, hi = timeline.clip_to_window(b.day, ai, t)
    ok = hi > lo
    ai, t, lo, hi = ai[ok], t[ok], lo[ok], hi[ok]
    quota = quota_utilization(h.events[ai, t], h.usage_limit[ai, t])
    return Months(ai, t, lo, hi, h.health[ai, t], h.momentum[ai, t], quota)


def _events(rate: np.ndarray, m: Months, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Poisson events per account-month (rate per full month); returns (month row, timestamp in µs)."""
    count = rng.poisson(rate * (m.hi - m.lo) / 30.44)
    row = np.repeat(np.arange(len(count)), count)
    span_us = (m.hi[row] - m.lo[row]) * US_PER_DAY
    ts = m.lo[row] * US_PER_DAY + (rng.random(len(row)) * span_us).astype(np.int64)
    order = np.lexsort((ts, row))
    return row[order], ts[order]


def _pick(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One category index per row of ``weights`` (rows need not sum to one)."""
    cum = np.cumsum(weights, axis=1)
    return (rng.random(len(weights))[:, None] * cum[:, -1:] > cum).sum(axis=1)


def _ts(values: np.ndarray) -> pa.Array:
    return pa.array(values, pa.timestamp("us"))


def tickets_table(b: AccountBlock, m: Months, timeline: Timeline, rng: np.random.Generator) -> pa.Table:
    """``support_tickets``: volume and urgency rise as health falls; feature requests rise with momentum and quota."""
    seg = b.segment[m.account]
    rate = TICKET_RATE[seg] * np.exp(-0.6 * m.health + 0.15 * m.momentum) * np.where(m.health < -1.0, 2.0, 1.0)
    row, created = _events(rate, m, rng)
    hl, mo, q = m.health[row], m.momentum[row], m.quota[row]
    cat_w = np.stack([0.3 * np.exp(-0.5 * hl), 0.35 + 0 * hl, 0.1 * np.exp(0.7 * mo + 1.5 * (q > 0.75)),
                      0.08 * np.exp(-0.3 * hl), 0.04 * np.exp(-0.6 * hl)], axis=1)
    pri_w = np.stack([0.25 + 0 * hl, 0.5 + 0 * hl, 0.18 * np.exp(-0.3 * hl), 0.05 * np.exp(-0.7 * hl)], axis=1)
    category, priority = _pick(rng, cat_w), _pick(rng, pri_w)
    hours = np.exp(rng.normal(np.log(np.array([40.0, 24.0, 10.0, 4.0])[priority]), 0.9))
    resolved = created + (hours * 3_600_000_000).astype(np.int64)
    end_us = (timeline.as_of64.astype(np.int64) + 1) * US_PER_DAY
    open_ = (resolved >= end_us) | (rng.random(len(row)) < 0.02)
    rated = ~open_ & (rng.random(len(row)) < 0.55)
    csat = np.clip(np.round(4.0 + 0.6 * hl + rng.normal(0, 0.8, len(row))), 1, 5)
    acc = b.account_id[m.account[row]]
    ids = [f"TCK-{a[4:]}-{k:05d}" for a, k in zip(acc, _rank_within(m.account[row]))]
    return pa.table({
        "ticket_id": pa.array(ids, pa.string()),
        "account_id": pa.array(acc, pa.string()),
        "created_at": _ts(created),
        "priority": pa.array(np.array(TICKET_PRIORITIES)[priority], pa.string()),
        "category": pa.array(np.array(TICKET_CATEGORIES)[category], pa.string()),
        "resolved_at": pa.array(resolved, pa.timestamp("us"), mask=open_),
        "csat": pa.array(csat, pa.float64(), mask=~rated),
    })


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values (input grouped)."""
    if len(groups) == 0:
        return groups
    first = np.r_[True, groups[1:] != groups[:-1]]
    idx = np.arange(len(groups))
    return idx - np.maximum.accumulate(np.where(first, idx, 0))


def surveys_table(b: AccountBlock, m: Months, rng: np.random.Generator) -> pa.Table:
    """``surveys``: NPS (0-10) and CSAT (1-5) responses that follow health, with plenty of noise."""
    seg = b.segment[m.account]
    parts = []
    for kind, rate in (("nps", NPS_RATE[seg] * (1 + 0.002 * b.seats[m.account] ** 0.8)), ("csat", CSAT_RATE[seg])):
        row, at = _events(rate, m, rng)
        hl, mo = m.health[row], m.momentum[row]
        noise = rng.normal(0, 1.0, len(row))
        if kind == "nps":
            score = np.clip(np.round(7.4 + 1.5 * hl + 0.4 * mo + 1.8 * noise), 0, 10)
        else:
            score = np.clip(np.round(3.9 + 0.6 * hl + 0.8 * noise), 1, 5)
        role = _pick(rng, np.tile([0.15, 0.3, 0.55], (len(row), 1)))
        parts.append((row, at, np.full(len(row), kind), score, np.array(RESPONDENT_ROLES)[role]))
    row, at, kind, score, role = (np.concatenate(x) for x in zip(*parts))
    return _by_account_and_time(b, m, row, at, "responded_at", kind=(kind, pa.string()), score=(score, pa.float64()),
                                respondent_role=(role, pa.string()))


def activities_table(b: AccountBlock, h: History, m: Months, rng: np.random.Generator) -> pa.Table:
    """``activities``: CSM touches; executives join more often when the account grows and keeps its sponsor."""
    seg = b.segment[m.account]
    sponsor = h.exec_sponsor[m.account, m.month]
    parts = []
    for kind in ACTIVITY_KINDS:
        lift = np.exp(0.3 * m.momentum + 0.2 * m.health) if kind in ("meeting", "training") else 1.0
        row, at = _events(TOUCH_RATE[kind][seg] * lift, m, rng)
        p_exec = sigmoid(EXEC_BASE[kind] + 0.7 * m.momentum[row] + 0.4 * m.health[row]) * np.where(sponsor[row], 1.0, 0.15)
        parts.append((row, at, np.full(len(row), kind), rng.random(len(row)) < p_exec))
    row, at, kind, with_exec = (np.concatenate(x) for x in zip(*parts))
    return _by_account_and_time(b, m, row, at, "occurred_at", kind=(kind, pa.string()),
                                with_executive=(with_exec, pa.bool_()))


def _by_account_and_time(
    b: AccountBlock, m: Months, row: np.ndarray, at: np.ndarray, time_column: str, **columns: tuple[np.ndarray, pa.DataType]
) -> pa.Table:
    """Events as a table ordered by account and time: ``account_id``, the time column, then ``columns``."""
    order = np.lexsort((at, row))
    return pa.table({
        "account_id": pa.array(b.account_id[m.account[row]][order], pa.string()),
        time_column: _ts(at[order]),
        **{name: pa.array(values[order], kind) for name, (values, kind) in columns.items()},
    })


def payments_table(b: AccountBlock, h: History, m: Months, timeline: Timeline, rng: np.random.Generator) -> pa.Table:
    """``payments``: monthly or annual invoices on the anniversary day; failures and late payments follow health."""
    tenure = m.month - b.start_month[m.account]
    annual = b.annual_billing[m.account]
    starts = timeline.anniversary_dates(b.day).astype(np.int64)[m.account, m.month]
    due_in = (starts >= m.lo) & (starts < m.hi) & (~annual | (tenure % 12 == 0))
    idx = np.flatnonzero(due_in)
    core, addon = mrr(h)
    total = core[m.account[idx], m.month[idx]] + addon[m.account[idx], m.month[idx]].sum(axis=1)
    amount = np.round(total * np.where(annual[idx], 12, 1), 2)
    hl = m.health[idx]
    u = rng.random(len(idx))
    failed = u < sigmoid(-4.4 - 1.3 * hl + 0.4 * (b.segment[m.account[idx]] == 0))
    late = ~failed & (u < sigmoid(-4.4 - 1.3 * hl) + sigmoid(-2.6 - 0.8 * hl))
    due_us = starts[idx] * US_PER_DAY
    paid = np.where(late, due_us + (rng.uniform(3, 45, len(idx)) * US_PER_DAY).astype(np.int64),
                    due_us - (rng.uniform(0, 10, len(idx)) * US_PER_DAY).astype(np.int64))
    end_us = (timeline.as_of64.astype(np.int64) + 1) * US_PER_DAY
    failed |= late & (paid >= end_us)  # not yet paid at as-of: an open, overdue invoice
    late &= ~failed
    status = np.where(failed, "failed", np.where(late, "late", "paid"))
    acc = b.account_id[m.account[idx]]
    return pa.table({
        "invoice_id": pa.array([f"INV-{a[4:]}-{t:03d}" for a, t in zip(acc, m.month[idx])], pa.string()),
        "account_id": pa.array(acc, pa.string()),
        "due_date": pa.array(starts[idx].astype("datetime64[D]"), pa.date32()),
        "amount": pa.array(amount, pa.float64()),
        "paid_at": pa.array(paid, pa.timestamp("us"), mask=failed),
        "status": pa.array(status, pa.string()),
    })
