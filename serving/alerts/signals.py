"""Signals alert rules read beside the registered features: derived from them, under the names rules read.

- ``usage_vs_prior_90d_pct`` is a registered alert signal (``features.registry.SIGNAL_FEATURES``):
  events of the last 30 days against the mean 30 days of the 90 before them, in %. The feature
  engine computes it on every backend (``build_features(..., signals=True)``) and
  ``docs/features.md`` documents it; it is not a model input.
- ``readiness_score`` / ``readiness_band`` and ``health``: the rule-based baseline
  (``training.baseline``), so an alert needs no trained model.
- ``open_expansion_days_in_stage`` / ``open_expansion_amount``: the registered deal features
  ``open_opportunity_days_in_stage`` and ``open_expansion_amount_usd`` (the one definition of
  an open deal, :mod:`features.deals`); null when the optional ``opportunities`` and
  ``opportunity_stages`` tables are absent or empty.

Alerts read the frame the engine built with its signals; a frame without them (the scorer's,
or a few keys) gets them from the same engine at its dates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.config import Settings
from features.io import DataSource
from training.baseline import health, readiness

SIGNALS: dict[str, str] = {
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
#: the registered features the alerts read (beside those a rule names itself)
READ_FEATURES = ("usage_vs_prior_90d_pct", *DEAL_SIGNALS.values())


def with_signals(frame: pd.DataFrame, source: DataSource | None = None,
                 settings: Settings | None = None) -> pd.DataFrame:
    """``frame`` with every signal added as a column (a new frame; the input is left alone).

    ``settings`` are those the features are built with when ``frame`` lacks them (the defaults when None)."""
    out = frame.copy()
    feats = _features(frame, source, settings)
    out["usage_vs_prior_90d_pct"] = feats["usage_vs_prior_90d_pct"].to_numpy(dtype=float, na_value=np.nan)
    out["readiness_score"] = readiness(frame)["readiness_score"].to_numpy()
    out["readiness_band"] = pd.array(readiness(frame)["readiness_band"], dtype="string")
    out["health"] = pd.array(health(frame)["health"], dtype="string")
    tracked = source is not None and all(t in usable_tables(source) for t in PIPELINE_TABLES)
    for signal, feature in DEAL_SIGNALS.items():
        out[signal] = feats[feature].to_numpy(dtype=float, na_value=np.nan) if tracked else np.nan
    if tracked:
        out["open_expansion_amount"] = out["open_expansion_amount"].fillna(0.0)
    return out


def _features(frame: pd.DataFrame, source: DataSource | None, settings: Settings | None) -> pd.DataFrame:
    """The registered features the alerts read, row for row with ``frame``: its own columns when it has them,
    else built by the feature engine at its dates (all null without a source)."""
    if all(f in frame.columns for f in READ_FEATURES):
        return frame[list(READ_FEATURES)]
    if source is None or frame.empty:
        return pd.DataFrame({f: np.full(len(frame), np.nan) for f in READ_FEATURES}, index=frame.index)
    from features.build import build_features

    dates = sorted(set(pd.to_datetime(frame["as_of"]).dt.date))
    built = build_features(source, dates, settings or Settings(_env_file=None), signals=True)
    built = built.assign(account_id=built["account_id"].astype("string"), as_of=pd.to_datetime(built["as_of"]))
    keys = pd.DataFrame({"account_id": frame["account_id"].astype("string").to_numpy(),
                         "as_of": pd.to_datetime(frame["as_of"]).to_numpy()})
    keys["as_of"] = keys["as_of"].astype(built["as_of"].dtype)
    merged = keys.merge(built[["account_id", "as_of", *READ_FEATURES]], on=["account_id", "as_of"], how="left")
    return merged[list(READ_FEATURES)].set_axis(frame.index)


def usable_tables(source: DataSource) -> list[str]:
    """Tables present in the data, less pipeline tables without a row (a pipeline that is not tracked)."""
    empty = {t for t in PIPELINE_TABLES if source.has(t)
             and source.con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] == 0}
    return [t for t in source.present if t not in empty]
