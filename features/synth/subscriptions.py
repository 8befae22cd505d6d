"""Type-2 subscription history from the simulated months.

A new period starts whenever an account's plan, seats or price of one product changes,
when the product is first bought (or bought back), and at every contract anniversary
(a renewal is a new contract term, so ``renewal_date`` stays the true next renewal).
``valid_to`` is the next period's ``valid_from`` (exclusive) or the churn day; null
while the period is current.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.synth.accounts import AccountBlock
from features.synth.catalog import ADDONS, CORE
from features.synth.lifecycle import History, mrr
from features.synth.timeline import Timeline


def _changed(values: np.ndarray) -> np.ndarray:
    out = np.ones(values.shape, bool)
    out[:, 1:] = values[:, 1:] != values[:, :-1]
    return out


def _periods(owned: np.ndarray, changed: np.ndarray, renewal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(account, first month, end month or -1 when current) of every constant period of one product."""
    prev_owned = np.zeros_like(owned)
    prev_owned[:, 1:] = owned[:, :-1]
    starts = owned & (~prev_owned | changed | renewal)
    ends = ~owned & prev_owned
    rows, months = np.nonzero(starts | ends)  # row-major: by account, then month
    is_start = starts[rows, months]
    nxt = np.arange(1, len(rows) + 1)
    same_next = np.zeros(len(rows), bool)
    same_next[:-1] = rows[1:] == rows[:-1]
    end = np.where(same_next, months[np.minimum(nxt, len(rows) - 1)], -1)
    return rows[is_start], months[is_start], end[is_start]


def subscriptions_table(b: AccountBlock, h: History, timeline: Timeline) -> pa.Table:
    """The ``subscriptions`` rows of one block: every product's periods, core first."""
    n, T = h.active.shape
    starts = timeline.anniversary_dates(b.day)
    # a horizon of anniversaries beyond the simulation, for renewal dates in the future
    extra = np.array([np.datetime64(timeline.as_of, "M") + k for k in range(1, 14)], dtype="datetime64[D]")
    future = extra[None, :] + (b.day[:, None] - 1).astype("timedelta64[D]")
    all_days = np.concatenate([starts[:, :T], future], axis=1)
    tenure = np.arange(T)[None, :] - b.start_month[:, None]
    renewal = (tenure > 0) & (tenure % 12 == 0) & (starts[:, :T] <= timeline.as_of64)
    core_mrr, addon_mrr = mrr(h)
    specs = [(CORE, h.active, h.core_tier, h.seats, core_mrr, h.usage_limit)]
    for k, addon in enumerate(ADDONS):
        owned = h.active & (h.addon_tier[..., k] >= 0)
        specs.append((addon, owned, h.addon_tier[..., k], h.addon_seats[..., k], addon_mrr[..., k], None))
    parts = []
    for product, owned, tier, seats, money, limit in specs:
        changed = _changed(tier) | _changed(seats) | _changed(np.round(money, 2))
        acc, first, end = _periods(owned, changed, renewal)
        next_renewal = b.start_month[acc] + 12 * ((first - b.start_month[acc]) // 12 + 1)
        plans = np.array(product.plans)[tier[acc, first]]
        parts.append(
            {
                "account_id": b.account_id[acc],
                "product_id": np.full(len(acc), product.product_id),
                "plan": plans,
                "seats": seats[acc, first].astype(np.int64),
                "mrr": np.round(money[acc, first], 2),
                "usage_limit": limit[acc, first] if limit is not None else np.full(len(acc), np.nan),
                "valid_from": starts[acc, first],
                "valid_to": np.where(end >= 0, starts[acc, np.maximum(end, 0)], np.datetime64("NaT")),
                "renewal_date": all_days[acc, np.minimum(next_renewal, all_days.shape[1] - 1)],
            }
        )
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((cols["valid_from"], cols["product_id"], cols["account_id"]))
    return pa.table(
        {
            "account_id": pa.array(cols["account_id"][order], pa.string()),
            "product_id": pa.array(cols["product_id"][order], pa.string()),
            "plan": pa.array(cols["plan"][order], pa.string()),
            "seats": pa.array(cols["seats"][order], pa.int64()),
            "mrr": pa.array(cols["mrr"][order], pa.float64()),
            "usage_limit": pa.array(cols["usage_limit"][order], pa.float64(), from_pandas=True),
            "valid_from": pa.array(cols["valid_from"][order], pa.date32()),
            "valid_to": pa.array(cols["valid_to"][order], pa.date32(), from_pandas=True),
            "renewal_date": pa.array(cols["renewal_date"][order], pa.date32()),
        }
    )

