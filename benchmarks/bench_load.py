"""The scoring service under load: 16 concurrent clients on loopback, a mixed workload, a bounded run.

Run: ``python benchmarks/bench_load.py [--seconds 60] [--clients 16]`` (about 1.5 minutes
with set-up). Starts the scoring service (one worker, 8 request threads, 1 LightGBM thread) over a
5,000-account snapshot with deployed models, and a bare BentoML echo endpoint, the
reference, hit by the same clients in the same run. Each client keeps one connection per
server and sends, drawn at random with a fixed seed:

* single account by id with reasons,
* 200 accounts by id with reasons,
* ``/rank`` of one CSM's book,
* malformed requests (about a quarter): broken JSON, unknown fields, empty or oversized
  batches, out-of-range or mistyped feature values, unknown CSMs, a missing API key and
  a wrong content type,
* the bare echo.

Half-way through, a new snapshot file is published (an atomic rename, as ``expansion
deploy --features`` does): the service reloads and recomputes reasons under load.
Reports requests per second, p50 / p99 per kind, answers by status, connection errors,
and the single-account p99 against the echo's, over the whole run and over each half (the
second half includes the reload). Targets: no 5xx, no dropped connection, single-account
p99 within 3x of the echo's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import KEY, ROOT, _start, _test_data  # noqa: E402 - the one definition of set-up and echo

KINDS = {"single": 0.35, "batch_200": 0.10, "rank_csm": 0.10, "malformed": 0.25, "echo": 0.20}


def _malformed(rng: random.Random, ids: list[str]) -> tuple[str, bytes, dict[str, str]]:
    """One bad request: (path, raw body, extra headers), each a different rule the service enforces."""
    json_ct = {"Content-Type": "application/json"}
    choices = [
        ("/score", b'{"accounts": [{"account_id": ', json_ct),
        ("/score", json.dumps({"accounts": [{"account_id": ids[0], "extra": 1}]}).encode(), json_ct),
        ("/score", json.dumps({"accounts": []}).encode(), json_ct),
        ("/score", json.dumps({"accounts": [{"account_id": a} for a in ids[:1001]]}).encode(), json_ct),
        ("/score", json.dumps({"accounts": [{"account_id": "x", "features": {"events_30d": -5}}]}).encode(), json_ct),
        ("/score", b'{"accounts": [{"account_id": "x", "features": {"seat_utilization_pct": 1e400}}]}', json_ct),
        ("/score", json.dumps({"accounts": [{"account_id": "x", "features": {"segment": "galactic"}}]}).encode(),
         json_ct),
        ("/score", json.dumps({"accounts": [{"account_id": "ghost"}]}).encode(), json_ct),
        ("/rank", json.dumps({"csm_owner": "nobody"}).encode(), json_ct),
        ("/rank", json.dumps({"csm_owner": "csm1", "limit": 0}).encode(), json_ct),
        ("/score", json.dumps({"accounts": [{"account_id": ids[0]}]}).encode(), {**json_ct, "Authorization": ""}),
        ("/score", b"accounts=1", {"Content-Type": "application/x-www-form-urlencoded"}),
    ]
    return rng.choice(choices)


async def _client(n: int, url: str, echo_url: str, ids: list[str], csms: list[str], until: float,
                  results: list[tuple[str, int, float, float]]) -> None:
    rng = random.Random(1000 + n)
    kinds, weights = list(KINDS), list(KINDS.values())
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as c, \
            httpx.AsyncClient(base_url=echo_url, timeout=30) as e:
        while time.perf_counter() < until:
            kind = rng.choices(kinds, weights)[0]
            start = time.perf_counter()
            try:
                if kind == "single":
                    r = await c.post("/score", json={"accounts": [{"account_id": rng.choice(ids)}]})
                elif kind == "batch_200":
                    r = await c.post("/score", json={"accounts": [{"account_id": a} for a in rng.sample(ids, 200)]})
                elif kind == "rank_csm":
                    r = await c.post("/rank", json={"csm_owner": rng.choice(csms), "limit": 20})
                elif kind == "echo":
                    r = await e.post("/echo", json={"accounts": [{"account_id": rng.choice(ids)}]})
                else:
                    path, body, extra = _malformed(rng, ids)
                    r = await c.post(path, content=body, headers=extra)
                status = r.status_code
            except httpx.TransportError as exc:  # a dropped or refused connection
                results.append((f"{kind}:{type(exc).__name__}", -1, (time.perf_counter() - start) * 1000, start))
                continue
            results.append((kind, status, (time.perf_counter() - start) * 1000, start))


def _publish_snapshot(snapshot, path: Path) -> None:  # noqa: ANN001
    """Write a fresh snapshot beside the served one and rename it into place (never half a file)."""
    tmp = path.with_suffix(".parquet.tmp")
    snapshot.assign(whitespace_usd=snapshot["whitespace_usd"] * 1.01).to_parquet(tmp)
    os.replace(tmp, path)


async def _run(url: str, echo_url: str, ids: list[str], csms: list[str], seconds: float, clients: int,
               snapshot, path: Path) -> tuple[list[tuple[str, int, float, float]], float, float]:  # noqa: ANN001
    """(kind, status, ms, sent at) per request, the run's seconds, and when the new snapshot was published."""
    results: list[tuple[str, int, float, float]] = []
    start = time.perf_counter()
    until = start + seconds
    tasks = [asyncio.create_task(_client(n, url, echo_url, ids, csms, until, results)) for n in range(clients)]
    await asyncio.sleep(seconds / 2)
    published = time.perf_counter()
    await asyncio.to_thread(_publish_snapshot, snapshot, path)
    await asyncio.gather(*tasks)
    return results, time.perf_counter() - start, published


def _report(results: list[tuple[str, int, float, float]], elapsed: float, clients: int, published: float) -> None:
    by_kind: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    for kind, status, ms, _ in results:
        by_kind[kind].append(ms)
        statuses[kind][status] += 1
    total = len(results)
    print(f"{total:,} requests in {elapsed:.1f} s from {clients} clients: {total / elapsed:.0f} requests/s "
          f"(load average {', '.join(f'{x:.1f}' for x in os.getloadavg())})\n")
    print(f"{'kind':14s} {'n':>7s} {'rps':>7s} {'p50 ms':>8s} {'p99 ms':>8s}  statuses")
    for kind in sorted(by_kind):
        ms = np.array(by_kind[kind])
        counts = ", ".join(f"{s}: {n}" for s, n in sorted(statuses[kind].items()))
        print(f"{kind:14s} {len(ms):7d} {len(ms) / elapsed:7.1f} {np.percentile(ms, 50):8.2f} "
              f"{np.percentile(ms, 99):8.2f}  {counts}")
    all_status = Counter(s for _, s, _, _ in results)
    server_errors = sum(n for s, n in all_status.items() if s >= 500)
    dropped = all_status.get(-1, 0)
    single, echo = np.percentile(by_kind["single"], 99), np.percentile(by_kind["echo"], 99)
    malformed = statuses["malformed"]
    print(f"\nanswers by status: {dict(sorted(all_status.items()))}")
    print(f"5xx: {server_errors} (target 0); dropped connections: {dropped} (target 0); malformed answered 4xx: "
          f"{sum(n for s, n in malformed.items() if 400 <= s < 500)} of {sum(malformed.values())}")
    print(f"single-account p99 {single:.2f} ms vs bare echo p99 {echo:.2f} ms: {single / echo:.2f}x (target <= 3x)")
    for half, sent in (("first half", lambda t: t < published), ("second half, with the reload", lambda t: t >= published)):
        ms = {k: [m for kind, _, m, t in results if kind == k and sent(t)] for k in ("single", "echo", "batch_200")}
        p99 = {k: np.percentile(v, 99) for k, v in ms.items() if v}
        if len(p99) == 3:
            print(f"  {half}: single p99 {p99['single']:.1f} ms, echo p99 {p99['echo']:.1f} ms "
                  f"({p99['single'] / p99['echo']:.2f}x), 200 accounts p99 {p99['batch_200']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    make_frame, _ = _test_data()
    home = Path(tempfile.mkdtemp(prefix="bench_load_"))
    frame = make_frame(accounts=5000, months=12)
    snapshot = frame.drop(columns=["expanded", "churned"])
    snapshot.to_parquet(home / "snapshot.parquet")
    env = {**os.environ, "BENTOML_HOME": str(home / "bentoml"), "EXPANSION_API_KEY": KEY, "OMP_NUM_THREADS": "1",
           "EXPANSION_SNAPSHOT_PATH": str(home / "snapshot.parquet"), "EXPANSION_HOME": str(home),
           "EXPANSION_MODEL_SOURCE": "store",  # models put in the store directly, no registry
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("EXPANSION_INSECURE", None)
    code = ("import sys, pandas as pd; sys.path.insert(0, 'tests/serving'); from conftest import train_models; "
            "from serving.scoring.models import save_to_store; [save_to_store(m) for m in train_models(pd.read_parquet(sys.argv[1]))]")
    frame.to_parquet(home / "labelled.parquet")
    subprocess.run([sys.executable, "-c", code, str(home / "labelled.parquet")], env=env, cwd=ROOT, check=True)
    latest = snapshot[snapshot["as_of"] == snapshot["as_of"].max()]
    ids, csms = latest["account_id"].tolist(), sorted(latest["csm_owner"].unique())
    svc, url = _start("serving.api.service:ExpansionScoring", env, ROOT)
    echo, echo_url = _start("bench_service:Echo", env, ROOT / "benchmarks")
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as c:
            while not c.post("/metadata", json={}).json()["reasons_complete"]:
                time.sleep(0.1)
        results, elapsed, published = asyncio.run(_run(url, echo_url, ids, csms, args.seconds, args.clients, snapshot,
                                            home / "snapshot.parquet"))
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as c:
            meta = c.post("/metadata", json={}).json()
    finally:
        for p in (svc, echo):
            p.terminate()
            p.wait(timeout=20)
    _report(results, elapsed, args.clients, published)
    print(f"snapshot reloaded under load: modified {meta['snapshot_modified']}, rejected: {meta['snapshot_rejected']}")


if __name__ == "__main__":
    main()
