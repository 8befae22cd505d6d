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
