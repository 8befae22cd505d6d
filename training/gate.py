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

**The shadow months pool with the backtest.** A version the gate did not promote is scored
beside the champion on every run (``serving.scoring.batch``), never shown to CSMs; once those
months' horizons pass, its realised record (:class:`ShadowRecord`: per account and month,
the outcome, the shadow's score, what served and the baseline) is more evidence of the same
kind as the pooled backtest's test months: how the job's models rank, out of time, against
what they would replace. With a shadow record the rules above are read once, on the two
stacked (``training.gate_evidence``): ROC-AUC and the gain over the baseline on the backtest
months plus the shadow months, the gain over the champion on the backtest months it never
saw plus the shadow months against what served. One test at the gate's level, so the chance
of a false promotion per decision is the nominal one, and more months than either source
alone. What is promoted is the new refit: the evidence is the training procedure's record,
and the refit has seen the most data (the shadow's months included). The decision says
which evidence decided (backtest months and positives, shadow months and positives) and
gives each source's own reading beside the stacked one.

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
from training.bootstrap import Interval
from training.evaluate import positive_scores
from training.gate_evidence import ShadowRecord, part, shadow_alone, shadow_parts, stacked
from training.models import TrainedModel
from training.train import ModelResult, replicates_for

POSITIVES_NOUN = {"expansion": "expansions", "churn": "churned accounts"}
CHANCE_AUC = 0.5


@dataclass
class GateDecision:
    """Whether the new refit becomes champion, why, the figures the decision rests on (for tags), and on what evidence."""

    promote: bool
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)
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


def champion_rows(result: ModelResult, champion: TrainedModel, settings: Settings) -> tuple[ChampionComparison, pd.DataFrame | None]:
    """The pooled rows from the end of ``champion``'s data on, ready to stack (challenger against the champion re-scored).

    The frame is None when the champion cannot be re-scored (``problem`` says why) or those rows hold
    no positive.
    """
    since = champion_data_end(champion, settings.horizon_days)
    pooled = result.pooled
    unseen = np.asarray(pd.to_datetime(pooled["as_of"]) >= since) if since is not None else np.ones(len(pooled), bool)
    y = pooled[result.label].to_numpy(dtype=float)[unseen]
    base = ChampionComparison(champion.version, int(y.sum()), since.date().isoformat() if since is not None else "unknown")
    if base.positives == 0:
        return base, None
    try:
        champion_scores = positive_scores(champion, result.test_rows.loc[unseen])
    except (ValueError, KeyError) as exc:  # e.g. the champion needs a feature this frame no longer has
        return ChampionComparison(base.version, base.positives, base.since, problem=str(exc)), None
    return base, part("backtest", pooled.loc[unseen], y, pooled["model_raw"].to_numpy()[unseen], champion_scores)


def compare_champion(result: ModelResult, champion: TrainedModel, settings: Settings) -> ChampionComparison:
    """Re-score ``champion`` on the pooled rows from the end of its data on; paired ROC-AUC gain of the challenger."""
    base, rows = champion_rows(result, champion, settings)
    if rows is None or base.positives < settings.gate_min_positives:
        return base
    return ChampionComparison(base.version, base.positives, base.since, gain=stacked([rows], settings)[1])


def shadow_spent(record: ShadowRecord | None, settings: Settings) -> bool:
    """Whether a shadow that was not promoted has had its chance (enough positives on its realised months),
    so that a newer rejected version may take its place; until then it keeps building its record."""
    return record is not None and record.positives >= settings.gate_min_positives


def gate(result: ModelResult, champion: TrainedModel | None, settings: Settings,
         shadow: ShadowRecord | None = None) -> GateDecision:
    """The decision for ``result`` against the baseline and, if given, the current champion and a shadow record.

    Without a shadow record that has a realised positive this is the pooled backtest's gate. With
    one, the same rules are read once on the backtest's test months and the shadow's realised
    months stacked (``training.gate_evidence``); either way at ``Settings.promotion_confidence``.
    """
    if shadow is None or shadow.positives == 0:
        comparison = None if champion is None else compare_champion(result, champion, settings)
        decision = decide(result.name, result.positives, result.interval("roc_auc", decision=True),
                          result.interval("roc_auc", "model - baseline", decision=True), comparison,
                          min_positives=settings.gate_min_positives, margin=settings.promotion_margin)
        note = "evidence: the pooled backtest"
        if shadow is not None:
            note += f" (shadow v{shadow.version} has no realised positive yet)"
        decision.reasons.append(note)
        return decision
    return _pooled_with_shadow(result, champion, settings, shadow)


def _pooled_with_shadow(result: ModelResult, champion: TrainedModel | None, settings: Settings,
                        shadow: ShadowRecord) -> GateDecision:
    """The gate's rules on the backtest months and the shadow's realised months, stacked into one sample."""
    pooled, noun = result.pooled, POSITIVES_NOUN.get(result.name, "positives")
    y = pooled[result.label].to_numpy(dtype=float)
    backtest_auc = part("backtest", pooled, y, pooled["model_raw"].to_numpy(), pooled["baseline"].to_numpy())
    over_baseline, over_served = shadow_parts(shadow)
    auc, gain = stacked([backtest_auc, over_baseline], settings)
    comparison = None
    if champion is not None:
        base, rows = champion_rows(result, champion, settings)
        positives = base.positives + shadow.positives
        comparison = ChampionComparison(base.version, positives, base.since, problem=base.problem)
        if base.problem is None and positives >= settings.gate_min_positives:
            gain_over_champion = stacked([p for p in (rows, over_served) if p is not None], settings)[1]
            comparison = ChampionComparison(base.version, positives, base.since, gain=gain_over_champion)
    total = result.positives + shadow.positives
    decision = decide(result.name, total, auc, gain, comparison, min_positives=settings.gate_min_positives,
                      margin=settings.promotion_margin)
    months = pd.to_datetime(pooled["as_of"]).nunique()
    alone_baseline, alone_served = shadow_alone(shadow, settings, result.interval("roc_auc").level)
    backtest_gain = result.interval("roc_auc", "model - baseline")
    served = f"champion v{champion.version}" if champion is not None else "the baseline"
    decision.reasons.insert(0, (
        f"evidence: the pooled backtest's {months} test month(s) ({result.positives} {noun}) and shadow "
        f"v{shadow.version}'s {shadow.months} realised month(s) ({shadow.positives} {noun}), stacked into one test "
        f"at {settings.promotion_confidence:.0%}"))
    decision.reasons.append(
        f"each alone: the backtest's gain over the baseline {_span(backtest_gain, True)}; the shadow's over the "
        f"baseline {_span(alone_baseline, True)}, over what served ({served}) {_span(alone_served, True)}")
    decision.figures.update({
        "gate_evidence": f"backtest {months} months / {result.positives} positives + shadow v{shadow.version} "
                         f"{shadow.months} months / {shadow.positives} positives",
        "gate_backtest_gain_over_baseline": _span(backtest_gain, True),
        "gate_shadow_version": shadow.version, "gate_shadow_gain_over_baseline": _span(alone_baseline, True),
        "gate_shadow_gain_over_served": _span(alone_served, True)})
    decision.evidence = "pooled backtest + shadow months"
    return decision
