"""The newest feature snapshot the service looks accounts up in, scored once per load.

The feature pipeline writes a Parquet feature frame (``expansion features --out``);
the service keeps only its newest ``as_of`` rows and scores them once without reasons
(a vectorised predict). Reasons are then computed for every account in the background,
a chunk at a time (:meth:`ScoredSnapshot.precompute_reasons`), so the first request for
an account costs what the second does; until that is done, an account not yet explained
gets its reasons on demand and cached. Each account's HTTP answer is stored as JSON with its
reasons (:meth:`ScoredSnapshot.answers`), so a batch answer is a join of stored bytes, and a
CSM's book is ranked once per key. :class:`serving.api.live_snapshot.LiveSnapshot` swaps
in a fresh :class:`ScoredSnapshot` atomically, so requests never see a half-loaded book.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Mapping
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.api.feature_checks import FeatureRule, check_features, json_value
from serving.api.schemas import AccountInput, ItemError, account_json, check_size
from serving.scoring.scorer import Scorer

#: The previous run's scores for a snapshot date (the newest CRM run on an older snapshot), or None.
PreviousRun = Callable[[dt.date], "pd.DataFrame | None"]
#: ``holdouts(as_of)``: the play assignments in force at the snapshot (``features.play_assignment.Assigner``) or None.
Holdouts = Callable[[dt.date], Any]
log = logging.getLogger(__name__)


class SnapshotError(Exception):
    """Raised when the snapshot file cannot be read as a feature frame."""


class NotInSnapshot(LookupError):
    """The accounts a request selects are not in the snapshot: the field at fault, why, and per-item errors."""

    def __init__(self, field: str, message: str, errors: list[ItemError] | None = None) -> None:
        super().__init__(message)
        self.field, self.message, self.errors = field, message, errors or []


def read_newest(path: Path) -> pd.DataFrame:
    """The rows of the newest ``as_of`` in a feature-frame Parquet file, one per account."""
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"feature snapshot {path}: cannot read Parquet: {exc}") from exc
    for column in ("account_id", "as_of"):
        if column not in frame.columns:
            raise SnapshotError(f"feature snapshot {path}: column {column} is required")
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    newest = frame[frame["as_of"] == frame["as_of"].max()]
    newest = newest.assign(account_id=newest["account_id"].astype(str))
    return newest.drop_duplicates("account_id", keep="last").reset_index(drop=True)


@dataclass
class ScoredSnapshot:
    """One loaded snapshot: features and scores by account_id, plus a reasons cache."""

    features: pd.DataFrame
    scores: pd.DataFrame
    scorer: Scorer
    as_of: str | None
    path: Path | None
    mtime: float | None
    _records: dict[str, dict[str, Any]] = field(default_factory=dict)
    _reasons: dict[str, dict[str, Any]] = field(default_factory=dict)
    _answers: dict[str, bytes] = field(default_factory=dict)  # AccountScore JSON with reasons, built with them
    _plain: dict[str, bytes] = field(default_factory=dict)  # AccountScore JSON without reasons, built when asked
    _rankings: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _books: dict[str, list[str]] | None = None
    reasons_complete: bool = False

    @classmethod
    def build(cls, features: pd.DataFrame, scorer: Scorer, path: Path | None = None, mtime: float | None = None,
              previous: PreviousRun | None = None, holdouts: Holdouts | None = None) -> ScoredSnapshot:
        """Score a snapshot frame (no reasons yet) with ``scorer`` measured against this same book.

        ``previous(as_of)`` gives the previous run's scores (from the CRM history) so that every
        answer says what changed since then; None, or an error reading it, means no previous run.
        ``holdouts(as_of)`` gives the play assignments in force (``features.play_assignment.Assigner``):
        an account held out of a play is never recommended it here either.
        """
        features = features.reset_index(drop=True)
        if len(features):
            scorer = scorer.with_reference(features)
            if "as_of" in features.columns:
                day = pd.to_datetime(features["as_of"]).max().date()
                if previous is not None:
                    scorer = scorer.with_previous(_previous_run(previous, day))
                if holdouts is not None:
                    scorer = scorer.with_assigner(_holdouts(holdouts, day))
        scores = scorer.score(features, with_reasons=False)
        as_of = scores["as_of"].iloc[0] if len(scores) else None
        index = pd.Index(features["account_id"].astype(str), name="account_id")
        # one dict per account up front: a request then costs dict look-ups, not pandas indexing
        records = {r["account_id"]: r for r in scores.to_dict("records")}
        return cls(features.set_axis(index), scores.set_axis(index), scorer, as_of, path, mtime, records)

    @classmethod
    def empty(cls, scorer: Scorer) -> ScoredSnapshot:
        """A snapshot with no accounts (the service still scores supplied features)."""
        return cls.build(pd.DataFrame({"account_id": pd.Series([], dtype=str)}), scorer)

    def __len__(self) -> int:
        return len(self.scores)

    def known(self, account_ids: list[str]) -> tuple[list[str], list[str]]:
        """Split ids into (found in the snapshot, unknown), keeping request order."""
        found = [a for a in account_ids if a in self._records]
        return found, [a for a in account_ids if a not in self._records]

    def book(self, csm_owner: str) -> list[str]:
        """Account ids owned by a CSM (grouped once per snapshot: a ranking request then costs a dict look-up)."""
        if "csm_owner" not in self.features.columns:
            return []
        if self._books is None:
            owners = self.features["csm_owner"].astype(str)
            self._books = {str(k): v.tolist() for k, v in owners.groupby(owners, sort=False).groups.items()}
        return list(self._books.get(csm_owner, ()))

    def lookup(self, account_ids: list[str], with_reasons: bool) -> list[dict[str, Any]]:
        """Score records for known ids; reasons come from the cache, or are computed now and cached."""
        if not with_reasons:
            return [self._records[a] for a in account_ids]
        missing = [a for a in dict.fromkeys(account_ids) if a not in self._reasons]
        if missing:
            self._explain(missing)
        return [{**self._records[a], **self._reasons[a]} for a in account_ids]

    def answers(self, account_ids: list[str], with_reasons: bool) -> list[bytes]:
        """The HTTP answer of each known id as :data:`serving.api.schemas.AccountScore` JSON bytes.

        With reasons they are built with the reasons (at snapshot load when precomputed), without
        them on first request; either way once per account and snapshot, so a 200-account batch
        joins stored bytes instead of validating and serialising 200 records on every request.
        """
        if with_reasons:
            missing = [a for a in dict.fromkeys(account_ids) if a not in self._answers]
            if missing:
                self._explain(missing)
            return [self._answers[a] for a in account_ids]
        plain = self._plain
        for a in dict.fromkeys(account_ids):
            if a not in plain:
                plain[a] = account_json(self._records[a])
        return [plain[a] for a in account_ids]

    def _explain(self, account_ids: list[str]) -> None:
        explained = self.scorer.score(self.features.loc[account_ids].reset_index(drop=True), with_reasons=True)
        # with reasons, the concepts that moved are known too: the change reason is worded again
        cols = ["reasons", "reason_details", "recommended_play", "recommended_play_text", "change_reason",
                "why_high", "holds_back", "caution", "concept_contributions", "control_group_plays", "play_uplift"]
        records = explained[["account_id", *cols]].to_dict("records")
        answers = [account_json({**self._records[rec["account_id"]], **rec}) for rec in records]
        with self._lock:
            for rec, answer in zip(records, answers):
                account_id = rec.pop("account_id")
                self._reasons[account_id] = rec
                self._answers[account_id] = answer

    @property
    def reasons_computed(self) -> int:
        """Accounts whose reasons are cached."""
        return len(self._reasons)

    def precompute_reasons(self, chunk: int = 1000) -> bool:
        """Compute every account's reasons, vectorised ``chunk`` accounts at a time; False when stopped early.

        Chunks keep each hold of the interpreter short, so requests served meanwhile wait
        milliseconds, not the whole book's time; LightGBM's contributions (the costly
        part) run outside the interpreter lock.
        """
        todo = [a for a in self.features.index if a not in self._reasons]
        for start in range(0, len(todo), chunk):
            if self._stop.is_set():
                return False
            self._explain([a for a in todo[start:start + chunk] if a not in self._reasons])
        self.reasons_complete = True
        return True

    def start_precompute(self, on_done: Any = None) -> threading.Thread:
        """Run :meth:`precompute_reasons` in a daemon thread; ``on_done()`` runs when it completes."""
        def run() -> None:
            if self.precompute_reasons() and on_done is not None:
                on_done()

        thread = threading.Thread(target=run, name="reasons-precompute", daemon=True)
        thread.start()
        return thread

    def stop_precompute(self) -> None:
        """Ask a running precompute to stop after its current chunk (the snapshot is being replaced)."""
        self._stop.set()

    def ranked_book(self, csm_owner: str, key: str) -> list[str]:
        """A CSM's book sorted as :meth:`ranked` does, sorted once per snapshot, owner and key (a slice is then the answer)."""
        ranking = self._rankings.get((csm_owner, key))
        if ranking is None:
            ranking = self._rankings[(csm_owner, key)] = self.ranked(self.book(csm_owner), key)
        return ranking

    def ranked(self, account_ids: list[str], key: str) -> list[str]:
        """Ids sorted by ``key`` descending (unknown values last, ties by id)."""
        records = self._records  # per-account dicts: pandas label indexing cost ~7 ms for a 1,250-account book
        values = np.array([records[a][key] for a in account_ids], dtype=float)
        order = np.lexsort((np.array(account_ids, dtype=object).astype(str), -np.nan_to_num(values, nan=-np.inf)))
        return [account_ids[i] for i in order]


def load_snapshot(path: Path | None, scorer: Scorer, previous: PreviousRun | None = None,
                  holdouts: Holdouts | None = None) -> ScoredSnapshot:
    """Read and score the snapshot at ``path``; an absent path gives an empty snapshot."""
    if path is None or not path.is_file():
        return ScoredSnapshot.empty(scorer)
    mtime = os.stat(path).st_mtime
    return ScoredSnapshot.build(read_newest(path), scorer, path, mtime, previous, holdouts)


def _holdouts(holdouts: Holdouts, as_of: dt.date) -> Any:
    try:
        return holdouts(as_of)
    except Exception as exc:  # noqa: BLE001 - the assignments' store is optional for the service: scores still answer
        log.warning("no play assignments read: %s: %s", type(exc).__name__, exc)
        return None


def _previous_run(previous: PreviousRun, as_of: dt.date) -> pd.DataFrame | None:
    try:
        return previous(as_of)
    except Exception as exc:  # noqa: BLE001 - the CRM table is optional for the service: scores still answer
        log.warning("no previous run to compare with: %s: %s", type(exc).__name__, exc)
        return None


def resolve(
    snapshot: ScoredSnapshot, accounts: list[AccountInput], rules: Mapping[str, FeatureRule]
) -> tuple[list[str], list[dict[str, Any]], list[ItemError]]:
    """Split a batch into ids to look up, supplied feature rows to score, and per-item errors.

    ``rules`` says which features a caller may supply and their allowed values
    (:func:`serving.api.feature_checks.feature_rules`); every broken rule of an item is one
    error naming the field, the value and the rule. Empty rules (no registry, no model)
    accept any names.
    """
    by_id: list[str] = []
    supplied: list[dict[str, Any]] = []
    errors: list[ItemError] = []
    for i, acc in enumerate(accounts):
        if acc.features is None:
            if acc.account_id in snapshot._records:
                by_id.append(acc.account_id)
            else:
                errors.append(ItemError(account_id=acc.account_id, field=f"accounts.{i}.account_id", status=404,
                                        error=f"unknown account: not in the feature snapshot as of {snapshot.as_of}",
                                        value=None, rule=None))
            continue
        problems = check_features(acc.features, rules)
        for name, value, rule in problems:
            errors.append(ItemError(account_id=acc.account_id, field=f"accounts.{i}.features.{name}",
                                    error=f"{name}={json_value(value)!r}: {rule}", status=400, value=json_value(value),
                                    rule=rule))
        if not problems:
            supplied.append({**acc.features, "account_id": acc.account_id})
    return by_id, supplied, errors


def select(
    snapshot: ScoredSnapshot, csm_owner: str | None, account_ids: list[str] | None, max_batch_size: int
) -> tuple[list[str], list[ItemError]]:
    """The accounts a rank request is about: a CSM's book or a list of ids (unknown ids reported).

    Raises :class:`NotInSnapshot` when nothing is selected (the service answers 404).
    """
    if csm_owner is not None:
        if len(snapshot) and "csm_owner" not in snapshot.features.columns:
            raise NotInSnapshot("csm_owner", "csm_owner: the feature snapshot has no csm_owner column")
        ids = snapshot.book(csm_owner)
        if not ids:
            raise NotInSnapshot("csm_owner", f"csm_owner: no account owned by {csm_owner!r} in the snapshot")
        return ids, []
    ids = list(dict.fromkeys(account_ids or []))
    check_size("account_ids", len(ids), max_batch_size)
    found, unknown = snapshot.known(ids)
    errors = [ItemError(account_id=a, field=f"account_ids.{ids.index(a)}", status=404, value=None, rule=None,
                        error=f"unknown account: not in the feature snapshot as of {snapshot.as_of}") for a in unknown]
    if not found:
        raise NotInSnapshot("account_ids", "account_ids: none of the accounts is in the feature snapshot", errors)
    return found, errors
