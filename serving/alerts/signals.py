"""Signals alert rules read beside the registered features: derived from them, or from the pipeline tables.

- ``usage_vs_prior_90d_pct``: events of the last 30 days against the mean 30 days of the
  90 before them (days 31-120 back, from ``usage_daily``), in %; null when there was no
  usage then (the registered usage windows stop at 90 days, so this one is read here).
- ``readiness_score`` / ``readiness_band`` and ``health``: the rule-based baseline
  (``training.baseline``), so an alert needs no trained model.
- ``open_expansion_days_in_stage`` / ``open_expansion_amount``: the registered deal features
  ``open_opportunity_days_in_stage`` and ``open_expansion_amount_usd`` (the one definition of
  an open deal, :mod:`features.deals`), under the names the rules have always read; null
  when the optional ``opportunities`` and ``opportunity_stages`` tables are absent or empty.
  A frame without those features (a few keys) gets them from the same definition.
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
    "open_expansion_days_in_stage": "days the most advanced open expansion deal has spent in its stage "
                                    "(the feature open_opportunity_days_in_stage)",
    "open_expansion_amount": "amount of the open expansion deals, currency / year (the feature open_expansion_amount_usd)",
}
CATEGORICAL_SIGNALS = ("readiness_band", "health")
PIPELINE_TABLES = ("opportunities", "opportunity_stages")
#: signal -> the registered feature it reads
DEAL_SIGNALS = {"open_expansion_days_in_stage": "open_opportunity_days_in_stage",
                "open_expansion_amount": "open_expansion_amount_usd"}


def with_signals(frame: pd.DataFrame, source: DataSource | None = None,
                 stage_order: tuple[str, ...] | None = None) -> pd.DataFrame:
    """``frame`` with every signal added as a column (a new frame; the input is left alone).

    ``stage_order`` (the ``opportunity_stages`` setting; its default when None) ranks deal stages
    when the frame lacks the deal features."""
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
    pipeline = opportunity_signals(source, frame, stage_order) if source is not None else None
    if pipeline is None:
        out["open_expansion_days_in_stage"] = np.nan
        out["open_expansion_amount"] = np.nan
    else:
        for signal, feature in DEAL_SIGNALS.items():
            out[signal] = pipeline[feature].to_numpy()
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


def opportunity_signals(source: DataSource, frame: pd.DataFrame,
                        stage_order: tuple[str, ...] | None = None) -> pd.DataFrame | None:
    """The deal features of ``frame``'s rows (read from it when present, else computed by :mod:`features.deals`);
    None when the pipeline tables are absent or empty."""
    if not all(t in usable_tables(source) for t in PIPELINE_TABLES) or frame.empty:
        return None
    if all(f in frame.columns for f in DEAL_SIGNALS.values()):
        return frame[list(DEAL_SIGNALS.values())]
    from features.config import Settings
    from features.deals import KEYS, open_deal_features, open_deals
    from features.spine import snapshots

    con = source.ibis()
    snaps = snapshots(pd.to_datetime(frame["as_of"]).dt.date).select("as_of_day", "as_of")
    deals = open_deals(con.table("opportunities"), con.table("opportunity_stages"), snaps.select("as_of_day"),
                       stage_order or Settings.model_fields["opportunity_stages"].default)
    per = open_deal_features(deals).join(snaps, "as_of_day").drop(*KEYS[1:])
    result = con.execute(per.select("account_id", "as_of", *DEAL_SIGNALS.values()))
    result = _keyed(result, frame)
    keys = frame[["account_id", "as_of"]].assign(account_id=frame["account_id"].astype("string"))
    merged = keys.merge(result, on=["account_id", "as_of"], how="left")
    merged["open_expansion_amount_usd"] = merged["open_expansion_amount_usd"].fillna(0.0)
    return merged
