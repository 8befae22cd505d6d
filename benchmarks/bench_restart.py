"""A supervised restart under load on loopback: seconds unavailable and requests lost.

Run: ``python benchmarks/bench_restart.py [--clients 8] [--snapshot-accounts 2000]`` (about a
minute on 2 cores). Starts ``expansion serve`` (the supervisor wrapper, one worker) over a
snapshot with deployed models; ``--clients`` threads post ``/score`` for one account in a
loop, each retrying a refused connection after 50 ms as a careful client would. After a few
seconds of steady load the server gets SIGTERM, and as soon as it has exited a new one is
started on the same port (what systemd's ``Restart=always`` or a container runtime does).

Each request ends as one of: ``200``; another status; ``refused`` (the connection was
refused: nothing was sent, the client retries safely); ``cut`` (sent, then the connection
closed or reset before an answer: lost, the client cannot know whether it was served);
``timeout`` (no answer within 30 s: lost). Printed: requests per outcome, requests *lost*
(cut + timeouts + 5xx), seconds *unavailable* (the longest stretch without a 200 answer
completing, against the steady gap between answers measured in the same run as the
reference), the slowest answer across the restart, and stop and start times.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import KEY, ROOT, _port, _test_data  # noqa: E402 - the one definition of set-up


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "serving.cli", "serve", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _ready(url: str, seconds: float = 120) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return time.monotonic()
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--snapshot-accounts", type=int, default=2000)
    parser.add_argument("--steady-seconds", type=float, default=5.0)
    args = parser.parse_args()
    make_frame, train_models = _test_data()
    home = Path(tempfile.mkdtemp(prefix="bench_restart_"))
    frame = make_frame(accounts=args.snapshot_accounts, months=6)
    frame.drop(columns=["expanded", "churned"]).to_parquet(home / "snapshot.parquet")
    env = {**os.environ, "BENTOML_HOME": str(home / "bentoml"), "EXPANSION_API_KEY": KEY, "OMP_NUM_THREADS": "1",
           "EXPANSION_SNAPSHOT_PATH": str(home / "snapshot.parquet"), "EXPANSION_HOME": str(home),
           "EXPANSION_MODEL_SOURCE": "store", "MLFLOW_DISABLE_TELEMETRY": "true", "EXPANSION_REFRESH_SECONDS": "0"}
    import pickle

    models = home / "models.pkl"
    models.write_bytes(pickle.dumps(list(train_models(frame))))
    code = ("import sys, pickle; from serving.scoring.models import save_to_store; "
            "[save_to_store(m) for m in pickle.load(open(sys.argv[1], 'rb'))]")
    subprocess.run([sys.executable, "-c", code, str(models)], env=env, cwd=ROOT, check=True)

    port, log = _port(), home / "server.log"
    url = f"http://127.0.0.1:{port}"
    ids = list(frame["account_id"].unique()[:500])
    results: list[tuple[float, float, str]] = []
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {KEY}"}) as c:
            i = n
            while not stop.is_set():
                began = time.monotonic()
                try:
                    outcome = str(c.post(f"{url}/score", json={"accounts": [{"account_id": ids[i % len(ids)]}]}).status_code)
                except httpx.ConnectError:
                    outcome = "refused"
                except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                    outcome = "cut"
                except httpx.TimeoutException:
                    outcome = "timeout"
                results.append((began, time.monotonic(), outcome))
                if outcome == "refused":
                    time.sleep(0.05)
                i += args.clients

    first = _serve(env, port, log)
    _ready(url)
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(args.clients)]
    for t in threads:
        t.start()
    time.sleep(args.steady_seconds)
    stopping = time.monotonic()
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=120)
    stopped = time.monotonic()
    second = _serve(env, port, log)
    ready = _ready(url)
    time.sleep(args.steady_seconds)
    stop.set()
    for t in threads:
        t.join(timeout=40)
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=60)

    outcomes = Counter(o for _, _, o in results)
    lost = outcomes["cut"] + outcomes["timeout"] + sum(n for o, n in outcomes.items() if o.startswith("5"))
    answered = sorted(end for _, end, o in results if o == "200")
    gaps = [b - a for a, b in zip(answered, answered[1:], strict=False)]
    steady = [b - a for a, b in zip(answered, answered[1:], strict=False) if b < stopping]
    across = [end - began for began, end, o in results if began < ready and end > stopping]
    print(f"clients {args.clients}, snapshot {args.snapshot_accounts:,} accounts, one worker")
    print(f"requests: {dict(sorted(outcomes.items()))}")
    print(f"lost (cut + timeouts + 5xx): {lost}; refused connections (nothing sent, retried): {outcomes['refused']}")
    print(f"unavailable: {max(gaps):.1f} s without a 200 answer (steady gap between answers: "
          f"{1000 * sum(steady) / max(len(steady), 1):.1f} ms, ratio {max(gaps) / max(sum(steady) / max(len(steady), 1), 1e-9):,.0f}x)")
    print(f"stop took {stopped - stopping:.1f} s, start to ready {ready - stopped:.1f} s; slowest request across the "
          f"restart {max(across, default=0):.1f} s; server log {log}")


if __name__ == "__main__":
    main()
