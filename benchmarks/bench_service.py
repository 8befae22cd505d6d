"""Scoring service latency on loopback, against the in-process scorer and a bare BentoML echo endpoint.

Run: ``python benchmarks/bench_service.py`` (about a minute on 2 cores). Starts two real
servers (`bentoml serve`, one worker, 1 LightGBM thread): the scoring service over a
5,000-account snapshot with deployed models, and a bare service that returns its input.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bentoml
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"


@bentoml.service(name="echo", workers=1)
class Echo:
    """The reference: a BentoML endpoint that validates nothing and returns its input."""

    @bentoml.api
    def echo(self, accounts: list[dict]) -> list[dict]:
        return accounts


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(target: str, env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen, str]:
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{target} did not become ready")


def _latency(client: httpx.Client, path: str, body: dict | list, n: int) -> tuple[float, float]:
    for _ in range(5):
        client.post(path, json=body).raise_for_status()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.post(path, json=body).raise_for_status()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _in_process(fn, n: int) -> float:  # noqa: ANN001
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) * 1000 / n


def _test_data():  # noqa: ANN202 - (make_frame, train_models)
    """The serving tests' generator and trainer (labels with a known signal), from their one definition."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("serving_test_data", ROOT / "tests" / "serving" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_frame, module.train_models


def main() -> None:
    make_frame, train_models = _test_data()

    from serving.scoring import Scorer

    home = Path(tempfile.mkdtemp(prefix="bench_service_"))
    frame = make_frame(accounts=5000, months=12)
    snapshot = frame.drop(columns=["expanded", "churned"])
    snapshot.to_parquet(home / "snapshot.parquet")
    models = train_models(frame)
    env = {**os.environ, "BENTOML_HOME": str(home / "bentoml"), "EXPANSION_API_KEY": KEY, "OMP_NUM_THREADS": "1",
           "EXPANSION_SNAPSHOT_PATH": str(home / "snapshot.parquet"), "EXPANSION_HOME": str(home),
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    code = ("import sys, pickle; from serving.models import save_to_store; "
            "[save_to_store(m) for m in pickle.load(open(sys.argv[1], 'rb'))]")
    import pickle
    pickle.dump(models, open(home / "models.pkl", "wb"))
    subprocess.run([sys.executable, "-c", code, str(home / "models.pkl")], env=env, cwd=ROOT, check=True)

    latest = snapshot[snapshot["as_of"] == snapshot["as_of"].max()].reset_index(drop=True)
    ids = latest["account_id"].tolist()
    one = {"accounts": [{"account_id": ids[7]}]}
    thousand = {"accounts": [{"account_id": a} for a in ids[1000:2000]]}
    thousand_no_reasons = {**thousand, "with_reasons": False}
    scorer = Scorer(*models).with_reference(latest)

    svc, url = _start("serving.service:ExpansionScoring", env, ROOT)
    echo, echo_url = _start("bench_service:Echo", env, ROOT / "benchmarks")
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as c, \
                httpx.Client(base_url=echo_url, timeout=30) as e:
            rows = {
                "single account, reasons (warm)": _latency(c, "/score", one, 300),
                "1,000 accounts by id, no reasons": _latency(c, "/score", thousand_no_reasons, 40),
                "1,000 accounts by id, reasons (warm cache)": _latency(c, "/score", thousand, 40),
                "bare echo, single account": _latency(e, "/echo", one, 300),
                "bare echo, 1,000 accounts": _latency(e, "/echo", thousand, 40),
            }
    finally:
        for p in (svc, echo):
            p.terminate()
            p.wait(timeout=20)
    single = latest.iloc[[7]]
    block = latest.iloc[1000:2000]
    inproc = {
        "scorer, single account with reasons": _in_process(lambda: scorer.score(single), 100),
        "scorer, 1,000 accounts no reasons": _in_process(lambda: scorer.score(block, with_reasons=False), 10),
        "scorer, 1,000 accounts with reasons (contributions)": _in_process(lambda: scorer.score(block), 3),
    }
    print(f"{'request (loopback, 1 worker)':48s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, (p50, p99) in rows.items():
        print(f"{name:48s} {p50:8.2f} {p99:8.2f}")
    print(f"\n{'in-process (mean ms)':48s}")
    for name, ms in inproc.items():
        print(f"{name:48s} {ms:8.2f}")
    s50, s99 = rows["single account, reasons (warm)"]
    e50, e99 = rows["bare echo, single account"]
    print(f"\nsingle-account overhead vs bare endpoint: p50 {s50 / e50:.2f}x, p99 {s99 / e99:.2f}x (target <= 2x)")
    t50, t99 = rows["1,000 accounts by id, reasons (warm cache)"]
    print(f"single-account p99 {s99:.2f} ms (target < 10 ms); 1,000 by id p50 {t50:.1f} ms, p99 {t99:.1f} ms "
          f"(target < 100 ms); load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
