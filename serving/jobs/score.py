"""The score job: every account active at the as-of -> features -> scorer -> sink, one all-or-nothing run.

``score_job`` is one call a notebook or the CLI makes: a source, settings, an as-of (default:
the data end) and typed options; it returns a :class:`ScoreRun` and says what it does
through ``say``. The write step (:func:`write_step`) is its own function: whatever else a
run writes (history, a shadow) hangs off it. It holds eligible accounts out of plays
(:mod:`features.play_assignment`) and stores the new assignments once the scores are written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from features.config import Settings
from features.io import DataSource
from features.nightly import nightly_note
from serving.jobs.as_of import checked_day
from serving.jobs.errors import InvalidInput, JobError, RegistryError, Say, quiet
from training.names import MODEL_NAMES

#: ``on_progress(accounts scored so far, accounts to score)``, after each chunk.
Progress = Callable[[int, int], None]


@dataclass
class ScoreRun:
    """What a score run did: the batch summary, the models' note, and what followed it."""

    summary: Any  # serving.scoring.batch.BatchSummary
    models_note: str
    shadow_note: str | None = None
    alerts: Any = None  # serving.alerts.run.AlertRun when the alerts ran on the snapshot just scored
    #: the error the run ends with although its scores were written (a fallback model, an undelivered alert)
    problem: JobError | None = None


def open_target(settings: Settings, sink: str | None, *, field_map: dict[str, str] | None = None,
                replace_newer: bool = False):  # noqa: ANN201 - serving.sinks.Sink
    """The sink the run writes to (default: the CRM database under home), each run's history also written into the
    product store the pages, the API and the monitor read (``serving.sinks.history``); InvalidInput for a bad URI or
    field map."""
    from serving.sinks import open_sink
    from serving.sinks.history import with_history
    from serving.store import state_store

    try:
        target = open_sink(sink or settings.crm_uri, settings, field_map=field_map, replace_newer=replace_newer)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    try:
        return with_history(target, state_store(settings))
    except ValueError as exc:
        target.close()
        raise InvalidInput(f"EXPANSION_STORE_URI: {exc}") from exc


def choose_models(settings: Settings, models: str, say: Say):  # noqa: ANN201 - serving.scoring.models.ModelChoice
    """The models to score with; RegistryError rather than a silent baseline while deployed models exist."""
    from serving.scoring.models import load_models

    choice = load_models(settings, models)
    say(f"models: {choice.note}")
    if choice.baseline_over_deployed:
        raise RegistryError(f"refusing to score with the baseline while deployed models exist ({choice.note}); check "
                            "MLFLOW_TRACKING_URI and the home, or pass --models none to score with the baseline on purpose")
    return choice


def fallback_problem(choice) -> RegistryError | None:  # noqa: ANN001 - serving.scoring.models.ModelChoice
    if choice.registry_unreachable:
        return RegistryError(f"scored with a fallback because the registry could not be asked: {choice.note}")
    return None


def score_job(source: DataSource, settings: Settings, as_of: dt.date | None = None, *, sink: str | None = None,
              models: str = "auto", field_map: dict[str, str] | None = None, replace_newer: bool = False,
              chunk_size: int = 20_000, scored_at: dt.datetime | None = None, on_progress: Progress | None = None,
              say: Say = quiet) -> ScoreRun:
    """Check the data, score every account active at ``as_of`` into ``sink`` and, when set, alert on the snapshot.

    Raises InvalidInput (bad data, sink or sink schema) or RegistryError (baseline over
    deployed models) before anything is written; a run that wrote its scores but used a
    fallback, or whose alerts failed, carries that error in ``problem``.
    """
    from serving.scoring.models import fail_fast_registry

    fail_fast_registry()  # a registry that is down: the fallback and the note in seconds, not minutes of retries
    scored_at = scored_at or dt.datetime.now(dt.UTC)
    target = open_target(settings, sink, field_map=field_map, replace_newer=replace_newer)
    try:
        day = checked_day(source, as_of, "score", say)
        features = _snapshot(source, day, settings)
        choice = choose_models(settings, models, say)
        say(nightly_note(day))  # why the snapshot is built afresh, not rolled from yesterday's
        summary = write_step(features, choice, settings, target, day, scored_at, chunk_size, on_progress)
        # the shadow comes from the registry: not asked when it could not be reached (nor recreated empty)
        shadow = (score_shadow(features, settings, summary)
                  if models != "none" and not choice.registry_unreachable else None)
    finally:
        target.close()
    if shadow:
        say(shadow)
    run = ScoreRun(summary, choice.note, shadow)
    if settings.alerts_on_score:  # the alerts hook: alert on the snapshot just scored
        from serving.jobs.alerts import alerts_job, delivery_problem

        try:
            run.alerts = alerts_job(source, settings, day, features=features)
            run.problem = delivery_problem(run.alerts)
        except JobError as exc:
            run.problem = exc
    run.problem = run.problem or fallback_problem(choice)
    return run


def _snapshot(source: DataSource, day: dt.date, settings: Settings) -> pd.DataFrame:
    from serving.scoring.batch import snapshot_features

    return snapshot_features(source, day, settings)


def check_play_shares(settings: Settings) -> None:
    """InvalidInput when a per-play holdout share names no play: refused before anything is read or drawn."""
    from features.play_assignment import check_shares

    try:
        check_shares(settings.play_holdout_shares)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc


def write_step(features: pd.DataFrame, choice, settings: Settings, target, day: dt.date,  # noqa: ANN001
               scored_at: dt.datetime, chunk_size: int, on_progress: Progress | None = None):  # noqa: ANN201
    """Score the snapshot chunk by chunk into ``target`` as one run (a BatchSummary); InvalidInput when the sink's
    schema refuses it. ``on_progress(done, total)`` hears each chunk."""
    from serving.scoring.batch import score_snapshot
    from serving.scoring.models import scorer_for
    from serving.sinks.sql import SinkSchemaError

    on_chunk, done, total = None, 0, len(features)
    if on_progress is not None:
        def on_chunk(n: int) -> None:
            nonlocal done
            done += n
            on_progress(done, total)
    from features.play_assignment import Assigner
    from serving.store.plays import PlayStore

    check_play_shares(settings)
    plays = PlayStore(settings)  # the play assignments live in the product store, beside the play log
    try:
        assigner = Assigner.for_run(day, settings, plays.covering(day))
        summary = score_snapshot(features, scorer_for(choice, settings).with_assigner(assigner), target, day,
                                 scored_at, chunk_size=chunk_size, on_chunk=on_chunk)
        plays.save(assigner.new, scored_at)  # only once the scores are written: a failed run draws nothing
        return summary
    except SinkSchemaError as exc:
        raise InvalidInput(str(exc)) from exc
    finally:
        plays.close()


def score_shadow(features: pd.DataFrame, settings: Settings, summary) -> str | None:  # noqa: ANN001
    """The shadow challenger beside the champion, stored under the run's id in the product store; what happened, in words."""
    try:
        from training.monitoring_tracking import shadow_model

        shadows = {name: m for name in MODEL_NAMES if (m := shadow_model(name, settings)) is not None}
    except Exception as exc:  # noqa: BLE001 - the run's scores stand without the shadow's
        return f"shadow: not scored, the registry could not be read ({type(exc).__name__})"
    if not shadows:
        return None
    from serving.scoring.batch import shadow_scores
    from serving.store.monitoring import MonitoringStore

    store = MonitoringStore(settings)
    try:
        written = store.write_shadow(shadow_scores(features, shadows, summary.run_id, summary.as_of))
    finally:
        store.close()
    return (f"shadow: {', '.join(f'{n} v{m.version}' for n, m in shadows.items())} scored beside the champion "
            f"({written:,} rows, not shown to CSMs)")
