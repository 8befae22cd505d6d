"""The gate's pooled evidence on small generated companies: the backtest's test months and a shadow's realised
months stacked into one test (``training.gate_evidence``), with the real training, baseline and bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.config import Settings
from training.baseline import BaselineClassifier
from training.datasets import cut_at
from training.gate import ShadowRecord, gate
from training.gate_evidence import part, shadow_parts, stacked
from training.train import train_model

LABELS = ("expanded", "churned")


def _job_and_shadow(frame: pd.DataFrame, settings: Settings, shadow_months: int):
    """The job at the 13th month end (pooled backtest and refit), and that refit's realised record on the next
    ``shadow_months`` months while the baseline served, as a later job would know it."""
    from tests.training.conftest import CATEGORICAL, NUMERIC

    cut = pd.Timestamp(sorted(frame["as_of"].unique())[12])
    result = train_model("expansion", cut_at(frame, cut, 90, LABELS), NUMERIC + CATEGORICAL, CATEGORICAL, settings,
                         num_boost_round=50)
    as_of = pd.to_datetime(frame["as_of"])
    later = frame[(as_of > cut) & (as_of <= cut + pd.offsets.MonthEnd(shadow_months)) & frame["expanded"].notna()]
    base = BaselineClassifier("expansion").score(later)
    rows = pd.DataFrame({"account_id": later["account_id"].to_numpy(), "as_of": later["as_of"].to_numpy(),
                         "outcome": later["expanded"].to_numpy(float), "shadow": result.model.predict_proba(later),
                         "served": base, "baseline": base})
    return result, ShadowRecord(cut.date().isoformat(), rows)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(_env_file=None, home="unused", bootstrap_replicates=300)


def test_pooled_evidence_promotes_where_neither_the_backtest_nor_the_shadow_alone_would(settings):
    # A company of 120 accounts: the signal is real but each source alone is too small to tell it from noise.
    from tests.training.conftest import make_frame

    result, record = _job_and_shadow(make_frame(accounts=120, months=20, seed=1), settings, shadow_months=2)
    alone = gate(result, None, settings)
    assert not alone.promote and "could be noise" in " ".join(alone.reasons)
    shadow_gain = stacked([shadow_parts(record)[0]], settings)[1]  # the shadow's months alone, at the gate's level
    assert shadow_gain.level == settings.promotion_confidence and not shadow_gain.low > 0
    pooled = gate(result, None, settings, shadow=record)
    assert pooled.promote and pooled.evidence == "pooled backtest + shadow months"
    assert pooled.reasons[0].startswith(f"evidence: the pooled backtest's {result.pooled['as_of'].nunique()} test month(s)")
    assert "shadow v" in pooled.reasons[0] and "2 realised month(s)" in pooled.reasons[0]
    assert pooled.reasons[-1].startswith("each alone: the backtest's gain over the baseline")


def test_a_no_signal_company_is_not_promoted_on_pooled_evidence(settings):
    from tests.training.conftest import make_frame

    frame = make_frame(accounts=300, months=20, seed=4)
    rng = np.random.default_rng(8)
    for _, idx in frame[frame["expanded"].notna()].groupby("as_of").groups.items():  # outcomes shuffled within each month
        frame.loc[idx, "expanded"] = rng.permutation(frame.loc[idx, "expanded"].to_numpy())
    result, record = _job_and_shadow(frame, settings, shadow_months=4)
    assert record.positives >= settings.gate_min_positives
    decision = gate(result, None, settings, shadow=record)
    assert not decision.promote, decision.reasons
    assert decision.evidence == "pooled backtest + shadow months"


def test_the_same_account_months_counted_twice_are_not_new_evidence(settings):
    rng = np.random.default_rng(3)
    n = 600
    trait = rng.normal(size=n)
    rows = pd.DataFrame({"account_id": [f"a{i % 200}" for i in range(n)],
                         "as_of": np.repeat(pd.to_datetime(["2025-01-31", "2025-02-28", "2025-03-31"]), 200)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(-1.5 + 0.6 * trait)))).astype(float)
    once = part("backtest", rows, y, trait + rng.normal(size=n), rng.normal(size=n))
    twice = pd.concat([once, once.assign(stratum=once["stratum"].str.replace("backtest", "shadow"))], ignore_index=True)
    assert stacked([once], settings) == stacked([twice], settings)  # one account's rows are resampled together


def test_a_shadow_record_with_gaps_is_refused_naming_the_column(settings):
    rows = pd.DataFrame({"account_id": ["a", "b"], "as_of": pd.to_datetime(["2025-01-31"] * 2), "outcome": [1.0, 0.0],
                         "shadow": [0.3, np.nan], "served": [0.1, 0.2], "baseline": [0.1, 0.2]})
    with pytest.raises(ValueError, match="shadow record v3: column 'shadow' has 1 missing"):
        shadow_parts(ShadowRecord("3", rows))
    with pytest.raises(ValueError, match="column\\(s\\) served missing"):
        shadow_parts(ShadowRecord("3", rows.drop(columns="served")))
