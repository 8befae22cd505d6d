"""The served snapshot: reasons precomputed in the background, and a bad file never replacing a good snapshot."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from serving.api.live_snapshot import LiveSnapshot
from serving.api.schemas import ItemError, ScoreResponse, api_record, with_results
from serving.scoring.scorer import Scorer, feature_specs
from serving.api.snapshot import ScoredSnapshot, load_snapshot, read_newest


@pytest.fixture(scope="module")
def frame(make_frame) -> pd.DataFrame:  # noqa: ANN001
    return make_frame(accounts=120, months=6)


@pytest.fixture(scope="module")
def scorer(frame: pd.DataFrame, train_models) -> Scorer:  # noqa: ANN001
    return Scorer(*train_models(frame), feature_specs())


@pytest.fixture
def snapshot_path(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "snapshot.parquet"
    frame.drop(columns=["expanded", "churned"]).to_parquet(path)
    return path


def _nan_as_none(value: object) -> object:
    """Records with NaN (an unknown change, say) made comparable: NaN is never equal to another NaN."""
    if isinstance(value, list):
        return [_nan_as_none(v) for v in value]
    if isinstance(value, dict):
        return {k: _nan_as_none(v) for k, v in value.items()}
    return None if isinstance(value, float) and value != value else value


def test_precomputed_reasons_are_the_reasons_computed_on_demand(snapshot_path: Path, scorer: Scorer) -> None:
    lazy, eager = load_snapshot(snapshot_path, scorer), load_snapshot(snapshot_path, scorer)
    assert eager.precompute_reasons(chunk=50) is True  # chunks of 50 over 120 accounts: the last one is partial
    assert eager.reasons_complete and eager.reasons_computed == len(eager) == 120
    ids = ["acc0000", "acc0049", "acc0050", "acc0119", "acc0077"]
    assert lazy.reasons_computed == 0
    assert _nan_as_none(eager.lookup(ids, True)) == _nan_as_none(lazy.lookup(ids, True))
    assert lazy.reasons_computed == len(ids) and not lazy.reasons_complete
    assert any(r["reason_details"] for r in eager.lookup(ids, True))  # not trivially equal: reasons exist


def test_a_stopped_precompute_leaves_the_lazy_path_serving(snapshot_path: Path, scorer: Scorer) -> None:
    snap = load_snapshot(snapshot_path, scorer)
    snap.stop_precompute()
    assert snap.precompute_reasons() is False and snap.reasons_computed == 0 and not snap.reasons_complete
    assert snap.lookup(["acc0003"], True)[0]["reasons"]  # still answered, computed on demand


def test_background_precompute_completes_and_calls_back(snapshot_path: Path, scorer: Scorer) -> None:
    done: list[bool] = []
    snap = load_snapshot(snapshot_path, scorer)
    snap.start_precompute(lambda: done.append(True)).join(timeout=60)
    assert done == [True] and snap.reasons_complete and snap.reasons_computed == 120


def test_stored_answers_are_what_the_response_model_makes_of_the_records(snapshot_path: Path, scorer: Scorer) -> None:
    """A batch answer joined from the stored per-account JSON is byte for byte the response model's own dump."""
    eager, lazy = load_snapshot(snapshot_path, scorer), load_snapshot(snapshot_path, scorer)
    assert eager.precompute_reasons(chunk=50)
    ids = ["acc0007", "acc0100", "acc0007", "acc0031"]  # a repeated id is answered twice, as before
    errors = [ItemError(account_id="ghost", field="accounts.4.account_id", error="unknown account", status=404,
                        value=None, rule=None)]
    for with_reasons in (True, False):
        records = eager.lookup(ids, with_reasons)
        expected = ScoreResponse(model_available=True, snapshot_as_of=eager.as_of, errors=errors,
                                 results=[api_record(r) for r in records]).model_dump_json().encode()
        for snap in (eager, lazy):  # precomputed, and built on first request
            envelope = ScoreResponse(model_available=True, snapshot_as_of=snap.as_of, results=[], errors=errors)
            assert with_results(envelope, snap.answers(ids, with_reasons)) == expected
    assert b'"reasons":[{"text":' in eager.answers(["acc0007"], True)[0]  # not trivially equal: reasons exist
    assert eager.answers(["acc0007"], False)[0].count(b'"reasons":[]') == 1


def test_a_book_ranked_once_is_the_book_ranked_on_request(snapshot_path: Path, scorer: Scorer) -> None:
    snap = load_snapshot(snapshot_path, scorer)
    for key in ("expected_expansion_usd", "churn_probability"):
        ranking = snap.ranked_book("csm1", key)
        assert ranking == snap.ranked(snap.book("csm1"), key) and len(ranking) == len(snap.book("csm1")) > 1
        assert snap.ranked_book("csm1", key) is ranking  # sorted once per snapshot
    assert snap.ranked_book("nobody", "churn_probability") == []


def _replace(path: Path, data: bytes) -> None:
    """Overwrite the file in place and move its mtime on, as a writer that does not rename would."""
    stat = path.stat()
    path.write_bytes(data)
    os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "no_account_id"])
def test_a_corrupt_file_keeps_the_previous_snapshot_serving_and_says_why(
    snapshot_path: Path, scorer: Scorer, frame: pd.DataFrame, damage: str
) -> None:
    live = LiveSnapshot(snapshot_path, scorer, precompute=False)
    before = live.current
    good = snapshot_path.read_bytes()
    if damage == "truncated":
        _replace(snapshot_path, good[: len(good) // 2])
    elif damage == "garbage":
        _replace(snapshot_path, b"not a parquet file at all")
    else:
        stat = snapshot_path.stat()
        frame.drop(columns=["account_id"]).to_parquet(snapshot_path)
        os.utime(snapshot_path, (stat.st_atime + 5, stat.st_mtime + 5))
    assert live.reload() is False
    assert live.current is before and len(live.current) == 120 and live.ready
    status = live.status()
    assert status["snapshot_as_of"] == "2024-06-30" and str(snapshot_path) in status["snapshot_rejected"]
    assert ("account_id" if damage == "no_account_id" else "cannot read Parquet") in status["snapshot_rejected"]
    assert live.reload() is False and live.current is before  # the same bad file is not loaded again
    _replace(snapshot_path, good)  # the writer finishes: the next check loads it
    assert live.reload() is True and live.status()["snapshot_rejected"] is None and live.current is not before


def _publish(path: Path, frame: pd.DataFrame, factor: float) -> None:
    """A new version of the snapshot file, renamed into place, with a later mtime."""
    stat = path.stat()
    tmp = path.with_suffix(".tmp")
    frame.drop(columns=["expanded", "churned"]).assign(whitespace_usd=frame["whitespace_usd"] * factor).to_parquet(tmp)
    os.replace(tmp, path)
    os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))


def test_a_change_noticed_by_itself_serves_only_with_every_reason_computed(
    snapshot_path: Path, scorer: Scorer, frame: pd.DataFrame
) -> None:
    live = LiveSnapshot(snapshot_path, scorer, check_seconds=0.0)
    first = live.current
    _publish(snapshot_path, frame, 1.01)
    assert live.reload(wait=False) is True  # in this thread: loaded, every reason computed, then swapped in
    assert live.current is not first and live.current.reasons_complete and live.pending is None
    second = live.current
    _publish(snapshot_path, frame, 1.02)
    assert live.get() is second  # the request that notices the change is answered at once, by the old snapshot
    deadline = time.monotonic() + 60
    while live.current is second and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live.current is not second and live.current.reasons_complete  # never seen without its reasons
    assert live.current.mtime == snapshot_path.stat().st_mtime


def test_refresh_serves_a_snapshot_still_being_prepared_at_once(
    snapshot_path: Path, scorer: Scorer, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = LiveSnapshot(snapshot_path, scorer, precompute=True)
    first, release = live.current, threading.Event()
    original = ScoredSnapshot.precompute_reasons

    def held(self: ScoredSnapshot, chunk: int = 1000) -> bool:
        release.wait(60)
        return original(self, chunk)

    monkeypatch.setattr(ScoredSnapshot, "precompute_reasons", held)
    _publish(snapshot_path, frame, 1.01)
    preparing = threading.Thread(target=live.reload, kwargs={"wait": False})
    preparing.start()
    deadline = time.monotonic() + 60
    while live.pending is None and time.monotonic() < deadline:
        time.sleep(0.01)
    pending = live.pending
    assert pending is not None and live.current is first
    assert live.reload() is True and live.current is pending and live.pending is None  # POST /refresh
    release.set()
    preparing.join(60)
    assert live.current is pending and pending.reasons_complete


def test_a_deleted_file_keeps_the_previous_snapshot(snapshot_path: Path, scorer: Scorer) -> None:
    live = LiveSnapshot(snapshot_path, scorer, precompute=False)
    snapshot_path.unlink()
    assert live.reload() is False and len(live.current) == 120
    assert "gone" in live.status()["snapshot_rejected"]


def test_starting_on_a_corrupt_file_is_not_ready_until_a_good_one_lands(
    snapshot_path: Path, scorer: Scorer
) -> None:
    good = snapshot_path.read_bytes()
    _replace(snapshot_path, good[:100])
    live = LiveSnapshot(snapshot_path, scorer, precompute=False)
    assert not live.ready and len(live.current) == 0 and live.status()["snapshot_rejected"]
    _replace(snapshot_path, good)
    assert live.reload() and live.ready and len(live.current) == 120


def test_read_newest_keeps_one_row_per_account_of_the_newest_date(snapshot_path: Path) -> None:
    newest = read_newest(snapshot_path)
    assert len(newest) == 120 and newest["as_of"].nunique() == 1 and newest["account_id"].is_unique
    assert isinstance(ScoredSnapshot.build(newest, Scorer()).as_of, str)
