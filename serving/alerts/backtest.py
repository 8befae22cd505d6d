"""Every rule's track record: its episodes replayed over past month-end snapshots, against what happened next.

For each rule: how many episodes started (the account entered the condition between two
month ends whose label horizon is complete), how many accounts, the rate of the outcome
the rule anticipates within the horizon (90 days by default) among them, the base rate of
that outcome over every labelled account-month of the same months, the lift (rate / base
rate), and the money involved: the ARR of the accounts when the alert fired and, for the
episodes followed by the outcome, the expansion ARR won (upgrade rules) or the ARR of the
accounts that then churned or contracted (risk rules). Intervals are account-level
bootstrap percentiles (an account can start several episodes), each with its counts.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from serving.alerts.episodes import entering_over
from serving.alerts.rules import OUTCOMES, Rule, in_condition
from training.bootstrap import CONFIDENCE, SEED

COLUMNS = ("rule", "title", "outcome", "episodes", "accounts", "positives", "rate", "rate_low", "rate_high",
           "base_rate", "base_rows", "lift", "lift_low", "lift_high", "arr_at_fire", "outcome_arr", "months")


def outcome_of(frame: pd.DataFrame, outcome: str) -> pd.Series:
    """The 0/1 outcome a rule anticipates (null when the horizon is incomplete)."""
    if outcome == "churned_or_contracted":
        return frame[["churned", "contracted"]].astype(float).max(axis=1, skipna=False)
    return frame[outcome].astype(float)


def _weights(accounts: int, replicates: int, seed: int) -> np.ndarray:
    """Bootstrap draw counts per account (replicates x accounts): whole accounts drawn with replacement."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, accounts, accounts), minlength=accounts) for _ in range(replicates)]).astype(np.float32)


def _interval(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - CONFIDENCE) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def track_record(frame: pd.DataFrame, rules: tuple[Rule, ...], *, replicates: int = 1000, seed: int = SEED) -> pd.DataFrame:
    """Per rule, its episodes over ``frame``'s snapshots (features, signals and labels) and what followed them."""
    dates = sorted(pd.to_datetime(frame["as_of"]).dt.date.unique())
    first = pd.Timestamp(dates[0]) if dates else None
    labelled = frame[frame["expanded"].notna() & (pd.to_datetime(frame["as_of"]) > first)] if dates else frame
    codes, uniques = pd.factorize(labelled["account_id"].astype(str))
    n_accounts = len(uniques)
    weights = _weights(n_accounts, replicates, seed) if n_accounts else np.zeros((0, 0), dtype=np.float32)
    conditions = in_condition(rules, frame)
    starts = entering_over(conditions, dates)
    keyed = labelled.assign(_code=codes).set_index(["account_id", "as_of"])
    rows = []
    for rule in rules:
        y_all = outcome_of(labelled, rule.outcome).to_numpy()
        n_acc = np.bincount(codes, minlength=n_accounts).astype(float)
        y_acc = np.bincount(codes, weights=y_all, minlength=n_accounts)
        eps = starts[starts["rule"] == rule.name].set_index(["account_id", "as_of"])
        hit = keyed.loc[keyed.index.intersection(eps.index)]
        y = outcome_of(hit, rule.outcome).to_numpy()
        e_acc = np.bincount(hit["_code"].to_numpy(), minlength=n_accounts).astype(float)
        p_acc = np.bincount(hit["_code"].to_numpy(), weights=y, minlength=n_accounts)
        episodes, positives = len(hit), float(y.sum())
        base = y_acc.sum() / n_acc.sum() if n_acc.sum() else float("nan")
        rate = positives / episodes if episodes else float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            rate_rep = (weights @ p_acc) / (weights @ e_acc) if episodes else np.array([])
            base_rep = (weights @ y_acc) / (weights @ n_acc) if episodes else np.array([])
            lift_rep = rate_rep / base_rep
        arr = pd.to_numeric(hit.get("arr", pd.Series(np.nan, index=hit.index)), errors="coerce").fillna(0.0)
        if rule.outcome == "expanded":
            won = 12.0 * pd.to_numeric(hit.get("expansion_mrr", pd.Series(0.0, index=hit.index)), errors="coerce").fillna(0.0)
            outcome_arr = float((won * (y == 1)).sum())
        else:
            outcome_arr = float((arr * (y == 1)).sum())
        rows.append({
            "rule": rule.name, "title": rule.title, "outcome": rule.outcome, "episodes": episodes,
            "accounts": int((e_acc > 0).sum()), "positives": int(positives), "rate": rate,
            "rate_low": _interval(rate_rep)[0], "rate_high": _interval(rate_rep)[1],
            "base_rate": base, "base_rows": int(n_acc.sum()),
            "lift": rate / base if base else float("nan"),
            "lift_low": _interval(lift_rep)[0], "lift_high": _interval(lift_rep)[1],
            "arr_at_fire": float(arr.sum()), "outcome_arr": outcome_arr,
            "months": len(labelled["as_of"].unique()),
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def track_sentence(record: dict | pd.Series | None) -> str:
    """'followed by an expansion 41 % of the time (90 % interval 35-47 %, 212 episodes; base rate 18 %)'."""
    if record is None or not record.get("episodes"):
        return "no track record yet (run `expansion alerts backtest`)"
    words = OUTCOMES.get(str(record["outcome"]), str(record["outcome"]))
    low, high = record.get("rate_low"), record.get("rate_high")
    span = f"{100 * low:.0f}-{100 * high:.0f} %, " if low == low and high == high and low is not None else ""
    return (f"this alert was followed by {words} {100 * record['rate']:.0f} % of the time "
            f"({span}{int(record['episodes'])} episodes; base rate {100 * record['base_rate']:.0f} %)")


def backtest_dates(first_usage: dt.date, data_end: dt.date) -> list[dt.date]:
    """Month ends from the first full month of usage to the data end."""
    from features.spine import month_ends

    return month_ends(first_usage, data_end)


def replay(source, settings, rules: tuple[Rule, ...] | None = None,  # noqa: ANN001 - DataSource, Settings
           snapshots_per_batch: int | None = 6) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every active rule's track record over the month-end snapshots the data covers, and why others are inactive."""
    from features.build import build_features, default_data_end, tables_from_backend, usage_span
    from serving.alerts.rules import active_rules, load_rules
    from serving.alerts.signals import usable_tables, with_signals

    tables = tables_from_backend(source.ibis(), usable_tables(source))
    first, _ = usage_span(tables)
    end = default_data_end(tables)
    rules, inactive = active_rules(rules or load_rules(settings.alerts_rules), usable_tables(source))
    frame = build_features(source, backtest_dates(first, end), settings, data_end=end,
                           snapshots_per_batch=snapshots_per_batch)
    return track_record(with_signals(frame, source), rules, replicates=settings.bootstrap_replicates), inactive
