"""The monthly job and its parts, one sequence shared by the CLI and the notebooks.

:func:`train_and_register` trains both models on a feature frame, registers and gates
each; :func:`retrain` is the whole monthly job on a data source: features at every
month end the data covers, backtest, refit and gate, then feature drift of the newest
snapshot against the labelled history, logged next to the training runs;
:func:`retrain_on_frame` is the same job on a feature frame built elsewhere (Spark), which
:func:`read_feature_frame` reads from a file, a partitioned folder or a lake URI.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.build import default_data_end, to_frame, usage_span
from features.config import Settings
from features.io import DataSource, require_tables
from features.labels import LABELS
from features.registry import categorical_features, feature_names
from features.snapshots import history_features
from features.spine import month_ends
from training.datasets import cut_at, newest_complete_month_end
from training.drift import feature_drift, importance_of
from training.gate import GateDecision, ShadowRecord, shadow_spent
from training.models import DEFAULT_ROUNDS
from training.monitoring_tracking import update_shadow
from training.registry import clean_abandoned, log_drift, register_and_gate
from training.train import ModelResult, train_all

log = logging.getLogger(__name__)


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
    frame: pd.DataFrame, settings: Settings, *, n_cutoffs: int | None = None, num_boost_round: int = DEFAULT_ROUNDS,
    shadows: dict[str, ShadowRecord] | None = None,
) -> dict[str, Registered]:
    """Backtest both models on ``frame``, register each refit model and gate it.

    ``shadows`` holds the shadow versions' realised months (``serving.jobs.monitoring``): the
    gate's evidence beside the pooled backtest. A rejected version becomes the shadow once the current one was judged.

    Raises ValueError (naming the column or window, or what history is missing) when the
    frame cannot be trained on.
    """
    for line in clean_abandoned(settings):  # a killed job's leftovers, before this job adds its own runs
        log.warning("cleaned up: %s", line)
    results = train_all(
        frame, feature_names(), categorical_features(), settings, n_cutoffs=n_cutoffs, num_boost_round=num_boost_round
    )
    registered = {}
    for name, result in results.items():
        record = (shadows or {}).get(name)
        version, decision = register_and_gate(result, settings, shadow=record)
        update_shadow(name, version, decision.promote, shadow_spent(record, settings), settings)
        registered[name] = Registered(result, version, decision)
    return registered


def monthly_snapshots(source: DataSource, as_of: dt.date | None = None) -> tuple[list[dt.date], dt.date]:
    """(every month end from the first usage day to the newest complete month, the data end).

    Without ``as_of`` the data is taken to be complete up to its last complete usage day (``features.data_end``).
    """
    require_tables(source)
    tables = source.tables()
    first = usage_span(tables)[0]
    data_end = as_of or default_data_end(tables)  # the last complete day: a partly loaded newest day is not trusted
    return month_ends(first, newest_complete_month_end(data_end)), data_end


def retrain(
    source: DataSource, as_of: dt.date | None, settings: Settings, *,
    n_cutoffs: int | None = None, num_boost_round: int = DEFAULT_ROUNDS, on_step: Callable[[str], None] | None = None,
    shadows: dict[str, ShadowRecord] | None = None,
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
    frame = history_features(source, dates, settings, data_end=data_end)  # its line on stderr
    return retrain_on_frame(frame, settings, data_end, n_cutoffs=n_cutoffs, num_boost_round=num_boost_round,
                            shadows=shadows)


def retrain_on_frame(
    frame: pd.DataFrame, settings: Settings, data_end: dt.date | None = None, *,
    n_cutoffs: int | None = None, num_boost_round: int = DEFAULT_ROUNDS, shadows: dict[str, ShadowRecord] | None = None,
) -> RetrainResult:
    """The monthly job on a built feature frame: backtest and refit both models, gate them, log the feature drift.

    ``data_end`` defaults to the frame's newest snapshot. Raises ValueError when the frame
    cannot be trained on.
    """
    if not len(frame):
        raise ValueError("feature frame: no rows to train on")
    registered = train_and_register(frame, settings, n_cutoffs=n_cutoffs, num_boost_round=num_boost_round, shadows=shadows)
    latest = frame[frame["as_of"] == frame["as_of"].max()]
    labelled = frame[frame["expanded"].notna()]  # the shipped models learn from every labelled month
    # weighted by what the expansion model reads, so only shifts that move its predictions are reported
    expansion = registered.get("expansion")
    importance = importance_of(expansion.result.model, latest) if expansion is not None and len(latest) else None
    drift = feature_drift(labelled, latest, feature_names(), categorical_features(), importance=importance)
    log_drift(drift, settings)
    end = data_end or pd.Timestamp(frame["as_of"].max()).date()
    return RetrainResult(frame, registered, drift, end)


def read_feature_frame(location: str | Path, settings: Settings, as_of: dt.date | None = None) -> pd.DataFrame:
    """A feature frame from a Parquet or CSV file, a folder of Parquet parts partitioned by ``as_of``, or a lake URI.

    ``file://`` URIs and local paths are read here; other URIs (``s3a://``, ``gs://``,
    ``abfss://``) are read by Spark, which holds the lake's credentials, and collected.
    With ``as_of`` the frame is cut as a job run that day would have seen it: snapshots up
    to ``as_of``, and labels only where their horizon ended by then (a frame built later
    knows outcomes after ``as_of``: replaying history with it would train on the future).
    Raises ValueError naming the location when it cannot be read or lacks the key columns.
    """
    text = str(location)
    if "://" in text and not text.startswith("file://"):
        frame = _read_on_spark(text, settings)
    else:
        frame = _read_local(Path(text.removeprefix("file://")))
    missing = [c for c in ("account_id", "as_of", "expanded", "churned") if c not in frame.columns]
    if missing:
        raise ValueError(f"feature frame {text}: missing column(s) {', '.join(missing)} (build it with `expansion features`)")
    frame = to_frame(frame).sort_values(["as_of", "account_id"], kind="stable", ignore_index=True)
    if as_of is not None:
        frame = cut_at(frame, pd.Timestamp(as_of), settings.horizon_days, LABELS).reset_index(drop=True)
    return frame


def _read_local(path: Path) -> pd.DataFrame:
    if path.is_dir():
        return pd.read_parquet(path)  # partition folders (as_of=YYYY-MM-DD) become the as_of column
    if not path.is_file():
        raise ValueError(f"feature frame {path} does not exist (a Parquet/CSV file, or a folder of Parquet parts)")
    if path.suffix == ".csv":
        return pd.read_csv(path)
    return pd.read_parquet(path)


def _read_on_spark(uri: str, settings: Settings) -> pd.DataFrame:
    from features.engines import spark_session

    session = spark_session(settings)
    try:
        spark_frame = session.read.parquet(uri)
    except Exception as exc:  # noqa: BLE001 - Spark raises its own analysis errors for a missing path
        raise ValueError(f"feature frame {uri}: cannot be read by Spark: {str(exc).splitlines()[0]}") from exc
    from pyspark.sql import functions as F

    return spark_frame.withColumn("as_of", F.to_date("as_of")).toPandas()
