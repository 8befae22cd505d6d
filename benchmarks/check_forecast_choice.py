"""The live forecast's method choice and the alert rules' sending, measured on two generators with different mechanics.

    python benchmarks/check_forecast_choice.py [--accounts 3000] [--months 24] [--seeds 1 2 3] [--generators synth alt]
                                               [--rounds 200] [--out DIR] [--forecast-only]

For each generator (``features.synth``, the project's; ``features.synth_alt``, written from a
different description) and seed: generate a company, build the feature frame at every month
end, replay the forecast at every past cut-off (``training.forecast_backtest``, which also
replays the live forecast choosing its method on earlier cut-offs only), and replay every
alert rule (``serving.alerts.backtest``). Prints, per company:

- per method (live, model, naive_last, naive_mean4) over the cut-offs where all ran: the
  median absolute error of next-quarter expansion ARR in points of starting ARR (MdAE, every
  cut-off), MdAPE over the cut-offs whose actual is not 0 and their count, the signed bias;
- whether the live method is worse than the better naive forecast by more than noise: the
  paired difference of absolute errors (live minus the better naive, total and segments),
  its mean with a 95 % moving-block bootstrap interval over cut-offs (blocks of 3: monthly
  cut-offs of a 90-day horizon overlap); "worse" only when the whole interval lies above 0;
- the live forecast's 80 % and 95 % hit rates over cut-offs x segments with Wilson intervals;
- per alert rule: episodes, lift with its 90 % interval against the eligible accounts' base
  rate, and whether it is sent; and each rule at the thresholds of ``SWEEP``.
A CSV per company goes to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
AS_OF = dt.date(2026, 6, 30)
# thresholds tried per shipped rule (every numeric condition of the rule takes the value), to re-derive them from
# what holds on both generators
SWEEP = {"usage_near_limit": [75, 85, 95, 100], "usage_drop": [-20, -30, -40, -50], "payment_failed": [1, 2],
         "exec_silence_enterprise": [60, 90, 120, 180], "nps_detractor": [1], "stale_expansion_opportunity": [14, 30, 60]}


def variants(rules):  # noqa: ANN001, ANN201 - tuple[Rule, ...]
    """Each swept rule at each threshold, named ``rule@value``."""
    from dataclasses import replace

    out = []
    for r in rules:
        for v in SWEEP.get(r.name, []):
            def move(c):  # noqa: ANN001, ANN202
                return c if isinstance(c.value, str) else replace(c, value=float(v))
            out.append(replace(r, name=f"{r.name}@{v}", all_of=tuple(map(move, r.all_of)), any_of=tuple(map(move, r.any_of))))
    return tuple(out)


def company(kind: str, folder: Path, accounts: int, months: int, seed: int) -> Path:
    out = folder / f"{kind}_{accounts}_{months}_{seed}"
    if not (out / "usage_daily.parquet").exists():
        if kind == "alt":
            from features.synth_alt import generate_alt
            generate_alt(out, accounts=accounts, months=months, seed=seed, as_of=AS_OF)
        else:
            from features.synth import generate
            generate(out, accounts=accounts, months=months, seed=seed, as_of=AS_OF)
    return out


BLOCK = 3  # monthly cut-offs of a 90-day horizon overlap: resampled in blocks of 3


def block_interval(d: np.ndarray, cutoffs: np.ndarray, reps: int = 2000, block: int = BLOCK, seed: int = 0) -> tuple[float, float]:
    """95 % moving-block bootstrap interval of the mean of ``d`` (rows grouped by cut-off, blocks of cut-offs)."""
    order = sorted(set(cutoffs))
    by = [d[cutoffs == c] for c in order]
    n = len(order)
    if n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(reps):
        starts = rng.integers(0, max(n - block + 1, 1), size=-(-n // block))
        pick = np.concatenate([np.arange(s, min(s + block, n)) for s in starts])[:n]
        means.append(np.concatenate([by[i] for i in pick]).mean())
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def measure(kind: str, data: Path, rounds: int, alerts_too: bool = True) -> dict:
    from features.build import build_features, tables_from_backend, usage_span
    from features.config import Settings
    from features.io import open_data
    from features.deal_metrics import wilson
    from features.registry import categorical_features, feature_names
    from features.spine import month_ends
    from serving.alerts.backtest import sending, table_holders, track_record
    from serving.alerts.rules import active_rules, load_rules
    from serving.alerts.signals import usable_tables, with_signals
    from training.forecast_backtest import backtest_with_record, contraction_mrr, oot_predictions, summarize_backtest
    from features.movements import movements

    settings = Settings(_env_file=None, home=data / "home", lgbm_threads=1)
    source = open_data(data)
    started = time.perf_counter()
    try:
        first, last = usage_span(tables_from_backend(source.ibis(), source.present))
        frame = build_features(source, month_ends(first, last), settings, signals=True)
        moves = movements(source.ibis().table("subscriptions")).execute()
        frame["contraction_mrr"] = contraction_mrr(moves, frame, settings.horizon_days).to_numpy()
        rules, inactive = active_rules(load_rules(None), usable_tables(source))
        alerts = sweep = pd.DataFrame(columns=["rule", "episodes"])
        if alerts_too:  # the alert replay does not depend on the forecast: --forecast-only skips it on re-runs
            holders = table_holders(source, sorted({t for r in rules for t in r.requires}))
            signals = with_signals(frame, source)
            alerts = track_record(signals, rules, replicates=500, holders=holders)
            sweep = track_record(signals, variants(rules), replicates=300, holders=holders)
    finally:
        source.close()
    built = time.perf_counter() - started
    cache = data / f"oot_predictions_{rounds}.pickle"  # the boosters are the slow part; re-runs read them
    if cache.exists():
        predictions = pickle.loads(cache.read_bytes())
    else:
        predictions = oot_predictions(frame, feature_names(), categorical_features(), settings, max_rounds=rounds)
        cache.write_bytes(pickle.dumps(predictions))
    results, _ = backtest_with_record(frame, feature_names(), categorical_features(), settings, max_rounds=rounds,
                                      draws=1000, predictions=predictions)
    summary = summarize_backtest(results)
    common = results.loc[results["all_methods"]]
    pivot = common.assign(abs_pts=common["expansion_error_pts"].abs()).pivot_table(
        index=["cutoff", "group"], columns="method", values="abs_pts")
    best_naive = pivot[["naive_last", "naive_mean4"]].mean().idxmin() if len(pivot) else "naive_mean4"
    d = (pivot["live"] - pivot[best_naive]).to_numpy() if len(pivot) else np.zeros(0)
    lo, hi = block_interval(d, pivot.index.get_level_values("cutoff").to_numpy()) if len(d) else (np.nan, np.nan)
    live = results.loc[(results["method"] == "live") & (results["group"] != "all")]
    hits = {}
    for level in (80, 95):
        h = live[f"expansion_in{level}"].dropna()
        hits[level] = (int(h.sum()), len(h), wilson(int(h.sum()), len(h)))
    sent = {r["rule"]: sending(next(x for x in rules if x.name == r["rule"]), r) for r in alerts.to_dict("records")}
    return {"kind": kind, "data": data.name, "summary": summary, "results": results, "best_naive": best_naive,
            "diff_mean": float(d.mean()) if len(d) else np.nan, "diff_ci": (lo, hi), "hits": hits, "alerts": alerts,
            "sent": sent, "inactive": inactive, "sweep": sweep, "seconds": time.perf_counter() - started, "build_seconds": built,
            "live_methods": results.loc[results["method"] == "live", "expansion_method"].value_counts().to_dict()}


def report(m: dict) -> str:
    s = m["summary"]
    lines = [f"## {m['data']} ({m['kind']}; {m['seconds']:.0f} s, features {m['build_seconds']:.0f} s)"]
    part = s.loc[(s["window"] == "common") & (s["group"].isin(["all", "segments"]))]
    lines.append("| group | method | cut-offs | MdAE pts ARR | MdAPE % (n, at 0) | bias % (above) | NRR MAE pts |")
    lines.append("|---|---|---|---|---|---|---|")
    for r in part.to_dict("records"):
        if r["method"] == "model_draws_only":
            continue
        lines.append(f"| {r['group']} | {r['method']} | {r['cutoffs']} | {r['expansion_mdae_pts']:.3f} | "
                     f"{r['expansion_mdape_pct']:.1f} ({r['mdape_cutoffs']}, {r['zero_actual_cutoffs']}) | "
                     f"{r['expansion_bias_pct']:+.1f} ({r['expansion_above']}) | {r['nrr_mae_pts']:.2f} |")
    lo, hi = m["diff_ci"]
    cutoffs = m["results"].loc[m["results"]["all_methods"], "cutoff"].nunique()
    if cutoffs < 2 * BLOCK:  # one block: every resample is the same, a zero-width interval says nothing of noise
        verdict = f"not judged: {cutoffs} cut-offs, fewer than two blocks of {BLOCK}"
    else:
        verdict = "worse beyond noise" if lo > 0 else ("better beyond noise" if hi < 0 else "within noise")
    lines.append(f"live minus {m['best_naive']} (the better naive), mean |error| difference per cut-off x group: "
                 f"{m['diff_mean']:+.3f} pts (95 % block-bootstrap {lo:+.3f} to {hi:+.3f}): {verdict}")
    lines.append(f"live expansion method at each cut-off x group: {m['live_methods']}")
    for level, (held, n, (a, b)) in m["hits"].items():
        lines.append(f"live {level} % interval held {held}/{n} cut-offs x segments ({100 * held / max(n, 1):.0f} %, "
                     f"95 % CI {a:.0f}-{b:.0f})")
    if not len(m["alerts"]):
        return "\n".join(lines)
    lines.append("| rule | episodes | base rate (eligible) | lift (90 % interval) | sent |")
    lines.append("|---|---|---|---|---|")
    for r in m["alerts"].to_dict("records"):
        ok, why = m["sent"][r["rule"]]
        lift = f"{r['lift']:.2f} ({r['lift_low']:.2f}-{r['lift_high']:.2f})" if r["episodes"] else "-"
        lines.append(f"| {r['rule']} | {r['episodes']} | {100 * r['base_rate']:.1f} % of {r['eligible']} | {lift} | "
                     f"{'yes' if ok else 'NOT SENT'} |")
    for name, why in m["inactive"].items():
        lines.append(f"rule {name} inactive: {why}")
    lines.append("threshold sweep: " + "; ".join(
        f"{r['rule']} {r['lift']:.2f} ({r['lift_low']:.2f}-{r['lift_high']:.2f}, n={r['episodes']})"
        for r in m["sweep"].to_dict("records") if r["episodes"]))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--accounts", type=int, default=3000)
    p.add_argument("--months", type=int, default=24)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--generators", nargs="+", default=["synth", "alt"])
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--forecast-only", action="store_true", help="skip the alert rules' replay (unchanged by the forecast)")
    a = p.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="forecast_choice_"))
    for seed in a.seeds:
        for kind in a.generators:
            data = company(kind, work, a.accounts, a.months, seed)
            m = measure(kind, data, a.rounds, alerts_too=not a.forecast_only)
            print(report(m), flush=True)
            if a.out:
                a.out.mkdir(parents=True, exist_ok=True)
                m["results"].to_csv(a.out / f"{data.name}_cutoffs.csv", index=False)
                m["alerts"].to_csv(a.out / f"{data.name}_alerts.csv", index=False)
                m["sweep"].to_csv(a.out / f"{data.name}_sweep.csv", index=False)


if __name__ == "__main__":
    main()
