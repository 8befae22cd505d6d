"""The book filtered to one play: its accounts in the ranking in force for that play, and the page says which.

With an uplift model stored in the home (fitted on the generated company's month-end rows, where the
play adds +50 points for accounts with above-median tenure), the served scores carry ``play_uplift``
for the play's accounts and the book orders them by it; without one, readiness orders them.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from conftest import build_home
from training.uplift_model import save_uplift
from web_helpers import API_KEY, asgi_app, serve_env, sign_in


def _most_recommended(feature_frame: pd.DataFrame) -> str:
    from serving.scoring.scorer import Scorer, feature_specs

    last = feature_frame[feature_frame["as_of"] == feature_frame["as_of"].max()].reset_index(drop=True)
    return str(Scorer(None, None, feature_specs()).score(last)["recommended_play"].value_counts().index[0])


def _csv(client: TestClient, query: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(client.get(f"/ui/book?{query}&format=csv").text)))


def _fitted(play: str, feature_frame: pd.DataFrame):  # noqa: ANN202 - training.uplift_model.UpliftModel
    """An uplift model for ``play`` on the month-end rows, where the play adds +50 points to long-tenured accounts."""
    from features.registry import categorical_features, feature_names
    from training.uplift_model import fit_uplift

    rng = np.random.default_rng(5)
    rows = feature_frame[feature_frame["as_of"] < feature_frame["as_of"].max()]
    treated = rng.random(len(rows)) < 0.5
    long = (rows["tenure_months"].astype(float) > rows["tenure_months"].astype(float).median()).to_numpy()
    episodes = rows.assign(arm=np.where(treated, "recommend", "hold_out"),
                           expanded=(rng.random(len(rows)) < 0.1 + np.where(treated & long, 0.5, 0.0)).astype(float))
    return fit_uplift(play, episodes, "expanded", feature_names(), categorical_features())


def test_a_play_with_its_uplift_ranking_in_force_is_ordered_by_expected_gain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, generated_company: Path, feature_frame: pd.DataFrame) -> None:
    play = _most_recommended(feature_frame)
    home = build_home(tmp_path / "home", generated_company, feature_frame)
    save_uplift(tmp_path / "home", [_fitted(play, feature_frame)])
    serve_env(monkeypatch, home)
    with TestClient(asgi_app(), base_url="http://testserver") as client:
        sign_in(client, home["tokens"]["leader"])
        page = client.get(f"/ui/book?play={play}")
        assert page.status_code == 200 and "ranked by their expected gain from the play" in page.text
        rows_ = _csv(client, f"play={play}")
        assert len(rows_) >= 10 and {r["recommended_play"] for r in rows_} == {play}
        gains = [float(r["play_uplift"]) for r in rows_]
        assert gains == sorted(gains, reverse=True) and max(gains) - min(gains) > 0.1
        others = _csv(client, "order=readiness")
        assert all(r["play_uplift"] == "" for r in others if r["recommended_play"] != play)


def test_without_an_uplift_model_a_plays_accounts_are_ordered_by_readiness(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, generated_company: Path, feature_frame: pd.DataFrame) -> None:
    play = _most_recommended(feature_frame)
    home = build_home(tmp_path / "home", generated_company, feature_frame)
    serve_env(monkeypatch, home)
    with TestClient(asgi_app(), base_url="http://testserver") as client:
        sign_in(client, home["tokens"]["leader"])
        assert "ranked by readiness: no uplift ranking has earned its place" in client.get(f"/ui/book?play={play}").text
        rows_ = _csv(client, f"play={play}")
        assert rows_ and {r["recommended_play"] for r in rows_} == {play} and all(not r["play_uplift"] for r in rows_)
        # `expansion plays effect` stores a model while the service runs: the next refresh scores with it, no restart
        save_uplift(tmp_path / "home", [_fitted(play, feature_frame)])
        refreshed = client.post("/refresh", json={}, headers={"Authorization": f"Bearer {API_KEY}"}).json()
        assert refreshed["models_reloaded"] is True
        assert "ranked by their expected gain from the play" in client.get(f"/ui/book?play={play}").text
        assert all(r["play_uplift"] for r in _csv(client, f"play={play}"))
        again = client.post("/refresh", json={}, headers={"Authorization": f"Bearer {API_KEY}"}).json()
        assert again["models_reloaded"] is False  # nothing new stored since
        scores = [float(r["readiness_score"]) for r in rows_]
        assert scores == sorted(scores, reverse=True)
