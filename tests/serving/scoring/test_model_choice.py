"""Which models score: the current registry's champions, identified by run, never another home's or a rejected one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.config import Settings
from serving.scoring.models import deploy_champions, deployment_file, load_models, read_deployment, scorer_for, store_folder
from training.registry import RegistryMissing, configure, public_uri

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def frame(make_frame) -> pd.DataFrame:  # noqa: ANN001
    return make_frame(accounts=150, months=6)


@pytest.fixture(scope="module")
def trained(frame: pd.DataFrame, train_models) -> dict:  # noqa: ANN001
    expansion, churn = train_models(frame)
    return {"expansion": expansion, "churn": churn}


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Settings]:
    """Two companies on one machine: each its own home, registry and (BENTOML_HOME unset) model store."""
    for name in ("BENTOML_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    return Settings(home=tmp_path / "acme"), Settings(home=tmp_path / "globex")


def test_two_homes_never_see_each_others_models(
    homes: tuple, trained: dict, frame: pd.DataFrame, register_model  # noqa: ANN001
) -> None:
    acme, globex = homes
    runs = {name: register_model(acme, m, frame)[1] for name, m in trained.items()}
    deploy_champions(acme)
    register_model(globex, trained["expansion"], frame, champion=False)  # its gate rejected its only challenger

    theirs = load_models(globex)
    assert theirs.expansion is None and theirs.churn is None and theirs.source == "none"
    assert "no champion" in theirs.note and public_uri(globex.tracking_uri) in theirs.note
    assert load_models(globex, "store").identity == {"expansion": None, "churn": None}  # its store is its own
    rows = scorer_for(theirs, globex).score(frame.tail(5))
    assert not rows["model_available"].any() and rows["expansion_model_run_id"].isna().all()

    ours = load_models(acme)
    assert ours.source == "bentoml_store" and ours.identity == runs  # the deployed copies are the champions
    assert ours.expansion.registry_uri == public_uri(acme.tracking_uri) != public_uri(globex.tracking_uri)
    assert store_folder(acme) == acme.home.resolve() / "bentoml" / "models" != store_folder(globex)
    assert set(read_deployment(acme)) == {"expansion", "churn"} and read_deployment(globex) is None


def test_retrain_then_score_without_deploy_scores_with_the_new_champion(
    homes: tuple, trained: dict, frame: pd.DataFrame, register_model  # noqa: ANN001
) -> None:
    acme, _ = homes
    for m in trained.values():
        register_model(acme, m, frame)
    deploy_champions(acme)
    version, run = register_model(acme, trained["expansion"], frame)  # retrained and promoted, never deployed

    choice = load_models(acme)
    assert choice.expansion.version == version == "2" and choice.expansion.run_id == run
    assert choice.source == "mlflow" and "is not the champion" in choice.note and "expansion deploy" in choice.note
    rows = scorer_for(choice, acme).score(frame.tail(5))
    assert (rows["expansion_model_version"] == "2").all() and (rows["expansion_model_run_id"] == run).all()
    stored = load_models(acme, "store")  # asked for explicitly: the deployed v1, saying which registry it came from
    assert stored.expansion.version == "1" and public_uri(acme.tracking_uri) in stored.note


def test_a_rejected_challenger_is_never_served(
    homes: tuple, trained: dict, frame: pd.DataFrame, register_model  # noqa: ANN001
) -> None:
    acme, _ = homes
    _, champion_run = register_model(acme, trained["churn"], frame)
    _, challenger_run = register_model(acme, trained["churn"], frame, champion=False)
    for source in ("auto", "mlflow"):
        assert load_models(acme, source).churn.run_id == champion_run != challenger_run
    deploy_champions(acme)
    assert load_models(acme, "store").churn.run_id == champion_run


def test_a_deploy_that_fails_part_way_leaves_the_previous_deployment_whole(
    homes: tuple, trained: dict, frame: pd.DataFrame, register_model  # noqa: ANN001
) -> None:
    acme, _ = homes
    first = {name: register_model(acme, m, frame)[1] for name, m in trained.items()}
    deploy_champions(acme)
    before = deployment_file(acme).read_bytes()
    for m in trained.values():
        register_model(acme, m, frame)
    # the churn champion's artifacts vanish: deploy stores the new expansion model, then fails on churn
    model_id = configure(acme).get_model_version("churn", "2").source.rstrip("/").rsplit("/", 1)[-1]
    (bundle,) = [p for p in acme.artifact_root.rglob("bundle/model.json") if model_id in str(p)]
    bundle.unlink()
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever MLflow or the bundle reader raises
        deploy_champions(acme)
    assert deployment_file(acme).read_bytes() == before
    assert load_models(acme, "store").identity == first  # the previous deployment, both models, in use


def test_an_unreachable_registry_falls_back_to_the_deployed_models_and_says_so(
    homes: tuple, trained: dict, frame: pd.DataFrame, register_model, tmp_path: Path  # noqa: ANN001
) -> None:
    acme, _ = homes
    runs = {name: register_model(acme, m, frame)[1] for name, m in trained.items()}
    deploy_champions(acme)
    blocker = tmp_path / "down"
    blocker.write_text("not a folder")  # the tracking store's folder cannot exist: every call to it fails
    down = acme.model_copy(update={"mlflow_tracking_uri": f"sqlite:///{blocker / 'mlflow.db'}"})
    choice = load_models(down)
    assert choice.identity == runs and choice.source == "bentoml_store"
    assert "unreachable" in choice.note and "deployed models" in choice.note
    nothing = load_models(down, "mlflow")
    assert nothing.identity == {"expansion": None, "churn": None} and "serving the baseline" in nothing.note


def test_a_missing_registry_file_is_unreachable_never_a_fresh_empty_registry(
    homes: tuple, trained: dict, frame: pd.DataFrame, register_model, tmp_path: Path  # noqa: ANN001
) -> None:
    acme, _ = homes
    runs = {name: register_model(acme, m, frame)[1] for name, m in trained.items()}
    deploy_champions(acme)
    registry = Path(acme.tracking_uri.removeprefix("sqlite:///"))
    registry.rename(tmp_path / "moved-away.db")

    choice = load_models(acme)
    assert choice.identity == runs and choice.source == "bentoml_store" and choice.registry_unreachable
    assert "unreachable" in choice.note and "does not exist" in choice.note and "deployed models" in choice.note
    assert not registry.exists()  # nothing invented in its place
    with pytest.raises(RegistryMissing):
        deploy_champions(acme)  # would otherwise deploy "no champion" over the deployment
    assert load_models(acme, "store").identity == runs


def test_a_home_that_never_trained_scores_with_the_baseline_without_creating_a_registry(homes: tuple) -> None:
    acme, _ = homes
    choice = load_models(acme)
    assert choice.source == "none" and not choice.registry_unreachable and not choice.baseline_over_deployed
    assert "nothing trained in this home yet" in choice.note
    assert not Path(acme.tracking_uri.removeprefix("sqlite:///")).exists()
