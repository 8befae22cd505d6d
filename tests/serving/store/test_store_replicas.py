"""Two service processes sharing one PostgreSQL product store behind a round-robin loopback proxy: a sign-in on one
is valid on the other, a play logged on one shows on the other, a /refresh reaches both, and two alert jobs run at
once send nothing twice."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ROOT = Path(__file__).parents[3]
KEY = "replica-test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
LABELS = ["expanded", "churned", "contracted", "expansion_mrr"]
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host", "date", "server"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class Proxy:
    """Round-robin over ``backends``; ``POST /refresh`` goes to every backend. ``served`` logs (backend, method,
    path, status) of every forwarded request."""

    def __init__(self, backends: list[str]) -> None:
        self.backends, self.turn, self.served = backends, itertools.count(), []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                if self.command == "POST" and self.path == "/refresh":
                    answers = [proxy.send(i, self.command, self.path, headers, body) for i in range(len(proxy.backends))]
                    out = json.dumps([{"backend": i, "status": a.status_code, "answer": a.json()}
                                      for i, a in enumerate(answers)]).encode()
                    self._reply(200 if all(a.status_code == 200 for a in answers) else 502,
                                [("Content-Type", "application/json")], out)
                    return
                answer = proxy.send(next(proxy.turn) % len(proxy.backends), self.command, self.path, headers, body)
                self._reply(answer.status_code, [(k, v) for k, v in answer.headers.multi_items()
                                                 if k.lower() not in HOP], answer.content)

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _forward  # noqa: N815

        self.server, self.url = _serve(Handler)

    def send(self, i: int, method: str, path: str, headers: dict, body: bytes) -> httpx.Response:
        answer = httpx.request(method, self.backends[i] + path, headers=headers, content=body, timeout=60,
                               follow_redirects=False)
        self.served.append((i, method, path.split("?")[0], answer.status_code))
        return answer


class Receiver:
    """A webhook receiver that is slow to answer (so two alert runs overlap) and keeps every request's key."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(0.3)
                receiver.keys.append(self.headers.get("Idempotency-Key", ""))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server, self.url = _serve(Handler)


def _env(home: Path, store_uri: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("EXPANSION_INSECURE", "MLFLOW_TRACKING_URI", "EXPANSION_SNAPSHOT_PATH", "EXPANSION_ALERTS_STORE"):
        env.pop(name, None)
    return {**env, "EXPANSION_HOME": str(home), "EXPANSION_STORE_URI": store_uri, "BENTOML_HOME": str(home / "bento"),
            "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", **extra}


def _started(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.api.service:ExpansionScoring", "--host",
                             "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=open(log, "wb"))
    return proc, f"http://127.0.0.1:{port}"


def _ready(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"replica exited: {log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"replica not ready within 180 s: {log.read_text()[-3000:]}")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


@pytest.fixture
def replicas(tmp_path: Path, store_uri: str, generated_company: Path, feature_frame: pd.DataFrame) -> Iterator[dict]:
    from serving.cli.users import add_user

    newest = feature_frame[pd.to_datetime(feature_frame["as_of"]) == pd.to_datetime(feature_frame["as_of"]).max()]
    snapshot = tmp_path / "snapshot.parquet"
    newest.drop(columns=[c for c in LABELS if c in newest.columns]).to_parquet(snapshot)
    csm = newest["csm_owner"].dropna().astype(str).value_counts().index[0]
    token = add_user("Casey", "csm", csm, store_uri)
    extra = {"EXPANSION_SNAPSHOT_PATH": str(snapshot), "EXPANSION_MODEL_SOURCE": "none", "EXPANSION_API_KEY": KEY,
             "EXPANSION_DATA_DIR": str(generated_company), "EXPANSION_PRECOMPUTE_REASONS": "false"}
    # no shared session key: a sign-in is a row of the shared store, so each replica checks it there
    procs = []
    try:
        for i in range(2):  # each replica its own home, as on two machines: only the store is shared
            log = tmp_path / f"replica{i}.log"
            procs.append((*_started(_env(tmp_path / f"home{i}", store_uri, **extra), log), log))
        for proc, url, log in procs:
            _ready(proc, url, log)
        proxy = Proxy([url for _, url, _ in procs])
        yield {"proxy": proxy, "backends": proxy.backends, "token": token,
               "account": sorted(newest.loc[newest["csm_owner"] == csm, "account_id"].astype(str))[0]}
        proxy.server.shutdown()
    finally:
        for proc, _, _ in procs:
            proc.terminate()
        for proc, _, _ in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_two_replicas_share_sign_ins_plays_and_refresh(replicas: dict) -> None:
    proxy = replicas["proxy"]
    with httpx.Client(base_url=proxy.url, timeout=60) as c:
        form = c.get("/ui/signin")  # one replica
        signed = c.post("/ui/signin", data={"csrf": _csrf(form.text), "token": replicas["token"], "next": ""})  # the other
        assert signed.status_code == 303, signed.text
        books = [c.get("/ui/book") for _ in range(2)]
        assert [b.status_code for b in books] == [200, 200] and all("Casey" in b.text for b in books)
        assert {i for i, m, p, s in proxy.served if p == "/ui/book" and s == 200} == {0, 1}  # signed in on both

        account, note = replicas["account"], f"replica note {uuid.uuid4().hex[:8]}"
        page = c.get(f"/ui/account/{account}")
        logged = c.post(f"/ui/account/{account}/plays",
                        data={"csrf": _csrf(page.text), "play": "cross_sell", "outcome": "contacted", "note": note})
        assert logged.status_code == 303, logged.text
        shown = [httpx.get(f"{b}/ui/account/{account}", cookies=c.cookies, timeout=60) for b in replicas["backends"]]
        assert [s.status_code for s in shown] == [200, 200] and all(note in s.text for s in shown)

        refreshed = c.post("/refresh", json={}, headers=AUTH)
        assert refreshed.status_code == 200, refreshed.text
        answers = refreshed.json()
        assert [a["backend"] for a in answers] == [0, 1] and all(a["status"] == 200 for a in answers)
        assert all(a["answer"]["snapshot_accounts"] > 0 for a in answers)
        assert sorted(i for i, m, p, s in proxy.served if p == "/refresh") == [0, 1]


def test_two_alert_jobs_at_once_send_nothing_twice(tmp_path: Path, store_uri: str, tiny_company) -> None:  # noqa: ANN001
    sys.path.insert(0, str(Path(__file__).parents[1] / "alerts"))
    from test_alert_delivery import FIRST, SECOND, boost_usage, routing

    data, receiver = tiny_company(boost_usage), Receiver()
    env = []
    for i in range(2):  # two machines' homes, one store
        home = tmp_path / f"home{i}"
        (home / "alerts").mkdir(parents=True)
        (home / "alerts" / "routing.toml").write_text(routing(receiver.url), encoding="utf-8")
        env.append(_env(home, store_uri, EXPANSION_ALERTS_WEBHOOK_SECRET="s", EXPANSION_ALERTS_BACKOFF_SECONDS="0"))

    def alerts(i: int, day) -> subprocess.Popen:  # noqa: ANN001
        return subprocess.Popen([sys.executable, "-m", "serving.cli", "alerts", "--data", str(data), "--as-of",
                                 day.isoformat()], env=env[i], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    first = alerts(0, FIRST)
    assert first.wait(timeout=300) == 0, first.stdout.read().decode()
    runs = [alerts(i, SECOND) for i in range(2)]
    codes = [r.wait(timeout=300) for r in runs]
    said = [r.stdout.read().decode() for r in runs]
    receiver.server.shutdown()
    assert 0 in codes, said
    assert len(receiver.keys) == len(set(receiver.keys)) == 4, (receiver.keys, said)  # each message once
    if codes != [0, 0]:  # the later run found the lease held and said so
        assert any("lease" in s for s, code in zip(said, codes) if code), said
