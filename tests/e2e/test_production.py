"""A production rehearsal: one generated company through two months of the jobs cron runs, then a rollback.

Month 1: validate, retrain (the gate promotes), deploy, score into the CRM table, serve.
Month 2: bad data is refused (exit 2); a month of new data lands; retrain (the gate
promotes one model and keeps the other's champion, with its reason; a retried run has
nothing to promote, exit 4), score; the operator promotes the kept model's new version by
hand and the running service picks it up by itself; then rollback, after which both the
next score and the running service (after ``POST /refresh``) use the previous champion. Exit codes are
asserted at every step. The data of month 1 is the company's tables cut at its last
day, as an export on that day would hold them.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from features.contract import TABLES
from serving.cli import app
from serving.cli.common import EXIT_INVALID_DATA, EXIT_KEPT, EXIT_OK
from training.names import MODEL_NAMES as MODELS

pytestmark = pytest.mark.slow

MONTH_1, MONTH_2 = dt.date(2026, 5, 31), dt.date(2026, 6, 30)  # the shared company's data ends on MONTH_2
KEY = "rehearsal-key-0123456789abcdef"
# nullable columns that record what happened later (cleared in a cut: not known yet on the cut day)
LATER = {"subscriptions": {"valid_to": "valid_to"}, "support_tickets": {"resolved_at": "resolved_at", "csat": "resolved_at"},
         "opportunities": {"closed_at": "closed_at"}}


def cut_company(source: Path, out: Path, day: dt.date) -> Path:
    """The tables as an export on ``day`` would hold them: no event after it, nothing later filled in (types kept)."""
    out.mkdir(parents=True, exist_ok=True)
    end = pd.Timestamp(day) + pd.Timedelta(days=1)  # a timestamp during ``day`` is on or before it

    def known(frame: pd.DataFrame, column: str) -> pd.Series:
        return frame[column].isna() | (pd.to_datetime(frame[column]) < end)

    kept: dict[str, set] = {}  # keys of the parent tables, for the children that refer to them
    for name, table in TABLES.items():
        path = source / f"{name}.parquet"
        if not path.is_file():
            continue
        arrow = pq.read_table(path)
        frame = arrow.to_pandas()
        keep = pd.Series(True, index=frame.index)
        for column in table.event_time:
            if name == "opportunities" and column == "closed_at":  # a deal closed later was open on ``day``
                continue
            keep &= known(frame, column)
        if name == "opportunities":
            keep &= frame["account_id"].isin(kept["accounts"])
            reopened = ~known(frame, "closed_at")
            arrow = arrow.set_column(arrow.schema.get_field_index("outcome"), "outcome",
                                     pc.if_else(pa.array(reopened.to_numpy()), pa.scalar("open", arrow["outcome"].type),
                                                arrow["outcome"]))
        if name == "opportunity_stages":
            keep &= frame["opportunity_id"].isin(kept["opportunities"])
        if name == "payments":  # an invoice paid after the cut is not known as paid yet: leave it out
            keep &= known(frame, "paid_at")
        if name == "accounts":
            keep &= known(frame, "customer_since")
        for column, decided_by in LATER.get(name, {}).items():
            not_yet = ~known(frame, decided_by)
            arrow = arrow.set_column(arrow.schema.get_field_index(column), column,
                                     pc.if_else(pa.array(not_yet.to_numpy()), pa.scalar(None, arrow[column].type), arrow[column]))
        pq.write_table(arrow.filter(pa.array(keep.to_numpy())), out / f"{name}.parquet")
        if table.key:
            kept[name] = set(frame.loc[keep, table.key[0]])
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cron:
    """Runs ``expansion`` commands as cron would, in one home; every call states the exit code it expects."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, expected: int | tuple[int, ...], *args: str) -> str:
        result = self.runner.invoke(app, list(args))
        output = result.output  # stdout and stderr as a terminal shows them
        with open(Path(os.environ["EXPANSION_HOME"]).parent / "cron.log", "a", encoding="utf-8") as log:
            log.write(f"$ expansion {' '.join(args)}\n{output}exit {result.exit_code}\n")
        assert result.exit_code in (expected if isinstance(expected, tuple) else (expected,)), f"expansion {' '.join(args)}: exit {result.exit_code}\n{output[-3000:]}"
        return output


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("EXPANSION_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("EXPANSION_API_KEY", KEY)
    monkeypatch.setenv("EXPANSION_REFRESH_SECONDS", "2")
    monkeypatch.delenv("BENTOML_HOME", raising=False)
    return home


@pytest.fixture
def service(home: Path) -> Iterator[httpx.Client]:
    """``expansion serve`` in a subprocess on a free loopback port (started by the test once month 1 is deployed)."""
    port = _free_port()
    holder: dict[str, subprocess.Popen] = {}

    def start() -> httpx.Client:
        log = open(home / "serve.log", "wb")  # noqa: SIM115 - closed with the process
        holder["proc"] = subprocess.Popen([sys.executable, "-m", "serving.cli", "serve", "--port", str(port)],
                                          env={**os.environ}, stdout=log, stderr=log, cwd=Path(__file__).parents[2])
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {KEY}"},
                              timeout=60)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if holder["proc"].poll() is not None:
                pytest.fail(f"server exited: {(home / 'serve.log').read_text()[-3000:]}")
            try:
                if client.get("/readyz").status_code == 200:
                    return client
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        pytest.fail("server not ready within 120 s")

    yield start  # type: ignore[misc]
    proc = holder.get("proc")
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _served(client: httpx.Client) -> dict[str, str | None]:
    meta = client.post("/metadata", json={}).json()
    return {m["name"]: m["version"] for m in meta["models"]}


def _crm_versions(home: Path, model: str) -> tuple[set[str], set[str]]:
    """(``model``'s versions, snapshot dates) of the current CRM table."""
    engine = sa.create_engine(f"sqlite:///{home / 'crm.db'}")
    try:
        with engine.connect() as conn:
            current = pd.read_sql(f"SELECT {model}_model_version AS version, as_of FROM account_scores", conn)
    finally:
        engine.dispose()
    return set(current["version"].astype(str)), {str(d)[:10] for d in current["as_of"]}


def _promoted(said: str) -> dict[str, str]:
    """The models ``retrain`` says it promoted, with their versions ({} when the gate kept every champion)."""
    line = re.search(r"^promoted: (.+)$", said, re.MULTILINE)
    return dict(re.findall(r"(\w+) v(\d+)", line.group(1))) if line else {}


def test_two_months_of_jobs_then_a_rollback(generated_company: Path, tmp_path: Path, home: Path, service) -> None:  # noqa: ANN001
    cron = Cron()
    month_1 = cut_company(generated_company, tmp_path / "month1", MONTH_1)
    train_args = ("--rounds", "60", "--cutoffs", "4")

    # month 1: validate, retrain (promoted), deploy, score, serve
    said = cron(EXIT_OK, "validate", "--data", str(month_1))
    assert f"as of {MONTH_1}" in said
    said = cron(EXIT_OK, "retrain", "--data", str(month_1), *train_args, "--deploy")
    first = _promoted(said)  # exit 0: the gate promoted at least one model (which one is the gate's call)
    assert first and set(first.values()) == {"1"} and "published feature snapshot" in said
    for name in set(MODELS) - set(first):
        assert f"kept the current {name} model: v1 was not promoted" in said
    model = "churn" if "churn" in first else "expansion"  # the model whose rollback the rehearsal follows
    assert (home / "serving" / "deployment.json").is_file() and (home / "serving" / "snapshot.parquet").is_file()
    said = cron(EXIT_OK, "score", "--data", str(month_1))
    assert f"as of {MONTH_1} (the data end" in said and "scored" in said
    assert _crm_versions(home, model) == ({"1"}, {MONTH_1.isoformat()})
    client = service()
    assert _served(client) == {name: first.get(name) for name in MODELS}
    assert client.post("/metadata", json={}).json()["snapshot_as_of"] == MONTH_1.isoformat()

    # month 2: bad data is refused before anything runs; then new data lands, retrain keeps v1 (exit 4), score
    broken = cut_company(generated_company, tmp_path / "broken", MONTH_2)
    accounts = pd.read_parquet(broken / "accounts.parquet")
    accounts.loc[0, "segment"] = "galactic"
    accounts.to_parquet(broken / "accounts.parquet", index=False)
    said = cron(EXIT_INVALID_DATA, "retrain", "--data", str(broken), *train_args)
    assert "accounts" in said and "segment" in said and "nothing was run" in said
    said = cron((EXIT_OK, EXIT_KEPT), "retrain", "--data", str(generated_company), *train_args, "--deploy")
    second = _promoted(said)  # the gate's call on month 2's challengers (v2 of both models)
    for name in MODELS:
        if name in second:
            assert second[name] == "2" and f"deployed {name} v2" in said
        else:
            assert f"kept the current {name} model: v2 was not promoted" in said
    # the same job run again (a retried cron): nothing new to promote, so exit 4 and nothing deployed
    said = cron(EXIT_KEPT, "retrain", "--data", str(generated_company), "--rounds", "20", "--cutoffs", "3", "--deploy")
    assert "no new champion" in said and "nothing deployed" in said
    said = cron(EXIT_OK, "score", "--data", str(generated_company))
    assert _crm_versions(home, model) == ({second.get(model, "1")}, {MONTH_2.isoformat()})  # the champion serves

    # a delayed month-1 job after month 2's: history only, the newer scores stay current
    said = cron(EXIT_OK, "score", "--data", str(month_1))
    assert "kept newer scores" in said and _crm_versions(home, model)[1] == {MONTH_2.isoformat()}

    if model not in second:
        # the operator promotes v2 by hand: the running service picks it up by itself within EXPANSION_REFRESH_SECONDS
        cron(EXIT_OK, "promote", "--model", model, "--version", "2")
    deadline = time.monotonic() + 60
    while _served(client)[model] != "2" and time.monotonic() < deadline:
        time.sleep(1)
    assert _served(client)[model] == "2"
    cron(EXIT_OK, "score", "--data", str(generated_company))
    assert _crm_versions(home, model)[0] == {"2"}

    # rollback: says where it takes effect; the next score and the service after POST /refresh use v1
    said = cron(EXIT_OK, "rollback", "--model", model)
    assert "rolled back from v2 to v1" in said and "batch scoring" in said and "POST /refresh" in said
    refreshed = client.post("/refresh", json={}).json()
    assert refreshed["models_reloaded"] is True
    assert _served(client)[model] == "1"
    meta = client.post("/metadata", json={}).json()
    assert meta["refresh_seconds"] == 2 and meta["models_checked_at"]
    cron(EXIT_OK, "score", "--data", str(generated_company))
    assert _crm_versions(home, model) == ({"1"}, {MONTH_2.isoformat()})
