"""Batch scoring inside Spark: the service's Scorer in ``mapInPandas``, models broadcast once.

The scorer (champion models, baseline, reasons) is broadcast, so each executor
deserialises it once and reuses it for every batch of every task. Readiness is a
percentile within the whole book and reasons compare an account with the book's
medians, so the scorer is first referenced on the driver with ``Scorer.with_reference``
over the model columns of the snapshot (a plain predict); executors then score every
account with reasons, in parallel, against that one reference.

Scores are written as Parquet by Spark (partitioned by ``as_of``) and, through the
same sinks as the in-process job (``serving.scoring.batch.write_scores``), into the CRM table,
streamed to the driver one chunk at a time. pyspark is only imported by the callers of
this module, which receive Spark frames.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from serving.scoring.batch import (
    DEFAULT_CHUNK_SIZE,
    BatchSummary,
    ProgressCallback,
    write_scores,
)
from serving.scoring.score_schema import SCORE_COLUMNS, SCORE_SCHEMA
from serving.scoring.scorer import Scorer
from serving.sinks import Sink

if TYPE_CHECKING:  # pragma: no cover - pyspark is an optional extra
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

REASON_STRUCT = "struct<text:string,feature:string,effect:string,contribution:double,concept:string,comparison:string,side:string>"
# The Spark type of each kind of score field (serving.scoring.score_schema.SCORE_SCHEMA).
SPARK_KINDS: dict[str, str] = {
    "id": "string", "date": "string", "band": "string", "health": "string", "text": "string", "version": "string",
    "run_id": "string",
    "probability": "double", "points": "double", "money": "double", "flag": "boolean", "change": "double",
    "json": "string",
    "reason_texts": "array<string>", "reason_details": f"array<{REASON_STRUCT}>",
}
SCORE_TYPES: dict[str, str] = {f.name: SPARK_KINDS[f.kind] for f in SCORE_SCHEMA}


def score_schema() -> str:
    """The Spark DDL schema of scorer output, one field per :data:`serving.scoring.score_schema.SCORE_SCHEMA` entry."""
    return ", ".join(f"{name} {kind}" for name, kind in SCORE_TYPES.items())


def _spark_ready(scores: pd.DataFrame) -> pd.DataFrame:
    """Scorer output in the types Arrow needs for :func:`score_schema`."""
    out = scores[list(SCORE_COLUMNS)].copy()
    for name, kind in SCORE_TYPES.items():
        if kind == "double":
            out[name] = pd.to_numeric(out[name], errors="coerce").astype("float64")
        elif kind == "string":
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    out["model_available"] = out["model_available"].astype(bool)
    return out


def reference_scorer(features: SparkFrame, scorer: Scorer) -> Scorer:
    """``scorer`` referenced against every row of ``features``, by ``Scorer.with_reference`` itself.

    Only the columns the models read come to the driver (about 0.5 kB per account), so
    the reference is exactly the in-process one whatever the scorer measures in it.
    """
    models = [m for m in (scorer.expansion, scorer.churn) if m is not None]
    wanted = dict.fromkeys(["account_id", "as_of", *(f for m in models for f in m.feature_names)])
    columns = [c for c in wanted if c in features.columns]
    return scorer.with_reference(features.select(*columns).toPandas())


def score_frame(features: SparkFrame, scorer: Scorer, session: SparkSession) -> SparkFrame:
    """Lazily score every row of ``features`` with ``scorer`` (already referenced); ``as_of`` becomes a date."""
    from pyspark.sql import functions as F

    shared = session.sparkContext.broadcast(scorer)

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield _spark_ready(shared.value.score(batch, with_reasons=True))

    scored = features.mapInPandas(score, score_schema())
    return scored.withColumn("as_of", F.to_date("as_of"))


def snapshot(features: SparkFrame, as_of: dt.date) -> SparkFrame:
    """The rows of one snapshot of a feature frame (``as_of`` a date or timestamp column)."""
    from pyspark.sql import functions as F

    if "as_of" not in features.columns or "account_id" not in features.columns:
        raise ValueError("feature frame: columns account_id and as_of are required to score")
    return features.filter(F.to_date("as_of") == F.lit(as_of))


def _plain(value: Any) -> Any:
    """Spark Rows (reason details) as dicts, lists as lists, so that sinks see what the Scorer returns."""
    if hasattr(value, "asDict"):
        return value.asDict(recursive=True)
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value


def local_chunks(scores: SparkFrame, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[pd.DataFrame]:
    """Scores streamed to the driver in pandas chunks of at most ``chunk_size`` rows (one partition at a time)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    rows: list[dict[str, Any]] = []
    for row in scores.toLocalIterator(prefetchPartitions=True):
        rows.append({k: _plain(v) for k, v in row.asDict().items()})
        if len(rows) == chunk_size:
            yield _chunk(rows)
            rows = []
    if rows:
        yield _chunk(rows)


def _chunk(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(SCORE_COLUMNS))
    frame["as_of"] = [None if d is None else d.isoformat() for d in frame["as_of"]]
    return frame


def follow_draws(chunks: Iterator[pd.DataFrame], assigner: Any) -> Iterator[pd.DataFrame]:
    """``chunks`` unchanged, each row's draws repeated on ``assigner`` (``features.play_assignment.Assigner``).

    The recommender asked the assigner about every play it passed over (each now in the row's
    ``control_group_plays``) and about the play it recommended, in that order; asking again draws
    the same answer and records the assignments that are new at this run.
    """
    for chunk in chunks:
        for account, held, play in zip(chunk["account_id"], chunk["control_group_plays"], chunk["recommended_play"],
                                       strict=True):
            for name in (*(held.split(", ") if isinstance(held, str) and held else ()), play):
                if isinstance(name, str) and name:
                    assigner.held_out(str(account), name)
        yield chunk


def score_snapshot_spark(
    features: SparkFrame,
    scorer: Scorer,
    session: SparkSession,
    as_of: dt.date,
    scored_at: dt.datetime,
    *,
    sink: Sink | None = None,
    parquet_path: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_chunk: ProgressCallback | None = None,
) -> BatchSummary | None:
    """Score the ``as_of`` snapshot of ``features`` in Spark into Parquet and/or a CRM sink.

    Scores are persisted once so that the Parquet files and the sink get the same rows
    without scoring twice. Returns the sink's run summary (None without a sink).
    A scorer with an assigner (``Scorer.with_assigner``) holds accounts out of plays on the executors; the draws
    are a pure hash, so the driver's assigner repeats each one from the rows it writes (:func:`follow_draws`):
    its ``new`` then holds exactly the executors' new assignments, for the caller to store.
    """
    from pyspark import StorageLevel

    from features.engines import write_partitioned

    if sink is None and parquet_path is None:
        raise ValueError("spark scoring: give a sink, a Parquet path, or both")
    rows = snapshot(features, as_of)
    previous = sink.previous_scores(before=as_of) if sink is not None else None
    referenced = reference_scorer(rows, scorer).with_previous(previous)
    scores = score_frame(rows, referenced, session).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        if parquet_path is not None:
            write_partitioned(scores, parquet_path)
        if sink is None:
            return None
        chunks = local_chunks(scores, chunk_size)
        if scorer.assigner_ is not None:
            chunks = follow_draws(chunks, scorer.assigner_)
        return write_scores(chunks, sink, as_of, scored_at, on_chunk=on_chunk, previous=previous)
    finally:
        scores.unpersist()


def score_on_spark(
    settings: Any,
    data: str | None,
    features_path: str | None,
    scores_out: str | None,
    sink: Sink,
    as_of: dt.date | None,
    scored_at: dt.datetime,
    model_source: str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_as_of: Callable[[dt.date, str], None] | None = None,
) -> BatchSummary:
    """The ``score --engine spark`` job: features (read from ``features_path`` or built from ``data``) -> scores -> sink.

    ``data``, ``features_path`` and ``scores_out`` are folders or lake URIs (``s3a://``,
    ``gs://``, ``abfss://``, ``file://``), handed to Spark as given. Without ``as_of`` the
    snapshot is the data end (the newest usage day), or the newest snapshot of
    ``features_path``; ``on_as_of(date, why)`` hears which.
    """
    from features.build import usage_span
    from features.engines import open_engine, spark_feature_frame, spark_session
    from features.play_assignment import Assigner
    from serving.scoring.models import load_scorer
    from serving.store.plays import PlayStore

    session = spark_session(settings)
    release = None
    engine = None
    if features_path is not None:
        features = session.read.parquet(features_path)
    else:
        engine = open_engine("spark", settings, data=data)
    if as_of is None:
        if engine is not None:
            as_of, why = usage_span(engine.tables)[1], "the data end: the newest usage_daily day"
        else:
            as_of, why = newest_snapshot(features), f"the newest snapshot in {features_path}"
    else:
        why = "--as-of"
    if on_as_of is not None:
        on_as_of(as_of, why)
    if engine is not None:
        features, release = spark_feature_frame(engine, [as_of], settings)
    plays = PlayStore(settings)  # the play assignments, as the in-process batch draws and follows them
    try:
        assigner = Assigner.for_run(as_of, settings, plays.covering(as_of))
        summary = score_snapshot_spark(
            features, load_scorer(settings, model_source).with_assigner(assigner), session, as_of, scored_at,
            sink=sink, parquet_path=scores_out, chunk_size=chunk_size,
        )
        plays.save(assigner.new, scored_at)  # only once the scores are written: a failed run draws nothing
    finally:
        plays.close()
        if release is not None:
            release()
    assert summary is not None  # a sink was given
    return summary


def newest_snapshot(features: SparkFrame) -> dt.date:
    """The newest ``as_of`` of a feature frame (a date, timestamp or partition-text column)."""
    from pyspark.sql import functions as F

    if "as_of" not in features.columns:
        raise ValueError("feature frame: column as_of is required to score")
    newest = features.agg(F.max(F.to_date("as_of")).alias("as_of")).first()["as_of"]
    if newest is None:
        raise ValueError("feature frame: no rows, so no snapshot to score")
    return newest
