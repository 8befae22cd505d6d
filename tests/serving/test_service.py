"""The BentoML service at ASGI level: scores, ranking, reasons, fallback, auth and every bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

KEY = "s3cret-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory: pytest.TempPathFactory, make_frame) -> tuple[Path, pd.DataFrame]:  # noqa: ANN001
    frame = make_frame()
    path = tmp_path_factory.mktemp("snap") / "snapshot.parquet"
    frame.drop(columns=["expanded", "churned"]).to_parquet(path)
    return path, frame


@pytest.fixture(scope="module")
def model_store(tmp_path_factory: pytest.TempPathFactory, snapshot_file: tuple, train_models) -> Iterator[Path]:  # noqa: ANN001
    """A private BentoML home whose model store holds the two models, as `expansion deploy` leaves it."""
    from serving.models import save_to_store

    home = tmp_path_factory.mktemp("bentoml_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", str(home))
        for model in train_models(snapshot_file[1]):
            save_to_store(model)
        yield home


def _app() -> object:
    """A fresh ASGI app; BentoML registers its request metrics once per process, so drop the old ones first."""
    from serving.bento_adapter import reset_request_metrics
    from serving.service import ExpansionScoring

    reset_request_metrics()
    return ExpansionScoring.to_asgi()


def _client(monkeypatch: pytest.MonkeyPatch, snapshot: Path, source: str, key: str | None = KEY) -> TestClient:

    monkeypatch.setenv("EXPANSION_SNAPSHOT_PATH", str(snapshot))
    monkeypatch.setenv("EXPANSION_MODEL_SOURCE", source)
    monkeypatch.setenv("EXPANSION_HOME", str(snapshot.parent))
    monkeypatch.delenv("EXPANSION_INSECURE", raising=False)
    if key is None:
        monkeypatch.delenv("EXPANSION_API_KEY", raising=False)
    else:
        monkeypatch.setenv("EXPANSION_API_KEY", key)
    return TestClient(_app())


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, snapshot_file: tuple, model_store: Path) -> Iterator[TestClient]:
    with _client(monkeypatch, snapshot_file[0], "store") as c:
        yield c


@pytest.fixture
def baseline_client(monkeypatch: pytest.MonkeyPatch, snapshot_file: tuple) -> Iterator[TestClient]:
    with _client(monkeypatch, snapshot_file[0], "none") as c:
        yield c


def test_score_by_id_returns_scores_reasons_and_reports_unknown_ids_per_item(client: TestClient) -> None:
    r = client.post("/score", json={"accounts": [{"account_id": "acc0000"}, {"account_id": "ghost"}]}, headers=AUTH)
    assert r.status_code == 200 and r.headers["x-model-available"] == "true"
    body = r.json()
    assert body["model_available"] is True and body["snapshot_as_of"] == "2024-12-31"
    (result,) = body["results"]
    assert result["account_id"] == "acc0000" and 0 <= result["expansion_probability"] <= 1
    assert 1 <= len(result["reasons"]) <= 5 and result["recommended_play"]
    assert result["model_versions"] == {"expansion": "7", "churn": "9"}
    assert body["errors"] == [{"account_id": "ghost", "field": "accounts.1.account_id",
                               "error": "unknown account: not in the feature snapshot as of 2024-12-31"}]


def test_supplied_features_are_scored_and_validated(client: TestClient) -> None:
    good = {"account_id": "new", "features": {"quota_utilization_30d_pct": 95.0, "segment": "smb"}}
    bad_type = {"account_id": "b1", "features": {"quota_utilization_30d_pct": "high"}}
    unknown = {"account_id": "b2", "features": {"no_such_feature": 1.0}}
    r = client.post("/score", json={"accounts": [good, bad_type, unknown]}, headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert [x["account_id"] for x in body["results"]] == ["new"] and body["results"][0]["as_of"] is None
    fields = [e["field"] for e in body["errors"]]
    assert fields == ["accounts.1.features.quota_utilization_30d_pct", "accounts.2.features.no_such_feature"]


def test_rank_orders_a_csm_book_and_limits(client: TestClient, snapshot_file: tuple) -> None:
    for order_by in ("expected_expansion_usd", "expansion_probability", "churn_probability"):
        r = client.post("/rank", json={"csm_owner": "csm1", "order_by": order_by, "limit": 5}, headers=AUTH)
        assert r.status_code == 200, r.text
        body = r.json()
        values = [x[order_by] for x in body["results"]]
        assert len(values) == 5 and values == sorted(values, reverse=True)
        assert body["total_accounts"] == 75 and body["order_by"] == order_by
        assert all(x["reasons"] for x in body["results"])
    r = client.post("/rank", json={"account_ids": ["acc0003", "ghost", "acc0002"], "limit": 10}, headers=AUTH)
    assert {x["account_id"] for x in r.json()["results"]} == {"acc0002", "acc0003"}
    assert r.json()["errors"][0]["field"] == "account_ids.1"


def test_metadata_and_baseline(client: TestClient) -> None:
    meta = client.post("/metadata", json={}, headers=AUTH).json()
    assert [m["version"] for m in meta["models"]] == ["7", "9"] and meta["snapshot_accounts"] == 300
    assert meta["max_batch_size"] == 1000 and meta["models"][0]["source"] == "bentoml_store"
    r = client.post("/baseline", json={"accounts": [{"account_id": "acc0004"}]}, headers=AUTH)
    assert set(r.json()["results"][0]) == {"account_id", "baseline_score", "baseline_band", "baseline_health"}


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/score", {"accounts": []}, 400, "accounts"),
        ("/score", {"accounts": [{"account_id": 5}]}, 400, "account_id"),
        ("/score", {"accounts": [{"account_id": "a", "extra": 1}]}, 400, "extra"),
        ("/score", {"acounts": [{"account_id": "a"}]}, 400, "acounts"),
        ("/score", {"accounts": [{"account_id": f"a{i}"} for i in range(1001)]}, 400, "accounts"),
        ("/score", {"accounts": [{"account_id": "ghost"}]}, 404, "accounts"),
        ("/rank", {"csm_owner": "nobody"}, 404, "csm_owner"),
        ("/rank", {"csm_owner": "csm1", "account_ids": ["acc0001"]}, 400, "csm_owner"),
        ("/rank", {"csm_owner": "csm1", "order_by": "vibes"}, 400, "order_by"),
        ("/rank", {"csm_owner": "csm1", "limit": 0}, 400, "limit"),
        ("/rank", {"csm_owner": "csm1", "limit": 5000}, 400, "limit"),
        ("/rank", {"account_ids": ["ghost"]}, 404, "account_ids"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_field(client: TestClient, path: str, body: dict, status: int, field: str) -> None:
    r = client.post(path, json=body, headers=AUTH)
    assert r.status_code == status, r.text
    assert field in r.text
    assert client.get("/readyz").status_code == 200  # still answering


def test_api_key_is_required_except_on_health(client: TestClient) -> None:
    body = {"accounts": [{"account_id": "acc0001"}]}
    assert client.post("/score", json=body).status_code == 401
    assert client.post("/score", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


def test_without_key_the_service_refuses_to_start_unless_insecure(monkeypatch: pytest.MonkeyPatch, snapshot_file: tuple) -> None:
    with pytest.raises(RuntimeError, match="EXPANSION_API_KEY"), _client(monkeypatch, snapshot_file[0], "none", key=None):
        pass
    monkeypatch.setenv("EXPANSION_INSECURE", "1")
    with TestClient(_app()) as c:
        assert c.post("/metadata", json={}).status_code == 200


def test_without_models_the_baseline_is_served_and_said_so(baseline_client: TestClient) -> None:
    r = baseline_client.post("/score", json={"accounts": [{"account_id": "acc0001"}]}, headers=AUTH)
    assert r.status_code == 200 and r.headers["x-model-available"] == "false"
    (res,) = r.json()["results"]
    assert r.json()["model_available"] is False and res["expansion_probability"] is None
    assert res["readiness_score"] == res["baseline_score"] and res["reasons"] is not None
    ranked = baseline_client.post("/rank", json={"csm_owner": "csm2", "order_by": "churn_probability"}, headers=AUTH)
    assert ranked.json()["order_by"] == "baseline_risk" and ranked.json()["model_available"] is False
    bad = baseline_client.post("/score", json={"accounts": [{"account_id": "ghost"}]}, headers=AUTH)
    assert bad.status_code == 404 and bad.json()["model_available"] is False


def test_snapshot_refresh_without_restart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_frame) -> None:  # noqa: ANN001
    path = tmp_path / "snapshot.parquet"
    frame = make_frame(accounts=20, months=2).drop(columns=["expanded", "churned"])
    frame.to_parquet(path)
    with _client(monkeypatch, path, "none") as c:
        assert c.post("/score", json={"accounts": [{"account_id": "fresh"}]}, headers=AUTH).status_code == 404
        frame.assign(account_id=frame["account_id"].replace({"acc0000": "fresh"})).to_parquet(path)
        r = c.post("/refresh", json={}, headers=AUTH)
        assert r.status_code == 200 and r.json()["reloaded"] is True
        assert c.post("/score", json={"accounts": [{"account_id": "fresh"}]}, headers=AUTH).status_code == 200


def test_openapi_document_is_complete(client: TestClient) -> None:
    spec = client.get("/docs.json").json()
    for path in ("/score", "/rank", "/baseline", "/metadata", "/refresh"):
        op = spec["paths"][path]["post"]
        assert {"200", "400", "401"} <= set(map(str, op["responses"])) and op["security"] == [{"bearer": []}]
        assert op["requestBody"]["content"]["application/json"]["schema"]
    schemas = spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "AccountScore" in schemas and "Reason" in schemas and "ErrorResponse" in schemas
    assert schemas["ScoreRequestIODescriptor"].get("additionalProperties") is False


def test_answers_say_what_changed_since_the_previous_crm_run(
        monkeypatch: pytest.MonkeyPatch, snapshot_file: tuple, model_store: Path, tmp_path: Path) -> None:
    import datetime as dt
    import shutil

    import pandas as pd

    from features.config import Settings
    from serving.batch import write_scores
    from serving.models import load_models
    from serving.scoring import Scorer, feature_specs
    from serving.sinks import open_sink

    snapshot = tmp_path / "snapshot.parquet"
    shutil.copy(snapshot_file[0], snapshot)
    features = pd.read_parquet(snapshot)
    features = features[features["as_of"] == features["as_of"].max()].reset_index(drop=True)
    monkeypatch.setenv("BENTOML_HOME", str(model_store))
    expansion, churn, _ = load_models(Settings(_env_file=None, home=tmp_path), "store")
    earlier = Scorer(expansion, churn, feature_specs()).with_reference(features).score(features)
    earlier["readiness_score"] = (earlier["readiness_score"] - 10).clip(lower=0)
    sink = open_sink(f"sqlite:///{tmp_path / 'crm.db'}", Settings(_env_file=None, home=tmp_path))
    try:  # the batch run of a month before, as the CRM history keeps it
        write_scores([earlier], sink, dt.date(2024, 11, 30), dt.datetime(2024, 12, 1, tzinfo=dt.UTC))
    finally:
        sink.close()
    with _client(monkeypatch, snapshot, "store") as c:
        result = c.post("/score", json={"accounts": [{"account_id": "acc0000"}]}, headers=AUTH).json()["results"][0]
        ranked = c.post("/rank", json={"csm_owner": "csm0", "limit": 3}, headers=AUTH).json()["results"]
    previous = earlier.set_index("account_id").at["acc0000", "readiness_score"]
    assert result["readiness_change"] == pytest.approx(result["readiness_score"] - previous)
    assert result["change_reason"].startswith(f"Readiness {result['readiness_change']:+.0f} points")
    assert result["context"] and all(r["concept"] and r["comparison"] for r in result["reasons"])
    assert all(r["readiness_change"] is not None and r["change_reason"] for r in ranked)
