"""Fixtures for the pages: the generated company served by the real scoring service, people who sign in.

The snapshot is the company's newest month end; three earlier runs of the batch scorer
fill ``account_score_history``; ``EXPANSION_DATA_DIR`` points at the raw tables so the
leadership lines and the usage chart have data. Scores are the rule-based baseline
(``EXPANSION_MODEL_SOURCE=none``): the pages do not depend on which model scores.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

from web_helpers import asgi_app, serve_env

LABELS = ["expanded", "churned", "contracted", "expansion_mrr"]


def build_home(home: Path, data: Path, feature_frame: pd.DataFrame) -> dict:
    """A home serving ``feature_frame``'s newest month end, three batch runs of score history, and three people."""
    from serving.cli.users import add_user
    from serving.scoring.scorer import Scorer, feature_specs
    from serving.sinks.rows import RunInfo
    from serving.sinks.history import with_history
    from serving.sinks.sql import SqlSink
    from serving.store import Store

    dates = sorted(pd.to_datetime(feature_frame["as_of"]).unique())
    newest = feature_frame[pd.to_datetime(feature_frame["as_of"]) == dates[-1]]
    snapshot = home / "serving" / "snapshot.parquet"
    snapshot.parent.mkdir(parents=True)
    newest.drop(columns=[c for c in LABELS if c in newest.columns]).to_parquet(snapshot)
    crm, store = f"sqlite:///{home / 'crm.db'}", f"sqlite:///{home / 'state.db'}"
    # as the score job writes: the CRM sink, and the history the pages read in the product store
    sink, scorer = with_history(SqlSink(crm), Store(store)), Scorer(None, None, feature_specs())
    for day in dates[-3:]:
        rows = feature_frame[pd.to_datetime(feature_frame["as_of"]) == day]
        run = RunInfo(pd.Timestamp(day).date(), dt.datetime(2026, 7, 1, tzinfo=dt.UTC))
        sink.write(run, [scorer.score(rows.reset_index(drop=True), with_reasons=True)])
    sink.close()
    owners = newest["csm_owner"].dropna().astype(str).value_counts()
    csm = owners.index[0]
    return {
        "home": home, "snapshot": snapshot, "data": data, "crm": crm, "store": store, "csm_owner": csm,
        "csm_accounts": set(newest.loc[newest["csm_owner"] == csm, "account_id"].astype(str)),
        "accounts": newest["account_id"].astype(str).tolist(),
        "tokens": {"csm": add_user("Casey", "csm", csm, store), "leader": add_user("Lee", "leader", None, store),
                   "newcomer": add_user("Nico", "csm", "owner-with-no-accounts", store)},
    }


@pytest.fixture(scope="module")
def web_home(tmp_path_factory: pytest.TempPathFactory, generated_company: Path, feature_frame: pd.DataFrame) -> dict:
    """A home with the snapshot, score history and three people: a CSM, a leader, a CSM without accounts."""
    return build_home(tmp_path_factory.mktemp("webhome"), generated_company, feature_frame)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, web_home: dict) -> Iterator[TestClient]:
    serve_env(monkeypatch, web_home)
    with TestClient(asgi_app(), base_url="http://testserver") as c:
        yield c
