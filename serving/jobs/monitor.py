"""The monitor job: every past score run whose horizon passed, checked against what happened; alarms sent once.

``monitor_job`` is the ``expansion monitor`` command's one call; ``monitor_after_retrain`` and
``shadow_records_for`` are the monthly job's (``expansion retrain``) calls into the same record,
which never fail the retrain (they say what went wrong instead). The measuring itself is
:mod:`serving.jobs.monitoring`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from features.config import Settings
from features.io import DataSource
from serving.jobs.as_of import as_of_day
from serving.jobs.errors import InvalidInput, Say, quiet
from training.names import MODEL_NAMES


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class MonitorRun:
    """The measured record (``serving.jobs.monitoring.MonitorResult``), the data end it ran to, what was sent."""

    result: object
    data_end: dt.date
    sent: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def monitor_job(source: DataSource, settings: Settings, as_of: dt.date | None = None, *, sink: str | None = None,
                log_mlflow: bool = True, clock: Callable[[], dt.datetime] = _now, say: Say = quiet) -> MonitorRun:
    """Measure champion, shadow and baseline of both models on every scored month whose horizon passed by ``as_of``
    (default: the data end); store the record beside the score history (``sink``, default the product store), log
    it, send alarms.

    Raises InvalidInput when nothing can be measured yet (no score run whose horizon has passed).
    """
    from serving.jobs.monitoring import monitor, send_alarms
    from serving.store.monitoring import MonitoringStore
    now = clock()
    store = MonitoringStore(sink or settings)
    try:
        end = as_of_day(source, as_of, "monitor", say)
        result = monitor(store, source, settings, end, now, promises_or_none(settings, say))
        for note in result.notes:
            say(f"monitor: {note}")
        if len(result.track) and log_mlflow:
            from training.monitoring_tracking import log_monitoring

            log_monitoring(result.track, settings, store.read_track())
        sent, problems = send_alarms(result.alarms, store, settings, now)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    finally:
        store.close()
    if not result.months:
        waiting = (f" ({len(result.waiting)} scored month(s) still inside their horizon: {', '.join(result.waiting)})"
                   if result.waiting else "")
        raise InvalidInput(f"monitor: no score run whose {settings.horizon_days}-day horizon has passed by {end}{waiting}; "
                           "run `expansion score` monthly and come back once a horizon has passed")
    return MonitorRun(result, end, sent, problems)


def shadow_records_for(source: DataSource, settings: Settings, end: dt.date, say: Say = quiet) -> dict:
    """For the monthly job: the shadow versions' realised months, or none (said) when they cannot be read."""
    try:
        from serving.jobs.monitoring import shadow_records
        from serving.store.monitoring import MonitoringStore
        from training.monitoring_tracking import shadow_version

        versions = {n: v for n in MODEL_NAMES if (v := shadow_version(n, settings)) is not None}
        if not versions:
            return {}
        store = MonitoringStore(settings)
        try:
            records = shadow_records(store, source, settings, end, versions)
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - the gate then decides on the pooled backtest alone, and says so
        say(f"retrain: the shadow's realised months could not be read ({type(exc).__name__}: {exc}); "
            "the gate decides on the pooled backtest alone")
        return {}
    for name, record in records.items():
        say(f"retrain: shadow {name} v{record.version}: {len(record.rows):,} realised account-months, "
            f"{int(record.rows['outcome'].sum()) if len(record.rows) else 0} positives")
    return records


def monitor_after_retrain(source: DataSource, settings: Settings, end: dt.date, *,
                          clock: Callable[[], dt.datetime] = _now, say: Say = quiet) -> None:
    """The monthly job also checks past score runs; a failure here is said and does not fail the job."""
    from serving.jobs.monitoring import monitor, send_alarms
    from serving.store.monitoring import MonitoringStore

    store = MonitoringStore(settings)
    try:
        now = clock()
        result = monitor(store, source, settings, end, now, promises_or_none(settings, say))
        for note in result.notes:
            say(f"monitor: {note}")
        if len(result.track):
            from training.monitoring_tracking import log_monitoring

            log_monitoring(result.track, settings, store.read_track())
        sent, problems = send_alarms(result.alarms, store, settings, now)
        say(f"monitor: {len(result.months)} scored month(s) checked against what happened, "
            f"{len(result.alarms)} alarm(s), {len(sent)} sent")
        for problem in problems:
            say(f"monitor: {problem}")
    except Exception as exc:  # noqa: BLE001 - the retrain's result stands; the monitor is said to have failed
        say(f"monitor: not run ({type(exc).__name__}: {exc})")
    finally:
        store.close()


def promises_or_none(settings: Settings, say: Say = quiet) -> dict:
    """The backtest's promise per model and version; an unreachable registry is said, not fatal."""
    try:
        from training.monitoring_tracking import promises

        return {name: promises(settings, name) for name in MODEL_NAMES}
    except Exception as exc:  # noqa: BLE001 - the record stands without the promise line
        say(f"monitor: the registry could not be read ({type(exc).__name__}); no backtest promise shown")
        return {}
