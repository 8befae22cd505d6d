"""The CRM row: the scorer's output flattened into one scalar row per account, plus run metadata.

Every sink writes these rows; only the column names and value formats differ between
sinks. The columns derive from the one score schema (``serving.scoring.score_schema.SCORE_SCHEMA``), so a
scorer frame missing a field fails with a message naming the field before anything is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from serving.scoring.score_schema import SCORE_SCHEMA
from serving.scoring.score_schema import RUN_ID_COLUMNS as SCORE_RUN_ID_COLUMNS
from serving.scoring.score_schema import VERSION_COLUMNS as SCORE_VERSION_COLUMNS
from training.names import MODEL_NAMES

REASON_SLOTS = 5
REASON_COLUMNS = [f"reason_{i}" for i in range(1, REASON_SLOTS + 1)]
VERSION_COLUMNS = list(SCORE_VERSION_COLUMNS)
RUN_ID_COLUMNS = list(SCORE_RUN_ID_COLUMNS)

# Kinds drive the formats of the CRM files: probability (0-1), points (0-100), money, text.
_CRM_KINDS = {"probability": "probability", "points": "points", "money": "money",
              "band": "text", "health": "text", "text": "text", "change": "points", "json": "text"}
SCORE_FIELDS: dict[str, str] = {f.name: _CRM_KINDS[f.kind] for f in SCORE_SCHEMA if f.crm}
_OPTIONAL = {f.name for f in SCORE_SCHEMA if not f.required}
RUN_FIELDS: dict[str, str] = {"run_id": "text", "as_of": "date", "scored_at": "datetime"}

#: Column kinds of a CRM row, in the order every sink writes them.
ROW_FIELDS: dict[str, str] = {
    "account_id": "text",
    **RUN_FIELDS,
    **SCORE_FIELDS,
    **{c: "text" for c in REASON_COLUMNS},
    **{c: "text" for c in VERSION_COLUMNS},
    **{c: "text" for c in RUN_ID_COLUMNS},
    "model_available": "flag",
}

# The CRM-file names of the row fields the score schema does not declare (run metadata, reason slots).
_RUN_CRM_NAMES = {"run_id": "expansion_score_run_id", "as_of": "expansion_snapshot_date",
                  "scored_at": "expansion_scored_at", **{c: f"expansion_{c}" for c in REASON_COLUMNS}}
_SCHEMA_CRM_NAMES = {f.name: f.crm_name or f.name for f in SCORE_SCHEMA}

#: Each row field's name in the CRM import files (snake case, one per field, in row order):
#: ``ScoreField.crm_name`` for the schema's fields, the run's own names for the rest.
CRM_NAMES: dict[str, str] = {name: _RUN_CRM_NAMES.get(name) or _SCHEMA_CRM_NAMES[name] for name in ROW_FIELDS}


class ScoreFrameError(ValueError):
    """Raised when a scorer frame does not meet the CRM row schema."""


@dataclass(frozen=True)
class RunInfo:
    """One scoring run: which snapshot, which models, when."""

    as_of: dt.date
    scored_at: dt.datetime
    model_versions: Mapping[str, str | None] = field(default_factory=dict)
    # The MLflow run of each model: versions restart at 1 in every registry, runs do not.
    model_run_ids: Mapping[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scored_at.tzinfo is None:
            raise ValueError("RunInfo.scored_at must be timezone-aware (UTC), got a naive datetime")

    @property
    def run_id(self) -> str:
        """Deterministic from the snapshot date and model versions, so a re-run replaces its own rows."""
        versions: dict[str, str | None] = {name: self.model_versions.get(name) for name in MODEL_NAMES}
        if any(self.model_run_ids.get(name) for name in MODEL_NAMES):  # without runs, ids stay as they were
            versions |= {f"{name}_run": self.model_run_ids.get(name) for name in MODEL_NAMES}
        digest = hashlib.sha1(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.as_of:%Y%m%d}-{digest}"

    @property
    def scored_at_utc(self) -> dt.datetime:
        """``scored_at`` in UTC, microseconds dropped (CRMs store seconds or milliseconds)."""
        return self.scored_at.astimezone(dt.UTC).replace(microsecond=0)


def reason_string(reason: object) -> str | None:
    """The readable text of one reason: a string, a mapping with ``text``, or an object with ``.text``."""
    if reason is None or isinstance(reason, str):
        return reason
    if isinstance(reason, Mapping):
        return reason.get("text")
    return getattr(reason, "text", None) or str(reason)


def _reason_columns(reasons: pd.Series) -> pd.DataFrame:
    """Spread lists of reasons over ``reason_1..reason_5``; missing slots are null."""
    slots: list[list[str | None]] = [[] for _ in REASON_COLUMNS]
    for item in reasons:
        items = list(item) if isinstance(item, (list, tuple, np.ndarray)) else []
        for i, column in enumerate(slots):
            column.append(reason_string(items[i]) if i < len(items) else None)
    return pd.DataFrame(
        {name: pd.array(values, dtype="string") for name, values in zip(REASON_COLUMNS, slots, strict=True)},
        index=reasons.index,
    )


def check_score_frame(frame: pd.DataFrame) -> None:
    """Raise ScoreFrameError naming every required scorer field the frame lacks, or duplicate accounts."""
    missing = [c for c in ["account_id", *SCORE_FIELDS] if c not in frame.columns and c not in _OPTIONAL]
    if "reasons" not in frame.columns and not set(REASON_COLUMNS) <= set(frame.columns):
        missing.append("reasons")
    if missing:
        raise ScoreFrameError(f"score frame: missing field(s) {', '.join(missing)} (required by the CRM row schema)")
    if frame["account_id"].isna().any():
        raise ScoreFrameError("score frame: column account_id must not be null")
    dupes = frame["account_id"][frame["account_id"].duplicated()]
    if len(dupes):
        raise ScoreFrameError(f"score frame: account_id must be unique per run, repeated: {list(dupes[:5])}")


_NOT_EXTRAS = ("reasons", "as_of", "model_versions")


def _is_scalar_column(values: pd.Series) -> bool:
    """Extra scorer fields reach the files only when they hold scalars (no lists or mappings)."""
    if values.dtype != object:
        return True
    return not any(isinstance(v, (list, tuple, dict, np.ndarray)) for v in values.head(100))


def model_versions_of(frame: pd.DataFrame) -> dict[str, str | None]:
    """Model versions a scorer frame reports, from a ``model_versions`` mapping or ``<name>_model_version`` columns."""
    if not len(frame):
        return {}
    if "model_versions" in frame.columns and isinstance(frame["model_versions"].iloc[0], Mapping):
        found = frame["model_versions"].iloc[0]
        return {name: None if found.get(name) is None else str(found.get(name)) for name in MODEL_NAMES}
    return _per_model(frame, VERSION_COLUMNS)


def model_run_ids_of(frame: pd.DataFrame) -> dict[str, str | None]:
    """The MLflow run of each model a scorer frame reports (``<name>_model_run_id`` columns)."""
    return _per_model(frame, RUN_ID_COLUMNS) if len(frame) else {}


def _per_model(frame: pd.DataFrame, columns: list[str]) -> dict[str, str | None]:
    """Model name -> the first row's text in that model's column of ``columns`` (None when absent or null)."""
    found: dict[str, str | None] = {}
    for model, column in zip(MODEL_NAMES, columns, strict=True):
        value = frame[column].iloc[0] if column in frame.columns else None
        found[model] = None if value is None or pd.isna(value) else str(value)
    return found


def to_rows(frame: pd.DataFrame, run: RunInfo) -> pd.DataFrame:
    """Flatten one chunk of scorer output into CRM rows: schema fields first, then any extra scalar fields."""
    check_score_frame(frame)
    rows = pd.DataFrame(index=frame.index)
    rows["account_id"] = frame["account_id"].astype("string")
    rows["run_id"] = run.run_id
    rows["as_of"] = pd.Timestamp(run.as_of).as_unit("s")
    rows["scored_at"] = pd.Timestamp(run.scored_at_utc).as_unit("s")  # tz-aware UTC
    for name, kind in SCORE_FIELDS.items():
        values = frame[name] if name in frame.columns else pd.Series(None, index=frame.index, dtype=object)
        rows[name] = values.astype("string") if kind == "text" else pd.to_numeric(values).astype("float64")
    reasons = _reason_columns(frame["reasons"]) if "reasons" in frame.columns else frame[REASON_COLUMNS]
    rows[REASON_COLUMNS] = reasons.astype("string")
    for model, column in zip(MODEL_NAMES, VERSION_COLUMNS, strict=True):
        rows[column] = pd.array([run.model_versions.get(model)] * len(frame), dtype="string")
    for model, column in zip(MODEL_NAMES, RUN_ID_COLUMNS, strict=True):
        rows[column] = pd.array([run.model_run_ids.get(model)] * len(frame), dtype="string")
    # false says "baseline scores": no trained model made this row
    available = frame["model_available"] if "model_available" in frame.columns else \
        pd.Series(any(v is not None for v in run.model_versions.values()), index=frame.index)
    rows["model_available"] = available.astype(bool)
    for name in frame.columns:
        if name not in rows.columns and name not in _NOT_EXTRAS and _is_scalar_column(frame[name]):
            rows[name] = frame[name].to_numpy()
    return rows.reset_index(drop=True)


def empty_score_frame() -> pd.DataFrame:
    """A scorer frame with no accounts, so that an empty run still writes a header or a table."""
    frame = pd.DataFrame({c: pd.Series([], dtype="float64") for c in SCORE_FIELDS})
    frame.insert(0, "account_id", pd.Series([], dtype="string"))
    frame["reasons"] = pd.Series([], dtype=object)
    return frame
