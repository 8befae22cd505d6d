"""Batch scoring: every account active at the snapshot -> features -> Scorer -> sink, in chunks.

The job streams: features are cut into chunks, each chunk is scored (reasons
included) and handed to the sink, which stages it and publishes the whole run at the
end, all or nothing. Only one chunk of scores is in memory at a time, plus a small
frame of the previous run's scores (the newest run on an older snapshot: score, band,
churn probability, concept contributions), read from the sink before anything is written,
from which the scorer says what changed per account (``readiness_change``,
``change_reason``) and the summary lists the top movers.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Protocol

import pandas as pd

from features.config import Settings
from features.io import DataSource
from serving.sinks import Sink
from serving.sinks.rows import RunInfo, model_run_ids_of, model_versions_of

DEFAULT_CHUNK_SIZE = 20_000
MOVER_COLUMNS = ["account_id", "previous_score", "readiness_score", "change", "previous_band", "readiness_band",
                 "churn_risk_change", "change_reason"]

ProgressCallback = Callable[[int], None]


class ChunkScorer(Protocol):
    """What the job needs from the scorer (``serving.scoring.scorer.Scorer``)."""

    def score(self, frame: pd.DataFrame, with_reasons: bool = True) -> pd.DataFrame: ...

    def with_reference(self, frame: pd.DataFrame) -> ChunkScorer: ...

    def with_previous(self, previous: pd.DataFrame | None) -> ChunkScorer: ...


@dataclass
class BatchSummary:
    """What a run wrote: counts by band and health, and the accounts whose readiness moved most."""

    run_id: str
    as_of: dt.date
    sink: str
    accounts: int
    readiness_bands: dict[str, int]
    health: dict[str, int]
    new_accounts: int
    dropped_accounts: int
    top_movers: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MOVER_COLUMNS))
    #: The snapshot date of newer current scores the sink kept (history written, current scores untouched).
    kept_newer: dt.date | None = None


class _Tally:
    """Counts bands and keeps the top movers against the previous run, one chunk at a time."""

    def __init__(self, previous: pd.DataFrame | None, top_n: int) -> None:
        self.top_n = top_n
        self.bands: Counter[str] = Counter()
        self.health: Counter[str] = Counter()
        self.accounts = self.matched = 0
        self.movers = pd.DataFrame(columns=MOVER_COLUMNS)
        self.previous = None
        if previous is not None and len(previous):
            prev = previous.rename(columns={"readiness_score": "previous_score", "readiness_band": "previous_band"})
            self.previous = prev.set_index(prev["account_id"].astype("string"))[["previous_score", "previous_band"]]

    def add(self, scores: pd.DataFrame) -> None:
        self.accounts += len(scores)
        self.bands.update(scores["readiness_band"].dropna().astype(str))
        self.health.update(scores["health"].dropna().astype(str))
        if self.previous is None or not len(scores):
            return
        current = scores[["account_id", "readiness_score", "readiness_band"]].copy()
        current["account_id"] = current["account_id"].astype("string")
        joined = current.join(self.previous, on="account_id", how="inner")
        self.matched += len(joined)
        joined["change"] = joined["readiness_score"] - joined["previous_score"]
        for column in ("churn_risk_change", "change_reason"):  # what the scorer says moved, when it was told the run
            joined[column] = scores.loc[joined.index, column].to_numpy() if column in scores.columns else None
        joined = joined[joined["change"].abs() > 0]  # an unchanged account is not a mover
        candidates = pd.concat([self.movers, joined[MOVER_COLUMNS]], ignore_index=True) if len(self.movers) else joined
        order = candidates["change"].abs().sort_values(ascending=False, kind="stable").index[: self.top_n]
        self.movers = candidates.loc[order, MOVER_COLUMNS].reset_index(drop=True)

    def summary(self, run: RunInfo, sink: str) -> BatchSummary:
        previous_count = 0 if self.previous is None else len(self.previous)
        return BatchSummary(
            run_id=run.run_id,
            as_of=run.as_of,
            sink=sink,
            accounts=self.accounts,
            readiness_bands=dict(sorted(self.bands.items())),
            health=dict(sorted(self.health.items())),
            new_accounts=self.accounts - self.matched,
            dropped_accounts=previous_count - self.matched,
            top_movers=self.movers,
        )


def write_scores(
    score_chunks: Iterable[pd.DataFrame],
    sink: Sink,
    as_of: dt.date,
    scored_at: dt.datetime,
    *,
    on_chunk: ProgressCallback | None = None,
    top_movers: int = 10,
    previous: pd.DataFrame | None = None,
) -> BatchSummary:
    """Write chunks of scorer output to ``sink`` as one run, all or nothing, and summarise it.

    The model versions (hence the deterministic run id) come from the first chunk.
    Any exception raised while producing a chunk propagates after the sink has rolled back.
    Top movers are measured against ``previous`` (default: the sink's run before ``as_of``).
    """
    if previous is None:
        previous = sink.previous_scores(before=as_of)
    tally = _Tally(previous, top_movers)
    chunks = iter(score_chunks)
    first = next(chunks, None)
    run = RunInfo(as_of=as_of, scored_at=scored_at, model_versions=model_versions_of(first) if first is not None else {},
                  model_run_ids=model_run_ids_of(first) if first is not None else {})

    def observed() -> Iterator[pd.DataFrame]:
        for chunk in chain([] if first is None else [first], chunks):
            tally.add(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
            yield chunk

    sink.write(run, observed())
    summary = tally.summary(run, sink.uri)
    summary.kept_newer = getattr(sink, "kept_newer", None)
    return summary


def split(frame: pd.DataFrame, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Consecutive row slices of at most ``chunk_size`` rows."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    for start in range(0, len(frame), chunk_size):
        yield frame.iloc[start : start + chunk_size]


def score_in_chunks(features: Iterable[pd.DataFrame], scorer: ChunkScorer) -> Iterator[pd.DataFrame]:
    """Score each feature chunk with reasons; lazily, so only one chunk of scores exists at a time."""
    for chunk in features:
        yield scorer.score(chunk, with_reasons=True)


def snapshot_features(source: DataSource, as_of: dt.date, settings: Settings) -> pd.DataFrame:
    """Features of every account active (MRR > 0) at ``as_of``: the scoring spine, one row per account."""
    from features.build import build_features

    frame = build_features(source, [as_of], settings)
    return frame[pd.to_datetime(frame["as_of"]) == pd.Timestamp(as_of)].reset_index(drop=True)


def score_snapshot(
    features: pd.DataFrame,
    scorer: ChunkScorer,
    sink: Sink,
    as_of: dt.date,
    scored_at: dt.datetime,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_chunk: ProgressCallback | None = None,
) -> BatchSummary:
    """Score one snapshot's feature frame chunk by chunk into ``sink`` as one all-or-nothing run.

    Readiness is a percentile within the whole book, so the scorer is first referenced
    against all of ``features`` (a plain predict); each chunk then scores the same as
    it would in one piece.
    """
    previous = sink.previous_scores(before=as_of)
    referenced = scorer.with_reference(features).with_previous(previous)
    return write_scores(score_in_chunks(split(features, chunk_size), referenced), sink, as_of, scored_at,
                        on_chunk=on_chunk, previous=previous)


def shadow_scores(features: pd.DataFrame, shadows: dict[str, object], run_id: str, as_of: dt.date) -> pd.DataFrame:
    """Each shadow model's probability for every account of ``features``, keyed to the champion's run."""
    parts = []
    for name, model in shadows.items():
        probability = model.predict_proba(features)  # type: ignore[attr-defined]
        parts.append(pd.DataFrame({"account_id": features["account_id"].astype("string").to_numpy(), "run_id": run_id,
                                   "model_name": name, "as_of": pd.Timestamp(as_of),
                                   "version": str(model.version), "probability": probability}))  # type: ignore[attr-defined]
    columns = ["account_id", "run_id", "model_name", "as_of", "version", "probability"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
