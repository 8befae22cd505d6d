"""The promotion gate: promote a challenger only when noise cannot explain its advantage.

A pure function of the pooled backtest (``training.train.ModelResult``) and, when there is
one, the current champion. On the pooled out-of-time rows the challenger is promoted only
when all hold:

1. the rows hold at least ``Settings.gate_min_positives`` positives;
2. the lower end of the interval of its ROC-AUC is above 0.5 (better than chance);
3. the lower end of the interval of its ROC-AUC gain over the rule-based baseline,
   paired on the same accounts, is above ``Settings.promotion_margin`` (default 0);
4. with a champion: the same paired test against the champion, re-scored on the pooled
   rows dated on or after the end of its data, with at least the minimum of positives
   there too. Earlier rows are in-sample for it, or their outcome windows overlap
   outcomes it trained on (a row a month after its last training row shares two months
   of outcome), which favoured it by about 0.04 ROC-AUC in a replay. So a champion can
   be challenged only once a horizon and enough months have passed since its data ended;
   until then it keeps serving (``expansion promote`` overrides by hand).

Otherwise what serves keeps serving and every reason is said in plain words.

**The shadow months.** A version the gate did not promote is scored beside the champion on
every run (``serving.scoring.batch``), never shown to CSMs; once those months' horizons pass, its
realised record (:class:`ShadowRecord`: per account and month, the outcome, the shadow's
score, what served and the baseline) is a second route to promotion, on months no model
saw: the shadow version is promoted when, on those rows, the same rules hold (enough
positives, ROC-AUC above chance, gain over the baseline and over what served above 0).
Two routes are two chances for noise, so when both are open each is read at half the
tail (98 % becomes 99 %): the chance of a false promotion per decision stays at most the
nominal one. The decision says which evidence decided.

The gate decides on intervals at ``Settings.promotion_confidence`` (98 % by default, 1 % in
each tail), wider than the 90 % ones the reports show. The job decides for two models every
month, 24 decisions a year: at 90 % (5 % per side) a book with nothing to learn would see
about one false promotion a year; at 98 %, about one in four years. On a no-signal control
of 1,000-account companies the 90 % gate promoted in 1 of 20 seeds (benchmarks/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.config import Settings
from training.bootstrap import Interval, Scores, compare, lookup
from training.evaluate import positive_scores, snapshot_codes
from training.models import TrainedModel
from training.train import ModelResult, replicates_for

POSITIVES_NOUN = {"expansion": "expansions", "churn": "churned accounts"}
CHANCE_AUC = 0.5


@dataclass
class GateDecision:
    """Whether a challenger becomes champion, why, and the figures the decision rests on (for tags).

    ``version`` is set when the shadow route decided: that version (not the new refit) is promoted.
    """

    promote: bool
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    evidence: str = "pooled backtest"

    @property
    def label(self) -> str:
        return "promoted" if self.promote else "rejected"


@dataclass(frozen=True)
class ChampionComparison:
    """The challenger against the champion on the pooled rows the champion never trained on."""

    version: str
    positives: int
    since: str
    gain: Interval | None = None
    problem: str | None = None


def _span(iv: Interval, signed: bool = False) -> str:
    fmt = "+.3f" if signed else ".3f"
    return f"{iv.value:{fmt}} ({iv.level:.0%} interval {iv.low:{fmt}} to {iv.high:{fmt}})"


def decide(
    name: str, positives: int, auc: Interval, gain_over_baseline: Interval, champion: ChampionComparison | None,
    *, min_positives: int, margin: float = 0.0,
) -> GateDecision:
    """The gate's rules on the figures of one challenger; see the module docstring."""
    noun = POSITIVES_NOUN.get(name, "positives")
    figures = {"gate_positives": str(positives), "gate_roc_auc": _span(auc),
               "gate_gain_over_baseline": _span(gain_over_baseline, signed=True)}
    reasons, ok = [], True
    if positives < min_positives:
        return GateDecision(False, [f"{positives} {noun} in the test months; {min_positives} are needed"], figures)
    if not auc.low > CHANCE_AUC:
        ok = False
        reasons.append(f"ROC-AUC {_span(auc)} is not clearly better than chance (0.5)")
    if gain_over_baseline.low > margin:
        reasons.append(f"beats the rule-based baseline by {_span(gain_over_baseline, True)} ROC-AUC on {positives} {noun}")
    elif gain_over_baseline.high < 0:
        ok = False
        reasons.append(f"is worse than the rule-based baseline: its gain, {_span(gain_over_baseline, True)} ROC-AUC, "
                       "lies wholly below 0")
    else:
        ok = False
        reasons.append(f"the gain over the rule-based baseline, {_span(gain_over_baseline, True)} ROC-AUC, "
                       f"could be noise (its lower end must exceed {margin:.3f})")
    if champion is None:
        reasons.append("no champion yet")
        return GateDecision(ok, reasons, figures)
    figures["gate_champion_version"] = champion.version
    if champion.problem is not None:
        reasons.append(f"champion v{champion.version} cannot be compared ({champion.problem}); it keeps serving, "
                       "promote by hand if intended")
        return GateDecision(False, reasons, figures)
    if champion.positives < min_positives or champion.gain is None:
        reasons.append(f"{champion.positives} {noun} in the test months from the end of champion "
                       f"v{champion.version}'s data ({champion.since}) on; {min_positives} are needed to compare with it: it keeps serving")
        return GateDecision(False, reasons, figures)
    figures["gate_gain_over_champion"] = _span(champion.gain, signed=True)
    if champion.gain.low > margin:
        reasons.append(f"beats champion v{champion.version} by {_span(champion.gain, True)} ROC-AUC on its unseen months")
    elif champion.gain.high < 0:
        ok = False
        reasons.append(f"is worse than champion v{champion.version}: its gain, {_span(champion.gain, True)} ROC-AUC on "
                       "its unseen months, lies wholly below 0; it keeps serving")
    else:
        ok = False
        reasons.append(f"the gain over champion v{champion.version}, {_span(champion.gain, True)} ROC-AUC on its unseen "
                       "months, could be noise: it keeps serving")
    return GateDecision(ok, reasons, figures)


def champion_data_end(champion: TrainedModel, horizon_days: int) -> pd.Timestamp | None:
    """The last day of the data ``champion`` was trained with (older bundles: its last training snapshot + H)."""
    window = champion.training_window
    if window.get("data_end"):
        return pd.Timestamp(window["data_end"])
    if window.get("train_end"):
        return pd.Timestamp(window["train_end"]) + pd.Timedelta(days=horizon_days)
    return None


def compare_champion(result: ModelResult, champion: TrainedModel, settings: Settings) -> ChampionComparison:
    """Re-score ``champion`` on the pooled rows from the end of its data on; paired ROC-AUC gain of the challenger."""
    since = champion_data_end(champion, settings.horizon_days)
    pooled = result.pooled
    unseen = np.asarray(pd.to_datetime(pooled["as_of"]) >= since) if since is not None else np.ones(len(pooled), bool)
    y = pooled[result.label].to_numpy(dtype=float)[unseen]
    base = ChampionComparison(champion.version, int(y.sum()), since.date().isoformat() if since is not None else "unknown")
    if base.positives < settings.gate_min_positives:
        return base
    try:
        champion_scores = positive_scores(champion, result.test_rows.loc[unseen])
    except (ValueError, KeyError) as exc:  # e.g. the champion needs a feature this frame no longer has
        return ChampionComparison(base.version, base.positives, base.since, problem=str(exc))
    challenger = pooled["model_raw"].to_numpy()[unseen]
    table = compare(
        y, {"challenger": Scores(challenger, challenger), "champion": Scores(champion_scores, champion_scores)},
        pooled["account_id"].to_numpy()[unseen], np.zeros(len(y), dtype=int), names=("roc_auc",),
        replicates=replicates_for(len(y), settings.bootstrap_replicates), strata=snapshot_codes(pooled.loc[unseen]),
        decision_confidence=settings.promotion_confidence,
    )
    gain = lookup(table, "challenger - champion", "roc_auc", decision=True)
    return ChampionComparison(base.version, base.positives, base.since, gain=gain)


@dataclass(frozen=True)
class ShadowRecord:
    """A shadow version's realised months: ``rows`` has ``account_id, as_of, outcome, shadow, served, baseline``."""

    version: str
    rows: pd.DataFrame


def shadow_spent(record: ShadowRecord | None, settings: Settings) -> bool:
    """Whether a shadow that was not promoted has had its chance (enough positives on its realised months),
    so that a newer rejected version may take its place; until then it keeps building its record."""
    return record is not None and len(record.rows) > 0 and record.rows["outcome"].sum() >= settings.gate_min_positives


def split_confidence(confidence: float) -> float:
    """The level of each of two routes so that their union keeps ``confidence`` (half the one-sided tail each)."""
    return 1.0 - (1.0 - confidence) / 2.0


def shadow_figures(record: ShadowRecord, settings: Settings, confidence: float) -> tuple[Interval, Interval, Interval]:
    """(shadow ROC-AUC, gain over the baseline, gain over what served) on the shadow months, at ``confidence``."""
    rows = record.rows
    y = rows["outcome"].to_numpy(dtype=float)
    scorers = {k: Scores(rows[k].to_numpy(dtype=float), rows[k].to_numpy(dtype=float)) for k in ("shadow", "baseline", "served")}
    table = compare(y, scorers, rows["account_id"].to_numpy(), np.zeros(len(y), dtype=int), names=("roc_auc",),
                    replicates=replicates_for(len(y), settings.bootstrap_replicates), strata=snapshot_codes(rows),
                    decision_confidence=confidence, pairs=[("shadow", "baseline"), ("shadow", "served")])
    return (lookup(table, "shadow", "roc_auc", True), lookup(table, "shadow - baseline", "roc_auc", True),
            lookup(table, "shadow - served", "roc_auc", True))


def decide_shadow(name: str, record: ShadowRecord, settings: Settings, confidence: float,
                  champion_version: str | None) -> GateDecision:
    """The gate's rules on the shadow version's realised months (the same rules as the pooled route)."""
    rows = record.rows
    months = pd.to_datetime(rows["as_of"]).dt.date.nunique()
    positives = int(rows["outcome"].sum())
    auc, over_baseline, over_served = shadow_figures(record, settings, confidence)
    noun = POSITIVES_NOUN.get(name, "positives")
    where = f"shadow v{record.version} over {months} realised month(s), {positives} {noun}"
    figures = {"gate_shadow_version": record.version, "gate_shadow_roc_auc": _span(auc),
               "gate_shadow_gain_over_baseline": _span(over_baseline, True),
               "gate_shadow_gain_over_served": _span(over_served, True)}
    served = f"champion v{champion_version}" if champion_version else "the rule-based baseline (what served)"
    margin = settings.promotion_margin
    ok = auc.low > CHANCE_AUC and over_baseline.low > margin and over_served.low > margin
    if ok:
        text = (f"{where}: beats the rule-based baseline by {_span(over_baseline, True)} and {served} by "
                f"{_span(over_served, True)} ROC-AUC")
    else:
        weak = [w for w, iv in (("the baseline", over_baseline), (served, over_served)) if not iv.low > margin]
        text = (f"{where}: ROC-AUC {_span(auc)}, gain over {' and over '.join(weak) or 'chance'} could be noise "
                f"(baseline {_span(over_baseline, True)}, served {_span(over_served, True)})")
    return GateDecision(ok, [text], figures, version=record.version if ok else None, evidence="shadow months")


def gate(result: ModelResult, champion: TrainedModel | None, settings: Settings,
         shadow: ShadowRecord | None = None) -> GateDecision:
    """The decision for ``result`` against the baseline and, if given, the current champion and a shadow record.

    Without a usable shadow record (none, or fewer than the minimum of positives) this is the
    pooled backtest's gate at ``Settings.promotion_confidence``. With one, both routes are read
    at :func:`split_confidence` and the first that passes decides: the pooled route promotes the
    new refit, the shadow route promotes the shadow version (``GateDecision.version``).
    """
    usable = shadow is not None and len(shadow.rows) > 0 and shadow.rows["outcome"].sum() >= settings.gate_min_positives
    level = split_confidence(settings.promotion_confidence) if usable else settings.promotion_confidence
    strict = settings.model_copy(update={"promotion_confidence": level})
    comparison = None if champion is None else compare_champion(result, champion, strict)
    if usable:
        auc, gain = _pooled_at(result, strict)
    else:
        auc, gain = result.interval("roc_auc", decision=True), result.interval("roc_auc", "model - baseline", decision=True)
    pooled = decide(result.name, result.positives, auc, gain, comparison, min_positives=settings.gate_min_positives,
                    margin=settings.promotion_margin)
    if not usable:
        note = "evidence: the pooled backtest"
        if shadow is not None:
            found = int(shadow.rows["outcome"].sum()) if len(shadow.rows) else 0
            note += (f" (shadow v{shadow.version} has {found} positives in its realised months so far; "
                     f"{settings.gate_min_positives} are needed to use them)")
        pooled.reasons.append(note)
        return pooled
    assert shadow is not None
    second = decide_shadow(result.name, shadow, settings, level, champion.version if champion is not None else None)
    figures = {**pooled.figures, **second.figures, "gate_level": f"{level:.1%} per route (two routes)"}
    if pooled.promote:
        return GateDecision(True, ["decided by the pooled backtest", *pooled.reasons, *second.reasons], figures)
    if second.promote:
        return GateDecision(True, ["decided by the shadow months' realised record", *second.reasons,
                                   "the new refit was not clearly better: " + "; ".join(pooled.reasons)], figures,
                            version=shadow.version, evidence="shadow months")
    return GateDecision(False, ["neither the pooled backtest nor the shadow months decided (each read at "
                                f"{level:.1%})", *pooled.reasons, *second.reasons], figures, evidence="none")


def _pooled_at(result: ModelResult, settings: Settings) -> tuple[Interval, Interval]:
    """The refit's pooled ROC-AUC and gain over the baseline re-read at ``settings.promotion_confidence``."""
    pooled = result.pooled
    y = pooled[result.label].to_numpy(dtype=float)
    model, base = pooled["model_raw"].to_numpy(dtype=float), pooled["baseline"].to_numpy(dtype=float)
    table = compare(y, {"model": Scores(model, model), "baseline": Scores(base, base)}, pooled["account_id"].to_numpy(),
                    np.zeros(len(y), dtype=int), names=("roc_auc",),
                    replicates=replicates_for(len(y), settings.bootstrap_replicates), strata=snapshot_codes(pooled),
                    decision_confidence=settings.promotion_confidence)
    return lookup(table, "model", "roc_auc", True), lookup(table, "model - baseline", "roc_auc", True)
