"""Play outcomes read the label definitions over each episode's window; checked against an independent reading."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from features.io import open_data
from features.play_outcomes import episode_outcomes
from features.synth.truth import labels as true_labels


def test_episode_outcomes_match_the_subscription_rows_and_wait_for_the_window(generated_company: Path) -> None:
    subs = pd.read_parquet(generated_company / "subscriptions.parquet")
    start, late = dt.date(2026, 1, 31), dt.date(2026, 5, 31)
    truth = true_labels(subs, start, 90).set_index("account_id")
    ids = truth.index[:300].astype(str)
    episodes = pd.DataFrame({"account_id": [*ids, *ids[:20]], "episode_start": [start] * len(ids) + [late] * 20,
                             "play": "cross_sell"})
    source = open_data(generated_company)
    try:
        out = episode_outcomes(source, episodes, 90)
    finally:
        source.close()
    assert len(out) == len(episodes) and out["play"].eq("cross_sell").all()  # every episode kept, its columns too
    read = out[out["episode_start"] == start].set_index("account_id")
    assert read["expanded"].astype(bool).tolist() == truth.loc[ids, "expanded"].tolist()
    assert read["churned"].astype(bool).tolist() == truth.loc[ids, "churned"].tolist()
    assert read["expanded"].sum() > 5  # the comparison is not vacuous
    assert (read.loc[read["expanded"] == 1, "expansion_mrr"] > 0).all()
    assert out.loc[out["episode_start"] == late, ["expanded", "expansion_mrr"]].isna().all().all()  # window open


def test_renewed_reads_the_renewal_due_in_the_window_and_whether_the_account_stayed(generated_company: Path) -> None:
    subs = pd.read_parquet(generated_company / "subscriptions.parquet")
    start = dt.date(2026, 1, 31)
    churned = true_labels(subs, start, 90).set_index("account_id")["churned"]
    # independent reading: the rows in force at the start, their nearest renewal date on or after it
    s = subs.assign(valid_from=pd.to_datetime(subs["valid_from"]), valid_to=pd.to_datetime(subs["valid_to"]),
                    renewal_date=pd.to_datetime(subs["renewal_date"]))
    ts = pd.Timestamp(start)
    on = s[(s["valid_from"] <= ts) & (s["valid_to"].isna() | (s["valid_to"] > ts)) & (s["renewal_date"] >= ts)]
    nearest = on.groupby("account_id")["renewal_date"].min()
    due = nearest[(nearest > ts) & (nearest <= ts + pd.Timedelta(days=90))].index
    episodes = pd.DataFrame({"account_id": churned.index.astype(str), "episode_start": start})
    source = open_data(generated_company)
    try:
        out = episode_outcomes(source, episodes, 90).set_index("account_id")
    finally:
        source.close()
    assert sorted(out.index[out["renewed"].notna()]) == sorted(due.astype(str))
    assert len(due) > 20  # renewals fell due: the comparison is not vacuous
    expected = (~churned.loc[due]).astype(float)
    assert out.loc[due.astype(str), "renewed"].tolist() == expected.tolist()
    assert (expected == 0).any()  # some did not renew: both values are checked
