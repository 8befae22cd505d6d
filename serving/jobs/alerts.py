"""The alerts jobs: a run on one snapshot, a dry run replayed over days, and each rule's track record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from features.config import Settings
from features.io import DataSource
from serving.jobs.as_of import as_of_day
from serving.jobs.errors import InvalidInput, Say, Undelivered, quiet


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def alerts_job(source: DataSource, settings: Settings, as_of: dt.date | None = None, *, dry_run: bool = False,
               features: pd.DataFrame | None = None, clock: Callable[[], dt.datetime] = _now,
               say: Say = quiet):  # noqa: ANN201 - serving.alerts.run.AlertRun, imported lazily
    """Decide, record and deliver the alerts of the snapshot at ``as_of`` (default: the data end).

    Raises InvalidInput for a bad rules or routing file, Undelivered when another run holds
    the lease. Messages that could not be delivered are in the result (``delivery_problem``).
    """
    from serving.alerts.routing import RoutingError
    from serving.alerts.rules import RuleError
    from serving.alerts.run import AlertBusy, AlertError, run_alerts

    day = as_of_day(source, as_of, "alerts", say)
    try:
        return run_alerts(source, day, settings, clock=clock, dry_run=dry_run, features=features)
    except (RuleError, RoutingError, AlertError) as exc:
        raise InvalidInput(str(exc)) from exc
    except AlertBusy as exc:
        raise Undelivered(str(exc)) from exc


def delivery_problem(run) -> Undelivered | None:  # noqa: ANN001 - serving.alerts.run.AlertRun
    """The error a run ends with when messages that were due were not delivered (kept or parked), else None."""
    d = run.delivery
    if d is None or not d.failed:
        return None
    return Undelivered(f"{len(d.kept) + len(d.parked):,} of {d.due:,} message(s) due were not delivered "
                       "(see kept/parked above)")


def alerts_simulation_job(source: DataSource, settings: Settings, as_of: dt.date | None, days: int, *,
                          say: Say = quiet):  # noqa: ANN201 - serving.alerts.run.Simulation
    """What daily runs over the ``days`` ending at ``as_of`` (default: the data end) would have sent; nothing written."""
    from serving.alerts.rules import RuleError
    from serving.alerts.run import simulate

    day = as_of_day(source, as_of, "alerts", say)
    try:
        return simulate(source, day, days, settings)
    except RuleError as exc:
        raise InvalidInput(str(exc)) from exc


@dataclass
class TrackRecord:
    """Each active rule's replayed record, why the others are inactive, and the rules (for the sending verdict)."""

    record: pd.DataFrame
    inactive: dict[str, str]
    rules: tuple


def alerts_backtest_job(source: DataSource, settings: Settings, *, clock: Callable[[], dt.datetime] = _now) -> TrackRecord:
    """Replay every rule over the month ends the data covers and store the track record the alerts read."""
    from serving.alerts.backtest import replay
    from features.conditions import thresholds
    from serving.alerts.rules import RuleError, load_rules
    from serving.alerts.run import open_store

    try:
        rules = load_rules(settings.alerts_rules, thresholds(settings))
        record, inactive = replay(source, settings)
    except RuleError as exc:
        raise InvalidInput(str(exc)) from exc
    store = open_store(settings)
    try:
        store.save_track_record(record, clock())
    finally:
        store.close()
    return TrackRecord(record, inactive, rules)
