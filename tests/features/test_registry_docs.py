"""The registry is the one list of features: docs, frame columns and the documented names agree."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from features.build import CONTEXT, build_features
from features.config import Settings
from features.io import open_data
from features.labels import LABELS
from features.registry import FAMILIES, FEATURES, categorical_features, feature_names, render_docs

ROOT = Path(__file__).resolve().parents[2]


def test_docs_file_is_generated_from_the_registry():
    assert (ROOT / "docs" / "features.md").read_text() == render_docs(), "run `expansion features-docs`"


def test_every_name_the_architecture_promises_is_registered_once():
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("| family | names |", 1)[1].split("\n\n", 1)[0]
    promised = set(re.findall(r"`([a-z0-9_]+)`", table))
    names = feature_names()
    assert len(names) == len(set(names))
    assert promised <= set(names), promised - set(names)


def test_specs_are_complete():
    for spec in FEATURES:
        assert spec.family in FAMILIES and spec.window and spec.unit and spec.description.endswith("."), spec
        assert spec.good in ("higher", "lower", "neutral") and spec.kind in ("numeric", "categorical")
    assert categorical_features() == ["segment", "industry", "acquisition_channel", "region"]


def test_frame_columns_are_keys_labels_then_registry_features(tiny_company):
    source = open_data(tiny_company())
    try:
        frame = build_features(source, [dt.date(2025, 3, 31)], Settings(_env_file=None))
    finally:
        source.close()
    assert list(frame.columns) == ["account_id", "as_of", *CONTEXT, *LABELS, *feature_names()]
    assert not set(CONTEXT) & set(feature_names())  # context travels with rows but is never a model feature
    for name in categorical_features():
        assert frame[name].dtype == "string"
    numeric = [n for n in feature_names() if n not in categorical_features()]
    assert (frame[numeric].dtypes == "float64").all()
    assert str(frame["as_of"].dtype).startswith("datetime64")
