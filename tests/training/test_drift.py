"""Population stability index."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.drift import drift_level, feature_drift, psi_categorical, psi_numeric


def test_same_distribution_is_stable_and_a_shift_is_major():
    rng = np.random.default_rng(1)
    train = pd.Series(rng.normal(0, 1, 5000))
    assert psi_numeric(train, pd.Series(rng.normal(0, 1, 5000))) < 0.02
    assert psi_numeric(train, pd.Series(rng.normal(1.5, 1, 5000))) > 0.25


def test_missing_values_count_as_their_own_bin():
    base = pd.Series(np.arange(1000, dtype=float))
    more_missing = base.copy()
    more_missing[:400] = np.nan
    assert psi_numeric(base, more_missing) > 0.25


def test_categorical_psi_sees_new_levels():
    train = pd.Series(["smb"] * 50 + ["enterprise"] * 50)
    assert psi_categorical(train, train.sample(frac=1, random_state=0)) == 0.0
    assert psi_categorical(train, pd.Series(["smb"] * 50 + ["new_segment"] * 50)) > 0.25


def test_feature_drift_table_is_sorted_and_labelled():
    rng = np.random.default_rng(2)
    a = pd.DataFrame({"x": rng.normal(size=2000), "y": rng.normal(size=2000), "s": ["a", "b"] * 1000})
    b = pd.DataFrame({"x": rng.normal(size=2000) + 2, "y": rng.normal(size=2000), "s": ["a", "b"] * 1000})
    table = feature_drift(a, b, ["x", "y", "s"], ["s"])
    assert table["feature"].iloc[0] == "x" and table["level"].iloc[0] == "major"
    assert drift_level(0.05) == "stable" and drift_level(0.2) == "moderate"


def test_only_shifts_the_model_reads_are_reported_and_calendar_features_never():
    rng = np.random.default_rng(4)
    n = 3000
    train = pd.DataFrame({"events_30d": rng.normal(0, 1, n), "nps_latest": rng.normal(0, 1, n),
                          "months_to_renewal": rng.integers(0, 12, n).astype(float)})
    later = pd.DataFrame({"events_30d": rng.normal(1.5, 1, n), "nps_latest": rng.normal(1.5, 1, n),
                          "months_to_renewal": rng.integers(6, 9, n).astype(float)})
    features = list(train.columns)
    importance = pd.Series({"events_30d": 0.9, "nps_latest": 0.002, "months_to_renewal": 0.5})
    table = feature_drift(train, later, features, [], importance=importance).set_index("feature")
    assert (table["level"] == "major").all()  # all three moved
    assert table.loc["events_30d", "reported"]
    assert not table.loc["nps_latest", "reported"]  # moved, but the model barely reads it
    assert table.loc["months_to_renewal", "calendar"] and not table.loc["months_to_renewal", "reported"]
    assert table["importance_share"].sum() == pytest.approx(1.0)
    plain = feature_drift(train, later, features, [])
    assert "reported" not in plain.columns
