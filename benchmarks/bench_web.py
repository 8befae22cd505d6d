"""Benchmark: time to render the pages against the JSON ``/rank`` for the same accounts, in the same run.

One command: ``python benchmarks/bench_web.py [--work DIR] [--requests 60]``.

The 10,000-account, 24-month generated company (seed 5, as the other benchmarks); features
at its last month end are the served snapshot, scored by the rule-based baseline
(``EXPANSION_MODEL_SOURCE=none``; reasons precomputed before timing). Synthetic CSM books
hold ~100 accounts, so 2,000 accounts are handed to one CSM (``bench-csm``) in the snapshot.
Requests go through the real service's ASGI app in process (no network), one at a time:

- the book of ``bench-csm`` (2,000 accounts filtered and ranked, the first page of 100 rows
  rendered with reasons, deals and activity), signed in as that CSM;
- the leadership page on the whole company, signed in as a leader: the first request
  computes NRR/GRR over the raw tables (reported alone), later ones reuse it;
- ``POST /rank`` for the same CSM (``limit`` 100: the same rows the page shows) as the reference;
- the account page of distinct accounts of that book, each opened for the first time (its charts
  drawn) and then again (its charts kept per snapshot); before them, once per snapshot, the first
  book page and the first account page (which waits for every account's usage and timeline events,
  read in the background from the first book page on) are reported alone;
- search: ``GET /ui/search`` over the 10,000 accounts, and the search index itself over 100,000
  names (the company's names ten times over), built once and queried with parts of names, ids and
  a domain.

Prints p50 / p95 / max in ms, the ratio to ``/rank`` and to the book, and the load average;
targets: book p95 < 300 ms, account page p95 <= 2x the book's, search < 100 ms at 100,000 accounts.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from companies import AS_OF, company  # noqa: E402

CSM = "bench-csm"
BOOK = 2_000


def snapshot(work: Path, data: Path) -> Path:
    """Features of every active account at the company's last month end, 2,000 of them owned by ``bench-csm``."""
    from features.build import build_features
    from features.config import Settings
    from features.io import open_data

    out = work / "web_snapshot.parquet"
    if out.exists():
        return out
    started = time.perf_counter()
    source = open_data(data)
    try:
        frame = build_features(source, [AS_OF], Settings(_env_file=None, home=work / "home"), data_end=AS_OF)
    finally:
        source.close()
    frame["csm_owner"] = frame["csm_owner"].astype("string")
    frame.loc[frame.index[:BOOK], "csm_owner"] = CSM
    frame.to_parquet(out)
    print(f"features of {len(frame):,} accounts at {AS_OF} in {time.perf_counter() - started:.1f} s", flush=True)
    return out


def _times(call, n: int) -> np.ndarray:  # noqa: ANN001
    out = []
    for _ in range(n):
        started = time.perf_counter()
        answer = call()
        out.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text[:300]
    return np.array(out)

KEY = "bench-key-0123456789abcdefghij"  # the API key the service is started with: /metadata and /rank need it


def _row(name: str, ms: np.ndarray, reference: float | None) -> dict[str, object]:
    p95 = float(np.percentile(ms, 95))
    return {"request": name, "n": len(ms), "p50_ms": round(float(np.median(ms)), 1), "p95_ms": round(p95, 1),
            "max_ms": round(float(ms.max()), 1), "x_rank_p95": None if reference is None else round(p95 / reference, 2)}


def search_at_scale(data: Path, size: int = 100_000) -> dict[str, object]:
    """The search index over ``size`` accounts (the company's names repeated with distinct ids): build once, query."""
    from features.io import open_data
    from serving.web.search import SearchIndex

    source = open_data(data)
    try:
        base = source.con.execute("SELECT CAST(account_id AS VARCHAR), name FROM accounts").fetchall()
    finally:
        source.close()
    ids, names = [], {}
    for copy in range(-(-size // len(base))):
        for account, name in base:
            ids.append(f"{account}-{copy}")
            names[ids[-1]] = f"{name} {copy}" if copy else name
    ids = ids[:size]
    started = time.perf_counter()
    index = SearchIndex.build(ids, names)
    print(f"search index of {len(ids):,} accounts built in {(time.perf_counter() - started) * 1000:.0f} ms", flush=True)
    queries = ["tech", "acc-000123", "north", "global sol", "https://www.acme-corp.com", "ltd 7", "b", "zzz-none"]
    ms = []
    for _ in range(10):
        for q in queries:
            started = time.perf_counter()
            index.find(q)
            ms.append((time.perf_counter() - started) * 1000)
    return _row(f"search index, {len(ids):,} accounts, in process", np.array(ms), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "expansion-bench")
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = company(args.work, 10_000, 24)
    snap = snapshot(args.work, data)
    home = Path(tempfile.mkdtemp(prefix="bench-web-"))
    os.environ.update(EXPANSION_HOME=str(home), EXPANSION_SNAPSHOT_PATH=str(snap), EXPANSION_MODEL_SOURCE="none",
                      EXPANSION_DATA_DIR=str(data), EXPANSION_API_KEY=KEY, EXPANSION_EXPANSION_TARGET_ARR_QUARTER="2000000",
                      MLFLOW_DISABLE_TELEMETRY="true")
    from starlette.testclient import TestClient

    from serving.cli.users import add_user
    from serving.api.service import ExpansionScoring

    store = f"sqlite:///{home / 'state.db'}"  # the product store, where the pages look people up
    tokens = {"csm": add_user("Bench CSM", "csm", CSM, store), "leader": add_user("Bench Lead", "leader", None, store)}
    with TestClient(ExpansionScoring.to_asgi()) as client:
        deadline = time.monotonic() + 600
        while not client.post("/metadata", json={}, headers={"Authorization": f"Bearer {KEY}"}).json()["reasons_complete"]:
            assert time.monotonic() < deadline, "reasons were not precomputed in 10 minutes"
            time.sleep(0.5)
        rank = _times(lambda: client.post("/rank", json={"csm_owner": CSM, "limit": 100},
                                          headers={"Authorization": f"Bearer {KEY}"}), args.requests)
        ref = float(np.percentile(rank, 95))
        rows = [_row("POST /rank, 2,000-account book, top 100 with reasons (reference)", rank, None)]
        sessions = {}
        for who, token in tokens.items():
            signin = client.get("/ui/signin")
            csrf = re.search(r'name="csrf" value="([^"]+)"', signin.text).group(1)
            client.post("/ui/signin", data={"csrf": csrf, "token": token}, follow_redirects=False)
            sessions[who] = client.cookies.get("expansion_session")
            client.cookies.clear()
        client.cookies.set("expansion_session", sessions["csm"], path="/ui")
        # once per snapshot: the first book page, then the first account page, which waits for every account's
        # usage and events (read in the background from the first book page on); reported alone
        rows.append(_row("GET /ui/book, first request of the snapshot", _times(lambda: client.get("/ui/book"), 1), ref))
        some = re.search(r'<a class="name" href="/ui/account/([^"]+)"', client.get("/ui/book?page=20").text).group(1)
        rows.append(_row("GET /ui/account/<id>, first of the snapshot (usage and events of all)",
                         _times(lambda: client.get(f"/ui/account/{some}"), 1), ref))
        book = _times(lambda: client.get("/ui/book"), args.requests)
        assert f"Book of {CSM}" in client.get("/ui/book").text
        rows.append(_row("GET /ui/book, 2,000 accounts, page of 100", book, ref))
        rows.append(_row("GET /ui/book?format=csv, all 2,000 rows", _times(lambda: client.get("/ui/book?format=csv"), 10), ref))
        accounts = iter(re.findall(r'<a class="name" href="/ui/account/([^"]+)"', client.get("/ui/book").text))
        picked = [next(accounts) for _ in range(min(args.requests, 100))]
        visits = iter(picked * 2)
        first = _times(lambda: client.get(f"/ui/account/{next(visits)}"), len(picked))
        again = _times(lambda: client.get(f"/ui/account/{next(visits)}"), len(picked))
        rows.append(_row("GET /ui/account/<id>, first view of each account", first, ref))
        rows.append(_row("GET /ui/account/<id>, seen before", again, ref))
        queries = iter(["tech", "acc-0001", "north", "global", "acme-corp.com", "ltd", "b"] * args.requests)
        rows.append(_row("GET /ui/search, 10,000 accounts", _times(lambda: client.get(f"/ui/search?q={next(queries)}"),
                                                                    args.requests), ref))
        client.cookies.clear()
        client.cookies.set("expansion_session", sessions["leader"], path="/ui")
        rows.append(_row("GET /ui/leadership, first request (computes NRR/GRR)", _times(lambda: client.get("/ui/leadership"), 1), ref))
        rows.append(_row("GET /ui/leadership, 10,000 accounts", _times(lambda: client.get("/ui/leadership"), args.requests), ref))
    rows.append(search_at_scale(data))
    table = pd.DataFrame(rows)
    book_p95 = next(r["p95_ms"] for r in rows if r["request"] == "GET /ui/book, 2,000 accounts, page of 100")
    table["x_book_p95"] = (table["p95_ms"] / book_p95).round(2)
    print(table.to_string(index=False))
    account_p95 = next(r["p95_ms"] for r in rows if r["request"].startswith("GET /ui/account/<id>, first view"))
    search_p95 = rows[-1]["p95_ms"]
    print(f"load average: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"book p95 target < 300 ms: {'met' if book_p95 < 300 else 'NOT met'}; account p95 <= 2x book: "
          f"{'met' if account_p95 <= 2 * book_p95 else 'NOT met'} ({account_p95 / book_p95:.2f}x); "
          f"search at 100,000 accounts < 100 ms: {'met' if search_p95 < 100 else 'NOT met'}")
    table.to_csv(args.work / "web.csv", index=False)


if __name__ == "__main__":
    main()
