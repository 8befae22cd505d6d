"""Reasons and plays on a whole generated company: premises, one reason per concept, counts, play mix.

    python benchmarks/check_reasons.py [--accounts 10000] [--months 24] [--seed 7] [--as-of 2026-10-31]
        [--work DIR]

Generates the company (``expansion generate``), runs the monthly job on it (``expansion
retrain``: features, train, gate), then scores every account active at ``--as-of`` with
reasons, in process, and checks each account in its own numbers:

* the recommended play's premise, re-evaluated here on the feature frame from the declared
  rule (and, for the three plays the issue names, from the literal thresholds: quota
  >= 80 %, seats >= 85 %, a product peers of the segment own);
* no two reasons of one concept (by the registry's concept of each reason's feature);
* no context attribute among the reasons, and a comparison (a "N %") in every reason text;
* the share of accounts with at least 3 reasons, with a 95 % Wilson interval;
* the distribution of recommended plays, next to the share of accounts whose numbers meet
  each play's premise (what the data allows);
* what changed since the previous month end (scored the same way): accounts compared,
  the size of the readiness moves and the concepts named as having moved most;
* both directions (:func:`check_sides`): per readiness band, the share of accounts with at
  least one reason lifting readiness and one holding it back (target: >= 95 % of accounts
  below 40 have one holding it back); accounts recommended an expansion play while a
  churn-side warning holds (all must carry the caution, in the caution line and the talk
  track; none may lead with an upsell while usage falls or a payment failed unless green);
  reasons citing a window longer than the account's tenure, peer comparisons between 20 %
  and 80 % (or any ranked renewal), zero counts, "the book", and reasons whose sign or
  wording contradicts their side: all 0.

Run it on a 3,000-account and on a 300-account company (``--accounts 3000``, ``--accounts
300``) to see the rules hold on a large and on a small book.

Exit status 1 when a hard check fails. State lives under ``--work`` (a temporary folder
by default); re-running with the same ``--work`` reuses the company and the models.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
BIN = Path(sys.executable).parent


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def prepare(work: Path, accounts: int, months: int, seed: int, as_of: str) -> Path:
    """The generated company under ``work`` and models trained on it, made once per parameter set."""
    data, marker = work / "data", work / "params.json"
    params = {"accounts": accounts, "months": months, "seed": seed, "as_of": as_of}
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return data
    env = {**os.environ, "EXPANSION_HOME": str(work / "home"), "BENTOML_HOME": str(work / "home" / "bentoml")}
    run = [str(BIN / "expansion")]
    subprocess.run([*run, "generate", "--out", str(data), "--accounts", str(accounts), "--months", str(months),
                    "--seed", str(seed), "--as-of", as_of], check=True, env=env)
    subprocess.run([*run, "retrain", "--data", str(data), "--as-of", as_of], check=True, env=env)
    marker.write_text(json.dumps(params))
    return data


def score(work: Path, data: Path, as_of: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features of every account active at ``as_of``, scorer output with reasons) with the champions,
    told about the previous month end's scores so that it says what changed since then."""
    os.environ["EXPANSION_HOME"] = str(work / "home")
    from features.config import Settings
    from features.io import open_data
    from serving.scoring.batch import snapshot_features

    from serving.scoring.models import load_scorer

    settings = Settings(_env_file=None, home=work / "home")
    previous_as_of = as_of.replace(day=1) - dt.timedelta(days=1)
    source = open_data(data)
    try:
        features = snapshot_features(source, as_of, settings)
        previous_features = snapshot_features(source, previous_as_of, settings)
    finally:
        source.close()
    scorer = load_scorer(settings, "mlflow")
    if not scorer.model_available:
        raise SystemExit("no champion models were trained: the check needs them")
    previous = scorer.with_reference(previous_features).score(previous_features)
    return features, scorer.with_reference(features).with_previous(previous).score(features)


def holds(play_name: str, features: pd.DataFrame, scores: pd.DataFrame) -> np.ndarray:
    """Per account, whether ``play_name``'s declared premise holds, evaluated here with pandas."""
    from features.reason_catalog import PLAY_BY_NAME

    facts = features.assign(readiness_score=scores["readiness_score"].to_numpy(), health=scores["health"].to_numpy())
    play = PLAY_BY_NAME[play_name]
    if not play.premise:
        return np.ones(len(facts), dtype=bool)
    ops = {">=": "ge", "<=": "le", ">": "gt", "<": "lt", "==": "eq"}
    result = np.zeros(len(facts), dtype=bool)
    for alternative in play.premise:
        ok = np.ones(len(facts), dtype=bool)
        for c in alternative:
            column = facts[c.field]
            ok &= getattr(column, ops[c.op])(c.threshold).fillna(False).to_numpy(dtype=bool)
        result |= ok
    return result


LITERAL_PREMISES = {  # the words, independent of the catalog
    "upgrade_conversation": lambda f: f["quota_utilization_30d_pct"] >= 80,
    "seat_expansion": lambda f: f["seat_utilization_pct"] >= 85,
    "cross_sell": lambda f: f["whitespace_products_usd"] > 0,
}


def check(features: pd.DataFrame, scores: pd.DataFrame) -> bool:
    """Print every check; True when all hard checks pass."""
    from features.reason_catalog import CONCEPT_BY_NAME, PLAYS
    from features.registry import get

    n = len(scores)
    plays = scores["recommended_play"].astype(str)
    premise_fails = sum(int((~holds(p, features, scores)[plays.to_numpy() == p]).sum()) for p in plays.unique())
    literal_fails = {p: int((~rule(features)[plays == p].fillna(False)).sum()) for p, rule in LITERAL_PREMISES.items()}
    concepts = scores["reason_details"].map(lambda ds: [get(d["feature"]).concept for d in ds])
    duplicated = int(concepts.map(lambda cs: len(cs) != len(set(cs))).sum())
    context = int(concepts.map(lambda cs: any(CONCEPT_BY_NAME[c].role == "context" for c in cs)).sum())
    texts = scores["reasons"].explode().dropna()
    ranked = pd.Series([d["text"] for ds in scores["reason_details"] for d in ds if d["comparison"] != "timing"],
                       dtype=object)
    no_comparison = int((~ranked.map(lambda t: bool(re.search(r"\d %", t)))).sum())
    counts = scores["reasons"].map(len)
    three = int((counts >= 3).sum())
    lo, hi = wilson(three, n)
    print(f"{n:,} accounts scored with reasons at {features['as_of'].max():%Y-%m-%d}")
    print(f"  play premise fails in the account's own numbers: {premise_fails} (target 0); "
          f"by the issue's literal thresholds: {literal_fails}")
    print(f"  accounts with two reasons of one concept: {duplicated} (target 0); with a context attribute as a reason: "
          f"{context} (target 0)")
    print(f"  reason texts without a comparison: {no_comparison} of {len(texts):,} (target 0)")
    print(f"  accounts with at least 3 reasons: {three:,} of {n:,} = {three / n:.1%} "
          f"(95 % interval {lo:.1%}-{hi:.1%}; target >= 95 %); by count {dict(sorted(Counter(counts).items()))}")
    print("  recommended plays (share of accounts; share whose numbers meet the premise; by health):")
    by_health = pd.crosstab(plays, scores["health"])
    for play in PLAYS:
        chosen = int((plays == play.name).sum())
        eligible = holds(play.name, features, scores).mean()
        mix = ", ".join(f"{h} {by_health.at[play.name, h]:,}" for h in by_health.columns) if chosen else "-"
        print(f"    {play.name:<24} {chosen:>6,} {chosen / n:6.1%}   premise holds for {eligible:6.1%}   ({mix})")
    changed = scores["readiness_change"].notna()
    moved = scores["change_reason"].dropna().str.extract(r"moved most: (.*)$")[0].dropna()
    concepts = Counter(c.split(" (")[0] for reasons in moved for c in reasons.split(", "))
    print(f"  what changed since the previous month end: {int(changed.sum()):,} accounts compared "
          f"({n - int(changed.sum()):,} new), median |readiness change| {scores['readiness_change'].abs().median():.1f} "
          f"points, {len(moved):,} with the concepts that moved most; most named: "
          + ", ".join(f"{c} {k:,}" for c, k in concepts.most_common(5)))
    example = scores.loc[scores["readiness_change"].abs().idxmax()] if changed.any() else None
    if example is not None:
        print(f"    e.g. {example['account_id']}: {example['change_reason']}")
    top = plays.value_counts(normalize=True)
    print(f"  largest play share: {top.index[0]} {top.iloc[0]:.1%} (target <= 60 % unless the data says so)")
    ok = premise_fails == 0 and not any(literal_fails.values()) and duplicated == 0 and context == 0
    ok = ok and no_comparison == 0 and three / n >= 0.95
    ok = check_sides(features, scores) and ok
    print("all hard checks pass" if ok else "A HARD CHECK FAILED")
    return ok


_RANK = re.compile(r"(?:top|bottom|longest-ago|most recent|soonest|like) (\d+) %")


def _contradicts(d: dict, value: float) -> bool:
    """True when a reason's sign or words contradict its side (lifts / holds_back)."""
    from features.registry import get
    from serving.scoring.reasons import is_change

    lifts = d["side"] == "lifts"
    c = d["contribution"]
    if c is not None:  # model reasons: the sign says the side
        signed_lift = (d["effect"] == "expansion" and c > 0)
        signed_hold = (d["effect"] == "expansion" and c < 0) or (d["effect"] == "churn_risk" and c > 0)
        if lifts != signed_lift or (not lifts) != signed_hold:
            return True
    elif lifts != (d["effect"] == "expansion"):
        return True
    spec = get(d["feature"])
    if spec.good not in ("higher", "lower") or value != value:
        return False
    good_value = value > 0 if is_change(d["feature"], spec) else None
    if good_value is not None:
        said_up = re.search(r"\bup \d", d["text"]) is not None
        rising_is_good = spec.good == "higher"
        return lifts != (good_value == rising_is_good) or said_up != good_value
    return False


def check_sides(features: pd.DataFrame, scores: pd.DataFrame) -> bool:
    """Both directions, cautions on opportunities and words a CSM can say; True when every hard check holds."""
    from features.reason_catalog import PLAY_BY_NAME
    from features.registry import full_window_days, get
    from serving.scoring.plays import FACT_NAMES, active_cautions
    from serving.scoring.wording import DAYS_PER_MONTH

    n = len(scores)
    sides = scores["reason_details"].map(lambda ds: {d["side"] for d in ds})
    lifts, holds = sides.map(lambda s: "lifts" in s), sides.map(lambda s: "holds_back" in s)
    readiness = scores["readiness_score"].astype(float)
    bands = pd.cut(readiness, [-0.1, 40, 70, 100.1], right=False, labels=["below 40", "40-70", "above 70"])
    print("  reasons on both sides, by readiness band (share of accounts with >= 1 reason lifting / holding back / both):")
    low_share = math.nan
    for band in bands.cat.categories:
        at = (bands == band).to_numpy()
        k = int(at.sum())
        if not k:
            continue
        h = int(holds[at].sum())
        lo, hi = wilson(h, k)
        print(f"    {band:<9} {k:>6,} accounts: lifts {lifts[at].mean():6.1%}, holds back {h / k:6.1%} "
              f"(95 % interval {lo:.1%}-{hi:.1%}), both {(lifts & holds)[at].mean():6.1%}")
        if band == "below 40":
            low_share = h / k
    facts = features[[c for c in FACT_NAMES if c in features.columns]].to_dict("records")
    expansion_play = scores["recommended_play"].map(lambda p: PLAY_BY_NAME[p].effect == "expansion").to_numpy()
    warned = carried = led_while_blocked = 0
    for i, fact in enumerate(facts):
        if not expansion_play[i]:
            continue
        warnings = active_cautions(fact)
        if not warnings:
            continue
        warned += 1
        caution, track = scores.at[i, "caution"], str(scores.at[i, "recommended_play_text"])
        carried += bool(isinstance(caution, str) and caution and track.startswith("Before you raise"))
        led_while_blocked += any(w.blocks_upsell for w in warnings) and scores.at[i, "health"] != "green"
    tenure_days = features["tenure_months"].astype(float).to_numpy() * DAYS_PER_MONTH + 1
    too_long = middling = zeros = book = contradictions = total = 0
    examples: list[str] = []
    for i, details in enumerate(scores["reason_details"]):
        for d in details:
            total += 1
            window = full_window_days(get(d["feature"]))
            if window is not None and window > tenure_days[i] + 0.5:
                too_long += 1
                examples.append(f"{scores.at[i, 'account_id']}: {d['text']} (tenure {tenure_days[i]:.0f} days)")
            rank = _RANK.search(d["text"])
            if (rank and 20 < int(rank.group(1)) < 80) or "soonest" in d["text"]:
                middling += 1
                examples.append(f"{scores.at[i, 'account_id']}: {d['text']}")
            if re.match(r"0 ", d["text"]) or d["text"].startswith("No "):
                zeros += 1
                examples.append(f"{scores.at[i, 'account_id']}: {d['text']}")
            book += "the book" in d["text"]
            value = float(features.at[i, d["feature"]]) if d["feature"] in features.columns else math.nan
            if _contradicts(d, value):
                contradictions += 1
                examples.append(f"{scores.at[i, 'account_id']} [{d['side']}]: {d['text']}")
    book += int(scores["recommended_play_text"].astype(str).str.contains("of the book").sum())
    print(f"  expansion play while a churn-side warning holds: {warned:,} accounts; carrying the caution "
          f"{carried:,} ({carried / warned if warned else 1:.0%}; target 100 %); leading with an upsell while usage "
          f"falls or a payment failed and not green: {led_while_blocked} (target 0)")
    print(f"  of {total:,} reasons: window longer than the tenure {too_long} (target 0); peer comparison between 20 % "
          f"and 80 % or a ranked renewal {middling} (target 0); zero counts {zeros} (target 0); 'the book' {book} "
          f"(target 0); sign or wording contradicting the side {contradictions} (target 0)")
    for line in examples[:5]:
        print(f"    e.g. {line}")
    ok = low_share >= 0.95 if low_share == low_share else True
    ok = ok and carried == warned and led_while_blocked == 0
    return ok and too_long == 0 and middling == 0 and zeros == 0 and book == 0 and contradictions == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", default="2026-10-31")
    parser.add_argument("--work", type=Path, default=None, help="folder for the company, models and state")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        data = prepare(work, args.accounts, args.months, args.seed, args.as_of)
        features, scores = score(work, data, dt.date.fromisoformat(args.as_of))
        ok = check(features, scores)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
