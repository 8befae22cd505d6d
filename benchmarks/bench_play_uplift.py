"""Uplift ranking against readiness ranking on generated companies whose plays have known, varying effects.

    python benchmarks/bench_play_uplift.py [--accounts 3000] [--months 24] [--seeds 3] [--share 0.1]

Per seed: a company with plays (``features.synth.plays``: the upgrade conversation helps more
the nearer the account is to its plan limit), the product's features at every month end, each
episode joined to the features of the month end before it starts and to its 90-day outcome.
Episodes starting in the first months train a two-model uplift learner
(``training.play_uplift``); episodes of the last ``--test-months`` months whose window has
closed test it: the Qini coefficient of the uplift ranking and of the rule-based readiness
score, with the paired account-level 90 % interval of the gain, and whether the product's decision
(``training.play_uplift.decide``: the gain's interval above 0 with 30 episodes per part and arm)
would give the uplift ranking.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import pandas as pd

AS_OF = dt.date(2026, 6, 30)
PLAYS = ("seat_expansion", "upgrade_conversation")
MIN_PER_ARM = 30  # the settings' play_min_per_arm: the product's decision (training.play_uplift.decide) needs as many


def episodes_with_features(folder: Path, window: int) -> pd.DataFrame:
    from features.config import Settings
    from features.io import open_data
    from features.play_outcomes import episode_outcomes, with_features

    source = open_data(folder)
    try:
        episodes = episode_outcomes(source, pd.read_parquet(folder / "play_assignments.parquet"), window)
        return with_features(source, episodes, Settings(_env_file=None, home=folder.with_name(f"{folder.name}_home")))
    finally:
        source.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--share", type=float, default=0.10)
    parser.add_argument("--test-months", type=int, default=8)
    parser.add_argument("--replicates", type=int, default=500)
    args = parser.parse_args()

    from features.registry import categorical_features, feature_names
    from features.synth import PlayEffects, generate
    from training.baseline import readiness
    from training.play_uplift import UPLIFT, compare, decide, two_model_uplift

    cut = pd.Timestamp(AS_OF) - pd.DateOffset(months=args.test_months)
    rows, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            folder = Path(tmp) / f"s{seed}"
            generate(folder, accounts=args.accounts, months=args.months, seed=seed, as_of=AS_OF,
                     plays=PlayEffects(share=args.share))
            data = episodes_with_features(folder, 90)
            for play in PLAYS:
                part = data[(data["play"] == play) & data["expanded"].notna()]
                train, test = part[part["episode_start"] < cut], part[part["episode_start"] >= cut]
                features = [f for f in feature_names() if f in part.columns]
                counts = {f"{name} {arm}": int((part_["arm"] == arm).sum()) for name, part_ in
                          (("training", train), ("test", test)) for arm in ("recommend", "hold_out")}
                uplift = two_model_uplift(train, test, "expanded", features, categorical_features())
                result = compare(test, "expanded", uplift, readiness(test)["readiness_score"].to_numpy(),
                                 replicates=args.replicates)
                rows.append({"seed": seed, "play": play, "train": len(train), "test": result.episodes,
                             "test_held_out": int((test["arm"] == "hold_out").sum()), "qini_uplift": str(result.uplift),
                             "qini_readiness": str(result.readiness), "gain": str(result.gain),
                             "uplift_in_force": decide(play, result, counts, MIN_PER_ARM).supported == UPLIFT})
                print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"{args.seeds} seeds x {args.accounts:,} accounts x {args.months} months, holdout {args.share:.0%}, "
          f"test: the last {args.test_months} months' episodes with a closed window; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
