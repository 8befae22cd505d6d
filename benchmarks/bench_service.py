"""Scoring service latency on loopback, against the in-process scorer and a bare BentoML echo endpoint.

Run: ``python benchmarks/bench_service.py`` (two to three minutes on 2 cores). Starts real
servers (`bentoml serve`, one worker, 8 request threads, 1 LightGBM thread): the scoring service over a
5,000-account snapshot with deployed models, once with reasons precomputed after the
snapshot loads and once without (the lazy path: reasons computed on an account's first
request), and a bare service that returns its input. Cold = the first request for each of
400 accounts, warm = the second. In process, it times computing every account's reasons
for 5,000 and 100,000 accounts against scoring them without reasons (the load-time work).
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
KEY = "bench-key-0123456789abcdefghij"


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


def _first_and_second(client: httpx.Client, ids: list[str]) -> dict[str, tuple[float, float]]:
    """p50/p99 of the first request for each account (reasons not cached by a request), then of the second."""
    out = {}
    for label in ("first request (cold)", "second request (warm)"):
        times = []
        for a in ids:
            t = time.perf_counter()
            client.post("/score", json={"accounts": [{"account_id": a}]}).raise_for_status()
            times.append((time.perf_counter() - t) * 1000)
        out[label] = (float(np.percentile(times, 50)), float(np.percentile(times, 99)))
    return out


def _wait_for_reasons(client: httpx.Client, started: float) -> float:
    """Seconds from ``started`` until the service reports every account's reasons computed."""
    while True:
        meta = client.post("/metadata", json={}).json()
        if meta["reasons_complete"]:
            return time.perf_counter() - started
        time.sleep(0.05)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _precompute_cost(make_frame, models, accounts: int) -> tuple[float, float, float]:  # noqa: ANN001
    """(seconds to score a snapshot without reasons, seconds to compute every account's reasons, MB they hold)."""
    from serving.scoring.scorer import Scorer, feature_specs
    from serving.api.snapshot import ScoredSnapshot

    book = make_frame(accounts=accounts, months=1, seed=11).drop(columns=["expanded", "churned"])
    t = time.perf_counter()
    snap = ScoredSnapshot.build(book, Scorer(*models, feature_specs()))
    load = time.perf_counter() - t
    rss = _rss_mb()
    t = time.perf_counter()
    assert snap.precompute_reasons()
    return load, time.perf_counter() - t, _rss_mb() - rss


def _test_data():  # noqa: ANN202 - (make_frame, train_models)
    """The serving tests' generator and trainer (labels with a known signal), from their one definition."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("serving_test_data", ROOT / "tests" / "serving" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_frame, module.train_models


def main() -> None:
    make_frame, train_models = _test_data()

    from serving.scoring.scorer import Scorer

    home = Path(tempfile.mkdtemp(prefix="bench_service_"))
    frame = make_frame(accounts=5000, months=12)
    snapshot = frame.drop(columns=["expanded", "churned"])
    snapshot.to_parquet(home / "snapshot.parquet")
    models = train_models(frame)
    env = {**os.environ, "BENTOML_HOME": str(home / "bentoml"), "EXPANSION_API_KEY": KEY, "OMP_NUM_THREADS": "1",
           "EXPANSION_SNAPSHOT_PATH": str(home / "snapshot.parquet"), "EXPANSION_HOME": str(home),
           "EXPANSION_MODEL_SOURCE": "store",  # models put in the store directly, no registry
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    code = ("import sys, pickle; from serving.scoring.models import save_to_store; "
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

    auth = {"Authorization": f"Bearer {KEY}"}
    cold_ids, warm_ids = ids[2000:2400], ids[2400:2800]
    lazy, lazy_url = _start("serving.api.service:ExpansionScoring", {**env, "EXPANSION_PRECOMPUTE_REASONS": "0"}, ROOT)
    try:
        with httpx.Client(base_url=lazy_url, headers=auth, timeout=30) as c:
            lazy_rows = _first_and_second(c, cold_ids)
    finally:
        lazy.terminate()
        lazy.wait(timeout=20)
    started = time.perf_counter()
    svc, url = _start("serving.api.service:ExpansionScoring", env, ROOT)
    ready_s = time.perf_counter() - started
    echo, echo_url = _start("bench_service:Echo", env, ROOT / "benchmarks")
    try:
        with httpx.Client(base_url=url, headers=auth, timeout=30) as c, \
                httpx.Client(base_url=echo_url, timeout=30) as e:
            reasons_s = _wait_for_reasons(c, started)
            eager_rows = _first_and_second(c, warm_ids)
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
    precompute = {n: _precompute_cost(make_frame, models, n) for n in (5_000, 100_000)}
    print(f"{'request (loopback, 1 worker)':48s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, (p50, p99) in rows.items():
        print(f"{name:48s} {p50:8.2f} {p99:8.2f}")
    print(f"\n{'single account, 400 distinct accounts':48s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for prefix, table in (("lazy path (no precompute)", lazy_rows), ("reasons precomputed", eager_rows)):
        for name, (p50, p99) in table.items():
            print(f"{prefix + ', ' + name:48s} {p50:8.2f} {p99:8.2f}")
    print(f"\nservice start to /readyz {ready_s:.1f} s; to every reason computed {reasons_s:.1f} s (5,000 accounts)")
    print(f"\n{'in-process (mean ms)':48s}")
    for name, ms in inproc.items():
        print(f"{name:48s} {ms:8.2f}")
    print(f"\n{'precompute every reason, in process':28s} {'load s':>8s} {'reasons s':>10s} {'x load':>7s} {'MB':>7s}")
    for n, (load, reasons, mb) in precompute.items():
        print(f"{f'{n:,} accounts':28s} {load:8.2f} {reasons:10.2f} {reasons / load:7.1f} {mb:7.0f}")
    s50, s99 = rows["single account, reasons (warm)"]
    e50, e99 = rows["bare echo, single account"]
    print(f"\nsingle-account overhead vs bare endpoint: p50 {s50 / e50:.2f}x, p99 {s99 / e99:.2f}x (target <= 2x)")
    c50, c99 = eager_rows["first request (cold)"]
    l50, l99 = lazy_rows["first request (cold)"]
    print(f"first request once precomputed p50 {c50:.2f} ms, p99 {c99:.2f} ms (target p99 < 10 ms); lazy path p99 "
          f"{l99:.2f} ms ({l99 / c99:.1f}x); first / second request p99 {c99 / eager_rows['second request (warm)'][1]:.2f}x")
    t50, t99 = rows["1,000 accounts by id, reasons (warm cache)"]
    print(f"single-account p99 {s99:.2f} ms (target < 10 ms); 1,000 by id p50 {t50:.1f} ms, p99 {t99:.1f} ms "
          f"(target < 100 ms); load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
