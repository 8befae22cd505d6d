"""The feature snapshot store: reuse equals a fresh build; a changed row or definition rebuilds exactly what it touches."""

from __future__ import annotations

import ast
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from features.build import build_features
from features.config import Settings
from features.fingerprint import FEATURE_SETTINGS, NOT_DEFINITIONS, feature_modules
from features.io import open_data
from features.snapshots import SnapshotStore, history_features
from features.spine import month_ends

CORRECTED = dt.date(2025, 2, 10)  # the day of the usage row corrected after the store was filled


def _history(folder: Path, settings: Settings, dates: list[dt.date], **kw: object) -> tuple[pd.DataFrame, list[str]]:
    heard: list[str] = []
    source = open_data(folder)
    try:
        return history_features(source, dates, settings, say=heard.append, **kw), heard
    finally:
        source.close()


def _fresh(folder: Path, settings: Settings, dates: list[dt.date], **kw: object) -> pd.DataFrame:
    source = open_data(folder)
    try:
        return build_features(source, dates, settings, **kw)
    finally:
        source.close()


def _month_ends(folder: Path) -> list[dt.date]:
    source = open_data(folder)
    try:
        return month_ends(*source.span())
    finally:
        source.close()


@pytest.fixture
def tiny_dates(tiny_company) -> list[dt.date]:
    """The month ends of the tiny company's usage (2024-10-31 .. 2025-07-31)."""
    return _month_ends(tiny_company())


def _stamps(settings: Settings, dates: list[dt.date], signals: bool = False) -> dict[dt.date, object]:
    store = SnapshotStore(settings.snapshot_store, signals)
    return {d: store.stamp(d) for d in dates}


def test_reused_snapshots_equal_a_fresh_build(generated_company: Path, feature_frame: pd.DataFrame, tmp_path: Path):
    settings = Settings(_env_file=None, home=tmp_path / "home")
    dates = _month_ends(generated_company)
    _, heard = _history(generated_company, settings, dates[:-1])  # last month's job: all but the newest month end
    assert heard == [f"feature snapshots: 0 reused, {len(dates) - 1} rebuilt ({len(dates) - 1} not stored), "
                     f"in {settings.snapshot_store / 'features'}"]
    frame, heard = _history(generated_company, settings, dates)
    assert heard[0].startswith(f"feature snapshots: {len(dates) - 1} reused, 1 rebuilt (1 not stored)")
    pd.testing.assert_frame_equal(frame, feature_frame)
    again, heard = _history(generated_company, settings, dates)
    assert heard[0].startswith(f"feature snapshots: {len(dates)} reused, 0 rebuilt")
    pd.testing.assert_frame_equal(again, feature_frame)


def test_a_corrected_past_row_rebuilds_exactly_the_snapshots_after_it(tiny_company, tiny_dates, tmp_path: Path):
    settings = Settings(_env_file=None, home=tmp_path / "home")
    _history(tiny_company(), settings, tiny_dates)
    before = _stamps(settings, tiny_dates)

    def correct(tables: dict[str, pd.DataFrame]) -> None:
        u = tables["usage_daily"]
        u.loc[(u["account_id"] == "A3") & (u["date"] == CORRECTED), "events"] = 500

    corrected = tiny_company(correct)
    frame, heard = _history(corrected, settings, tiny_dates)
    after = _stamps(settings, tiny_dates)
    touched = [d for d in tiny_dates if d >= CORRECTED]
    assert [d for d in tiny_dates if after[d] != before[d]] == touched
    assert heard[0].startswith(f"feature snapshots: {len(tiny_dates) - len(touched)} reused, {len(touched)} rebuilt "
                             f"({len(touched)} raw data changed in usage_daily)")
    pd.testing.assert_frame_equal(frame, _fresh(corrected, settings, tiny_dates))


def test_next_month_landing_reuses_every_stored_month_end_and_reads_the_labels_afresh(tiny_company, tiny_dates,
                                                                                        tmp_path: Path):
    settings = Settings(_env_file=None, home=tmp_path / "home")
    last_month = tiny_dates[-2]

    def a_month_earlier(tables: dict[str, pd.DataFrame]) -> None:
        u = tables["usage_daily"]
        tables["usage_daily"] = u.loc[u["date"] <= last_month]

    _history(tiny_company(a_month_earlier), settings, tiny_dates[:-1])  # last month's job, data ending a month earlier
    now = tiny_company()
    frame, heard = _history(now, settings, tiny_dates)
    assert heard[0].startswith(f"feature snapshots: {len(tiny_dates) - 1} reused, 1 rebuilt (1 not stored)")
    fresh = _fresh(now, settings, tiny_dates)
    pd.testing.assert_frame_equal(frame, fresh)  # labels completed by the new month come from the new data
    earlier = _fresh(tiny_company(a_month_earlier), settings, tiny_dates[:-1])
    assert fresh["expanded"].notna().sum() > earlier["expanded"].notna().sum()


def test_a_changed_definition_rebuilds_every_snapshot(tiny_company, tiny_dates, tmp_path: Path):
    home = tmp_path / "home"
    folder = tiny_company()
    _history(folder, Settings(_env_file=None, home=home), tiny_dates)
    changed = Settings(_env_file=None, home=home, quota_alert_pct=50.0)  # a setting a feature definition reads
    frame, heard = _history(folder, changed, tiny_dates)
    n = len(tiny_dates)
    assert heard[0].startswith(f"feature snapshots: 0 reused, {n} rebuilt ({n} definitions changed)")
    pd.testing.assert_frame_equal(frame, _fresh(folder, changed, tiny_dates))


def test_the_rebuild_flag_rebuilds_every_snapshot(tiny_company, tiny_dates, tmp_path: Path):
    folder, home = tiny_company(), tmp_path / "home"
    _history(folder, Settings(_env_file=None, home=home), tiny_dates)
    _, heard = _history(folder, Settings(_env_file=None, home=home, rebuild_snapshots=True), tiny_dates)
    assert heard[0].startswith(f"feature snapshots: 0 reused, {len(tiny_dates)} rebuilt ({len(tiny_dates)} rebuild asked)")


def test_two_homes_never_share_a_store(tiny_company, tiny_dates, tmp_path: Path):
    folder = tiny_company()
    one, two = (Settings(_env_file=None, home=tmp_path / name) for name in ("one", "two"))
    _history(folder, one, tiny_dates)
    _, heard = _history(folder, two, tiny_dates)
    assert heard[0].startswith(f"feature snapshots: 0 reused, {len(tiny_dates)} rebuilt ({len(tiny_dates)} not stored)")
    assert one.snapshot_store.resolve().is_relative_to((tmp_path / "one").resolve())
    assert two.snapshot_store.resolve().is_relative_to((tmp_path / "two").resolve())


def test_an_unreadable_snapshot_is_rebuilt_and_signals_are_stored_apart(tiny_company, tiny_dates, tmp_path: Path):
    folder, settings = tiny_company(), Settings(_env_file=None, home=tmp_path / "home")
    _history(folder, settings, tiny_dates, signals=True)
    SnapshotStore(settings.snapshot_store, signals=True).path(tiny_dates[2]).write_bytes(b"not parquet")
    frame, heard = _history(folder, settings, tiny_dates, signals=True, snapshots_per_batch=2)
    assert heard[0].startswith(f"feature snapshots: {len(tiny_dates) - 1} reused, 1 rebuilt (1 not stored)")
    pd.testing.assert_frame_equal(frame, _fresh(folder, settings, tiny_dates, signals=True))
    assert all(s is None for s in _stamps(settings, tiny_dates).values())  # the frame without signals is another store


def test_the_fingerprint_covers_every_setting_the_features_read():
    modules = feature_modules()
    assert {"features.build", "features.usage", "features.spine", "features.registry"} <= modules.keys()
    read = set()
    for name, path in modules.items():
        if name in NOT_DEFINITIONS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "settings":
                read.add(node.attr)
    # horizon_days sets the labels alone, and labels are read afresh on every build, never stored; where compiled
    # feature SQL is kept and whether it is compiled afresh (features.plans) change no value
    assert read - {"horizon_days", "plan_store", "rebuild_snapshots"} <= set(FEATURE_SETTINGS)
    assert set(FEATURE_SETTINGS) <= Settings.model_fields.keys()


def test_history_features_stays_within_the_home(tiny_company, tiny_dates, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None, home=tmp_path / "home", feature_plans=None)  # compiled SQL under the home too
    _history(tiny_company(), settings, tiny_dates[:2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "tiny0", "tiny1"]
    files = list(settings.snapshot_store.rglob("*"))
    names = [f.name for f in files if f.is_file()]
    assert not [n for n in names if n.endswith(".tmp")]  # no temporary file left
    plans = list(settings.snapshot_store.glob("plans/*.json"))  # the features' and the labels'
    assert names.count("snapshot.parquet") == 2 and len(plans) == 2
    assert len(names) == 2 + len(plans) + len(list(settings.snapshot_store.glob("raw_digests/*/*")))
    assert {f.stat().st_mode & 0o777 for f in files} == {0o700, 0o600} and all(
        (f.stat().st_mode & 0o777) == (0o700 if f.is_dir() else 0o600) for f in files)


def _writer(folder: Path) -> subprocess.Popen:
    """A process that leaves a half-written temporary snapshot named after its pid, then waits to be killed."""
    code = ("import os, sys, time; from pathlib import Path; "
            "p = Path(sys.argv[1]) / f'.{os.getpid()}.half.tmp'; p.write_bytes(b'PAR1 half'); "
            "print(p, flush=True); time.sleep(60)")
    return subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)


def test_the_next_run_removes_the_temporary_files_of_killed_writes(tiny_company, tiny_dates, tmp_path: Path):
    folder, settings = tiny_company(), Settings(_env_file=None, home=tmp_path / "home")
    _history(folder, settings, tiny_dates[:2])
    store = SnapshotStore(settings.snapshot_store)
    where = store.path(tiny_dates[0]).parent
    killed, live = _writer(where), _writer(where)
    try:
        killed_tmp, live_tmp = Path(killed.stdout.readline().strip()), Path(live.stdout.readline().strip())
        killed.kill()
        killed.wait()
        earlier = time.time() - 60  # left by an earlier run of this process, and by a writer naming no pid
        own_tmp, no_pid_tmp = where / f".{os.getpid()}.earlier.tmp", where / ".old-style.tmp"
        for path in (own_tmp, no_pid_tmp):
            path.write_bytes(b"PAR1 half")
            os.utime(path, (earlier, earlier))
        _, heard = _history(folder, settings, tiny_dates[:2])
        assert heard[0].endswith("; removed 3 temporary file(s) of killed writes")
        assert not killed_tmp.exists() and not own_tmp.exists() and not no_pid_tmp.exists()
        assert live_tmp.exists()  # a writer still at work keeps its file
        _, heard = _history(folder, settings, tiny_dates[:2])
        assert "removed" not in heard[0]
    finally:
        live.kill()
        live.wait()


def test_raw_digests_are_kept_per_file_and_a_changed_file_is_digested_again(tiny_company, tiny_dates, tmp_path: Path):
    folder, settings = tiny_company(), Settings(_env_file=None, home=tmp_path / "home")
    usage = pd.read_parquet(folder / "usage_daily.parquet")
    (folder / "usage_daily.parquet").unlink()
    parts = folder / "usage_daily"
    parts.mkdir()
    early = usage["date"] < dt.date(2025, 2, 1)
    usage.loc[early].to_parquet(parts / "part-0.parquet", index=False)
    usage.loc[~early].to_parquet(parts / "part-1.parquet", index=False)
    _history(folder, settings, tiny_dates)
    entries = settings.snapshot_store / "raw_digests" / "usage_daily"

    def written() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in entries.iterdir()}

    first = written()
    assert len(first) == 2  # one entry per part
    _, heard = _history(folder, settings, tiny_dates)
    assert heard[0].startswith(f"feature snapshots: {len(tiny_dates)} reused") and written() == first  # nothing re-read
    later = usage.loc[~early].copy()
    later.loc[(later["account_id"] == "A3") & (later["date"] == CORRECTED), "events"] = 500
    later.to_parquet(parts / "part-1.parquet", index=False)
    frame, heard = _history(folder, settings, tiny_dates)
    touched = [d for d in tiny_dates if d >= CORRECTED]
    assert heard[0].startswith(f"feature snapshots: {len(tiny_dates) - len(touched)} reused, {len(touched)} rebuilt "
                               f"({len(touched)} raw data changed in usage_daily)")
    now = written()
    assert len(now) == 2 and sum(now[name] == first[name] for name in now) == 1  # the unchanged part is not re-read
    pd.testing.assert_frame_equal(frame, _fresh(folder, settings, tiny_dates))
