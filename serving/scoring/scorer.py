"""The one scorer: models + rule-based baseline + reasons + whitespace in currency.

The HTTP service and the batch job both call :meth:`Scorer.score`. It is vectorised over
a feature frame (one row per account), reasons included: contributions are ranked with
numpy (:func:`serving.scoring.reasons.explain_rows`) and only the shown reasons are worded.
LightGBM contributions, ~80x the cost of a predict, are computed only for the rows whose
reasons are returned, and per model only for the accounts it explains
(:func:`reason_effects`: every account by the expansion model, both ways; the churn model
adds the risks of accounts that are not green). Reasons stand on two sides, ``why_high``
(lifts readiness) and ``holds_back`` (holds it back, risks included), and churn-side
warnings reach the ``caution`` line and any expansion play's talk track (:mod:`serving.scoring.plays`).

How the model's numbers become the CSM's scales (see docs/service.md):

* ``readiness_score`` = 100 x the percentile of the account's calibrated expansion
  probability within a *reference* population (the newest snapshot of the whole book,
  or the scored frame itself when no reference was set): "readier than N % of
  accounts". It is scale-free, so it means the same for a company whose expansion base
  rate is 3 % or 30 %; the bands (outreach > 70, nurture 40-70, adoption < 40) then
  match the baseline's.
* ``health`` compares the calibrated churn probability with the reference mean (the
  base rate): ``red`` from twice the base rate, ``yellow`` from the base rate, else
  ``green``.
* ``expected_expansion_usd`` = expansion probability x expected deal size, where the deal
  size is the smaller of ``whitespace_usd`` (what the account could still buy) and ARR x
  the typical annual expansion / ARR ratio the model learned from expanded accounts of the
  same segment in its training window (what one expansion actually adds). Without that
  ratio (baseline only, or an older model) the whitespace stands in.

Without a model the baseline's readiness and health stand in, probabilities are null and
reasons come from fixed rules; ``model_available`` says which.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from features.conditions import thresholds
from features.reason_catalog import CURRENCY_SYMBOL
from serving.scoring.changes import CHANGE_COLUMNS, score_changes
from serving.scoring.peers import Peers
from serving.scoring.plays import FACT_NAMES, recommend
from serving.scoring.reasons import (
    CHURN_RISK,
    EXPANSION,
    HOLDS_BACK,
    LIFTS,
    ReasonItem,
    concept_contributions,
    explain_rows,
    rule_reasons_rows,
)
from serving.scoring.score_schema import SCORE_COLUMNS
from serving.scoring.wording import DEFAULT_ALERT_PCT, account_context

#: How the reasons of one side join into the ``why_high`` / ``holds_back`` text.
SIDE_JOIN = " · "
from training.names import MODEL_NAMES

RED_FROM_BASE_RATE_MULTIPLE = 2.0
READINESS_METHOD = "percentile of calibrated expansion probability in the newest snapshot (0-100)"


@dataclass
class Scorer:
    """Scores feature frames with the champion models (when present) and the rule-based baseline.

    ``contribution_threads`` is the LightGBM thread count for contributions (the costly
    part of reasons): 1 inside the service and tests, where other work shares the cores;
    a batch job alone on the machine may use every core.
    """

    expansion: Any | None = None
    churn: Any | None = None
    specs: Mapping[str, Any] = field(default_factory=dict)
    top_reasons: int = 3
    contribution_threads: int = 1
    currency_symbol: str = CURRENCY_SYMBOL
    quota_alert_pct: float = DEFAULT_ALERT_PCT
    reference_expansion_: np.ndarray | None = None
    reference_churn_mean_: float | None = None
    reference_typical_: dict[str, float] = field(default_factory=dict)
    reference_peers_: Peers | None = None
    previous_: pd.DataFrame | None = None
    #: The play assignments in force (:class:`features.play_assignment.Assigner`); None: no holdout.
    assigner_: Any | None = None
    #: The uplift models in force by play (:func:`training.uplift_model.load_uplift`); empty: readiness ranks every play.
    uplift_: Mapping[str, Any] = field(default_factory=dict)

    @property
    def model_available(self) -> bool:
        """True when at least one trained model is loaded."""
        return self.expansion is not None or self.churn is not None

    @property
    def model_versions(self) -> dict[str, str | None]:
        """Version of each model in use, None when absent."""
        return {n: (getattr(self, n).version if getattr(self, n) is not None else None) for n in MODEL_NAMES}

    @property
    def model_run_ids(self) -> dict[str, str | None]:
        """MLflow run of each model in use (what identifies it across registries), None when absent or unknown."""
        return {n: getattr(getattr(self, n), "run_id", None) for n in MODEL_NAMES}

    def with_reference(self, frame: pd.DataFrame) -> Scorer:
        """A copy whose readiness percentiles and churn base rate are measured against ``frame``."""
        exp_p, churn_p = self._probabilities(frame)
        ref_exp = np.sort(exp_p[~np.isnan(exp_p)]) if self.expansion is not None else None
        ref_churn = float(np.nanmean(churn_p)) if self.churn is not None and np.isfinite(churn_p).any() else None
        return replace(self, reference_expansion_=ref_exp, reference_churn_mean_=ref_churn,
                       reference_typical_=self._typical(frame), reference_peers_=Peers.of(frame, self._reason_features(frame)))

    def with_previous(self, previous: pd.DataFrame | None) -> Scorer:
        """A copy that says what changed since ``previous`` (the previous run's scores, as a sink returns them):
        ``readiness_change``, ``churn_risk_change`` and ``change_reason``; None: no previous run."""
        return replace(self, previous_=None if previous is None or not len(previous) else previous.copy())

    def with_assigner(self, assigner: Any | None) -> Scorer:
        """A copy that holds accounts out of plays as ``assigner`` says (``Assigner.held_out``)."""
        return replace(self, assigner_=assigner)

    def with_uplift(self, models: Mapping[str, Any]) -> Scorer:
        """A copy that gives accounts recommended a play in ``models`` their expected gain from it (``play_uplift``)."""
        return replace(self, uplift_=dict(models))

    def _play_uplift(self, frame: pd.DataFrame, plays: pd.Series) -> np.ndarray:
        gain = np.full(len(frame), np.nan)
        for play, model in self.uplift_.items():
            rows = np.flatnonzero(plays.eq(play).fillna(False).to_numpy(dtype=bool))
            if len(rows):
                gain[rows] = model.predict(frame.iloc[rows])
        return gain

    def _reason_features(self, frame: pd.DataFrame) -> list[str]:
        """Numeric columns of ``frame`` that reasons may rank among peers."""
        from features.reason_catalog import TEMPLATE_BY_FEATURE

        return [f for f in frame.columns if f in TEMPLATE_BY_FEATURE]

    def _typical(self, frame: pd.DataFrame) -> dict[str, float]:
        """Median of each numeric model feature in ``frame``: what "high" and "low" mean in this book."""
        categorical = {c for m in self._models().values() for c in m.categorical_features}
        names = [f for m in self._models().values() for f in m.feature_names if f in frame.columns and f not in categorical]
        if not names:
            return {}
        numeric = frame[list(dict.fromkeys(names))].apply(pd.to_numeric, errors="coerce")
        return {f: float(v) for f, v in numeric.median().items() if pd.notna(v)}

    def _models(self) -> dict[str, Any]:
        """The loaded models by the effect their positive contributions push towards."""
        return {e: m for e, m in ((EXPANSION, self.expansion), (CHURN_RISK, self.churn)) if m is not None}

    def _probabilities(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        nan = np.full(len(frame), np.nan)
        exp_p = self.expansion.predict_proba(_with_columns(frame, self.expansion)) if self.expansion else nan
        churn_p = self.churn.predict_proba(_with_columns(frame, self.churn)) if self.churn else nan
        return np.asarray(exp_p, dtype=float), np.asarray(churn_p, dtype=float)

    def score(self, frame: pd.DataFrame, with_reasons: bool | Sequence[bool] | np.ndarray = True) -> pd.DataFrame:
        """One row per input row with every field of :data:`SCORE_COLUMNS`.

        ``with_reasons`` is a bool or a boolean mask: rows left out get empty reasons and
        no play, and cost no contributions.
        """
        from training.baseline import health, readiness, readiness_band

        if "account_id" not in frame.columns:
            raise ValueError("feature frame: column account_id is required to score")
        if len(frame) == 0:
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in SCORE_COLUMNS})
        frame = frame.reset_index(drop=True)
        base_r, base_h = readiness(frame), health(frame)
        exp_p, churn_p = self._probabilities(frame)
        out = pd.DataFrame({"account_id": frame["account_id"].astype(str).to_numpy()})
        out["as_of"] = _iso_dates(frame["as_of"]) if "as_of" in frame.columns else None
        out["expansion_probability"], out["churn_probability"] = exp_p, churn_p
        out["baseline_score"] = base_r["readiness_score"].to_numpy(dtype=float)
        out["baseline_band"] = base_r["readiness_band"].to_numpy()
        out["baseline_health"] = base_h["health"].to_numpy()
        out["baseline_risk"] = 100.0 - base_h["health_points"].to_numpy(dtype=float)
        if self.expansion is not None:
            out["readiness_score"] = self._readiness(exp_p)
            out["readiness_band"] = readiness_band(out["readiness_score"].to_numpy())
        else:
            out["readiness_score"], out["readiness_band"] = out["baseline_score"], out["baseline_band"]
        out["health"] = self._health(churn_p) if self.churn is not None else out["baseline_health"]
        whitespace = _numeric(frame, "whitespace_usd")
        out["whitespace_usd"] = whitespace
        out["expected_expansion_usd"] = exp_p * self._deal_size(frame, whitespace)
        for name, version in self.model_versions.items():
            out[f"{name}_model_version"] = version
        for name, run_id in self.model_run_ids.items():
            out[f"{name}_model_run_id"] = run_id
        out["model_available"] = self.model_available
        out["context"] = account_context(frame)
        mask = np.broadcast_to(np.asarray(with_reasons, dtype=bool), (len(frame),))
        out = self._add_reasons(frame, out, mask)
        out["play_uplift"] = self._play_uplift(frame, out["recommended_play"].astype("string"))
        changes = score_changes(out, self.previous_)
        for column in CHANGE_COLUMNS:
            out[column] = changes[column].to_numpy()
        return out[list(SCORE_COLUMNS)]

    def _readiness(self, exp_p: np.ndarray) -> np.ndarray:
        ref = self.reference_expansion_
        if ref is None or len(ref) == 0:
            ref = np.sort(exp_p[~np.isnan(exp_p)])
        if len(ref) == 0:
            return np.full(len(exp_p), 50.0)
        # mid-rank percentile: ties share the middle of their range, so a constant model scores 50
        lo, hi = np.searchsorted(ref, exp_p, "left"), np.searchsorted(ref, exp_p, "right")
        return np.where(np.isnan(exp_p), np.nan, 100.0 * (lo + hi) / (2.0 * len(ref)))

    def _health(self, churn_p: np.ndarray) -> np.ndarray:
        base = self.reference_churn_mean_
        if base is None:
            base = float(np.nanmean(churn_p)) if np.isfinite(churn_p).any() else 0.0
        return np.select([churn_p >= RED_FROM_BASE_RATE_MULTIPLE * base, churn_p >= base], ["red", "yellow"], "green")

    def _deal_size(self, frame: pd.DataFrame, whitespace: np.ndarray) -> np.ndarray:
        """Expected annual value of one expansion: whitespace, capped by the learned typical size."""
        ratios = getattr(self.expansion, "expansion_size_ratio", None) or {}
        if "*" not in ratios or "arr" not in frame.columns:
            return whitespace
        if "segment" in frame.columns:
            ratio = frame["segment"].astype("string").map(ratios).astype("float64").fillna(ratios["*"]).to_numpy()
        else:
            ratio = np.full(len(frame), ratios["*"])
        typical = _numeric(frame, "arr") * ratio
        return np.where(np.isnan(whitespace), typical, np.fmin(whitespace, typical))

    def _add_reasons(self, frame: pd.DataFrame, out: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
        n = len(frame)
        reasons: list[list[str]] = [[] for _ in range(n)]
        details: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        plays: list[str | None] = [None] * n
        tracks: list[str | None] = [None] * n
        held_plays: list[str | None] = [None] * n
        cautions: list[str | None] = [None] * n
        sides: dict[str, list[str | None]] = {LIFTS: [None] * n, HOLDS_BACK: [None] * n}
        by_concept: list[str | None] = [None] * n
        rows = np.flatnonzero(mask)
        if len(rows):
            health, band = out["health"].to_numpy(), out["readiness_band"].to_numpy()
            sub = frame.iloc[rows]
            explained, concepts = self._explain(sub, health[rows])
            for i, sums in zip(rows, concepts, strict=True):
                by_concept[i] = json.dumps(sums, sort_keys=True, separators=(",", ":")) if sums else None
            facts = sub[[c for c in FACT_NAMES if c in sub.columns]].to_dict("records")
            readiness, churn = out["readiness_score"].to_numpy()[rows], out["churn_probability"].to_numpy()[rows]
            levels = thresholds(quota_alert_pct=self.quota_alert_pct)  # the plays' conditions, as the reasons'
            ids, assigner = out["account_id"].to_numpy(), self.assigner_
            for n, (i, items) in enumerate(zip(rows, explained, strict=True)):
                reasons[i] = [r.text for r in items]
                details[i] = [r.as_dict() for r in items]
                for side, texts in sides.items():
                    texts[i] = SIDE_JOIN.join(r.text for r in items if r.side == side) or None
                fact = {**facts[n], "readiness_score": readiness[n], "churn_probability": churn[n],
                        "currency_symbol": self.currency_symbol}
                held = None if assigner is None else partial(assigner.held_out, ids[i])
                choice = recommend(items, fact, health[i], band[i], levels, held)
                plays[i], tracks[i], cautions[i] = choice.play, choice.talk_track, choice.caution
                if assigner is not None:
                    held_plays[i] = ", ".join(assigner.held_plays(ids[i])) or None
        out["reasons"], out["reason_details"], out["recommended_play"] = reasons, details, plays
        out["recommended_play_text"], out["concept_contributions"] = tracks, by_concept
        out["control_group_plays"] = held_plays
        out["why_high"], out["holds_back"], out["caution"] = sides[LIFTS], sides[HOLDS_BACK], cautions
        return out

    def _explain(self, sub: pd.DataFrame, health: np.ndarray) -> tuple[list[list[ReasonItem]], list[dict]]:
        """(reasons per row: ranked model contributions, or the fixed rules when no model is loaded;
        per row, each explaining model's contributions summed per concept)."""
        models = self._models()
        categorical = {c for m in models.values() for c in m.categorical_features} | {"segment"}
        wanted = [*(f for m in models.values() for f in m.feature_names), *self._reason_features(sub), "segment", "arr"]
        values = {f: _column_values(sub[f], f in categorical) for f in dict.fromkeys(wanted) if f in sub.columns}
        peers = self.reference_peers_ or Peers.of(sub, self._reason_features(sub))
        if not models:
            reasons = rule_reasons_rows(values, self.specs, self.top_reasons, peers, self.currency_symbol,
                                        self.quota_alert_pct)
            return reasons, [{} for _ in range(len(sub))]
        relevant = reason_effects(health, tuple(models))
        contribs = {e: (m.feature_names, self._contributions(m, sub, relevant[e])) for e, m in models.items()}
        reasons = explain_rows(values, contribs, self.specs, self.top_reasons, self.reference_typical_, peers,
                               self.currency_symbol, self.quota_alert_pct)
        return reasons, concept_contributions(contribs, relevant, self.specs)

    def _contributions(self, model: Any, sub: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
        """The model's contributions for the ``rows`` mask of ``sub``; zero (no driver) elsewhere."""
        out = np.zeros((len(sub), len(model.feature_names)))
        if rows.any():
            out[rows] = _contributions(model, _with_columns(sub[rows], model), self.contribution_threads)
        return out

    def score_records(self, records: Sequence[Mapping[str, Any]], with_reasons: bool = True) -> list[dict[str, Any]]:
        """Score feature dicts (one per account, with ``account_id``); returns one plain dict per record."""
        frame = pd.DataFrame.from_records(list(records))
        return self.score(frame, with_reasons=with_reasons).to_dict("records")


def _with_columns(frame: pd.DataFrame, model: Any) -> pd.DataFrame:
    """The frame with every model feature present; absent ones are unknown (NaN), as for a missing table."""
    missing = [f for f in model.feature_names if f not in frame.columns]
    if not missing:
        return frame
    return pd.concat([frame, pd.DataFrame(np.nan, index=frame.index, columns=missing)], axis=1)


def reason_effects(health: np.ndarray, effects: Sequence[str] = (EXPANSION, CHURN_RISK)) -> dict[str, np.ndarray]:
    """Per effect, the rows whose reasons draw on it: reasons explain the account's standing.

    Every account's readiness is explained both ways by the expansion model (what lifts it,
    what holds it back); the churn model adds the risks of accounts that are not green
    (churn risk at or above the base rate). With one model loaded, that model explains every
    row. Contributions cost ~80x a predict, so the churn model's are computed only there.
    """
    health = np.asarray(health, dtype=object)
    everywhere = np.ones(len(health), dtype=bool)
    if len(effects) < 2:
        return {e: everywhere for e in effects}
    return {EXPANSION: everywhere, CHURN_RISK: health != "green"}


def _contributions(model: Any, frame: pd.DataFrame, threads: int) -> np.ndarray:
    """Per-feature contributions (rows x model.feature_names) as a float matrix."""
    return np.asarray(model.contributions(frame, threads=threads), dtype=float)


def _column_values(column: pd.Series, categorical: bool) -> np.ndarray:
    """A feature column as numpy: objects (None for unknown) for categoricals, floats (NaN) otherwise."""
    if categorical or not (pd.api.types.is_numeric_dtype(column) or column.dtype == object):
        return column.astype(object).where(column.notna(), None).to_numpy(dtype=object)
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _iso_dates(values: pd.Series) -> list[str | None]:
    dates = pd.Series(pd.to_datetime(values, errors="coerce"))
    return dates.dt.strftime("%Y-%m-%d").astype(object).where(dates.notna(), None).tolist()


def feature_specs() -> dict[str, Any]:
    """The feature registry by name."""
    from features.registry import FEATURES

    return {s.name: s for s in FEATURES}
