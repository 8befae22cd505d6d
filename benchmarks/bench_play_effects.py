"""Play effects recovered from generated companies whose plays have known effects.

    python benchmarks/bench_play_effects.py [--accounts 3000] [--months 24] [--seeds 10] [--share 0.1]
        [--small 300]

Per seed: a company with plays on (``features.synth.plays``), and for each play with an
effect the same company with that play alone switched off (same seed, same draws): a play's
true effect is the mean, over its recommended episodes whose window has closed, of the outcome
with the play minus without it. The estimate is the product's own (``training.play_effect``:
recommended minus held out, account-level 90 % bootstrap interval) on the company with plays.
Prints per seed and play the truth, the estimate and whether the interval covers the truth
(the placebo's truth is 0 by construction), then the coverage counts. ``--small N`` also
measures, on an N-account company, after how many months of episodes each play's true effect
is measurable (the power formula of ``training.play_effect`` with the company's own eligible
accounts a month and base rate, plus the 3-month outcome window), with the holdout share of the
run and with 30 % and 50 % held out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import tempfile
import time
from pathlib import Path

import pandas as pd

AS_OF = dt.date(2026, 6, 30)


def company(root: Path, name: str, accounts: int, months: int, seed: int, plays) -> Path:  # noqa: ANN001
    from features.synth import generate

    out = root / name
    generate(out, accounts=accounts, months=months, seed=seed, as_of=AS_OF, plays=plays)
    return out


def outcomes(folder: Path, episodes: pd.DataFrame, window: int) -> pd.DataFrame:
    from features.io import open_data
    from features.play_outcomes import episode_outcomes

    source = open_data(folder)
    try:
        return episode_outcomes(source, episodes, window)
    finally:
        source.close()


def one_seed(root: Path, accounts: int, months: int, seed: int, cfg, replicates: int) -> list[dict]:  # noqa: ANN001
    from dataclasses import replace

    from features.synth.plays import PLACEBO, PLAYS
    from training.play_effect import play_effects

    with_plays = company(root, f"s{seed}", accounts, months, seed, cfg)
    episodes = pd.read_parquet(with_plays / "play_assignments.parquet")
    read = outcomes(with_plays, episodes, cfg.episode_days)
    effects = {e.play: e for e in play_effects(read, replicates=replicates)}
    rows = []
    for play in PLAYS:
        e = effects[play]
        mine = (read["play"] == play) & (read["arm"] == "recommend") & read[e.outcome].notna()
        if play == PLACEBO:
            truth = 0.0
        else:
            without = company(root, f"s{seed}-{play}", accounts, months, seed, replace(cfg, off=(play,)))
            counter = outcomes(without, episodes, cfg.episode_days)
            truth = float((read.loc[mine, e.outcome] - counter.loc[mine, e.outcome]).mean())
        iv = e.effect
        rows.append({"seed": seed, "play": play, "outcome": e.outcome, "recommended": e.recommended,
                     "held_out": e.held_out, "truth": truth, "estimate": iv.value if iv else math.nan,
                     "low": iv.low if iv else math.nan, "high": iv.high if iv else math.nan,
                     "covers": bool(iv and iv.low <= truth <= iv.high), "excludes_0": bool(iv and (iv.low > 0 or iv.high < 0)),
                     "done_share": e.done_share, "status": e.status})
    return rows


def small_company(root: Path, accounts: int, months: int, cfg, truths: pd.Series) -> pd.DataFrame:  # noqa: ANN001
    """Months until each play's true effect (mean over the seeds) is measurable on an ``accounts``-account company."""
    from training.play_effect import months_to_measure, primary_outcome

    folder = company(root, "small", accounts, months, 1, cfg)
    episodes = pd.read_parquet(folder / "play_assignments.parquet")
    read = outcomes(folder, episodes, cfg.episode_days)
    rows = []
    for play, group in read.groupby("play"):
        outcome = primary_outcome(str(play))
        per_month = len(group) / group["episode_start"].dt.to_period("M").nunique()
        base = float(group.loc[group["arm"] == "hold_out", outcome].mean())
        if not math.isfinite(base):
            base = float(group[outcome].mean())
        effect = float(truths.get(play, 0.0))
        row = {"play": play, "eligible_a_month": per_month, "base_rate": base, "true_effect": effect}
        for share in dict.fromkeys((cfg.share, 0.3, 0.5)):  # the months with a larger holdout, for a small book
            m = months_to_measure(per_month, base, effect, share)
            row[f"months_at_{share:.0%}_held_out"] = m + 3 if math.isfinite(m) else math.inf
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--share", type=float, default=0.10)
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--small", type=int, default=300)
    args = parser.parse_args()

    from features.synth.plays import PLACEBO, PlayEffects

    cfg = PlayEffects(share=args.share)
    pd.set_option("display.width", 200)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            seed_rows = one_seed(Path(tmp), args.accounts, args.months, seed, cfg, args.replicates)
            rows += seed_rows
            print(pd.DataFrame(seed_rows).round(4).to_string(index=False), flush=True)
        table = pd.DataFrame(rows)
        print(f"\n{args.seeds} seeds x {args.accounts:,} accounts x {args.months} months, holdout {args.share:.0%}, "
              f"compliance {cfg.compliance:.0%}, {time.perf_counter() - started:.0f} s")
        summary = table.groupby("play").agg(seeds=("seed", "size"), measured=("status", lambda s: int((s == "measured").sum())),
                                            covers=("covers", "sum"), excludes_0=("excludes_0", "sum"),
                                            truth_mean=("truth", "mean"), estimate_mean=("estimate", "mean"),
                                            recommended=("recommended", "mean"), held_out=("held_out", "mean"))
        print(summary.round(4).to_string())
        placebo = table[table["play"] == PLACEBO]
        print(f"placebo ({PLACEBO}): interval covers 0 in {int(placebo['covers'].sum())} of {len(placebo)} seeds")
        if args.small:
            truths = table.groupby("play")["truth"].mean()
            print(f"\n{args.small}-account company, {args.months} months (seed 1): months until each play's mean true "
                  "effect is measurable (90 % interval excludes 0 with 80 % power; +3 months of outcome window)")
            print(small_company(Path(tmp), args.small, args.months, cfg, truths).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
