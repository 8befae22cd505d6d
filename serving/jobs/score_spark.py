"""The score job on Spark: features read from a lake (or built there) -> scores -> sink; lake URIs stay URIs."""

from __future__ import annotations

import datetime as dt

from features.config import Settings
from serving.jobs.errors import InvalidInput, Say, quiet
from serving.jobs.score import ScoreRun, check_play_shares, choose_models, fallback_problem, open_target


def is_local(data: str) -> bool:
    """A plain folder or a ``file://`` URI: read here to check the contract before Spark reads it."""
    from features.io import is_uri

    return data.startswith("file://") or not is_uri(data)


def score_job_on_spark(settings: Settings, as_of: dt.date | None = None, *, data: str | None = None,
                       features_path: str | None = None, scores_out: str | None = None, sink: str | None = None,
                       models: str = "auto", field_map: dict[str, str] | None = None, replace_newer: bool = False,
                       chunk_size: int = 20_000, scored_at: dt.datetime | None = None, say: Say = quiet) -> ScoreRun:
    """``score --engine spark``: a local ``data`` folder is checked against the contract first.

    Without ``as_of`` the snapshot is the data end (the newest usage day) or the newest
    snapshot of ``features_path`` (``serving.scoring.spark_batch.score_on_spark``).
    """
    from serving.scoring.models import fail_fast_registry
    from serving.scoring.spark_batch import score_on_spark

    fail_fast_registry()
    if data is None and features_path is None:
        raise InvalidInput("give data (a folder or lake URI) or features_path (a feature frame)")
    check_play_shares(settings)
    scored_at = scored_at or dt.datetime.now(dt.UTC)
    target = open_target(settings, sink, field_map=field_map, replace_newer=replace_newer)
    try:
        if data is not None and is_local(data):
            _check_local(data.removeprefix("file://"), as_of)
        choice = choose_models(settings, models, quiet)  # the same rules as on DuckDB: no silent baseline
        summary = score_on_spark(settings, data, features_path, scores_out, target, as_of, scored_at, models, chunk_size,
                                 on_as_of=lambda day, why: say(f"score: as of {day} ({why})"))
    finally:
        target.close()
    return ScoreRun(summary, choice.note, problem=fallback_problem(choice))


def _check_local(folder: str, as_of: dt.date | None) -> None:
    from features.io import DataError, open_data

    try:
        source = open_data(folder)
    except DataError as exc:
        raise InvalidInput(str(exc)) from exc
    try:
        source.checked(as_of)
    except (DataError, ValueError) as exc:
        raise InvalidInput(str(exc)) from exc
    finally:
        source.close()

