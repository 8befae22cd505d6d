"""MLflow registry: registration, the promotion gate, manual promotion, rollback and `expansion models`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from serving.cli import app
from training.registry import (
    CHALLENGER,
    RegistryError,
    configure,
    list_versions,
    load_champion,
    promote,
    public_uri,
    register_and_gate,
    rollback,
)
from training.train import train_model


def _train(frame, features, categorical, settings, name="churn"):
    return train_model(name, frame, features, categorical, settings, num_boost_round=40)


def _aliases(settings, name):
    return {v["version"]: v["aliases"] for v in list_versions(settings, (name,))}


@pytest.mark.slow
def test_register_gate_reject_and_rollback(small_frame, feature_lists, settings, monkeypatch):
    features, categorical = feature_lists
    first = _train(small_frame, features, categorical, settings)
    test_rows = first.test_rows
    version, decision = register_and_gate(first, settings)
    assert decision.promote, decision.reasons  # the hand-built signal beats the rules
    assert _aliases(settings, "churn") == {"1": ["challenger", "champion"]}
    champion = load_champion("churn", settings)
    assert champion.version == "1" and champion.training_window == first.model.training_window
    np.testing.assert_allclose(champion.predict_proba(test_rows), first.model.predict_proba(test_rows))
    assert champion.calibrator.method == "platt"
    run_id = configure(settings).get_model_version("churn", "1").run_id
    assert champion.run_id == run_id == first.model.run_id and len(run_id) == 32
    assert champion.registry_uri == settings.tracking_uri  # a local SQLite file carries no secret

    # A challenger trained on shuffled labels carries no signal: it must stay a challenger.
    shuffled = small_frame.copy()
    labelled = shuffled["churned"].notna()
    shuffled.loc[labelled, "churned"] = np.random.default_rng(3).permutation(shuffled.loc[labelled, "churned"].to_numpy())
    worse = _train(shuffled, features, categorical, settings)
    version2, decision2 = register_and_gate(worse, settings)
    assert version2 == "2" and not decision2.promote
    assert _aliases(settings, "churn") == {"1": ["champion"], "2": [CHALLENGER]}
    client = configure(settings)
    tags = client.get_model_version("churn", "2").tags
    assert tags["gate_decision"] == "rejected" and "could be noise" in tags["gate_reasons"]
    assert tags["gate_positives"] == str(worse.positives) and "98% interval" in tags["gate_gain_over_baseline"]

    # Manual override, then a one-step rollback puts the old champion back.
    assert promote("churn", "2", settings) == "1"
    assert load_champion("churn", settings).version == "2"
    assert rollback("churn", settings) == ("2", "1")
    assert load_champion("churn", settings).version == "1"
    with pytest.raises(RegistryError, match="no version '9'"):
        rollback("churn", settings, to_version="9")

    # The CLI lists both versions with metrics next to the baseline's.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("EXPANSION_HOME", str(settings.home))
    out = CliRunner().invoke(app, ["models", "--format", "json"])
    assert out.exit_code == 0, out.output
    listed = json.loads(out.stdout)
    assert [(v["name"], v["version"]) for v in listed] == [("churn", "1"), ("churn", "2")]
    for v in listed:
        for key in ("roc_auc", "pr_auc", "lift_top_decile", "brier", "ece"):
            assert np.isfinite(v["metrics"][key]) and np.isfinite(v["baseline_metrics"][key])
        assert v["metrics"]["roc_auc_low"] < v["metrics"]["roc_auc"] < v["metrics"]["roc_auc_high"]
        assert v["gate_positives"] and v["gate_roc_auc"].startswith(f"{v['metrics']['roc_auc']:.3f}")
    cli_rollback = CliRunner().invoke(app, ["rollback", "--model", "churn", "--to-version", "2"])
    assert cli_rollback.exit_code == 0 and load_champion("churn", settings).version == "2"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("sqlite:////srv/expansion/mlflow.db", "sqlite:////srv/expansion/mlflow.db"),
        ("postgresql://mlflow:s3cret@db.internal:5432/mlflow", "postgresql://db.internal:5432/mlflow"),
        ("https://token-abc@mlflow.example.com/api?access_token=xyz", "https://mlflow.example.com/api"),
        ("databricks", "databricks"),
    ],
)
def test_public_uri_drops_credentials(uri, shown):
    assert public_uri(uri) == shown


def test_no_champion_means_none_and_rollback_is_refused(settings):
    assert load_champion("expansion", settings) is None
    with pytest.raises(RegistryError, match="no champion"):
        rollback("expansion", settings)


def test_registry_calls_leave_mlflow_and_the_environment_as_they_were(settings, tmp_path, monkeypatch):
    import os

    import mlflow

    from training.registry import tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    elsewhere = tmp_path / "elsewhere"  # the settings' own store is tmp_path / mlflow.db
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    before = mlflow.get_tracking_uri()
    assert load_champion("expansion", settings) is None
    with tracking(settings):
        assert mlflow.get_tracking_uri() == settings.tracking_uri
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    assert mlflow.get_tracking_uri() == before
    assert not list(elsewhere.iterdir())  # nothing written where the caller happens to stand
    # a caller's own choice is kept
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mine.db'}")
    try:
        with tracking(settings):
            pass
        assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'mine.db'}"
        assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'mine.db'}"
    finally:
        mlflow.set_tracking_uri(before)
        os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.mark.slow
def test_what_a_killed_training_job_left_the_next_job_cleans_up(small_frame, feature_lists, settings):
    import subprocess

    import mlflow

    from training.registry import clean_abandoned, job_tags, log_model, tracking

    features, categorical = feature_lists
    model = _train(small_frame, features, categorical, settings).model
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs: the killed job's
    client = configure(settings)
    runs = {}
    for who, pid in (("killed", gone.pid), ("running", None)):
        with tracking(settings) as experiment, mlflow.start_run(experiment_id=experiment, tags=job_tags(pid)) as run:
            log_model(model, small_frame, "churn")  # registered, then the job died before alias and gate tags
        client.update_run(run.info.run_id, "RUNNING")  # the killed job never ended its run
        runs[who] = run.info.run_id
    assert {v["version"]: v["aliases"] for v in list_versions(settings, ("churn",))} == {"1": [], "2": []}

    done = clean_abandoned(settings)
    assert len(done) == 2 and "marked KILLED" in done[0] and "churn v1" in done[1]
    assert client.get_run(runs["killed"]).info.status == "KILLED"
    assert client.get_run(runs["running"]).info.status == "RUNNING"  # this process lives: its run is its own
    assert [v["version"] for v in list_versions(settings, ("churn",))] == ["2"]
    assert clean_abandoned(settings) == []  # nothing left to clean


def test_a_new_registry_is_the_owners_alone(tmp_path, monkeypatch):
    from features.config import Settings

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = tmp_path / "home"
    configure(Settings(_env_file=None, home=home))
    assert (home / "mlflow.db").stat().st_mode & 0o777 == 0o600
    assert home.stat().st_mode & 0o777 == 0o700


@pytest.mark.slow
def test_a_rejected_version_goes_to_shadow_and_its_realised_months_count_in_the_gates_evidence(small_frame, feature_lists, settings):
    import pandas as pd

    from training.gate import ShadowRecord
    from training.monitoring_tracking import SHADOW, shadow_version, update_shadow

    features, categorical = feature_lists
    shuffled = small_frame.copy()
    labelled = shuffled["expanded"].notna()
    shuffled.loc[labelled, "expanded"] = np.random.default_rng(5).permutation(shuffled.loc[labelled, "expanded"].to_numpy())
    noise = _train(shuffled, features, categorical, settings, name="expansion")
    version, decision = register_and_gate(noise, settings)
    assert not decision.promote and decision.reasons[-1] == "evidence: the pooled backtest"
    assert update_shadow("expansion", version, decision.promote, False, settings) == version == shadow_version("expansion", settings)
    # A later rejected version does not displace a shadow that has not been judged yet.
    second, decision2 = register_and_gate(noise, settings)
    assert update_shadow("expansion", second, decision2.promote, False, settings) == version
    # The shadow's realised months beat what served (the baseline): stacked with the backtest's months they promote
    # the new refit (the evidence is the training procedure's record; the refit has seen the most data).
    rng = np.random.default_rng(6)
    trait = rng.normal(size=1200)
    rows = pd.DataFrame({"account_id": [f"a{i % 400}" for i in range(1200)],
                         "as_of": np.repeat(pd.to_datetime(["2024-09-30", "2024-10-31", "2024-11-30"]), 400),
                         "outcome": (rng.random(1200) < 1 / (1 + np.exp(-(-1.8 + 1.5 * trait)))).astype(float),
                         "shadow": trait, "served": rng.random(1200), "baseline": rng.random(1200)})
    third, decision3 = register_and_gate(noise, settings, shadow=ShadowRecord(version, rows))
    assert decision3.promote and decision3.evidence == "pooled backtest + shadow months"
    assert load_champion("expansion", settings).version == third != version
    assert update_shadow("expansion", third, True, True, settings) is None
    assert SHADOW not in sum(_aliases(settings, "expansion").values(), [])


def test_a_registry_block_in_another_thread_cannot_repoint_a_running_one(settings, tmp_path):
    # a service's registry refresh (another registry, another thread) while a job logs a run: before the lock, the
    # job's fluent calls went to the other registry inside that window and failed with "Run ... not found"
    import threading

    import mlflow

    from features.config import Settings
    from training.registry import tracking

    other = Settings(home=tmp_path / "other", mlflow_tracking_uri=f"sqlite:///{tmp_path / 'other.db'}")
    with tracking(other):
        pass  # its experiment exists, so the other thread's block is quick
    started, inside, failures = threading.Event(), threading.Event(), []

    def refresh() -> None:
        started.wait(30)
        with tracking(other):
            inside.set()
            inside_until = threading.Event()
            inside_until.wait(1.5)  # stays inside while the job would log

    thread = threading.Thread(target=refresh)
    thread.start()
    try:
        with tracking(settings) as experiment, mlflow.start_run(experiment_id=experiment) as run:
            started.set()
            inside.wait(1.0)  # with the lock the other block cannot start before this one ends
            try:
                mlflow.set_tags({"probe": "1"})
            except Exception as exc:  # noqa: BLE001 - the failure under test
                failures.append(str(exc))
    finally:
        thread.join(30)
    assert failures == []
    assert inside.is_set()  # the other thread's block ran, after this one
    assert mlflow.MlflowClient(tracking_uri=settings.tracking_uri).get_run(run.info.run_id).data.tags["probe"] == "1"
