"""`expansion score` says which models scored and where they came from: the champion, a stale store, `--models store`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import Settings
from serving.cli import app
from serving.scoring.models import deploy_champions
from training.registry import public_uri

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("BENTOML_HOME", "MLFLOW_REGISTRY_URI", "EXPANSION_MODEL_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    return Settings()


def _score(company: Path, out: Path, *options: str) -> tuple[str, pd.DataFrame]:
    result = CliRunner().invoke(app, ["score", "--data", str(company), "--as-of", "2026-06-30",
                                      "--sink", f"csv:{out}", *options])
    assert result.exit_code == 0, result.output
    return " ".join(result.stderr.split()), pd.read_csv(out)


def test_score_notes_the_champion_a_stale_store_and_where_a_stored_model_came_from(
    home: Settings, generated_company: Path, tmp_path: Path, make_frame, train_models, register_model  # noqa: ANN001
) -> None:
    frame = make_frame(accounts=150, months=6)
    models = dict(zip(("expansion", "churn"), train_models(frame), strict=True))
    registry = public_uri(home.tracking_uri)

    note, rows = _score(generated_company, tmp_path / "none.csv")
    assert f"models: no MLflow registry at {registry} and no deployed model" in note
    assert not rows["model_available"].any() and rows["expansion_model_run_id"].isna().all()

    deployed = {name: register_model(home, m, frame)[1] for name, m in models.items()}
    deploy_champions(home)
    new_version, new_run = register_model(home, models["expansion"], frame)  # retrained and promoted, not deployed

    note, rows = _score(generated_company, tmp_path / "auto.csv")
    assert f"models: champions of {registry}: expansion v{new_version} (run {new_run}, registry {registry})" in note
    assert f"the deployed expansion model v1 (run {deployed['expansion']}, registry {registry}) is not the champion" \
        in note and "run `expansion deploy` to update the store" in note
    assert set(rows["expansion_model_run_id"]) == {new_run} and set(rows["churn_model_run_id"]) == {deployed["churn"]}

    note, rows = _score(generated_company, tmp_path / "store.csv", "--models", "store")
    assert (f"models: deployed models from the store: expansion v1 (run {deployed['expansion']}, registry {registry}), "
            f"churn v1 (run {deployed['churn']}, registry {registry})") in note
    assert set(rows["expansion_model_run_id"]) == {deployed["expansion"]} and rows["model_available"].all()


def test_score_with_the_registry_moved_away_uses_the_deployed_models_and_exits_3(
    home: Settings, generated_company: Path, tmp_path: Path, make_frame, train_models, register_model  # noqa: ANN001
) -> None:
    frame = make_frame(accounts=150, months=6)
    deployed = {name: register_model(home, m, frame)[1]
                for name, m in zip(("expansion", "churn"), train_models(frame), strict=True)}
    deploy_champions(home)
    registry = Path(home.tracking_uri.removeprefix("sqlite:///"))
    registry.rename(tmp_path / "moved.db")

    out = tmp_path / "fallback.csv"
    result = CliRunner().invoke(app, ["score", "--data", str(generated_company), "--as-of", "2026-06-30",
                                      "--sink", f"csv:{out}"])
    said = " ".join(result.stderr.split())
    assert result.exit_code == 3, result.output
    assert "unreachable" in said and "does not exist" in said and "scored with a fallback" in said
    rows = pd.read_csv(out)  # the scores are there, from the deployed champions, not the baseline
    assert set(rows["expansion_model_run_id"]) == {deployed["expansion"]} and rows["model_available"].all()
    assert not registry.exists()

    # an empty registry at another place (a wrong MLFLOW_TRACKING_URI): the baseline would serve, so nothing is written
    empty = home.model_copy(update={"mlflow_tracking_uri": f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"})
    from training.registry import configure

    configure(empty)
    result = CliRunner().invoke(app, ["score", "--data", str(generated_company), "--as-of", "2026-06-30",
                                      "--sink", f"csv:{tmp_path / 'baseline.csv'}"],
                                env={"MLFLOW_TRACKING_URI": empty.tracking_uri})
    assert result.exit_code == 3 and "refusing to score with the baseline" in " ".join(result.stderr.split())
    assert not (tmp_path / "baseline.csv").exists()
