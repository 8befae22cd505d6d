"""The monthly job and its parts, one sequence shared by the CLI and the notebooks.

:func:`train_and_register` trains both models on a feature frame, registers and gates
each; :func:`retrain` is the whole monthly job on a data source: features at every
month end the data covers, backtest, refit and gate, then feature drift of the newest
snapshot against the labelled history, logged next to the training runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from features.build import build_features, tables_from_backend, usage_span
from features.config import Settings
from features.io import DataSource, require_tables
from features.registry import categorical_features, feature_names
from features.spine import month_ends
from training.datasets import newest_complete_month_end
from training.drift import feature_drift
from training.gate import GateDecision
from training.models import DEFAULT_ROUNDS
from training.registry import log_drift, register_and_gate
from training.train import ModelResult, train_all


@dataclass
class Registered:
    """One model's pooled backtest and refit, the version it was registered as, and the gate's decision."""

    result: ModelResult
    version: str
    decision: GateDecision


@dataclass
class RetrainResult:
    """What one monthly job produced: the feature frame, each model's registration, the drift table."""

    frame: pd.DataFrame
    registered: dict[str, Registered]
    drift: pd.DataFrame
    data_end: dt.date

    @property
    def newest_snapshot(self) -> dt.date:
        """The snapshot the drift table compares with the labelled history."""
        return pd.Timestamp(self.frame["as_of"].max()).date()


def train_and_register(
    frame: pd.DataFrame, settings: Settings, *, n_cutoffs: int | None = None, num_boost_round: int = DEFAULT_ROUNDS
) -> dict[str, Registered]:
    """Backtest both models on ``frame``, register each refit model and gate it.

    Raises ValueError (naming the column or window, or what history is missing) when the
    frame cannot be trained on.
    """
    results = train_all(
        frame, feature_names(), categorical_features(), settings, n_cutoffs=n_cutoffs, num_boost_round=num_boost_round
    )
    registered = {}
    for name, result in results.items():
        version, decision = register_and_gate(result, settings)
        registered[name] = Registered(result, version, decision)
    return registered


def monthly_snapshots(source: DataSource, as_of: dt.date | None = None) -> tuple[list[dt.date], dt.date]:
    """(every month end from the first usage day to the newest complete month, the data end).

    Without ``as_of`` the data is taken to be complete up to its newest usage day.
    """
    require_tables(source)
    first, last = usage_span(tables_from_backend(source.ibis(), source.present))
    data_end = as_of or last
    return month_ends(first, newest_complete_month_end(data_end)), data_end


def retrain(
    source: DataSource, as_of: dt.date | None, settings: Settings, *,
    n_cutoffs: int | None = None, num_boost_round: int = DEFAULT_ROUNDS, on_step: Callable[[str], None] | None = None,
) -> RetrainResult:
    """The monthly job: features at every month end, backtest and refit both models, gate them, log the feature drift.

    ``on_step(message)`` hears the job's progress (the CLI prints it). Raises
    ``features.io.DataError`` for bad tables and ValueError when the frame cannot be trained on.
    """
    say = on_step or (lambda _message: None)
    dates, data_end = monthly_snapshots(source, as_of)
    if not dates:
        raise ValueError(f"no complete month end in the data up to {data_end}: nothing to train on")
    say(f"building features for {len(dates)} month ends {dates[0]} .. {dates[-1]}")
    frame = build_features(source, dates, settings, data_end=data_end)
    registered = train_and_register(frame, settings, n_cutoffs=n_cutoffs, num_boost_round=num_boost_round)
    latest = frame[frame["as_of"] == frame["as_of"].max()]
    labelled = frame[frame["expanded"].notna()]  # the shipped models learn from every labelled month
    drift = feature_drift(labelled, latest, feature_names(), categorical_features())
    log_drift(drift, settings)
    return RetrainResult(frame, registered, drift, data_end)
