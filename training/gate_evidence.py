"""The gate's evidence, pooled: the backtest's test months and a shadow's realised months in one test.

Two kinds of rows say how the job's models rank accounts against what they would replace:

- the pooled backtest (``ModelResult.pooled``): in each test month, the fold model trained
  on the months before it (``model_raw``) beside the rule-based baseline and, from the end of
  the champion's data on, the champion re-scored on the same rows;
- a shadow version's realised months (:class:`ShadowRecord`): the version the gate did not
  promote, scored beside what served (the champion, or the baseline where none served) on
  months no model had seen, once their horizon passed.

Both are records of the same training procedure out of time, so they are stacked into one
sample. Every (source, month) is its own stratum and ROC-AUC counts pairs within a stratum
only: the stacked figure is the pair-weighted average of the per-month ROC-AUCs (a month
with more positives and negatives weighs more, as inverse-variance weights would), and a
gain is the paired difference on the same rows. The bootstrap draws whole accounts: an
account-month scored both by a fold model and by the shadow (the same outcome twice) lies
in one cluster, so the overlap never counts as independent evidence. The interval is read
at ``Settings.promotion_confidence``, the gate's single level: one test, so no split of the
level between routes, and a no-signal company keeps at most the nominal false-promotion rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.config import Settings
from training.bootstrap import Interval, Scores, compare, lookup
from training.train import replicates_for

SHADOW_COLUMNS = ("account_id", "as_of", "outcome", "shadow", "served", "baseline")


@dataclass(frozen=True)
class ShadowRecord:
    """A shadow version's realised months: ``rows`` has ``account_id, as_of, outcome, shadow, served, baseline``."""

    version: str
    rows: pd.DataFrame

    def checked(self) -> pd.DataFrame:
        """The rows, or ValueError naming the column that is missing or has gaps."""
        missing = [c for c in SHADOW_COLUMNS if c not in self.rows.columns]
        if missing:
            raise ValueError(f"shadow record v{self.version}: column(s) {', '.join(missing)} missing "
                             f"(needed: {', '.join(SHADOW_COLUMNS)})")
        for column in ("outcome", "shadow", "served", "baseline"):
            gaps = int(pd.to_numeric(self.rows[column], errors="coerce").isna().sum())
            if gaps:
                raise ValueError(f"shadow record v{self.version}: column {column!r} has {gaps} missing or "
                                 "non-numeric value(s); a realised month needs every score and its outcome")
        return self.rows

    @property
    def positives(self) -> int:
        return int(pd.to_numeric(self.rows["outcome"]).sum()) if len(self.rows) else 0

    @property
    def months(self) -> int:
        return int(pd.to_datetime(self.rows["as_of"]).nunique()) if len(self.rows) else 0


def part(source: str, rows: pd.DataFrame, outcome: pd.Series | np.ndarray, challenger: np.ndarray,
         reference: np.ndarray) -> pd.DataFrame:
    """Rows of one source, ready to stack: the stratum is the source and the month."""
    return pd.DataFrame({"account_id": rows["account_id"].to_numpy(),
                         "stratum": source + " " + pd.to_datetime(rows["as_of"]).dt.strftime("%Y-%m-%d").to_numpy(),
                         "outcome": np.asarray(outcome, dtype=float), "challenger": np.asarray(challenger, dtype=float),
                         "reference": np.asarray(reference, dtype=float)})


def stacked(parts: list[pd.DataFrame], settings: Settings, confidence: float | None = None) -> tuple[Interval, Interval]:
    """(the challenger's stacked ROC-AUC, its paired gain over the reference) at ``confidence`` (default: the gate's)."""
    rows = pd.concat(parts, ignore_index=True)
    y = rows["outcome"].to_numpy(dtype=float)
    scorers = {k: Scores(rows[k].to_numpy(), rows[k].to_numpy()) for k in ("challenger", "reference")}
    level = settings.promotion_confidence if confidence is None else confidence
    table = compare(y, scorers, rows["account_id"].to_numpy(), np.zeros(len(y), dtype=int), names=("roc_auc",),
                    replicates=replicates_for(len(y), settings.bootstrap_replicates),
                    strata=pd.factorize(rows["stratum"], sort=True)[0], decision_confidence=level)
    return lookup(table, "challenger", "roc_auc", True), lookup(table, "challenger - reference", "roc_auc", True)


def shadow_parts(record: ShadowRecord) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shadow's realised months against the baseline and against what served."""
    rows = record.checked()
    y, shadow = rows["outcome"], rows["shadow"].to_numpy(dtype=float)
    return (part("shadow", rows, y, shadow, rows["baseline"].to_numpy(dtype=float)),
            part("shadow", rows, y, shadow, rows["served"].to_numpy(dtype=float)))


def shadow_alone(record: ShadowRecord, settings: Settings, confidence: float) -> tuple[Interval, Interval]:
    """The shadow's own realised gain over the baseline and over what served (for the decision text)."""
    over_baseline, over_served = shadow_parts(record)
    return stacked([over_baseline], settings, confidence)[1], stacked([over_served], settings, confidence)[1]
