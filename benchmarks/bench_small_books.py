"""Benchmark: honesty on small books, a no-signal control, quality at 10,000 accounts, and backtest speed.

One command: ``python benchmarks/bench_small_books.py [--parts seeds control large]
[--seeds 10] [--control-seeds 20] [--work DIR]``. Parts:

- ``seeds``: generated companies of 300 accounts x 18 months (one per seed): the replayed
  ``backtest`` (newest 6 eligible cut-offs) gives pooled expansion and churn ROC-AUC for model
  and baseline with the 90 % interval of the gain; and the monthly job on the same seed's
  first 13 months of data (cut at a month end) must train.
- ``control``: the same companies with every outcome (expanded, churned, contracted,
  expansion MRR) shuffled between the accounts active at each month end, so that nothing
  an account shows can predict its own outcome. Counts promotions over every replayed
  gate and the monthly job on all the data, and every pooled ROC-AUC's distance to 0.5.
- ``large``: the 10,000-account, 24-month company (seed 5, as the other benchmarks):
  the monthly job's pooled gains over the baseline and ECE; then the speed of a 6-cut-off
  ``backtest`` of it against the reference measured in the same run, that monthly job
  (``train_all``) on the same frame (``<work>/small_books_speed.csv``).
- ``params``: the replayed expansion backtest of each ``seeds`` company twice in one run, with
  the former LightGBM regularisation (``feature_fraction`` 0.8, ``lambda_l2`` 1) and the
  current one (0.5, 10); 400 bootstrap replicates; the gain also counted over pairs across months.
- ``size``: the monthly job's training step (``train_all``) on a generated 30,000-account,
  24-month company, in a child process: wall time and peak resident memory. With
  ``--reference-code DIR`` (a copy of the former code, e.g. ``git archive <commit> training
  features | tar -x -C DIR``) the same step of that code runs first on the same frame, as the
  in-run reference.

- ``shadow``: the ``seeds`` companies replayed at every eligible cut-off with the shadow
  challenger (``training.backtest``): per seed, when a model first served and on which
  evidence, each shadow version's realised gain over what served on its shadow months, and
  whether a model served within 3 months of a shadow whose realised gain interval lies above 0.
  ``--shadow-months 24`` replays companies of 24 months from their first eligible cut-off, where
  the first decisions rest on few test months (``--first-seed`` splits the seeds over runs;
  ``--model churn`` replays the churn model instead of expansion).
- ``shadow-route``: the shadow route alone on the same 24-month companies: the first eligible
  cut-off's refit kept in shadow while the baseline serves, judged at every later cut-off on
  the realised months known by then; when it would be promoted.
- ``drift``: companies of 300 accounts x 44 months; the monthly job trains a champion on the
  first 13 month ends, then ``training.monitoring`` checks it on each of the next 24 scored
  months, with outcomes as generated (false alarms) and with a change from the 12th
  monitored month: a relationship change (the same number of expansions, now going to the
  accounts the rule-based readiness ranks high) and a rate change (about twice the
  expansions, the ranking kept): the run at which an alarm first fires.
- ``control`` also prints every pooled ROC-AUC's distance from 0.5 in standard errors (the
  90 % interval's half-width / 1.645).

Every false-promotion count comes with its exact (Clopper-Pearson) 90 % interval.

Results go to ``<work>/small_books_<part>.csv`` and are printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.config import Settings
from features.registry import categorical_features, feature_names
from training.backtest import LABEL_COLUMNS, backtest, choose_cutoffs
from training.datasets import cut_at
from training.gate import gate
from training.train import train_all

AS_OF = dt.date(2026, 6, 30)


def feature_frame(work: Path, accounts: int, months: int, seed: int) -> pd.DataFrame:
    """Generate (once) a company and build (once) its feature frame over every month end."""
    from features.build import build_features
    from features.io import open_data
    from features.spine import month_ends
    from features.synth import generate

    cached = work / f"features_{accounts}_{months}_{seed}.parquet"
    if cached.exists():
        return pd.read_parquet(cached)
    folder = work / f"company_{accounts}_{months}_{seed}"
    if not (folder / "accounts.parquet").exists():
        generate(folder, accounts=accounts, months=months, seed=seed, as_of=AS_OF)
    source = open_data(folder)
    try:
        first = source.con.execute("SELECT min(date)::DATE FROM usage_daily").fetchone()[0]
        frame = build_features(source, month_ends(first, AS_OF), Settings(_env_file=None, home=work / "home"), data_end=AS_OF)
    finally:
        source.close()
    frame.to_parquet(cached)
    return frame


def shuffled_outcomes(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The frame with each month end's outcomes handed to randomly chosen other active accounts."""
    out = frame.copy()
    rng = np.random.default_rng(seed)
    cols = [c for c in LABEL_COLUMNS if c in out.columns]
    for _, idx in out.groupby("as_of").groups.items():
        order = rng.permutation(len(idx))
        out.loc[idx, cols] = out.loc[idx, cols].to_numpy()[order]
    return out


def replay_row(frame: pd.DataFrame, settings: Settings) -> dict[str, object]:
    """One seed's replayed backtest: pooled figures per model and the gate's decisions."""
    cutoffs = choose_cutoffs(frame, settings.horizon_days, n_cutoffs=6)
    result = backtest(frame, feature_names(), categorical_features(), settings, cutoffs)
    s = result.summary.set_index(["model_name", "scorer", "metric"])
    row: dict[str, object] = {"cutoffs": len(cutoffs), "first_cutoff": cutoffs[0].date().isoformat()}
    for name in ("expansion", "churn"):
        for scorer, key in (("model", "auc"), ("baseline", "baseline_auc"), ("model - baseline", "gain")):
            r = s.loc[(name, scorer, "roc_auc")]
            row[f"{name}_{key}"], row[f"{name}_{key}_low"], row[f"{name}_{key}_high"] = r["value"], r["low"], r["high"]
        row[f"{name}_positives"] = int(s.loc[(name, "model", "roc_auc"), "positives"])
        decisions = result.cutoffs[result.cutoffs["model"] == name]["decision"]
        row[f"{name}_promotions"] = int((decisions == "promoted").sum())
    share = s.loc[("expansion", "model", "top_decile_expansion_mrr_share")]
    row["mrr_share_top_decile"], row["mrr_share_baseline"] = share["value"], s.loc[("expansion", "baseline", "top_decile_expansion_mrr_share"), "value"]
    return row


def null_z(pooled: pd.DataFrame, label: str, score: str = "model_raw", rounds: int = 500, seed: int = 0) -> float:
    """The pooled ROC-AUC as reported (pairs within a month, the fold models' raw scores), in standard
    deviations from its exact no-signal distribution: each month's outcomes dealt again among that
    month's rows (what the control's shuffle does), the scores kept. Not on the cross-fitted
    probabilities: those are fitted on the other accounts' outcomes, so keeping them while re-dealing
    the outcomes is not the null.
    """
    from training.evaluate import roc_auc

    p = pooled.reset_index(drop=True)
    y, s = p[label].to_numpy(dtype=float), p[score].to_numpy(dtype=float)
    strata = pd.factorize(p["as_of"], sort=True)[0]
    groups = list(p.groupby("as_of", sort=True).indices.values())
    rng = np.random.default_rng(seed)
    null = np.empty(rounds)
    for i in range(rounds):
        dealt = y.copy()
        for idx in groups:
            dealt[idx] = y[idx][rng.permutation(len(idx))]
        null[i] = roc_auc(dealt, s, strata)
    return float((roc_auc(y, s, strata) - null.mean()) / null.std())


def monthly_job_row(frame: pd.DataFrame, settings: Settings, prefix: str) -> dict[str, object]:
    """The monthly job on ``frame``: cut-offs, warning, pooled AUC with interval, gate decision without a champion."""
    results = train_all(frame, feature_names(), categorical_features(), settings)
    row: dict[str, object] = {}
    for name, r in results.items():
        decision = gate(r, None, settings)
        row[f"{prefix}{name}_cutoffs"] = len(r.folds)
        row[f"{prefix}{name}_auc"] = str(r.interval("roc_auc"))
        row[f"{prefix}{name}_auc_value"] = r.interval("roc_auc").value
        row[f"{prefix}{name}_null_z"] = null_z(r.pooled, r.label) if 0 < r.positives < len(r.pooled) else float("nan")
        row[f"{prefix}{name}_baseline_auc_value"] = r.interval("roc_auc", "baseline").value
        row[f"{prefix}{name}_gain"] = str(r.interval("roc_auc", "model - baseline"))
        row[f"{prefix}{name}_positives"] = r.positives
        row[f"{prefix}{name}_promoted"] = decision.promote
        row[f"{prefix}{name}_warning"] = bool(r.warning)
    return row


def rate_interval(hits: int, trials: int, confidence: float = 0.9) -> str:
    """``hits of trials`` with the exact (Clopper-Pearson) interval of the rate."""
    from scipy.stats import binomtest

    ci = binomtest(hits, trials).proportion_ci(confidence_level=confidence, method="exact")
    return f"{hits} of {trials} (rate {hits / trials:.3f}, {confidence:.0%} interval {ci.low:.3f} to {ci.high:.3f})"


def part_seeds(work: Path, seeds: list[int], settings: Settings) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        frame = feature_frame(work, 300, 18, seed)
        row = {"seed": seed, **replay_row(frame, settings)}
        thirteen = cut_at(frame, pd.Timestamp(frame["as_of"].min()) + pd.offsets.MonthEnd(12), settings.horizon_days,
                          LABEL_COLUMNS)
        row["job13_months"] = thirteen["as_of"].nunique()
        row.update(monthly_job_row(thirteen, settings, "job13_"))
        row["seconds"] = round(time.perf_counter() - t0, 1)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        rows.append(row)
    return pd.DataFrame(rows)


def part_control(
    work: Path, seeds: list[int], settings: Settings, accounts: int = 300, replay: bool = True,
) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        frame = shuffled_outcomes(feature_frame(work, accounts, 18, seed), seed=1000 + seed)
        row = {"seed": seed, "accounts": accounts, **(replay_row(frame, settings) if replay else {}),
               **monthly_job_row(frame, settings, "job_")}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    job = table[["job_expansion_promoted", "job_churn_promoted"]].to_numpy()
    print("monthly job, seeds with a promotion:", rate_interval(int(job.any(axis=1).sum()), len(table)))
    print("monthly job, decisions promoted:", rate_interval(int(job.sum()), job.size))
    sources = [("monthly job", [f"job_{n}_{k}auc_value" for n in ("expansion", "churn") for k in ("", "baseline_")])]
    if replay:
        replayed = int(table[["expansion_promotions", "churn_promotions"]].to_numpy().sum())
        print("replayed gates, decisions promoted:", rate_interval(replayed, int(table["cutoffs"].sum()) * 2))
        sources.append(("replayed backtest", [f"{n}_{k}" for n in ("expansion", "churn") for k in ("auc", "baseline_auc")]))
    if replay:
        for name in ("expansion", "churn"):
            for key in ("auc", "baseline_auc"):
                se = (table[f"{name}_{key}_high"] - table[f"{name}_{key}_low"]) / (2 * 1.645)
                z = (table[f"{name}_{key}"] - 0.5) / se
                table[f"{name}_{key}_z"] = z
                print(f"replayed {name} {key}: distance from 0.5 in standard errors:",
                      ", ".join(f"{v:+.1f}" for v in z), "| beyond 3:", int((z.abs() > 3).sum()))
    for name in ("expansion", "churn"):
        z = table[f"job_{name}_null_z"]
        print(f"monthly job {name}: pooled ROC-AUC against its exact within-month null, in standard deviations:",
              ", ".join(f"{v:+.1f}" for v in z), "| beyond 3:", int((z.abs() > 3).sum()))
    for source, cols in sources:
        values = table[cols].to_numpy(dtype=float).ravel()
        outside = values[np.abs(values - 0.5) > 0.05]
        print(f"{source}: pooled ROC-AUCs within 0.5 +- 0.05: {len(values) - len(outside)} of {len(values)}"
              f" (outside: {', '.join(f'{v:.3f}' for v in outside) or 'none'})")
    return table


def _served_within(d: pd.DataFrame, start: int | None, cutoffs: int = 3) -> bool | None:
    """Whether a model served at cut-off ``start`` or within ``cutoffs`` after it; None when the job never
    knew the shadow's first realised month, or the replay ends before the window closes with none served."""
    if start is None:
        return None
    if (d.loc[start:start + cutoffs, "served"] != "baseline").any():
        return True
    return None if start + cutoffs > len(d) - 1 else False


def part_shadow(work: Path, seeds: list[int], settings: Settings, months: int = 18, model: str = "expansion") -> pd.DataFrame:
    """Replay every eligible cut-off with the shadow challenger; when a model first served, and why.

    Per shadow version: its realised ROC-AUC gain over what served on all its months, the
    cut-off at which the job first knew one of its months (its scored month plus the horizon),
    the cut-off at which those months first held the gate's minimum of positives, and whether
    a model was serving within 3 cut-offs of its start and of its first realised month. With
    ``months`` = 24 the replay starts a good half-year earlier in the company's life, where the
    first decisions rest on few test months.
    """
    from training.backtest import eligible_cutoffs
    from training.bootstrap import Scores, compare, lookup

    rows = []
    horizon = pd.Timedelta(days=settings.horizon_days)
    for seed in seeds:
        t0 = time.perf_counter()
        frame = feature_frame(work, 300, months, seed)
        cutoffs = eligible_cutoffs(frame, settings.horizon_days)
        result = backtest(frame, feature_names(), categorical_features(), settings, cutoffs, models=(model,))
        d = result.cutoffs.reset_index(drop=True)
        served = d.index[d["served"] != "baseline"]
        row = {"seed": seed, "model": model, "months": months, "cutoffs": len(d), "first_cutoff": d.loc[0, "cutoff"],
               "first_served_at": d.loc[served[0], "cutoff"] if len(served) else "never",
               "evidence": d.loc[served[0], "evidence"] if len(served) else "",
               "shadow_promotions": int(((d["decision"] == "promoted") & d["evidence"].str.contains("shadow")).sum()),
               "shadow_gain_above_0": 0, "served_within_3": 0, "served_within_3_of_realised": 0, "censored": 0}
        sc = result.scores
        dates = pd.to_datetime(d["cutoff"])
        gains = []
        for version, part in sc[sc["shadow_by"] != ""].groupby("shadow_by"):
            y = part["outcome"].to_numpy(float)
            table = compare(y, {k: Scores(part[k].to_numpy(), part[k].to_numpy()) for k in ("shadow", "served")},
                            part["account_id"].to_numpy(), np.zeros(len(y), dtype=int), names=("roc_auc",),
                            replicates=400, strata=pd.factorize(part["as_of"])[0])
            gain = lookup(table, "shadow - served", "roc_auc")
            start = d.index[d["shadow"] == version][0]
            known = d.index[dates >= dates[start] + horizon]  # the job first knows a realised month of it
            realised_at = int(known[0]) if len(known) else None
            usable = d.index[(d["shadow_before"] == version) & (d["shadow_realised_positives"] >= settings.gate_min_positives)]
            within = bool((d.loc[start:start + 3, "served"] != "baseline").any())
            within_realised = _served_within(d, realised_at)
            gains.append(f"v{version} (from {d.loc[start, 'cutoff']}): {gain} over {part['as_of'].nunique()} month(s); "
                         f"first realised month known at {d.loc[realised_at, 'cutoff'] if realised_at is not None else 'never'}, "
                         f"{settings.gate_min_positives}+ positives at {d.loc[usable[0], 'cutoff'] if len(usable) else 'never'}; "
                         f"model serving within 3 of start: {within}, of first realised: {within_realised}")
            if gain.low > 0:
                row["shadow_gain_above_0"] += 1
                row["served_within_3"] += int(within)
                row["served_within_3_of_realised"] += int(bool(within_realised))
                row["censored"] += int(within_realised is None)
        row["shadows"] = "; ".join(gains)
        row["served"] = ", ".join(d["served"])
        row["decisions"] = ", ".join(f"{c}:{e}" for c, e in zip(d["cutoff"], d["decision"], strict=True))
        row["seconds"] = round(time.perf_counter() - t0, 1)
        print(row, flush=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    tested = table[table["shadow_gain_above_0"] > 0]
    judged = tested[(tested["served_within_3_of_realised"] > 0) | (tested["censored"] < tested["shadow_gain_above_0"])]
    print(f"{model}, {months}-month companies: seeds with a shadow whose realised gain interval lies above 0:", len(tested), "of",
          len(table), "| a model serving within 3 cut-offs of its start:", int((tested["served_within_3"] > 0).sum()),
          "| within 3 of its first realised month:", int((tested["served_within_3_of_realised"] > 0).sum()), "of", len(judged),
          f"whose 3-cut-off window the replay holds ({len(tested) - len(judged)} whose first realised month it never reached, or whose window it cut short with no model served)",
          "| promotions with shadow months in the evidence:", int(table["shadow_promotions"].sum()))
    return table


def part_shadow_route(work: Path, seeds: list[int], settings: Settings, months: int = 24) -> pd.DataFrame:
    """The shadow route on its own: the refit of the first eligible cut-off kept in shadow while the baseline
    serves (as if the pooled route had refused it, the third-party company's case), judged at every later
    cut-off on the realised months the job knows by then (scored month + horizon), at the two-route level.

    Per seed: what the pooled route said at the start; the shadow's realised ROC-AUC gain over the
    baseline (90 %) on all its months; the cut-off at which the job first knew one of its months, at
    which they first held the minimum of positives, and at which the shadow route promoted it.
    """
    from training.baseline import BaselineClassifier
    from training.backtest import eligible_cutoffs
    from training.bootstrap import Scores, compare, lookup
    from training.gate import ShadowRecord
    from training.train import train_model

    rows = []
    horizon = pd.Timedelta(days=settings.horizon_days)
    for seed in seeds:
        t0 = time.perf_counter()
        frame = feature_frame(work, 300, months, seed)
        cutoffs = eligible_cutoffs(frame, settings.horizon_days)
        start = cutoffs[0]
        result = train_model("expansion", cut_at(frame, start, settings.horizon_days, LABEL_COLUMNS), feature_names(),
                             categorical_features(), settings, interval_metrics=("roc_auc",))
        pooled = gate(result, None, settings)
        scored = []
        for day in cutoffs:
            month = frame[(frame["as_of"] == day) & frame["expanded"].notna()]
            base = BaselineClassifier("expansion").score(month)
            scored.append(pd.DataFrame({"account_id": month["account_id"].to_numpy(), "as_of": month["as_of"].to_numpy(),
                                        "outcome": month["expanded"].to_numpy(float),
                                        "shadow": result.model.predict_proba(month), "served": base, "baseline": base}))
        every = pd.concat(scored, ignore_index=True)
        y = every["outcome"].to_numpy(float)
        table = compare(y, {k: Scores(every[k].to_numpy(), every[k].to_numpy()) for k in ("shadow", "served")},
                        every["account_id"].to_numpy(), np.zeros(len(y), dtype=int), names=("roc_auc",), replicates=400,
                        strata=pd.factorize(every["as_of"])[0])
        realised_gain = lookup(table, "shadow - served", "roc_auc")
        known_at = usable_at = promoted_at = None
        for k, cutoff in enumerate(cutoffs[1:], start=1):
            rec = every[pd.to_datetime(every["as_of"]) + horizon <= cutoff]
            if len(rec) and known_at is None:
                known_at = k
            if rec["outcome"].sum() < settings.gate_min_positives:
                continue
            usable_at = k if usable_at is None else usable_at
            if gate(result, None, settings, shadow=ShadowRecord(start.date().isoformat(), rec)).promote:
                promoted_at = k
                break
        row = {"seed": seed, "months": months, "start": start.date().isoformat(), "cutoffs": len(cutoffs),
               "pooled_at_start": pooled.label, "pooled_gain": str(result.interval("roc_auc", "model - baseline", decision=True)),
               "realised_gain": str(realised_gain), "realised_gain_low": realised_gain.low,
               "realised_positives": int(y.sum()), "realised_months": len(cutoffs),
               "first_known_at": known_at, "usable_at": usable_at, "promoted_at": promoted_at,
               "promoted_cutoff": cutoffs[promoted_at].date().isoformat() if promoted_at is not None else "never",
               "within_3_of_known": promoted_at is not None and known_at is not None and promoted_at - known_at <= 3,
               "seconds": round(time.perf_counter() - t0, 1)}
        print(row, flush=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    above = table[table["realised_gain_low"] > 0]
    print("shadow route alone: realised gain interval above 0 in", len(above), "of", len(table),
          "| promoted by the shadow route:", int((above["promoted_at"].notna()).sum()),
          "| within 3 cut-offs of its first realised month:", int(above["within_3_of_known"].sum()))
    return table


def relationship_change(month: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same number of expansions, now going to accounts the rule-based readiness ranks high (odds x e^2.5 per sd)."""
    from training.baseline import readiness

    out = month.copy()
    rng = np.random.default_rng(seed)
    score = readiness(month)["readiness_score"].to_numpy(float)
    weights = np.exp(2.5 * (score - score.mean()) / max(score.std(), 1e-9))
    chosen = rng.choice(len(month), size=int(month["expanded"].sum()), replace=False, p=weights / weights.sum())
    y = np.zeros(len(month))
    y[chosen] = 1.0
    out["expanded"] = y
    return out


def rate_change(month: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Expansions as generated plus as many again at random: the rate roughly doubles, the ranking stays."""
    out = month.copy()
    rng = np.random.default_rng(seed)
    y = month["expanded"].to_numpy(float)
    out["expanded"] = np.maximum(y, (rng.random(len(y)) < y.mean()).astype(float))
    return out


SCENARIOS = {"as generated": None, "relationship change": relationship_change, "rate change": rate_change}


def part_drift(work: Path, seeds: list[int], settings: Settings, change_at: int = 12, months: int = 24) -> pd.DataFrame:
    """A champion trained on the first 13 month ends, monitored on the next 24: false alarms, and the catch."""
    from training.baseline import readiness
    from training.monitoring import alarms, calibration, realised, track_rows
    from training.train import train_model

    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        frame = feature_frame(work, 300, 44, seed)
        dates = sorted(frame.loc[frame["expanded"].notna(), "as_of"].unique())
        train_end = dates[12]
        champion = train_model("expansion", cut_at(frame, train_end, settings.horizon_days, LABEL_COLUMNS),
                               feature_names(), categorical_features(), settings, interval_metrics=("roc_auc",)).model
        spread = champion.metrics["calibration_month_sd"]
        watched = [d for d in dates if d > train_end + pd.Timedelta(days=settings.horizon_days)][:months]
        for scenario, change in SCENARIOS.items():
            tracks, fired = [], []
            for i, day in enumerate(watched):
                month = frame[(frame["as_of"] == day) & frame["expanded"].notna()].reset_index(drop=True)
                p = champion.predict_proba(month)
                if change is not None and i >= change_at:
                    month = change(month, seed * 100 + i)
                rows_ = pd.DataFrame({"account_id": month["account_id"], "as_of": month["as_of"], "csm_owner": month["csm_owner"],
                                      "segment": month["segment"], "outcome": month["expanded"].to_numpy(float),
                                      "champion": p, "baseline": readiness(month)["readiness_score"].to_numpy(float) / 100})
                table = realised(rows_, replicates=200, by_segment=False)
                tracks.append(track_rows(str(pd.Timestamp(day).date()), "expansion", table,
                                         calibration(rows_["outcome"].to_numpy(), p, month_sd=spread), {}))
                found = alarms(pd.concat(tracks, ignore_index=True), settings.horizon_days)
                fired.append(",".join(sorted({a.kind for a in found})))
            alarm_runs = [i for i, f in enumerate(fired) if f]
            before = [i for i in alarm_runs if i < change_at] if change is not None else alarm_runs
            after = [i - change_at for i in alarm_runs if i >= change_at] if change is not None else []
            row = {"seed": seed, "scenario": scenario, "runs": len(watched), "month_sd": round(spread, 4),
                   "alarm_runs": len(alarm_runs), "false_alarm_runs": len(before),
                   "caught_at_run": (after[0] + 1) if after else None,
                   "kinds": "; ".join(f"{i}:{f}" for i, f in enumerate(fired) if f),
                   "seconds": round(time.perf_counter() - t0, 1)}
            print(row, flush=True)
            rows.append(row)
    table = pd.DataFrame(rows)
    clean = table[table["scenario"] == "as generated"]
    print("as generated: seeds with at most 1 false alarm in", months, "runs:", int((clean["alarm_runs"] <= 1).sum()), "of", len(clean),
          "| alarm runs in all:", int(clean["alarm_runs"].sum()), "of", int(clean["runs"].sum()))
    for scenario in ("relationship change", "rate change"):
        part = table[table["scenario"] == scenario]
        print(f"{scenario}: caught within 2 runs in", int((part["caught_at_run"] <= 2).sum()), "of", len(part),
              "| false alarms before the change:", int(part["false_alarm_runs"].sum()))
    return table


FORMER_PARAMS = {"feature_fraction": 0.8, "lambda_l2": 1.0}


def part_params(work: Path, seeds: list[int], settings: Settings) -> pd.DataFrame:
    import training.models as models
    from training.bootstrap import Scores, compare, lookup
    from training.evaluate import book_codes

    settings = settings.model_copy(update={"bootstrap_replicates": 400})
    current = {k: models.DEFAULT_PARAMS[k] for k in FORMER_PARAMS}
    rows = []
    try:
        for seed in seeds:
            frame = feature_frame(work, 300, 18, seed)
            cutoffs = choose_cutoffs(frame, settings.horizon_days, n_cutoffs=6)
            for config, params in (("former", FORMER_PARAMS), ("current", current)):
                models.DEFAULT_PARAMS.update(params)
                t0 = time.perf_counter()
                result = backtest(frame, feature_names(), categorical_features(), settings, cutoffs, models=("expansion",))
                s = result.summary.set_index(["model_name", "scorer", "metric"])
                row: dict[str, object] = {"seed": seed, "config": config, "seconds": round(time.perf_counter() - t0, 1)}
                for scorer, key in (("model", "auc"), ("baseline", "base"), ("model - baseline", "gain")):
                    r = s.loc[("expansion", scorer, "roc_auc")]
                    row[key], row[f"{key}_low"], row[f"{key}_high"] = r["value"], r["low"], r["high"]
                row["positives"] = int(s.loc[("expansion", "model", "roc_auc"), "positives"])
                sc = result.scores
                across = compare(sc["outcome"].to_numpy(float),
                                 {k: Scores(sc[k].to_numpy(), sc[k].to_numpy()) for k in ("model", "baseline")},
                                 sc["account_id"].to_numpy(), book_codes(sc), names=("roc_auc",), replicates=400)
                row["gain_across_months"] = lookup(across, "model - baseline", "roc_auc").value
                row["promotions"] = int((result.cutoffs["decision"] == "promoted").sum())
                print(row, flush=True)
                rows.append(row)
    finally:
        models.DEFAULT_PARAMS.update(current)
    table = pd.DataFrame(rows)
    for config, part in table.groupby("config", sort=False):
        print(config, "gain interval above 0 in", int((part["gain_low"] > 0).sum()), "of", len(part),
              "mean gain", round(part["gain"].mean(), 3))
    return table


CHILD_JOB = """
import json, resource, sys, time
import pandas as pd
from features.config import Settings
from features.registry import categorical_features, feature_names
from training.train import train_all
frame = pd.read_parquet(sys.argv[1])
t0 = time.perf_counter()
results = train_all(frame, feature_names(), categorical_features(), Settings(_env_file=None, home=sys.argv[2]))
out = {"seconds": round(time.perf_counter() - t0, 1), "rows": len(frame),
       "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)}
for name, r in results.items():
    out[name] = {"cutoffs": len(r.folds)}
    if hasattr(r, "comparison"):
        out[name].update(auc=str(r.interval("roc_auc")), gain=str(r.interval("roc_auc", "model - baseline")),
                         ece=str(r.interval("ece")), positives=r.positives, rounds=r.rounds)
print(json.dumps(out))
"""


def timed_job(code: Path, frame_path: Path, home: Path) -> dict[str, object]:
    """``train_all`` of the code under ``code`` on the frame, in a child process (its own peak memory)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    load = open("/proc/loadavg").read().split()[:3]
    proc = subprocess.run([sys.executable, "-c", CHILD_JOB, str(frame_path), str(home)], cwd=code, env=env,
                          capture_output=True, text=True, check=True)
    return {"code": str(code), "loadavg_before": " ".join(load), **json.loads(proc.stdout.strip().splitlines()[-1])}


def part_size(work: Path, reference: Path | None) -> pd.DataFrame:
    feature_frame(work, 30_000, 24, 5)
    frame_path = work / "features_30000_24_5.parquet"
    codes = ([reference] if reference else []) + [Path(__file__).resolve().parents[1]]
    rows = [timed_job(code, frame_path, work / "home_size") for code in codes]
    for row in rows:
        print(row, flush=True)
    return pd.DataFrame(rows)


def part_large(work: Path, settings: Settings) -> pd.DataFrame:
    t0 = time.perf_counter()
    frame = feature_frame(work, 10_000, 24, 5)
    print(f"10,000-account frame: {len(frame):,} rows ({time.perf_counter() - t0:.0f} s, cached after the first run)", flush=True)
    t0 = time.perf_counter()
    results = train_all(frame, feature_names(), categorical_features(), settings)
    reference = time.perf_counter() - t0
    rows = []
    for name, r in results.items():
        for metric in ("roc_auc", "lift_top_decile", "ece", "precision_top_book"):
            for scorer in ("model", "baseline", "model - baseline"):
                iv = r.interval(metric, scorer)
                rows.append({"model": name, "scorer": scorer, "metric": metric, "value": iv.value, "low": iv.low,
                             "high": iv.high, "positives": r.positives, "rows": len(r.pooled), "cutoffs": len(r.folds),
                             "rounds": r.rounds, "calibration": r.model.calibrator.method, "job_seconds": round(reference, 1)})
    quality = pd.DataFrame(rows)
    print(quality.to_string(), flush=True)
    cutoffs = choose_cutoffs(frame, settings.horizon_days, n_cutoffs=6)
    t0 = time.perf_counter()
    backtest(frame, feature_names(), categorical_features(), settings, cutoffs)
    elapsed = time.perf_counter() - t0
    speed = pd.DataFrame([{"accounts": 10_000, "months": 24, "rows": len(frame), "cutoffs": len(cutoffs),
                           "monthly_job_seconds": round(reference, 1), "backtest_seconds": round(elapsed, 1),
                           "ratio": round(elapsed / reference, 2)}])
    speed.to_csv(work / "small_books_speed.csv", index=False)
    print(speed.to_string(), flush=True)
    return quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["seeds", "control", "large"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=1, help="shadow and control parts: the first seed (to split the seeds over runs)")
    parser.add_argument("--shadow-months", type=int, default=18, help="shadow part: months of each generated company")
    parser.add_argument("--model", choices=("expansion", "churn"), default="expansion",
                        help="shadow part: the model replayed (the control part always counts both)")
    parser.add_argument("--control-seeds", type=int, default=20)
    parser.add_argument("--control-accounts", type=int, default=300,
                        help="control part: accounts per company (more positives make the 0.5 +- 0.05 check sharper)")
    parser.add_argument("--control-job-only", action="store_true",
                        help="control part: the monthly job alone, without the replayed backtest")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--reference-code", type=Path, default=None,
                        help="size part: a copy of the former training and features code to time first")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_small_books_"))
    work.mkdir(parents=True, exist_ok=True)
    settings = Settings(_env_file=None, home=work / "home")
    for part in args.parts:
        t0 = time.perf_counter()
        if part == "seeds":
            table = part_seeds(work, list(range(1, args.seeds + 1)), settings)
        elif part == "control":
            table = part_control(work, list(range(args.first_seed, args.first_seed + args.control_seeds)), settings,
                                 args.control_accounts,
                                 replay=not args.control_job_only)
        elif part == "large":
            table = part_large(work, settings)
        elif part == "shadow":
            table = part_shadow(work, list(range(args.first_seed, args.first_seed + args.seeds)), settings, args.shadow_months,
                                args.model)
        elif part == "shadow-route":
            table = part_shadow_route(work, list(range(args.first_seed, args.first_seed + args.seeds)), settings,
                                      args.shadow_months)
        elif part == "drift":
            table = part_drift(work, list(range(1, args.seeds + 1)), settings)
        elif part == "params":
            table = part_params(work, list(range(1, args.seeds + 1)), settings)
        elif part == "size":
            table = part_size(work, args.reference_code)
        else:
            raise SystemExit(f"unknown part {part!r}: seeds, control, large, params or size")
        table.to_csv(work / f"small_books_{part}.csv", index=False)
        print(f"== {part} ({time.perf_counter() - t0:.0f} s) -> {work / f'small_books_{part}.csv'}")
        print(table.to_string(), flush=True)


if __name__ == "__main__":
    main()
