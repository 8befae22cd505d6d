"""The one definition of an open expansion deal: its four readers agree on a generated company (DuckDB)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.build import build_features
from features.config import Settings
from features.deal_metrics import deals_at, load_pipeline
from features.io import open_data
from features.synth import generate
from serving.alerts.signals import with_signals
from serving.web.company import CompanyData

AS_OF = dt.date(2026, 3, 31)


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("deals")
    generate(out, accounts=150, months=15, seed=5, as_of=dt.date(2026, 6, 30))
    return out


def _most_advanced(deals: pd.DataFrame) -> pd.DataFrame:
    """Per account: open deals, their amount, and the most advanced one's rank and days in stage."""
    d = deals.assign(account_id=deals["account_id"].astype(str), stage_rank=deals["stage_rank"].astype(float),
                     days_in_stage=deals["days_in_stage"].astype(float))
    d = d.sort_values(["account_id", "stage_rank", "days_in_stage"], ascending=[True, False, False])
    top = d.groupby("account_id").head(1).set_index("account_id")
    return pd.DataFrame({"amount": d.groupby("account_id")["amount"].sum().astype(float),
                         "rank": top["stage_rank"], "days": top["days_in_stage"]}).sort_index()


def test_features_report_pages_and_alerts_read_the_same_open_deals(company) -> None:
    settings = Settings(_env_file=None)
    order = settings.opportunity_stages
    source = open_data(company)
    try:
        feats = build_features(source, [AS_OF], settings).assign(account_id=lambda f: f["account_id"].astype(str))
        report = deals_at(load_pipeline(source), AS_OF, order, None)
        signals = with_signals(feats[["account_id", "as_of"]], source).set_index("account_id")
    finally:
        source.close()
    pages = _most_advanced(CompanyData(company, order).open_opportunities(AS_OF))
    report = _most_advanced(report.loc[report["state"] == "open"])
    assert len(pages) >= 5, "the generated company should have open deals to compare"
    # the report and the pages: the same deals of every account, with the same stage rank and days in stage
    pd.testing.assert_frame_equal(report, pages)

    feats = feats.set_index("account_id")
    held = feats.index[feats["open_expansion_opportunity"] == 1.0]
    assert sorted(held) == sorted(set(pages.index) & set(feats.index))
    got = feats.loc[held]
    assert got["open_expansion_amount_usd"].tolist() == pytest.approx(pages.loc[held, "amount"].tolist())
    assert got["open_opportunity_stage_rank"].tolist() == pages.loc[held, "rank"].tolist()
    assert got["open_opportunity_days_in_stage"].tolist() == pages.loc[held, "days"].tolist()
    # the alerts (computed from the tables for a frame of keys) read the same deal features
    assert signals.loc[held, "open_expansion_days_in_stage"].tolist() == pages.loc[held, "days"].tolist()
    assert signals.loc[held, "open_expansion_amount"].tolist() == pytest.approx(pages.loc[held, "amount"].tolist())
    assert (signals.drop(index=held)["open_expansion_amount"] == 0.0).all()


def test_stage_rank_is_one_based_and_days_count_from_the_day_a_stage_was_entered() -> None:
    from features.deal_metrics import PipelineTables

    ts = pd.Timestamp
    opps = pd.DataFrame({"opportunity_id": ["O1"], "account_id": ["X"], "kind": ["upsell"], "amount": [10.0],
                         "created_at": [ts("2026-01-01")], "expected_close_date": [dt.date(2026, 3, 1)],
                         "closed_at": [None], "outcome": ["open"], "owner": ["kim"]})
    stages = pd.DataFrame({"opportunity_id": ["O1", "O1"], "stage": ["qualification", "prospecting"],
                           "entered_at": [ts("2026-01-05 17:00"), ts("2026-01-05 09:00")]})
    tables = PipelineTables(opps, stages, pd.DataFrame({"account_id": ["X"], "segment": ["smb"]}),
                            pd.DataFrame(columns=["account_id", "date", "expansion_arr"]))
    order = ("prospecting", "qualification")
    deal = deals_at(tables, dt.date(2026, 1, 5), order, None).iloc[0]
    # two stages on one day: the later in the order; rank 2 of the setting; 0 days on the day it was entered
    assert (deal["stage"], deal["stage_rank"], deal["days_in_stage"]) == ("qualification", 2, 0.0)
    assert deals_at(tables, dt.date(2026, 1, 15), order, None).iloc[0]["days_in_stage"] == 10.0
