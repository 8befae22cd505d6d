"""Realised performance of a scored month, the calibration band and its month spread, the alarms' rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.monitoring import alarms, calibration, calibration_span, month_spread, realised, track_rows


def _month(rng, n=500, signal=1.5):
    trait = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(-2.0 + signal * trait)))
    y = (rng.random(n) < p).astype(float)
    return pd.DataFrame({"account_id": [f"a{i}" for i in range(n)], "as_of": pd.Timestamp("2026-01-31"),
                         "csm_owner": [f"c{i % 5}" for i in range(n)], "segment": rng.choice(["smb", "enterprise"], n),
                         "outcome": y, "champion": p, "baseline": rng.random(n)})


def test_realised_measures_every_scorer_on_the_same_accounts_with_paired_gains():
    rows = _month(np.random.default_rng(1))
    table = realised(rows, replicates=200)
    overall = table[table["segment"] == "(all)"].set_index(["scorer", "metric"])
    assert overall.loc[("champion - baseline", "roc_auc"), "low"] > 0  # a real signal against noise
    assert overall.loc[("champion", "roc_auc"), "positives"] == rows["outcome"].sum()
    assert ("baseline", "ece") not in overall.index and ("champion", "ece") in overall.index  # readiness is no probability
    assert "shadow" not in set(table["scorer"])  # no shadow column: not invented
    assert {"smb", "enterprise"} <= set(table["segment"])
    assert ((table["low"] <= table["value"]) & (table["value"] <= table["high"])).all()
    with pytest.raises(ValueError, match="'outcome'"):
        realised(rows.assign(outcome=np.nan), replicates=10)


def test_the_band_holds_calibrated_months_and_a_doubled_rate_falls_outside():
    rng = np.random.default_rng(2)
    inside = 0
    for _ in range(50):
        rows = _month(rng)
        inside += calibration(rows["outcome"].to_numpy(), rows["champion"].to_numpy())[1]["outside"] == 0
    assert inside >= 47  # a 99 % band
    rows = _month(rng)
    doubled = np.maximum(rows["outcome"], (rng.random(len(rows)) < rows["outcome"].mean()).astype(float))
    deciles, band = calibration(doubled.to_numpy(), rows["champion"].to_numpy())
    assert band["outside"] == 1 and len(deciles) == 10 and deciles["predicted"].is_monotonic_increasing
    wider = calibration(doubled.to_numpy(), rows["champion"].to_numpy(), month_sd=0.05)[1]
    assert wider["band_high"] - wider["band_low"] > band["band_high"] - band["band_low"]


def test_month_spread_sees_months_that_stray_together_and_not_chance():
    rng = np.random.default_rng(3)
    parts = []
    for m in range(12):
        shift = rng.normal(scale=0.05)  # the whole month moves: a season, a market
        p = np.full(400, 0.1)
        parts.append(pd.DataFrame({"as_of": pd.Timestamp("2025-01-31") + pd.offsets.MonthEnd(m), "model_probability": p,
                                   "expanded": (rng.random(400) < p + shift).astype(float)}))
    assert month_spread(pd.concat(parts), "expanded") == pytest.approx(0.05, abs=0.025)
    steady = pd.concat(parts).assign(expanded=lambda f: (rng.random(len(f)) < 0.1).astype(float))
    assert month_spread(steady, "expanded") < 0.012


def _calibrated_track(rng, months):
    parts = []
    for month in months:
        rows = _month(rng)
        parts.append(track_rows(month, "expansion", realised(rows, replicates=50, by_segment=False),
                                calibration(rows["outcome"].to_numpy(), rows["champion"].to_numpy()), {}))
    return pd.concat(parts, ignore_index=True)


def test_calibration_drift_needs_two_runs_with_disjoint_outcome_windows_on_the_same_side():
    assert calibration_span(90) == 4 and calibration_span(30) == 2 and calibration_span(180) == 7
    months = ("2025-11", "2025-12", "2026-01", "2026-02", "2026-03")
    track = _calibrated_track(np.random.default_rng(4), months)
    assert alarms(track) == []
    side = track["metric"] == "calibration_outside"
    track.loc[side & track["month"].isin(months[-3:]), "value"] = 1.0
    # Three runs 90 days long share a month of outcomes: one unusual month, not yet drift.
    assert alarms(track, horizon_days=90) == []
    (short,) = alarms(track, horizon_days=30)  # monthly windows are disjoint: two runs suffice
    assert short.months == ("2026-02", "2026-03")
    track.loc[side & (track["month"] == "2025-12"), "value"] = -1.0
    assert alarms(track, horizon_days=90) == []  # outside four runs, but not on one side
    track.loc[side & (track["month"] == "2025-12"), "value"] = 1.0
    (alarm,) = alarms(track, horizon_days=90)
    assert alarm.kind == "calibration_drift" and alarm.months == months[1:] and "more positives" in alarm.message
    gap = track[track["month"] != "2026-01"]
    gap.loc[(gap["metric"] == "calibration_outside") & (gap["month"] == "2025-11"), "value"] = 1.0
    assert alarms(gap, horizon_days=90) == []  # a month without a run breaks the span


def test_each_scored_month_is_one_mlflow_run_per_model_with_its_figures_and_the_trend_plot(settings):
    import mlflow

    from training.monitoring_tracking import log_monitoring

    rng = np.random.default_rng(7)
    parts = []
    for name, version in (("expansion", "3"), ("churn", "5")):
        for month in ("2026-01", "2026-02"):
            rows = _month(rng, signal=1.5 if name == "expansion" else 0.8)
            parts.append(track_rows(month, name, realised(rows, replicates=50, by_segment=False),
                                    calibration(rows["outcome"].to_numpy(), rows["champion"].to_numpy()),
                                    {"champion": version, "baseline": "rules"}))
    track = pd.concat(parts, ignore_index=True)
    ids = log_monitoring(track, settings)
    assert len(ids) == 4  # churn first (sorted by model, then month)
    client = mlflow.MlflowClient(settings.tracking_uri)
    churn = client.get_run(ids[1])
    assert churn.info.run_name == "monitor-churn-2026-02" and churn.data.params["champion_version"] == "5"
    mine = track[(track["model_name"] == "churn") & (track["month"] == "2026-02") & (track["scorer"] == "champion")
                 & (track["metric"] == "roc_auc")]
    assert churn.data.metrics["champion_roc_auc"] == pytest.approx(mine["value"].iloc[0])
    ids = ids[2:]
    track = track[track["model_name"] == "expansion"]
    client = mlflow.MlflowClient(settings.tracking_uri)
    run = client.get_run(ids[1])
    assert run.info.run_name == "monitor-expansion-2026-02" and run.data.params["champion_version"] == "3"
    auc = track[(track["month"] == "2026-02") & (track["scorer"] == "champion - baseline") & (track["metric"] == "roc_auc")]
    assert run.data.metrics["champion_minus_baseline_roc_auc_low"] == pytest.approx(auc["low"].iloc[0])
    assert run.data.metrics["positives"] == auc["positives"].iloc[0]
    assert [a.path for a in client.list_artifacts(ids[1], "plots")] == ["plots/trend.png"]
