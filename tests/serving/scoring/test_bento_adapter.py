"""The BentoML adapter: a store at a chosen folder, and the metrics reset, still work on the installed BentoML."""

from __future__ import annotations

from pathlib import Path

import bentoml
import pytest

from serving.scoring import bento_adapter


def _changed(what: str) -> str:
    return (f"BentoML {bentoml.__version__} changed {what}; serving/scoring/bento_adapter.py was written for BentoML "
            f"{bento_adapter.BENTOML_VERSION} (constraints.txt): re-check the hook before upgrading")


def test_model_store_keeps_models_in_the_folder_it_is_given(tmp_path: Path) -> None:
    store = bento_adapter.model_store(tmp_path / "models")
    with bentoml.models.create("adapter-check", _model_store=store) as ref:
        Path(ref.path_of("payload.txt")).write_text("kept")
    found = bentoml.models.get("adapter-check:latest", _model_store=bento_adapter.model_store(tmp_path / "models"))
    assert Path(found.path_of("payload.txt")).read_text() == "kept", _changed("ModelStore")
    assert str(found.path).startswith(str(tmp_path)), _changed("where ModelStore keeps models")


def test_model_store_follows_bentoml_home_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "one"))
    assert bento_adapter.bentoml_home() == tmp_path / "one"
    store = bento_adapter.model_store()
    with bentoml.models.create("home-check", _model_store=store):
        pass
    assert (tmp_path / "one" / "models" / "home-check").is_dir()


def test_reset_request_metrics_finds_the_registry() -> None:
    try:
        bento_adapter.reset_request_metrics()
    except bento_adapter.BentoChanged as exc:
        pytest.fail(_changed(str(exc)))


def test_a_served_bentos_own_store_wins_over_bentoml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bentoml._internal.configuration.containers import BentoMLContainer

    bento_models = bento_adapter.model_store(tmp_path / "bento" / "models")
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "elsewhere"))
    BentoMLContainer.model_store.set(bento_models)  # what loading a built bento does
    try:
        assert bento_adapter.model_store() is bento_models, _changed("how a served bento sets its model store")
    finally:
        BentoMLContainer.model_store.reset()
