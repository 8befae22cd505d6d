"""Faults survived, each against the real job or server: a deploy killed part-way, an MLflow server that is down."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from features.config import Settings
from serving.models import deploy_champions, deployment_file, load_models, read_deployment, store_folder

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]
KEY = "fault-test-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path, tracking_uri: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "EXPANSION_HOME": str(home), "MLFLOW_TRACKING_URI": tracking_uri,
           "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1", **extra}
    for name in ("BENTOML_HOME", "MLFLOW_REGISTRY_URI", "EXPANSION_MODEL_SOURCE", "EXPANSION_SNAPSHOT_PATH"):
        env.pop(name, None)
    return env


def _wait_until(check, seconds: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            result = check()
        except httpx.TransportError:
            result = None
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process exited: {log.read_text()[-3000:] if log else ''}")
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {seconds:.0f} s: {log.read_text()[-3000:] if log else ''}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def frame(make_frame) -> pd.DataFrame:  # noqa: ANN001
    return make_frame(accounts=150, months=6)


@pytest.fixture(scope="module")
def trained(frame: pd.DataFrame, train_models) -> dict:  # noqa: ANN001
    expansion, churn = train_models(frame)
    return {"expansion": expansion, "churn": churn}


# --- a deploy killed part-way --------------------------------------------------------------------------------------


def _stored_tags(settings: Settings, name: str) -> set[str]:
    folder = store_folder(settings) / f"expansion-scoring-{name}"
    return {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()


def test_a_deploy_killed_part_way_leaves_the_previous_deployment_whole_and_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained: dict, frame: pd.DataFrame, register_model  # noqa: ANN001
) -> None:
    """SIGKILL to ``expansion deploy`` once it has stored the new expansion model, before it names the new deployment."""
    for name in ("BENTOML_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    acme = Settings(home=tmp_path / "acme")
    first = {name: register_model(acme, m, frame)[1] for name, m in trained.items()}
    deploy_champions(acme)
    before = deployment_file(acme).read_bytes()
    cmd = [sys.executable, "-m", "serving.cli", "deploy"]
    env = _env(acme.home, acme.tracking_uri)
    caught = []
    for attempt in range(3):  # the kill must land between the two models; a machine this busy can miss it
        second = {name: register_model(acme, m, frame)[1] for name, m in trained.items()}
        stored = _stored_tags(acme, "expansion")
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and _stored_tags(acme, "expansion") == stored:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        mid_way = proc.returncode == -signal.SIGKILL and deployment_file(acme).read_bytes() == before
        if not mid_way:  # it finished first: the new deployment is whole; start from it next time
            assert load_models(acme, "store").identity == second, f"attempt {attempt}"
            first, before = second, deployment_file(acme).read_bytes()
            continue
        caught.append(attempt)
        assert _stored_tags(acme, "expansion") - stored, "the new expansion model was in the store when killed"
        assert read_deployment(acme) is not None and not list(deployment_file(acme).parent.glob("*.tmp"))
        kept = load_models(acme, "store")  # the previous deployment, both models, as deploy left it before
        assert kept.identity == first and kept.source == "bentoml_store"
        assert all(m is not None for m in kept.by_name.values())
        break
    assert caught, "no SIGKILL landed between storing the expansion and the churn model in 3 attempts"
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]  # the store took no harm: the next deploy completes
    assert load_models(acme, "store").identity == second
