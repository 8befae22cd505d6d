"""Expansion deal report as of a date: open pipeline by stage, coverage, conversion, age in stage, zombies, win rate.

Everything is point in time: an opportunity counts at ``as_of`` when it was created on or
before that day; which deals are open then, their stage, stage rank and days in stage are
the one definition of :func:`features.deals.open_deals` (a later ``closed_at`` and the
``outcome`` column are not read for open deals). The pure core works on small pandas frames (``opportunities``, ``opportunity_stages``,
``accounts``); ``load_pipeline`` reads them from a data folder. Definitions: ``docs/metrics.md``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import ibis
import pandas as pd

from features.contract import EXPANSION_KINDS
from features.deals import open_deals_at, stage_ranks
from features.io import DataSource

ZOMBIE_DAYS = 30
PIPELINE_GROUPINGS = ("segment", "owner")
CLOSED_STAGES = ("closed_won", "closed_lost")


@dataclass
class PipelineTables:
    """The inputs of the pipeline report, as pandas frames (opportunity tables are small)."""

    opportunities: pd.DataFrame
    stages: pd.DataFrame
    accounts: pd.DataFrame  # account_id, segment
    expansion_moves: pd.DataFrame  # account_id, date, expansion_arr: realised expansions (for the default target)


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a proportion, in percent; (nan, nan) when n is 0."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def quarter_bounds(day: dt.date, offset: int = 0) -> tuple[dt.date, dt.date]:
    """[first day, first day of the next) of the calendar quarter ``offset`` quarters after the one holding ``day``."""
    index = day.year * 4 + (day.month - 1) // 3 + offset
    start = dt.date(index // 4, (index % 4) * 3 + 1, 1)
    nxt = index + 1
    return start, dt.date(nxt // 4, (nxt % 4) * 3 + 1, 1)


def _end(as_of: dt.date) -> pd.Timestamp:
    return pd.Timestamp(as_of) + pd.Timedelta(days=1)  # timestamps before the end of the as-of day count


def deals_at(tables: PipelineTables, as_of: dt.date, stage_order: tuple[str, ...], by: str | None) -> pd.DataFrame:
    """Expansion opportunities created by ``as_of``: state (open / won / lost) then, stage, days in stage, group."""
    if by is not None and by not in PIPELINE_GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(PIPELINE_GROUPINGS)}, got {by!r}")
    end = _end(as_of)
    o = tables.opportunities
    o = o.loc[o["kind"].isin(EXPANSION_KINDS) & (pd.to_datetime(o["created_at"]) < end)].copy()
    s = tables.stages
    s = s.loc[(pd.to_datetime(s["entered_at"]) < end) & s["opportunity_id"].isin(o["opportunity_id"])]
    s = s.assign(entered_at=pd.to_datetime(s["entered_at"])).sort_values(["opportunity_id", "entered_at"])
    current = _open_deals(tables, as_of, stage_order).set_index("opportunity_id")
    o["state"] = o["outcome"].astype(str).where(~o["opportunity_id"].isin(current.index), "open")
    for column in ("stage", "stage_rank", "days_in_stage"):
        o[column] = o["opportunity_id"].map(current[column])
    o["days_in_stage"] = o["days_in_stage"].astype("float64")
    if by == "segment":
        o["group"] = o["account_id"].map(tables.accounts.set_index("account_id")["segment"]).fillna("unknown")
    elif by == "owner":
        o["group"] = o["owner"].fillna("unassigned")
    else:
        o["group"] = "all"
    o["zombie"] = _ever_slow(s, end).reindex(o["opportunity_id"]).fillna(False).to_numpy()
    return o


def _open_deals(tables: PipelineTables, as_of: dt.date, stage_order: tuple[str, ...]) -> pd.DataFrame:
    """The open deals at ``as_of`` by the one definition, run on the in-memory frames."""
    opps = tables.opportunities.assign(created_at=pd.to_datetime(tables.opportunities["created_at"]),
                                       closed_at=pd.to_datetime(tables.opportunities["closed_at"]),
                                       expected_close_date=pd.to_datetime(tables.opportunities["expected_close_date"]))
    stages = tables.stages.assign(entered_at=pd.to_datetime(tables.stages["entered_at"]))
    return open_deals_at(ibis.memtable(opps), ibis.memtable(stages), [as_of], stage_order)


def _ever_slow(stages: pd.DataFrame, end: pd.Timestamp) -> pd.Series:
    """Per opportunity: whether it spent more than ZOMBIE_DAYS in one open stage (up to ``end``)."""
    s = stages.loc[~stages["stage"].isin(CLOSED_STAGES)].copy()
    nxt = stages.groupby("opportunity_id")["entered_at"].shift(-1).reindex(s.index)
    s["days"] = ((nxt.fillna(end)) - s["entered_at"]).dt.total_seconds() / 86_400
    return (s.groupby("opportunity_id")["days"].max() > ZOMBIE_DAYS)


def open_by_stage(deals: pd.DataFrame) -> pd.DataFrame:
    """Open expansion pipeline per group and stage: count, value, median days in stage, zombies (> 30 days in stage)."""
    o = deals.loc[deals["state"] == "open"].assign(stuck=lambda d: d["days_in_stage"] > ZOMBIE_DAYS)
    out = o.groupby(["group", "stage_rank", "stage"], as_index=False).agg(
        open_deals=("opportunity_id", "size"), open_value=("amount", "sum"),
        median_days_in_stage=("days_in_stage", "median"), zombies=("stuck", "sum"),
        zombie_value=("amount", lambda a: float(a[o.loc[a.index, "stuck"]].sum())),
    )
    return out.sort_values(["group", "stage_rank"]).drop(columns="stage_rank").reset_index(drop=True)


def coverage(deals: pd.DataFrame, tables: PipelineTables, as_of: dt.date, by: str | None,
             target: float | None = None) -> pd.DataFrame:
    """Open pipeline expected to close next quarter / the quarter's expansion target, per group.

    The target is ``target`` (a company-wide setting, so only without ``by``) or the
    expansion ARR realised in the same quarter one year earlier.
    """
    q_start, q_end = quarter_bounds(as_of, 1)
    close = pd.to_datetime(deals["expected_close_date"])
    due = deals.loc[(deals["state"] == "open") & (close >= pd.Timestamp(q_start)) & (close < pd.Timestamp(q_end))]
    pipe = due.groupby("group")["amount"].agg(["sum", "size"])
    ly_start, ly_end = dt.date(q_start.year - 1, q_start.month, 1), dt.date(q_end.year - 1, q_end.month, 1)
    m = tables.expansion_moves
    m = m.loc[(pd.to_datetime(m["date"]) >= pd.Timestamp(ly_start)) & (pd.to_datetime(m["date"]) < pd.Timestamp(ly_end))]
    if by == "segment":
        groups = m["account_id"].map(tables.accounts.set_index("account_id")["segment"]).fillna("unknown")
    else:
        groups = pd.Series("all", index=m.index)  # owners have no expansion history of their own
    last_year = m.groupby(groups)["expansion_arr"].sum()
    names = sorted(pipe.index) if by == "owner" else sorted(set(pipe.index) | set(last_year.index))
    use_setting = target is not None and by is None
    rows = []
    for g in names:
        if use_setting:
            goal, source = float(target), "setting"
        elif by == "owner":
            goal, source = math.nan, "none"  # owners have no target of their own
        else:
            goal, source = float(last_year.get(g, 0.0)), "last_year"
        value = float(pipe["sum"].get(g, 0.0))
        rows.append({"group": g, "quarter_start": q_start, "pipeline_due": value, "deals_due": int(pipe["size"].get(g, 0)),
                     "target": goal, "target_source": source,
                     "coverage_pct": 100 * value / goal if goal > 0 else math.nan})
    return pd.DataFrame(rows)


def stage_conversion(tables: PipelineTables, deals: pd.DataFrame, as_of: dt.date, stage_order: tuple[str, ...]) -> pd.DataFrame:
    """Per group and open stage: deals that entered it and are closed by ``as_of``, how many moved on, how many won."""
    end = _end(as_of)
    closed = deals.loc[deals["state"].isin(["won", "lost"])]
    s = tables.stages
    s = s.loc[s["opportunity_id"].isin(closed["opportunity_id"]) & (pd.to_datetime(s["entered_at"]) < end)]
    s = s.assign(rank=stage_ranks(s["stage"], stage_order),
                 group=s["opportunity_id"].map(closed.set_index("opportunity_id")["group"]),
                 won=s["opportunity_id"].map(closed.set_index("opportunity_id")["state"].eq("won")))
    top = s.loc[~s["stage"].isin(CLOSED_STAGES)].groupby("opportunity_id")["rank"].max()
    s = s.loc[~s["stage"].isin(CLOSED_STAGES)]
    s = s.assign(advanced=s["rank"] < s["opportunity_id"].map(top).astype("float64"))
    s = s.assign(advanced=s["advanced"] | s["won"])
    rows = []
    for (g, r, stage), part in s.groupby(["group", "rank", "stage"]):
        n, adv, won = len(part), int(part["advanced"].sum()), int(part["won"].sum())
        lo, hi = wilson(won, n)
        rows.append({"group": g, "stage": stage, "entered": n, "advanced": adv, "won": won,
                     "to_next_pct": 100 * adv / n, "win_pct": 100 * won / n, "win_low_pct": lo, "win_high_pct": hi})
    return pd.DataFrame(rows)


def zombie_conversion(deals: pd.DataFrame) -> pd.DataFrame:
    """Win rate of closed deals that spent > 30 days in one stage against those that never did, with 95 % intervals."""
    closed = deals.loc[deals["state"].isin(["won", "lost"])]
    rows = []
    for (g, slow), part in closed.groupby(["group", "zombie"]):
        won, n = int((part["state"] == "won").sum()), len(part)
        lo, hi = wilson(won, n)
        rows.append({"group": g, "deals": "zombie (>30d in a stage)" if slow else "faster", "closed": n, "won": won,
                     "win_pct": 100 * won / n, "win_low_pct": lo, "win_high_pct": hi})
    return pd.DataFrame(rows)


def win_rate_by_quarter(deals: pd.DataFrame) -> pd.DataFrame:
    """Won / closed expansion deals per group and quarter of closing, with 95 % intervals."""
    closed = deals.loc[deals["state"].isin(["won", "lost"])].copy()
    closed["quarter"] = pd.to_datetime(closed["closed_at"]).dt.to_period("Q").astype(str)
    rows = []
    for (g, q), part in closed.groupby(["group", "quarter"]):
        won, n = int((part["state"] == "won").sum()), len(part)
        lo, hi = wilson(won, n)
        rows.append({"group": g, "quarter": q, "closed": n, "won": won, "win_pct": 100 * won / n,
                     "win_low_pct": lo, "win_high_pct": hi})
    return pd.DataFrame(rows)


def pipeline_report(tables: PipelineTables, as_of: dt.date, stage_order: tuple[str, ...], by: str | None = None,
                    target: float | None = None) -> dict[str, pd.DataFrame]:
    """Every pipeline table as of ``as_of``: by_stage, coverage, conversion, zombies, win_rate."""
    deals = deals_at(tables, as_of, stage_order, by)
    return {
        "by_stage": open_by_stage(deals),
        "coverage": coverage(deals, tables, as_of, by, target),
        "conversion": stage_conversion(tables, deals, as_of, stage_order),
        "zombies": zombie_conversion(deals),
        "win_rate": win_rate_by_quarter(deals),
    }


def load_pipeline(source: DataSource) -> PipelineTables:
    """The pipeline tables of a data folder; ValueError naming the table when an opportunity table is absent."""
    from features.movements import movements

    for name in ("opportunities", "opportunity_stages"):
        if not source.has(name):
            raise ValueError(f"{name}: table is absent; the pipeline view needs opportunities and opportunity_stages")
    con = source.con
    moves = movements(source.ibis().table("subscriptions"))
    exp = moves.filter(moves.movement == "expansion")
    exp = exp.select(account_id=exp.account_id, date=exp.date, expansion_arr=exp.mrr_delta * 12).execute()
    return PipelineTables(
        opportunities=con.execute("SELECT * FROM opportunities").df(),
        stages=con.execute("SELECT * FROM opportunity_stages").df(),
        accounts=con.execute("SELECT account_id, segment FROM accounts").df(),
        expansion_moves=exp,
    )
