"""Labels over a horizon H from each spine row, read off the revenue movements.

``expanded``: an expansion movement in ``(as_of, as_of + H]``; ``churned``: the account's
MRR reaches 0 in it; ``contracted``: a contraction movement in it; ``expansion_mrr``: the
sum of the expansion deltas in it. All four are null when the horizon is not complete,
``as_of + H > data_end``: those rows are for scoring, never for training.
"""

from __future__ import annotations

import datetime as dt

import ibis
from ibis.expr.types import Table

from features.movements import movements
from features.spine import day_number, to_day

LABELS = ("expanded", "churned", "contracted", "expansion_mrr")


def labels(
    subscriptions: Table, spine: Table, horizon_days: int, data_end: dt.date, products: Table | None = None,
    moves: Table | None = None,
) -> Table:
    """``account_id, as_of, expanded, churned, contracted, expansion_mrr`` for every spine row.

    ``moves`` is ``movements(subscriptions, products)`` when the caller already has it.
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    m = movements(subscriptions, products) if moves is None else moves
    m = m.select("movement", "mrr_delta", m_account=m.account_id, day=day_number(m.date))
    keys = spine.select("account_id", "as_of", "as_of_day")
    j = keys.join(
        m,
        [keys.account_id == m.m_account, m.day > keys.as_of_day, m.day <= keys.as_of_day + horizon_days],
    )
    found = j.group_by(["account_id", "as_of_day"]).aggregate(
        n_expansion=(j.movement == "expansion").sum(),
        n_churn=(j.movement == "churn").sum(),
        n_contraction=(j.movement == "contraction").sum(),
        expansion_mrr=j.mrr_delta.sum(where=j.movement == "expansion"),
    )
    t = keys.left_join(found, ["account_id", "as_of_day"])
    complete = (t.as_of_day + horizon_days) <= to_day(data_end)

    def flag(count: ibis.Value) -> ibis.Value:
        return ibis.ifelse(complete, (count.fill_null(0) > 0).cast("float64"), ibis.null("float64"))

    return t.select(
        "account_id",
        "as_of",
        expanded=flag(t.n_expansion),
        churned=flag(t.n_churn),
        contracted=flag(t.n_contraction),
        expansion_mrr=ibis.ifelse(complete, t.expansion_mrr.fill_null(0.0).cast("float64"), ibis.null("float64")),
    )
