"""The real server: `bentoml serve` in a subprocess on a free loopback port, then schemathesis against it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

KEY = "server-test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _deploy(bentoml_home: Path, frame_path: Path) -> None:
    """Put models into a fresh BentoML home the way `expansion deploy` does (a separate process owns that home)."""
    code = (
        "import pandas as pd, sys; sys.path.insert(0, 'tests/serving');"
        "from conftest import train_models; from serving.scoring.models import save_to_store;"
        f"[save_to_store(m) for m in train_models(pd.read_parquet({str(frame_path)!r}))]"
    )
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=Path(__file__).parents[3], timeout=120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, make_frame) -> Iterator[str]:  # noqa: ANN001
    home = tmp_path_factory.mktemp("server")
    frame = make_frame()
    frame.to_parquet(home / "labelled.parquet")
    frame.drop(columns=["expanded", "churned"]).to_parquet(home / "snapshot.parquet")
    _deploy(home / "bentoml", home / "labelled.parquet")
    port = _free_port()
    env = {**os.environ, "BENTOML_HOME": str(home / "bentoml"), "EXPANSION_API_KEY": KEY,
           "EXPANSION_SNAPSHOT_PATH": str(home / "snapshot.parquet"), "EXPANSION_HOME": str(home),
           "EXPANSION_MODEL_SOURCE": "store",  # models put in the store directly, no registry
           "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("EXPANSION_INSECURE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.api.service:ExpansionScoring", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, cwd=Path(__file__).parents[3], stdout=subprocess.DEVNULL, stderr=open(home / "server.log", "wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"server exited: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        else:
            pytest.fail("server not ready within 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_live_server_scores_ranks_and_refuses_bad_input(server: str) -> None:
    with httpx.Client(base_url=server, headers=AUTH, timeout=10) as c:
        ids = [f"acc{i:04d}" for i in range(10)]  # context is never a reason: some accounts have no distinct driver
        r = c.post("/score", json={"accounts": [*({"account_id": a} for a in ids), {"account_id": "ghost"}]})
        assert r.status_code == 200 and r.json()["model_available"] is True
        assert any(x["reasons"] for x in r.json()["results"]) and r.json()["errors"][0]["account_id"] == "ghost"
        ranked = c.post("/rank", json={"csm_owner": "csm0", "limit": 3}).json()["results"]
        values = [x["expected_expansion_usd"] for x in ranked]
        assert values == sorted(values, reverse=True) and len(values) == 3
        assert c.post("/score", json={"accounts": []}).status_code == 400
        assert c.post("/score", json={"accounts": [{"account_id": "a"}] * 1001}).status_code == 400
        assert c.post("/score", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
        assert httpx.post(f"{server}/score", json={"accounts": [{"account_id": "acc0001"}]}).status_code == 401
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200


def test_schemathesis_finds_no_server_error_and_no_schema_violation(server: str) -> None:
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{server}/docs.json",
        "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
        "--max-examples", "25", "--seed", "7", "--request-timeout", "10",
        "-H", f"Authorization: Bearer {KEY}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    with httpx.Client(base_url=server, headers=AUTH) as c:  # still answering afterwards
        assert c.post("/metadata", json={}).status_code == 200


def test_live_server_keeps_serving_the_previous_snapshot_when_the_file_is_corrupted(server: str) -> None:
    with httpx.Client(base_url=server, headers=AUTH, timeout=10) as c:
        path = Path(c.post("/metadata", json={}).json()["snapshot_path"])
        good = path.read_bytes()
        try:
            path.write_bytes(good[: len(good) // 3])  # truncated, as by a copy that died half-way
            refreshed = c.post("/refresh", json={}).json()
            assert refreshed["reloaded"] is False and str(path) in refreshed["snapshot_rejected"]
            r = c.post("/score", json={"accounts": [{"account_id": "acc0001"}]})
            assert r.status_code == 200 and r.json()["snapshot_as_of"] == "2024-12-31"
            ready = c.get("/readyz")
            assert ready.status_code == 200 and ready.json()["snapshot_rejected"] == refreshed["snapshot_rejected"]
            assert c.post("/metadata", json={}).json()["snapshot_accounts"] == 300
        finally:
            path.write_bytes(good)
        assert c.post("/refresh", json={}).json()["snapshot_rejected"] is None
        assert c.get("/readyz").json()["snapshot_rejected"] is None
