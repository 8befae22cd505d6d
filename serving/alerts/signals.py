"""Signals alert rules read beside the registered features: derived from them, or from the pipeline tables.

- ``usage_vs_prior_60d_pct``: events of the last 30 days against the mean 30 days of the
  60 before them (days 31-90 back; the registered usage windows stop at 90 days), in %;
  null when there was no usage then.
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
    "usage_vs_prior_60d_pct": "events_30d against the mean 30 days of the 60 before, %",
    "readiness_score": "rule-based readiness 0-100",
    "readiness_band": "rule-based readiness band (outreach / nurture / adoption)",
    "health": "rule-based health colour (green / yellow / red)",
    "open_expansion_days_in_stage": "days the oldest open expansion opportunity has spent in its current stage",
    "open_expansion_amount": "amount of the open expansion opportunities (currency / year)",
}
CATEGORICAL_SIGNALS = ("readiness_band", "health")
EXPANSION_KINDS = ("expansion", "upsell", "cross_sell")
PIPELINE_TABLES = ("opportunities", "opportunity_stages")


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def with_signals(frame: pd.DataFrame, source: DataSource | None = None) -> pd.DataFrame:
    """``frame`` with every signal added as a column (a new frame; the input is left alone)."""
    out = frame.copy()
    recent, total = _col(frame, "events_30d"), _col(frame, "events_90d")
    prior = (total - recent) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out["usage_vs_prior_60d_pct"] = np.where(prior > 0, 100.0 * (recent / prior - 1.0), np.nan)
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
    dates = pd.DataFrame({"as_of": pd.to_datetime(frame["as_of"]).drop_duplicates()})
    source.con.register("_alert_dates", dates)
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
    result["account_id"] = result["account_id"].astype("string")
    result["as_of"] = pd.to_datetime(result["as_of"]).astype(frame["as_of"].dtype)
    return result
