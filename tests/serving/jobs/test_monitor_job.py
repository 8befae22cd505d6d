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
    from features.io import open_data
    from features.registry import categorical_features, feature_names
    from serving.batch import score_snapshot, shadow_scores
    from serving.jobs.monitoring import monitor
    from serving.monitoring_store import MonitoringStore
    from serving.scoring import Scorer
    from serving.sinks.sql import SqlSink
    from training.models import fit_model

    home = tmp_path_factory.mktemp("monitor")
    settings = Settings(_env_file=None, home=home, bootstrap_replicates=100)
    labelled = feature_frame[feature_frame["expanded"].notna() & (feature_frame["as_of"] < "2025-09-01")]
    cut = pd.Timestamp("2025-06-30")
    models = {}
    for version, rounds in (("3", 60), ("4", 15)):
        model = fit_model("expansion", labelled[labelled["as_of"] <= cut], labelled[labelled["as_of"] > cut], "expanded",
                          feature_names(), categorical_features(), num_boost_round=rounds)
        model.version = version
        models[version] = model
    uri = f"sqlite:///{home / 'crm.db'}"
    sink = SqlSink(uri)
    store = MonitoringStore(uri)
    for i, day in enumerate(SCORED):
        features = feature_frame[feature_frame["as_of"] == pd.Timestamp(day)].reset_index(drop=True)
        summary = score_snapshot(features, Scorer(expansion=models["3"]), sink, day,
                                 dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=i))
        store.write_shadow(shadow_scores(features, {"expansion": models["4"]}, summary.run_id, day))
    source = open_data(generated_company)
    try:
        result = monitor(store, source, settings, DATA_END, NOW, {"3": {"roc_auc": 0.8, "roc_auc_low": 0.75,
                                                                       "roc_auc_high": 0.85}})
    finally:
        source.close()
    yield result, store, feature_frame, settings
    store.close()
    sink.close()


def test_every_run_whose_horizon_passed_is_measured_against_the_data_and_the_rest_waits(monitored):
    result, _, frame, _ = monitored
    assert result.months == ["2025-12", "2026-01"] and result.waiting == ["2026-05"]
    track = result.track[result.track["segment"] == "(all)"]
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
    result, store, _, _ = monitored
    stored = store.read_track()
    assert len(stored) == len(result.track)
    december = stored[(stored["month"] == "2025-12") & (stored["scorer"] == "champion")].set_index("metric")["value"]
    assert {"ece", "observed_rate", "band_low", "band_high", "calibration_outside", "decile_01_observed",
            "decile_10_predicted"} <= set(december.index)
    assert december["decile_10_predicted"] > december["decile_01_predicted"]
    promise = stored[(stored["scorer"] == "backtest promise") & (stored["metric"] == "roc_auc")]
    assert set(promise["month"]) == {"2025-12", "2026-01"} and (promise["value"] == 0.8).all()


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

    _, store, _, settings = monitored
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
        assert {a.kind for a in found} == {"calibration_drift", "lift_below_baseline"}
        sent, problems = send_alarms(found, store, cfg, NOW)
        assert len(sent) == 2 and not problems
        assert any("calibration drift" in b["text"] for b in _Receiver.bodies)
        again, _ = send_alarms(found, store, cfg, NOW)
        assert again == [] and len(_Receiver.bodies) == 2
    finally:
        server.shutdown()


def test_no_alarm_when_one_run_alone_is_outside_the_band():
    from training.monitoring import alarms

    rows = []
    for month, side in (("2026-01", 0.0), ("2026-02", 1.0)):
        rows.append({"month": month, "model_name": "expansion", "segment": "(all)", "scorer": "champion",
                     "metric": "calibration_outside", "value": side, "low": np.nan, "high": np.nan})
    assert alarms(pd.DataFrame(rows)) == []
