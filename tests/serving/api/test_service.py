"""The BentoML service at ASGI level: scores, ranking, reasons, fallback, auth and every bad input."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

KEY = "s3cret-test-key-0123456789abcdef"
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
    from serving.scoring.models import save_to_store

    home = tmp_path_factory.mktemp("bentoml_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", str(home))
        for model in train_models(snapshot_file[1]):
            save_to_store(model)
        yield home


def _app() -> object:
    """A fresh ASGI app; BentoML registers its request metrics once per process, so drop the old ones first."""
    from serving.scoring.bento_adapter import reset_request_metrics
    from serving.api.service import ExpansionScoring

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
    assert body["errors"] == [{"account_id": "ghost", "field": "accounts.1.account_id", "status": 404,
                               "error": "unknown account: not in the feature snapshot as of 2024-12-31",
                               "value": None, "rule": None}]


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


@pytest.mark.parametrize(
    ("feature", "value", "rule_says"),
    [
        ("events_30d", -5, "below the minimum of 0"),
        ("events_30d", 1e400, "not a finite number"),  # JSON 1e400 parses as infinity
        ("seat_utilization_pct", 1e9, "above the maximum of 1000"),
        ("feature_breadth_pct", 100.5, "above the maximum of 100"),
        ("events_trend_30d_pct", -150.0, "below the minimum of -100"),
        ("nps_latest", 11, "above the maximum of 10"),
        ("nps_detractor", 0.5, "not a whole number"),
        ("active_days_30d", 31, "above the maximum of 30"),
        ("segment", "galactic", "not an allowed value"),
        ("segment", 3, "expected a string"),
        ("payment_failures_90d", True, "expected a number"),
    ],
)
def test_supplied_values_outside_the_contract_are_refused_per_item(
    client: TestClient, feature: str, value: object, rule_says: str
) -> None:
    good = {"account_id": "ok", "features": {"events_30d": 1200, "segment": "smb", "seat_utilization_pct": 140.0}}
    bad = '{"account_id": "bad", "features": {"%s": %s}}' % (feature, "1e400" if value == 1e400 else json.dumps(value))
    headers = {**AUTH, "Content-Type": "application/json"}
    r = client.post("/score", content='{"accounts": [%s, %s]}' % (json.dumps(good), bad), headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["account_id"] for x in body["results"]] == ["ok"]  # the valid item is still scored
    (err,) = body["errors"]
    assert err["account_id"] == "bad" and err["field"] == f"accounts.1.features.{feature}" and err["status"] == 400
    assert rule_says in err["rule"] and feature in err["error"]
    assert err["value"] == ("inf" if value == 1e400 else value)
    alone = client.post("/score", content='{"accounts": [%s]}' % bad, headers=headers)
    assert alone.status_code == 400 and alone.json()["errors"][0]["rule"] == err["rule"]


def test_every_broken_rule_of_an_item_is_named(client: TestClient) -> None:
    bad = {"account_id": "b", "features": {"events_30d": -1, "segment": "galactic", "nps_latest": 5}}
    r = client.post("/score", json={"accounts": [bad]}, headers=AUTH)
    assert r.status_code == 400
    assert {e["field"] for e in r.json()["errors"]} == {"accounts.0.features.events_30d", "accounts.0.features.segment"}
    assert "smb, mid_market, enterprise" in next(e["rule"] for e in r.json()["errors"] if e["value"] == "galactic")


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


def test_answers_are_the_response_models_own_json(client: TestClient) -> None:
    """Answers joined from stored per-account JSON read back as the documented models, unchanged by a round trip."""
    from serving.api.schemas import RankResponse, ScoreResponse

    supplied = {"account_id": "new", "features": {"seat_utilization_pct": 91.0, "segment": "smb"}}
    for body in ({"accounts": [{"account_id": "acc0003"}, {"account_id": "ghost"}, supplied]},
                 {"accounts": [{"account_id": "acc0003"}, supplied], "with_reasons": False}):
        r = client.post("/score", json=body, headers=AUTH)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
        assert ScoreResponse.model_validate_json(r.content).model_dump_json().encode() == r.content
        assert [x["account_id"] for x in r.json()["results"]] == ["acc0003", "new"]
    r = client.post("/rank", json={"csm_owner": "csm1", "limit": 3}, headers=AUTH)
    assert r.status_code == 200 and r.headers["x-model-available"] == "true"
    assert RankResponse.model_validate_json(r.content).model_dump_json().encode() == r.content


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


def test_openapi_lists_allowed_values_and_ranges_of_supplied_features(client: TestClient) -> None:
    spec = client.get("/docs.json").json()
    account = spec["components"]["schemas"]["AccountInput"]
    features = account["properties"]["features"]  # OpenAPI 3.0: nullable, not anyOf null
    assert features["additionalProperties"] is False and features["nullable"] is True
    props = features["properties"]
    assert props["segment"]["enum"] == ["smb", "mid_market", "enterprise", None]
    assert (props["events_30d"]["type"], props["events_30d"]["minimum"], props["events_30d"]["nullable"]) == (
        "number", 0.0, True)
    assert "maximum" not in props["events_30d"]
    assert (props["feature_breadth_pct"]["minimum"], props["feature_breadth_pct"]["maximum"]) == (0.0, 100.0)
    assert props["nps_detractor"]["type"] == "integer" and "100" in props["feature_breadth_pct"]["description"]
    rejected = spec["components"]["schemas"]["MetadataResponseIODescriptor"]["properties"]["snapshot_rejected"]
    assert rejected["type"] == "string" and rejected["nullable"] is True


def test_a_corrupt_snapshot_keeps_the_previous_one_serving_and_readyz_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_frame  # noqa: ANN001
) -> None:
    path = tmp_path / "snapshot.parquet"
    make_frame(accounts=20, months=2).drop(columns=["expanded", "churned"]).to_parquet(path)
    with _client(monkeypatch, path, "none") as c:
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["snapshot_rejected"] is None
        path.write_bytes(path.read_bytes()[:300])  # a writer that died half-way
        refreshed = c.post("/refresh", json={}, headers=AUTH).json()
        assert refreshed["reloaded"] is False and "cannot read Parquet" in refreshed["snapshot_rejected"]
        assert c.post("/score", json={"accounts": [{"account_id": "acc0001"}]}, headers=AUTH).status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["snapshot_as_of"] == "2024-02-29"
        assert str(path) in ready.json()["snapshot_rejected"] and ready.json()["snapshot_accounts"] == 20
        meta = c.post("/metadata", json={}, headers=AUTH).json()
        assert meta["snapshot_rejected"] == ready.json()["snapshot_rejected"] and meta["snapshot_accounts"] == 20


def test_a_service_started_on_a_corrupt_snapshot_is_not_ready(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "snapshot.parquet"
    path.write_bytes(b"PAR1 truncated")
    with _client(monkeypatch, path, "none") as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert "cannot read Parquet" in ready.json()["snapshot_rejected"]


def test_metadata_reports_reasons_precomputed_for_the_whole_snapshot(client: TestClient) -> None:
    for _ in range(100):
        meta = client.post("/metadata", json={}, headers=AUTH).json()
        if meta["reasons_complete"]:
            break
        time.sleep(0.1)
    assert meta["reasons_complete"] and meta["reasons_computed"] == meta["snapshot_accounts"] == 300


@pytest.mark.slow
def test_registry_down_at_start_serves_the_baseline_and_says_so_then_refresh_recovers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, snapshot_file: tuple, train_models, register_model  # noqa: ANN001
) -> None:
    from features.config import Settings

    for name in ("BENTOML_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    settings = Settings(home=home)
    runs = {m.name: register_model(settings, m, snapshot_file[1])[1] for m in train_models(snapshot_file[1])}
    (home / "snapshot.parquet").write_bytes(snapshot_file[0].read_bytes())
    served = tmp_path / "registry"
    served.write_text("a file where the store's folder should be")  # every call to the store fails, as when down
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{served / 'mlflow.db'}")
    with _client(monkeypatch, home / "snapshot.parquet", "auto") as c:
        meta = c.post("/metadata", json={}, headers=AUTH).json()
        assert meta["model_available"] is False and "unreachable" in meta["model_note"], meta["model_note"]
        assert "serving the baseline" in meta["model_note"] and c.get("/readyz").json()["model_note"] == meta["model_note"]
        served.unlink()
        served.mkdir()
        (served / "mlflow.db").write_bytes((home / "mlflow.db").read_bytes())  # the store is back
        refreshed = c.post("/refresh", json={}, headers=AUTH).json()
        assert refreshed["models_reloaded"] is True and refreshed["model_available"] is True
        assert "champions of sqlite:///" in refreshed["model_note"]
        meta = c.post("/metadata", json={}, headers=AUTH).json()
        assert {m["name"]: m["run_id"] for m in meta["models"]} == runs
        assert {m["registry_uri"] for m in meta["models"]} == {f"sqlite:///{served / 'mlflow.db'}"}
        scored = c.post("/score", json={"accounts": [{"account_id": "acc0001"}]}, headers=AUTH).json()
        assert scored["model_available"] is True and scored["results"][0]["model_run_ids"] == runs
        assert c.post("/refresh", json={}, headers=AUTH).json()["models_reloaded"] is False  # same champions
def test_answers_say_what_changed_since_the_previous_crm_run(
        monkeypatch: pytest.MonkeyPatch, snapshot_file: tuple, model_store: Path, tmp_path: Path) -> None:
    import datetime as dt
    import shutil

    import pandas as pd

    from features.config import Settings
    from serving.scoring.batch import write_scores
    from serving.scoring.models import load_models
    from serving.scoring.scorer import Scorer, feature_specs
    from serving.sinks import open_sink

    snapshot = tmp_path / "snapshot.parquet"
    shutil.copy(snapshot_file[0], snapshot)
    features = pd.read_parquet(snapshot)
    features = features[features["as_of"] == features["as_of"].max()].reset_index(drop=True)
    monkeypatch.setenv("BENTOML_HOME", str(model_store))
    choice = load_models(Settings(_env_file=None, home=tmp_path), "store")
    earlier = Scorer(choice.expansion, choice.churn, feature_specs()).with_reference(features).score(features)
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


def test_a_short_api_key_is_refused_at_start_with_the_rule(monkeypatch: pytest.MonkeyPatch, snapshot_file: tuple) -> None:
    with pytest.raises(RuntimeError, match="EXPANSION_API_KEY has 1 character; at least 24 are required"):
        _client(monkeypatch, snapshot_file[0], "none", key="k").__enter__()


def test_docs_json_answers_405_to_every_method_but_get(baseline_client: TestClient) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = baseline_client.request(method, "/docs.json")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD", method
    assert baseline_client.get("/docs.json").status_code == 200
