"""The track record: past score runs (champion, shadow, baseline) against what the data shows happened,
stored, and alarms delivered once through the alert channels."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pandas as pd
import pytest

from features.config import Settings

SCORED = (dt.date(2025, 12, 31), dt.date(2026, 1, 31), dt.date(2026, 5, 31))
DATA_END = dt.date(2026, 6, 30)
NOW = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def monitored(generated_company, feature_frame, tmp_path_factory):
    """Three monthly runs of both models with a shadow of each; the first run written before the score history
    kept the churn rule baseline (its column dropped, then added back empty by the next run's sink)."""
    import sqlalchemy as sa

    from features.io import open_data
    from features.registry import categorical_features, feature_names
    from serving.scoring.batch import score_snapshot, shadow_scores
    from serving.jobs.monitoring import monitor
    from serving.store.monitoring import MonitoringStore
    from serving.scoring.scorer import Scorer
    from serving.sinks.sql import SqlSink
    from training.models import fit_model

    home = tmp_path_factory.mktemp("monitor")
    settings = Settings(_env_file=None, home=home, bootstrap_replicates=100)
    cut = pd.Timestamp("2025-06-30")
    models: dict[tuple[str, str], object] = {}
    for name, label in (("expansion", "expanded"), ("churn", "churned")):
        labelled = feature_frame[feature_frame[label].notna() & (feature_frame["as_of"] < "2025-09-01")]
        for version, rounds in (("3", 60), ("4", 15)):
            model = fit_model(name, labelled[labelled["as_of"] <= cut], labelled[labelled["as_of"] > cut], label,
                              feature_names(), categorical_features(), num_boost_round=rounds)
            model.version = version
            models[name, version] = model
    uri = f"sqlite:///{home / 'crm.db'}"
    store = MonitoringStore(uri)
    for i, day in enumerate(SCORED):
        sink = SqlSink(uri)
        features = feature_frame[feature_frame["as_of"] == pd.Timestamp(day)].reset_index(drop=True)
        summary = score_snapshot(features, Scorer(expansion=models["expansion", "3"], churn=models["churn", "3"]), sink,
                                 day, dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=i))
        sink.close()
        shadows = {"expansion": models["expansion", "4"], "churn": models["churn", "4"]}
        store.write_shadow(shadow_scores(features, shadows, summary.run_id, day))
        if i == 0:  # the history as an earlier release wrote it: no churn rule baseline
            with store.engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE account_score_history DROP COLUMN baseline_risk")
    store.close()
    store = MonitoringStore(uri)
    source = open_data(generated_company)
    promise = {"roc_auc": 0.8, "roc_auc_low": 0.75, "roc_auc_high": 0.85}
    try:
        result = monitor(store, source, settings, DATA_END, NOW, {"expansion": {"3": promise}, "churn": {"3": promise}})
    finally:
        source.close()
    with store.engine.connect() as conn:
        old = conn.execute(sa.text("SELECT count(*) FROM account_score_history WHERE baseline_risk IS NULL")).scalar()
    yield result, store, feature_frame, settings, old
    store.close()


def test_every_run_whose_horizon_passed_is_measured_against_the_data_and_the_rest_waits(monitored):
    result, _, frame, _, _ = monitored
    assert result.months == ["2025-12", "2026-01"] and result.waiting == ["2026-05"]
    track = result.track[(result.track["segment"] == "(all)") & (result.track["model_name"] == "expansion")]
    for month, day in (("2025-12", SCORED[0]), ("2026-01", SCORED[1])):
        truth = frame[(frame["as_of"] == pd.Timestamp(day))]
        row = track[(track["month"] == month) & (track["scorer"] == "champion") & (track["metric"] == "roc_auc")].iloc[0]
        assert row["positives"] == truth["expanded"].sum() and row["rows"] == len(truth)
        assert row["version"] == "3"
        shadow = track[(track["month"] == month) & (track["scorer"] == "shadow")]
        assert set(shadow["version"]) == {"4"} and {"roc_auc", "lift_top_decile", "precision_top_book"} <= set(shadow["metric"])
        assert {"champion - baseline", "shadow - champion", "shadow - baseline"} <= set(track["scorer"])
    figures = result.track.dropna(subset=["low", "high"])
    assert ((figures["low"] <= figures["value"]) & (figures["value"] <= figures["high"])).all()
    assert {"smb", "mid_market", "enterprise"} <= set(result.track["segment"])


def test_calibration_per_decile_and_the_backtest_promise_are_stored(monitored):
    result, store, _, _, _ = monitored
    stored = store.read_track()
    assert len(stored) == len(result.track)
    december = stored[(stored["month"] == "2025-12") & (stored["scorer"] == "champion") & (stored["model_name"] == "expansion")].set_index("metric")["value"]
    assert {"ece", "observed_rate", "band_low", "band_high", "calibration_outside", "decile_01_observed",
            "decile_10_predicted"} <= set(december.index)
    assert december["decile_10_predicted"] > december["decile_01_predicted"]
    promise = stored[(stored["scorer"] == "backtest promise") & (stored["metric"] == "roc_auc")]
    assert set(promise["month"]) == {"2025-12", "2026-01"} and (promise["value"] == 0.8).all()
    assert set(promise[promise["month"] == "2026-01"]["model_name"]) == {"expansion", "churn"}


def test_churn_is_measured_on_the_churn_label_against_its_rule_baseline(monitored):
    result, _, frame, _, _ = monitored
    track = result.track[(result.track["model_name"] == "churn") & (result.track["segment"] == "(all)")]
    truth = frame[frame["as_of"] == pd.Timestamp(SCORED[1])]
    figures = track.set_index(["scorer", "metric"])
    for scorer in ("champion", "shadow", "baseline"):
        row = figures.loc[(scorer, "roc_auc")]
        assert row["positives"] == truth["churned"].sum() > 0 and row["rows"] == len(truth)
        assert row["low"] <= row["value"] <= row["high"]
    assert figures.loc[("champion", "roc_auc"), "version"] == "3" and figures.loc[("shadow", "roc_auc"), "version"] == "4"
    assert ("champion - baseline", "lift_top_decile") in figures.index and ("champion", "calibration_outside") in figures.index
    assert ("baseline", "ece") not in figures.index  # the rule-based risk is no probability
    # the same rows the expansion side counts, labelled by churn: not a copy of the expansion figures
    expansion = result.track[(result.track["model_name"] == "expansion") & (result.track["month"] == "2026-01")
                             & (result.track["segment"] == "(all)")].set_index(["scorer", "metric"])
    assert expansion.loc[("champion", "roc_auc"), "positives"] == truth["expanded"].sum() != row["positives"]


def test_a_history_written_before_the_churn_baseline_is_monitored_for_expansion_and_skipped_for_churn(monitored):
    result, _, frame, _, old = monitored
    december = result.track[result.track["month"] == "2025-12"]
    assert set(december["model_name"]) == {"expansion"}  # churn skipped, never read as a zero risk
    assert old == len(frame[frame["as_of"] == pd.Timestamp(SCORED[0])])  # the migration added the column, empty
    [note] = result.notes
    assert note.startswith("churn 2025-12:") and "baseline_risk" in note and "nothing left to measure" in note
    assert "2026-01" in set(result.track[result.track["model_name"] == "churn"]["month"])


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        type(self).bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:  # noqa: ANN002
        return


def test_alarms_reach_the_alert_channel_once(monitored, tmp_path):
    from serving.jobs.monitoring import send_alarms
    from training.monitoring import alarms

    _, store, _, settings, _ = monitored
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        routing = tmp_path / "routing.toml"
        routing.write_text(f'[[route]]\ncsm_owner = "model-health"\nslack = "http://127.0.0.1:{server.server_port}/hook"\n')
        cfg = settings.model_copy(update={"alerts_routing": routing, "alerts_max_attempts": 1})
        track = store.read_track().assign(segment=lambda f: f["segment"])
        # Make both stored months fall outside the band on the same side, and the lift gain wholly negative;
        # with 30-day outcome windows two monthly runs are disjoint evidence.
        outside = (track["scorer"] == "champion") & (track["metric"] == "calibration_outside")
        track.loc[outside, "value"] = 1.0
        lift = (track["scorer"] == "champion - baseline") & (track["metric"] == "lift_top_decile") & (track["month"] == "2026-01")
        track.loc[lift, ["value", "low", "high"]] = [-0.8, -1.4, -0.2]
        found = alarms(track, horizon_days=30)
        # churn has one measured month (December's history did not keep its baseline): a lift alarm, no drift
        assert {(a.model_name, a.kind) for a in found} == {("expansion", "calibration_drift"),
                                                            ("expansion", "lift_below_baseline"),
                                                            ("churn", "lift_below_baseline")}
        sent, problems = send_alarms(found, store, cfg, NOW)
        assert len(sent) == 3 and not problems
        assert any("calibration drift" in b["text"] for b in _Receiver.bodies)
        assert any("(churn)" in b["text"] or "churn:" in b["text"] for b in _Receiver.bodies)
        again, _ = send_alarms(found, store, cfg, NOW)
        assert again == [] and len(_Receiver.bodies) == 3
    finally:
        server.shutdown()


def test_no_alarm_when_one_run_alone_is_outside_the_band():
    from training.monitoring import alarms

    rows = []
    for month, side in (("2026-01", 0.0), ("2026-02", 1.0)):
        rows.append({"month": month, "model_name": "expansion", "segment": "(all)", "scorer": "champion",
                     "metric": "calibration_outside", "value": side, "low": np.nan, "high": np.nan})
    assert alarms(pd.DataFrame(rows)) == []


def test_the_churn_shadow_months_reach_the_gate_on_the_churn_label(monitored, generated_company):
    from features.io import open_data
    from serving.jobs.monitoring import shadow_records

    _, store, frame, settings, _ = monitored
    source = open_data(generated_company)
    try:
        records = shadow_records(store, source, settings, DATA_END, {"expansion": "4", "churn": "4"})
    finally:
        source.close()
    churn, expansion = records["churn"], records["expansion"]
    assert churn.version == "4" and set(pd.to_datetime(churn.rows["as_of"]).dt.date) == {SCORED[1]}  # December: no baseline
    truth = frame[frame["as_of"] == pd.Timestamp(SCORED[1])]
    assert churn.rows["outcome"].sum() == truth["churned"].sum() and len(churn.rows) == len(truth)
    assert churn.rows["served"].between(0, 1).all() and churn.rows["shadow"].notna().all()
    assert len(expansion.rows) == len(frame[frame["as_of"].isin([pd.Timestamp(d) for d in SCORED[:2]])])
