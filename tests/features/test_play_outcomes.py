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
