"""Faults survived, each against the real job or server: a deploy killed part-way, an MLflow server that is down."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from features.config import Settings
from serving.scoring.models import (
    REGISTRY_HTTP_DEFAULTS,
    deploy_champions,
    deployment_file,
    load_models,
    read_deployment,
    store_folder,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[3]
KEY = "fault-test-key-0123456789abcdef"


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


# --- an MLflow tracking server that is down --------------------------------------------------------------------------


def _mlflow_server(port: int, folder: Path) -> subprocess.Popen:
    """A real MLflow tracking server on a free loopback port, its store and artifacts under ``folder``."""
    folder.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "art")]
    log = folder / f"server-{time.monotonic_ns()}.log"
    proc = subprocess.Popen(cmd, cwd=folder, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"), start_new_session=True)
    _wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200, 120,
                "mlflow server", proc, log)
    return proc


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop a server and the workers it started (its own session)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _deploy_when_visible(settings: Settings, attempts: int = 5) -> None:
    """Deploy the champions just registered through the HTTP server.

    Under a loaded test run the server once answered "Logged model ... not found" for a model
    it had registered a moment before (seen once in three full runs, never alone); what this
    fixture sets up is a deployment, not that race, so the deploy is retried a few times, a
    second apart, and the last error is raised as it is.
    """
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            deploy_champions(settings)
            return
        except MlflowException as exc:
            if "not found" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(1.0)


@pytest.fixture
def registry_then_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained: dict, frame: pd.DataFrame,
                       register_model) -> Iterator[tuple[Settings, dict, Path, list]]:  # noqa: ANN001
    """Champions registered through a real HTTP MLflow server and deployed, then the server stopped.

    Yields (settings, deployed run ids, the server's folder, processes to stop); the test may start it again
    on the same port, and it is stopped at the end whatever happens.
    """
    for name in ("BENTOML_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    port, folder = _free_port(), tmp_path / "mlflow-server"
    acme = Settings(home=tmp_path / "acme", mlflow_tracking_uri=f"http://127.0.0.1:{port}")
    server = _mlflow_server(port, folder)
    started: list[subprocess.Popen] = [server]
    try:
        runs = {name: register_model(acme, m, frame)[1] for name, m in trained.items()}
        _deploy_when_visible(acme)
        _stop_group(server)
        yield acme, runs, folder, started
    finally:
        for proc in started:
            _stop_group(proc)


def test_an_mlflow_server_that_is_down_fails_fast_falls_back_to_the_deployed_models_and_recovers(
    registry_then_down: tuple, frame: pd.DataFrame, generated_company: Path, tmp_path: Path,
) -> None:
    acme, runs, folder, started = registry_then_down
    uri = acme.tracking_uri
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{uri}/health", timeout=2)  # nothing listens on the registry's port

    # the batch job: the deployed models, and it says why; `expansion score` caps MLflow's retries by itself
    env = _env(acme.home, uri)
    for name in REGISTRY_HTTP_DEFAULTS:
        env.pop(name, None)
    started_at = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "serving.cli", "score", "--data", str(generated_company),
                          "--as-of", "2026-06-30", "--sink", f"csv:{tmp_path / 'down.csv'}"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    batch_seconds = time.monotonic() - started_at
    assert out.returncode == 3, out.stderr[-3000:]  # the scores are written, and the scheduler hears of the fallback
    note = " ".join(out.stderr.split())
    assert f"MLflow registry {uri} unreachable" in note and "serving the deployed models" in note, note
    assert "scored with a fallback because the registry could not be asked" in note
    rows = pd.read_csv(tmp_path / "down.csv")
    assert set(rows["expansion_model_run_id"]) == {runs["expansion"]} and rows["model_available"].all()

    # the service: starts from the store, says so on /readyz and /metadata, and does not wait minutes for MLflow
    snapshot = tmp_path / "snapshot.parquet"
    frame.drop(columns=["expanded", "churned"]).to_parquet(snapshot)
    port = _free_port()
    log = tmp_path / "serve.log"
    started_at = time.monotonic()
    serve = subprocess.Popen([sys.executable, "-m", "serving.cli", "serve", "--port", str(port),
                              "--features", str(snapshot)], env={**_env(acme.home, uri), "EXPANSION_API_KEY": KEY},
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "wb"), start_new_session=True)
    started.append(serve)
    base = f"http://127.0.0.1:{port}"
    ready = _wait_until(lambda: (r := httpx.get(f"{base}/readyz", timeout=2)).status_code == 200 and r.json(), 180,
                        "expansion serve", serve, log)
    serve_seconds = time.monotonic() - started_at
    assert f"MLflow registry {uri} unreachable" in ready["model_note"] and ready["model_source"] == "bentoml_store"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as c:
        meta = c.post("/metadata", json={}).json()
        assert meta["model_note"] == ready["model_note"] and meta["model_available"] is True
        assert {m["name"]: m["run_id"] for m in meta["models"]} == runs
        scored = c.post("/score", json={"accounts": [{"account_id": "acc0001"}]}).json()["results"][0]
        assert scored["model_run_ids"] == runs

        # the registry comes back on its port: /refresh asks it again and says so
        started.append(_mlflow_server(int(uri.rsplit(":", 1)[1]), folder))
        refreshed = c.post("/refresh", json={}).json()
        assert refreshed["model_note"].startswith(f"champions of {uri}"), refreshed
        assert "unreachable" not in refreshed["model_note"] and refreshed["model_available"] is True
        assert "unreachable" not in c.get("/readyz").json()["model_note"]
    # the figures for the closing note
    print(f"registry down: batch job finished in {batch_seconds:.1f} s, service ready in {serve_seconds:.1f} s")


# --- a restart under load --------------------------------------------------------------------------------------------


def _serve(home: Path, port: int, snapshot: Path) -> subprocess.Popen:
    env = {**_env(home, f"sqlite:///{home / 'mlflow.db'}"), "EXPANSION_MODEL_SOURCE": "none"}
    env.pop("EXPANSION_API_KEY", None)
    log = home / f"serve-{time.monotonic_ns()}.log"
    proc = subprocess.Popen([sys.executable, "-m", "serving.cli", "serve", "--insecure", "--port", str(port),
                             "--features", str(snapshot)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=open(log, "wb"))
    _wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200, 180,
                "expansion serve", proc, log)
    return proc


def test_a_restart_under_load_gives_no_5xx_only_refused_connections_while_down(
    tmp_path: Path, make_frame  # noqa: ANN001
) -> None:
    """One worker by design (docs/service.md): during a stop and start a client sees refused or closed
    connections, to retry, and never a 5xx; answers are 200 before and after."""
    snapshot = tmp_path / "snapshot.parquet"
    make_frame(accounts=50, months=2).drop(columns=["expanded", "churned"]).to_parquet(snapshot)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/score"
    results: list[tuple[float, int | str]] = []
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                try:
                    status: int | str = c.post(url, json={"accounts": [{"account_id": f"acc{n:04d}"}]}).status_code
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                    time.sleep(0.05)  # a client retrying
                results.append((time.monotonic(), status))

    first = _serve(tmp_path, port, snapshot)
    clients = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
    second = None
    try:
        for t in clients:
            t.start()
        time.sleep(3)
        stopping = time.monotonic()
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) in (0, 128 + signal.SIGTERM)
        second = _serve(tmp_path, port, snapshot)
        ready = time.monotonic()
        time.sleep(3)
    finally:
        stop.set()
        for t in clients:
            t.join(timeout=40)
        for proc in (first, second):
            if proc is not None:
                _stop(proc)
    statuses = [s for _, s in results]
    assert not [s for s in statuses if isinstance(s, int) and s != 200], statuses  # no 5xx, nor anything else
    failed = [(at, s) for at, s in results if not isinstance(s, int)]
    assert all(stopping <= at <= ready + 1 for at, _ in failed), "connection errors only while the server was down"
    assert [s for at, s in results if at < stopping].count(200) > 0 and [s for at, s in results if at > ready + 1]
    assert all(s == 200 for at, s in results if at > ready + 1)
    print(f"restart under load: {statuses.count(200)} answers 200, connection errors while down: "
          f"{dict(Counter(s for _, s in failed))}, down for {ready - stopping:.1f} s")


# --- a publish killed half-way ---------------------------------------------------------------------------------------


def test_a_killed_publish_leaves_a_temporary_file_the_next_publish_removes(tmp_path: Path, make_frame) -> None:  # noqa: ANN001
    from serving.api.deployment import publish_snapshot

    settings = Settings(_env_file=None, home=tmp_path / "home")
    target = settings.snapshot_file
    target.parent.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    strays = [target.with_name(f"{target.name}.tmp"), target.with_name(f"{target.name}.{gone.pid}.tmp")]
    busy = target.with_name(f"{target.name}.{os.getppid()}.tmp")  # a publish still going in a live process
    for path in (*strays, busy):
        path.write_bytes(b"half a parquet file")
    publish_snapshot(make_frame(accounts=20, months=2), settings)
    assert not any(p.exists() for p in strays) and busy.exists()
    assert target.stat().st_mode & 0o777 == 0o600 and pd.read_parquet(target)["account_id"].nunique() == 20


# --- SIGTERM: drain, finish what is in flight, then refuse ------------------------------------------------------------


def test_on_sigterm_the_service_drains_answers_what_it_has_and_then_refuses_new_connections(
    tmp_path: Path, make_frame  # noqa: ANN001
) -> None:
    snapshot = tmp_path / "snapshot.parquet"
    make_frame(accounts=50, months=2).drop(columns=["expanded", "churned"]).to_parquet(snapshot)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, port, snapshot)
    one = {"accounts": [{"account_id": "acc0001"}]}
    try:
        with httpx.Client(timeout=30) as kept:  # a keep-alive client, busy when the signal comes
            assert kept.post(f"{base}/score", json=one).status_code == 200
            proc.send_signal(signal.SIGTERM)
            ready = httpx.get(f"{base}/readyz", timeout=5)
            assert ready.status_code == 503 and ready.json()["draining"] is True  # a balancer stops sending
            answer = kept.post(f"{base}/score", json=one)
            assert answer.status_code == 200 and answer.headers["connection"] == "close"  # answered, then closed
        seen: list[str] = []
        while proc.poll() is None:
            try:
                seen.append(str(httpx.post(f"{base}/score", json=one, timeout=5).status_code))
            except httpx.TransportError as exc:
                seen.append(type(exc).__name__)
            time.sleep(0.05)
        assert proc.wait(timeout=60) in (0, 128 + signal.SIGTERM, -signal.SIGTERM)
        # answered while draining, then refused (safe to retry): never a reset connection, never a 5xx
        assert set(seen) <= {"200", "ConnectError"} and "ConnectError" in seen, Counter(seen)
    finally:
        _stop(proc)
