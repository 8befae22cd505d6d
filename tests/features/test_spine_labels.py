"""Spine and labels on hand-built histories with known futures."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.build import build_features
from features.config import Settings
from features.io import open_data
from features.spine import month_ends

AS_OF = dt.date(2025, 3, 31)


def _frame(folder, dates, horizon_days=90, data_end=None) -> pd.DataFrame:
    source = open_data(folder)
    try:
        settings = Settings(_env_file=None, horizon_days=horizon_days)
        return build_features(source, dates, settings, data_end=data_end).set_index(["account_id", "as_of"])
    finally:
        source.close()


def _row(frame: pd.DataFrame, account: str, as_of: dt.date = AS_OF) -> pd.Series:
    return frame.loc[(account, pd.Timestamp(as_of))]


def test_seat_addition_40_days_out_is_expanded_at_90_days_but_not_at_30(tiny_company):
    folder = tiny_company()
    at_90, at_30 = _frame(folder, [AS_OF], 90), _frame(folder, [AS_OF], 30)
    assert _row(at_90, "A1")["expanded"] == 1.0
    assert _row(at_90, "A1")["expansion_mrr"] == pytest.approx(50.0)
    assert _row(at_30, "A1")["expanded"] == 0.0
    assert _row(at_30, "A1")["expansion_mrr"] == 0.0


def test_churn_and_contraction_labels(tiny_company):
    frame = _frame(tiny_company(), [AS_OF], 90)
    assert _row(frame, "A2")[["churned", "expanded", "contracted"]].tolist() == [1.0, 0.0, 0.0]
    assert _row(frame, "A3")[["churned", "expanded", "contracted"]].tolist() == [0.0, 0.0, 1.0]
    assert _row(frame, "A4")[["churned", "expanded", "contracted"]].tolist() == [0.0, 0.0, 0.0]


def test_incomplete_horizon_gives_null_labels(tiny_company):
    # Usage ends 2025-07-31: 2025-03-31 + 90 days fits, 2025-06-30 + 90 days does not.
    frame = _frame(tiny_company(), [AS_OF, dt.date(2025, 6, 30)], 90)
    late = frame.xs(pd.Timestamp("2025-06-30"), level="as_of")
    assert late[["expanded", "churned", "contracted", "expansion_mrr"]].isna().all().all()
    assert frame.xs(pd.Timestamp(AS_OF), level="as_of")["expanded"].notna().all()


def test_data_end_override_moves_the_label_cutoff(tiny_company):
    frame = _frame(tiny_company(), [AS_OF], 90, data_end=dt.date(2025, 5, 31))
    assert frame[["expanded", "churned"]].isna().all().all()


def test_spine_keeps_only_accounts_paying_at_the_snapshot(tiny_company):
    frame = _frame(tiny_company(), [AS_OF, dt.date(2025, 4, 30)], 90)
    assert sorted(frame.xs(pd.Timestamp(AS_OF), level="as_of").index) == ["A1", "A2", "A3", "A4"]
    assert "A2" not in frame.xs(pd.Timestamp("2025-04-30"), level="as_of").index  # churned 2025-04-20
    assert not frame.index.duplicated().any()


def test_spine_excludes_accounts_before_their_first_period(tiny_company):
    frame = _frame(tiny_company(), [dt.date(2023, 12, 31)], 90)
    assert frame.empty


def test_month_ends_cover_every_month_and_reject_empty_ranges():
    assert month_ends(dt.date(2024, 1, 15), dt.date(2024, 4, 30)) == [
        dt.date(2024, 1, 31), dt.date(2024, 2, 29), dt.date(2024, 3, 31), dt.date(2024, 4, 30)
    ]
    with pytest.raises(ValueError, match="after end"):
        month_ends(dt.date(2024, 5, 1), dt.date(2024, 1, 1))


def test_generated_company_spine_has_labels_and_features(feature_frame):
    assert not feature_frame.duplicated(["account_id", "as_of"]).any()
    assert (feature_frame["mrr"] > 0).all()
    last = feature_frame["as_of"].max()
    assert feature_frame.loc[feature_frame["as_of"] == last, "expanded"].isna().all()
    labelled = feature_frame["expanded"].notna()
    assert labelled.any() and set(feature_frame.loc[labelled, "expanded"].unique()) <= {0.0, 1.0}
    assert feature_frame.loc[labelled, "expanded"].mean() > 0  # some expansions happen in a real company


def test_building_in_snapshot_batches_gives_the_same_frame(tiny_company):
    folder, dates = tiny_company(), [dt.date(2025, 1, 31), AS_OF, dt.date(2025, 6, 30)]
    source = open_data(folder)
    try:
        settings = Settings(_env_file=None)
        whole = build_features(source, dates, settings)
        batched = build_features(source, dates, settings, snapshots_per_batch=2)
    finally:
        source.close()
    assert whole["as_of"].nunique() == 3
    pd.testing.assert_frame_equal(whole, batched)
