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
    """Whether a challenger becomes champion, why, and the figures the decision rests on (for tags)."""

    promote: bool
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)

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


def gate(result: ModelResult, champion: TrainedModel | None, settings: Settings) -> GateDecision:
    """The decision for ``result`` against the baseline and, if given, the current champion."""
    comparison = None if champion is None else compare_champion(result, champion, settings)
    return decide(
        result.name, result.positives, result.interval("roc_auc", decision=True),
        result.interval("roc_auc", "model - baseline", decision=True),
        comparison, min_positives=settings.gate_min_positives, margin=settings.promotion_margin,
    )
