"""``read_feature_frame``: a file, a folder partitioned by as_of (as Spark writes it) or a file:// URI give one frame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.config import Settings
from training.pipeline import read_feature_frame


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "account_id": ["a1", "a2", "a1", "a2"],
        "as_of": pd.to_datetime(["2026-01-31", "2026-01-31", "2026-02-28", "2026-02-28"]),
        "segment": ["smb", "enterprise", "smb", "enterprise"],
        "events_30d": [10.0, 20.0, 11.0, None],
        "expanded": [1.0, 0.0, None, None],
        "churned": [0.0, 0.0, None, None],
    })


def _partitioned(root: Path) -> Path:
    """The layout ``features --engine spark`` writes: as_of=YYYY-MM-DD folders, a _SUCCESS marker."""
    frame = _frame()
    for day, part in frame.groupby(frame["as_of"].dt.strftime("%Y-%m-%d")):
        folder = root / f"as_of={day}"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(part.drop(columns="as_of"), preserve_index=False), folder / "part-0.parquet")
    (root / "_SUCCESS").write_text("")
    return root


def test_a_partitioned_folder_and_its_file_uri_read_as_the_file_does(tmp_path: Path) -> None:
    single = tmp_path / "features.parquet"
    _frame().to_parquet(single, index=False)
    folder = _partitioned(tmp_path / "lake" / "features")
    settings = Settings(_env_file=None)
    expected = read_feature_frame(single, settings)
    for location in (folder, str(folder), f"file://{folder}"):
        got = read_feature_frame(location, settings)
        pd.testing.assert_frame_equal(got[expected.columns], expected)
    assert expected["as_of"].dtype.kind == "M" and expected["account_id"].tolist() == ["a1", "a2", "a1", "a2"]
    older = read_feature_frame(f"file://{folder}", settings, as_of=pd.Timestamp("2026-01-31").date())
    assert older["as_of"].nunique() == 1


def test_a_missing_location_or_key_column_is_named(tmp_path: Path) -> None:
    settings = Settings(_env_file=None)
    with pytest.raises(ValueError, match="nowhere"):
        read_feature_frame(tmp_path / "nowhere", settings)
    bad = tmp_path / "bad.parquet"
    _frame().drop(columns="churned").to_parquet(bad, index=False)
    with pytest.raises(ValueError, match="missing column.*churned"):
        read_feature_frame(bad, settings)


def test_replaying_a_past_month_with_a_frame_built_later_trains_the_model_a_cut_copy_trains(
    generated_company: Path, feature_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """A frame built at the data end, read ``as_of`` a past month end, is the frame built that day: no label from after it."""
    import datetime as dt

    from features.build import build_features
    from features.io import open_data
    from features.registry import categorical_features, feature_names
    from features.spine import month_ends
    from training.models import fit_model

    settings = Settings(_env_file=None)
    day = dt.date(2026, 1, 31)
    later = tmp_path / "built-later.parquet"
    feature_frame.to_parquet(later, index=False)
    source = open_data(generated_company)
    try:
        first = source.con.execute("SELECT min(date) FROM usage_daily").fetchone()[0]
        cut = build_features(source, month_ends(first, day), settings, data_end=day)
    finally:
        source.close()
    cut = read_feature_frame_from(cut, tmp_path)

    replayed = read_feature_frame(later, settings, as_of=day)
    late_labels = replayed["as_of"] + pd.Timedelta(days=settings.horizon_days) > pd.Timestamp(day)
    assert replayed.loc[late_labels, ["expanded", "churned"]].isna().all().all() and late_labels.any()
    columns = ["account_id", "as_of", "expanded", "churned", *feature_names()]
    pd.testing.assert_frame_equal(replayed[columns], cut[columns], check_dtype=False)

    def model(frame: pd.DataFrame) -> pd.Series:
        labelled = frame[frame["expanded"].notna()]
        last = labelled["as_of"].max()
        fitted = fit_model("expansion", labelled[labelled["as_of"] < last], labelled[labelled["as_of"] == last], "expanded",
                           feature_names(), categorical_features(), num_boost_round=40)
        return pd.Series(fitted.predict_proba(cut))

    same = model(replayed)
    pd.testing.assert_series_equal(same, model(cut))
    unfiltered = read_feature_frame(later, settings)
    leaky = unfiltered[unfiltered["as_of"] <= pd.Timestamp(day)]  # what --as-of kept before: snapshots, not labels
    assert not model(leaky).equals(same)


def read_feature_frame_from(frame: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """``frame`` as ``retrain --features`` reads it (written, then read back)."""
    path = folder / "cut.parquet"
    frame.to_parquet(path, index=False)
    return read_feature_frame(path, Settings(_env_file=None))
