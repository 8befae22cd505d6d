"""Regenerate the screenshots of the pages in ``docs/img`` (Debian's chromium driven by Playwright).

One command: ``.venv/bin/python docs/screenshots.py [--out docs/img]`` (about a minute).

A generated company (600 accounts, 24 months to 2026-06-30, seed 11) is served by the real
scoring service on a free loopback port, with six month ends of batch score history and the
rule-based scores; a CSM (the owner of the most accounts) and a leader sign in through the form.
Pages, each at 1440 and 390 px wide, first screen only (what a person sees before scrolling; the
account pages whole, so their charts and timeline show):
``book``, ``account-old`` (the CSM's longest-standing account), ``account-young`` (the newest
customer of the snapshot), ``renewals``, ``portfolio``, ``leadership``. The 1440 px ones of the book, the
old account and the leadership page are also written without the width (``book.png``,
``account.png``, ``leadership.png``) for the README.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
AS_OF = dt.date(2026, 6, 30)
WIDTHS = {1440: 900, 390: 844}
CHROMIUM = "/usr/bin/chromium"


def build(work: Path) -> dict:
    """The company, the served snapshot, six runs of score history and two people."""
    import pandas as pd

    from features.build import build_features
    from features.config import Settings
    from features.io import open_data
    from features.spine import month_ends
    from features.synth import generate
    from serving.cli.users import add_user
    from serving.scoring.scorer import Scorer, feature_specs
    from serving.sinks.rows import RunInfo
    from serving.sinks.history import with_history
    from serving.sinks.sql import SqlSink
    from serving.store import Store

    data = work / "company"
    generate(data, accounts=600, months=24, seed=11, as_of=AS_OF)
    source = open_data(data)
    try:
        dates = month_ends(dt.date(2026, 1, 1), AS_OF)
        frame = build_features(source, dates, Settings(_env_file=None), data_end=AS_OF)
    finally:
        source.close()
    home = work / "home"
    snapshot = home / "serving" / "snapshot.parquet"
    snapshot.parent.mkdir(parents=True)
    newest = frame[pd.to_datetime(frame["as_of"]).dt.date == AS_OF]
    newest.to_parquet(snapshot)
    crm, state = f"sqlite:///{home / 'crm.db'}", f"sqlite:///{home / 'state.db'}"
    sink, scorer = with_history(SqlSink(crm), Store(state)), Scorer(None, None, feature_specs())
    for day in sorted(pd.to_datetime(frame["as_of"]).unique()):
        rows = frame[pd.to_datetime(frame["as_of"]) == day].reset_index(drop=True)
        sink.write(RunInfo(pd.Timestamp(day).date(), dt.datetime(2026, 7, 1, tzinfo=dt.UTC)), [scorer.score(rows)])
    sink.close()
    csm = newest["csm_owner"].dropna().astype(str).value_counts().index[0]
    accounts = pd.read_parquet(data / "accounts.parquet")
    served = accounts[accounts["account_id"].isin(newest["account_id"])]
    mine = served[served["csm_owner"] == csm].sort_values("customer_since")
    return {"home": home, "data": data, "snapshot": snapshot, "csm": csm, "old": mine["account_id"].iloc[0],
            "young": served.sort_values("customer_since")["account_id"].iloc[-1],
            "tokens": {"csm": add_user("Casey", "csm", csm, state), "leader": add_user("Lee", "leader", None, state)}}


def serve(world: dict) -> tuple[str, object, threading.Thread]:
    import uvicorn

    os.environ.update(EXPANSION_HOME=str(world["home"]), EXPANSION_SNAPSHOT_PATH=str(world["snapshot"]),
                      EXPANSION_MODEL_SOURCE="none", EXPANSION_DATA_DIR=str(world["data"]), EXPANSION_API_KEY="screenshots-key-24-characters-long",
                      EXPANSION_EXPANSION_TARGET_ARR_QUARTER="250000", MLFLOW_DISABLE_TELEMETRY="true")
    from serving.api.service import ExpansionScoring

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(ExpansionScoring.to_asgi(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("the service did not start within 120 s")
        time.sleep(0.2)
    return f"http://127.0.0.1:{port}", server, thread


def shoot(base: str, world: dict, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    written: list[Path] = []
    pages = {"csm": [("book", "/ui/book"), ("account-old", f"/ui/account/{quote(world['old'], safe='')}"),
                     ("account-young", f"/ui/account/{quote(world['young'], safe='')}"),
                     ("renewals", "/ui/renewals?days=90")],
             "leader": [("portfolio", "/ui/portfolio"), ("leadership", "/ui/leadership")]}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        for who, shots in pages.items():
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.goto(base + "/ui/signin")
            page.get_by_label("Sign-in token").fill(world["tokens"][who])
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_load_state()
            for name, path in shots:
                page.goto(base + path)
                for width, height in WIDTHS.items():
                    page.set_viewport_size({"width": width, "height": height})
                    target = out / f"{name}-{width}.png"
                    page.screenshot(path=str(target), full_page=name.startswith("account"))
                    written.append(target)
                    wide = page.evaluate("document.documentElement.scrollWidth")
                    if wide > width:
                        print(f"warning: {name} is {wide} px wide at {width} px", flush=True)
            context.close()
        browser.close()
    from PIL import Image

    for path in written:  # full colour (a 256-colour palette lost the health dots), recompressed
        Image.open(path).convert("RGB").save(path, optimize=True)
    for name in ("book", "account-old", "leadership"):
        shutil.copyfile(out / f"{name}-1440.png", out / f"{'account' if name == 'account-old' else name}.png")
    return written


def shoot_leader_page(base: str, token: str, out: Path, path: str, name: str, *, section: str | None = None,
                      timeout_ms: float = 30_000) -> list[Path]:
    """Sign a leader in with ``token``, open ``path`` and shoot it (or its ``section`` selector) at every width of
    ``WIDTHS`` as ``<name>-<width>.png``, then ``<name>.png`` = the 1440 one; warns when the page is wider than a width."""
    from playwright.sync_api import sync_playwright
    from PIL import Image

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.goto(base + "/ui/signin")
        page.get_by_label("Sign-in token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        page.goto(base + path, timeout=timeout_ms)
        for width, height in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            target = out / f"{name}-{width}.png"
            (page.locator(section) if section else page).screenshot(path=str(target), **({} if section else
                                                                                         {"full_page": True}))
            written.append(target)
            wide = page.evaluate("document.documentElement.scrollWidth")
            if wide > width:
                print(f"warning: {path} is {wide} px wide at {width} px", flush=True)
        browser.close()
    for path_ in written:  # full colour, recompressed
        Image.open(path_).convert("RGB").save(path_, optimize=True)
    shutil.copyfile(out / f"{name}-1440.png", out / f"{name}.png")
    return written


def run(description: str, build_world, shoot_pages, prefix: str) -> None:  # noqa: ANN001 - the two steps of a script
    """A screenshot script's command line: build its world in a temporary folder, serve it, shoot, list the files."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        world = build_world(Path(tmp))
        base, server, thread = serve(world)
        try:
            written = shoot_pages(base, world, args.out)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    print("\n".join(str(p) for p in written))


def main() -> None:
    run(__doc__.splitlines()[0], build, shoot, "expansion-shots-")


if __name__ == "__main__":
    main()
