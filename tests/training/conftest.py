"""Small hand-built feature frames with a known signal, for fast unit tests of the training layer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.config import Settings

NUMERIC = [
    "events_trend_30d_pct", "feature_breadth_pct", "exec_meetings_90d", "nps_latest", "active_users_trend_30d_pct",
    "months_to_renewal", "months_to_fiscal_year_start", "whitespace_usd", "arr", "tickets_trend_30d_pct",
    "payment_failures_90d", "nps_detractor", "days_since_exec_touch", "noise_a", "noise_b",
]
CATEGORICAL = ["segment", "region"]


def make_frame(accounts: int = 400, months: int = 14, seed: int = 0, horizon_months: int = 3) -> pd.DataFrame:
    """Month-end snapshots of ``accounts`` accounts; labels depend on a few features, the last months are unlabelled."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-31", periods=months, freq="ME")
    n = accounts * months
    frame = pd.DataFrame({
        "account_id": np.tile([f"a{i:05d}" for i in range(accounts)], months),
        "as_of": np.repeat(dates, accounts),
        "csm_owner": np.tile([f"csm{i % 5}" for i in range(accounts)], months),
        "segment": np.tile(rng.choice(["smb", "mid_market", "enterprise"], accounts), months),
        "region": np.tile(rng.choice(["emea", "na", "apac"], accounts), months),
        "events_trend_30d_pct": rng.normal(0, 30, n),
        "feature_breadth_pct": rng.uniform(0, 100, n),
        "exec_meetings_90d": rng.poisson(1.0, n).astype(float),
        "nps_latest": rng.integers(0, 11, n).astype(float),
        "active_users_trend_30d_pct": rng.normal(0, 20, n),
        "months_to_renewal": rng.integers(0, 12, n).astype(float),
        "months_to_fiscal_year_start": rng.integers(0, 12, n).astype(float),
        "arr": rng.lognormal(10, 1, n),
        "tickets_trend_30d_pct": rng.normal(0, 60, n),
        "payment_failures_90d": rng.poisson(0.2, n).astype(float),
        "days_since_exec_touch": rng.uniform(0, 400, n),
        "noise_a": rng.normal(size=n),
        "noise_b": rng.normal(size=n),
    })
    frame["whitespace_usd"] = frame["arr"] * rng.uniform(0, 2, n)
    frame["nps_detractor"] = (frame["nps_latest"] <= 6).astype(float)
    frame.loc[rng.random(n) < 0.1, "nps_latest"] = np.nan  # some accounts never answered
    logit_exp = -2.5 + 0.04 * frame["events_trend_30d_pct"] + 0.02 * (frame["feature_breadth_pct"] - 50)
    logit_churn = -3.0 - 0.04 * frame["events_trend_30d_pct"] + 1.2 * frame["payment_failures_90d"]
    frame["expanded"] = (rng.random(n) < 1 / (1 + np.exp(-logit_exp))).astype(float)
    frame["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit_churn))).astype(float)
    frame["contracted"] = 0.0
    unlabelled = frame["as_of"] > dates[months - 1 - horizon_months]
    frame.loc[unlabelled, ["expanded", "churned", "contracted"]] = np.nan
    return frame


@pytest.fixture(name="make_frame")
def make_frame_factory():
    """The frame builder itself, for tests that need other sizes."""
    return make_frame


@pytest.fixture
def feature_lists() -> tuple[list[str], list[str]]:
    """(features, categorical features) of the hand-built frame."""
    return NUMERIC + CATEGORICAL, CATEGORICAL


@pytest.fixture
def small_frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                    bootstrap_replicates=200)
