"""Signals alert rules read beside the registered features: derived from them, or from the pipeline tables.

- ``usage_vs_prior_90d_pct``: events of the last 30 days against the mean 30 days of the
  90 before them (days 31-120 back, from ``usage_daily``), in %; null when there was no
  usage then (the registered usage windows stop at 90 days, so this one is read here).
- ``readiness_score`` / ``readiness_band`` and ``health``: the rule-based baseline
  (``training.baseline``), so an alert needs no trained model.
- ``open_expansion_days_in_stage`` / ``open_expansion_amount``: for open expansion
  opportunities (kinds expansion, upsell, cross_sell) at the snapshot, the longest time
  one has stayed in its current stage, and their total amount; null when the optional
  ``opportunities`` and ``opportunity_stages`` tables are absent. Point in time: only
  rows created, staged or closed on or before the snapshot count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.io import DataSource
from training.baseline import health, readiness

SIGNALS: dict[str, str] = {
    "usage_vs_prior_90d_pct": "events of the last 30 days against the mean 30 days of the 90 before, %",
    "readiness_score": "rule-based readiness 0-100",
    "readiness_band": "rule-based readiness band (outreach / nurture / adoption)",
    "health": "rule-based health colour (green / yellow / red)",
    "open_expansion_days_in_stage": "days the oldest open expansion opportunity has spent in its current stage",
    "open_expansion_amount": "amount of the open expansion opportunities (currency / year)",
}
CATEGORICAL_SIGNALS = ("readiness_band", "health")
EXPANSION_KINDS = ("expansion", "upsell", "cross_sell")
PIPELINE_TABLES = ("opportunities", "opportunity_stages")


def with_signals(frame: pd.DataFrame, source: DataSource | None = None) -> pd.DataFrame:
    """``frame`` with every signal added as a column (a new frame; the input is left alone)."""
    out = frame.copy()
    usage = usage_signals(source, frame) if source is not None and not frame.empty else None
    if usage is None:
        out["usage_vs_prior_90d_pct"] = np.nan
    else:
        out = out.drop(columns=[c for c in ("usage_vs_prior_90d_pct",) if c in out.columns])
        out = out.merge(usage, on=["account_id", "as_of"], how="left")
    out["readiness_score"] = readiness(frame)["readiness_score"].to_numpy()
    out["readiness_band"] = pd.array(readiness(frame)["readiness_band"], dtype="string")
    out["health"] = pd.array(health(frame)["health"], dtype="string")
    pipeline = opportunity_signals(source, frame) if source is not None else None
    if pipeline is None:
        out["open_expansion_days_in_stage"] = np.nan
        out["open_expansion_amount"] = np.nan
    else:
        out = out.drop(columns=[c for c in pipeline.columns if c in out.columns and c not in ("account_id", "as_of")])
        out = out.merge(pipeline, on=["account_id", "as_of"], how="left")
        present = out["open_expansion_days_in_stage"].notna()
        out["open_expansion_amount"] = out["open_expansion_amount"].where(present, 0.0)
    return out


def _register_dates(source: DataSource, frame: pd.DataFrame) -> None:
    source.con.register("_alert_dates", pd.DataFrame({"as_of": pd.to_datetime(frame["as_of"]).drop_duplicates()}))


def _keyed(result: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    result["account_id"] = result["account_id"].astype("string")
    result["as_of"] = pd.to_datetime(result["as_of"]).astype(frame["as_of"].dtype)
    return result


def usage_signals(source: DataSource, frame: pd.DataFrame) -> pd.DataFrame:
    """Per (account_id, as_of) of ``frame``: events of the last 30 days against the mean 30 days of the 90 before."""
    _register_dates(source, frame)
    try:
        result = source.con.execute("""
            WITH d AS (SELECT DISTINCT CAST(as_of AS DATE) AS as_of FROM _alert_dates),
            daily AS (
                SELECT account_id, CAST(date AS DATE) AS day, sum(events)::DOUBLE AS events FROM usage_daily
                WHERE CAST(date AS DATE) > (SELECT min(as_of) FROM d) - 120
                  AND CAST(date AS DATE) <= (SELECT max(as_of) FROM d)
                GROUP BY ALL
            ),
            windows AS (
                SELECT u.account_id, d.as_of,
                       coalesce(sum(u.events) FILTER (WHERE u.day > d.as_of - 30), 0) AS recent,
                       coalesce(sum(u.events) FILTER (WHERE u.day <= d.as_of - 30), 0) AS prior
                FROM daily u JOIN d ON u.day > d.as_of - 120 AND u.day <= d.as_of
                GROUP BY ALL
            )
            SELECT account_id, CAST(as_of AS TIMESTAMP) AS as_of,
                   CASE WHEN prior > 0 THEN 100.0 * (recent / (prior / 3.0) - 1.0) END AS usage_vs_prior_90d_pct
            FROM windows
        """).df()
    finally:
        source.con.unregister("_alert_dates")
    return _keyed(result, frame)


def usable_tables(source: DataSource) -> list[str]:
    """Tables present in the data, less pipeline tables without a row (a pipeline that is not tracked)."""
    empty = {t for t in PIPELINE_TABLES if source.has(t)
             and source.con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] == 0}
    return [t for t in source.present if t not in empty]


def opportunity_signals(source: DataSource, frame: pd.DataFrame) -> pd.DataFrame | None:
    """Per (account_id, as_of) of ``frame``: days in stage of the oldest-staged open expansion opportunity and
    the open expansion amount; None when the pipeline tables are absent."""
    if not all(t in usable_tables(source) for t in PIPELINE_TABLES) or frame.empty:
        return None
    _register_dates(source, frame)
    kinds = ", ".join(f"'{k}'" for k in EXPANSION_KINDS)
    try:
        result = source.con.execute(f"""
            WITH d AS (SELECT CAST(as_of AS DATE) AS as_of FROM _alert_dates),
            open_opps AS (
                SELECT d.as_of, o.account_id, o.opportunity_id, o.amount
                FROM opportunities o JOIN d
                  ON CAST(o.created_at AS DATE) <= d.as_of
                 AND (o.closed_at IS NULL OR CAST(o.closed_at AS DATE) > d.as_of)
                WHERE o.kind IN ({kinds})
            ),
            staged AS (
                SELECT p.as_of, p.account_id, p.opportunity_id, p.amount,
                       max(CAST(s.entered_at AS DATE)) AS stage_since
                FROM open_opps p JOIN opportunity_stages s
                  ON s.opportunity_id = p.opportunity_id AND CAST(s.entered_at AS DATE) <= p.as_of
                GROUP BY ALL
            )
            SELECT account_id, CAST(as_of AS TIMESTAMP) AS as_of,
                   max(date_diff('day', stage_since, as_of))::DOUBLE AS open_expansion_days_in_stage,
                   sum(amount)::DOUBLE AS open_expansion_amount
            FROM staged GROUP BY ALL
        """).df()
    finally:
        source.con.unregister("_alert_dates")
    return _keyed(result, frame)
