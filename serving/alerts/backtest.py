"""Every rule's track record: its episodes replayed over past month-end snapshots, against what happened next.

For each rule: how many episodes started (the account entered the condition between two
month ends whose label horizon is complete), how many accounts, the rate of the outcome
the rule anticipates within the horizon (90 days by default) among them, the base rate of
that outcome over the labelled account-months of the same months *that the rule can fire on*
(its segment; the accounts with the tables it needs), the lift (rate / base rate), and the
money involved: the ARR of the accounts when the alert fired and, for the
episodes followed by the outcome, the expansion ARR won (upgrade rules) or the ARR of the
accounts that then churned or contracted (risk rules). Intervals are account-level
bootstrap percentiles (an account can start several episodes), each with its counts.

``sending`` decides from that record whether a rule's alerts go out on this company: not
when its lift interval lies below 1, nor when it still includes 1 after enough episodes to
have shown a useful lift (``enough_episodes``); a later backtest that clears it sends it
again, and a rule's ``send`` setting forces either way.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from serving.alerts.episodes import entering_over
from serving.alerts.rules import OUTCOMES, Rule, in_condition
from training.bootstrap import CONFIDENCE, SEED

COLUMNS = ("rule", "title", "outcome", "episodes", "accounts", "positives", "rate", "rate_low", "rate_high",
           "base_rate", "base_rows", "lift", "lift_low", "lift_high", "arr_at_fire", "outcome_arr", "months", "eligible")


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


def track_record(frame: pd.DataFrame, rules: tuple[Rule, ...], *, replicates: int = 1000, seed: int = SEED,
                 holders: dict[str, set[str]] | None = None) -> pd.DataFrame:
    """Per rule, its episodes over ``frame``'s snapshots (features, signals and labels) and what followed them.

    The base rate is the outcome's rate over the account-months the rule can fire on (``Rule.eligible``: its
    segment, the accounts in ``holders`` of every table it needs), not the whole company's."""
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
        ok = rule.eligible(labelled, holders).astype(float)
        y_all = np.nan_to_num(outcome_of(labelled, rule.outcome).to_numpy(dtype=float)) * ok
        n_acc = np.bincount(codes, weights=ok, minlength=n_accounts)
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
            "months": len(labelled["as_of"].unique()), "eligible": rule.eligible_text(),
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def track_sentence(record: dict | pd.Series | None, rule: Rule | None = None) -> str:
    """'followed by an expansion 41 % of the time (35-47 %, 212 episodes; base rate 18 % of enterprise accounts)'.

    The base rate is that of the accounts the rule can fire on (``track_record``), and the sentence says which."""
    if record is None or not record.get("episodes"):
        return "no track record yet (run `expansion alerts backtest`)"
    words = OUTCOMES.get(str(record["outcome"]), str(record["outcome"]))
    low, high = record.get("rate_low"), record.get("rate_high")
    span = f"{100 * low:.0f}-{100 * high:.0f} %, " if low == low and high == high and low is not None else ""
    among = f" of {rule.eligible_text()}" if rule is not None else ""
    return (f"this alert was followed by {words} {100 * record['rate']:.0f} % of the time "
            f"({span}{int(record['episodes'])} episodes; base rate {100 * record['base_rate']:.0f} %{among})")


# a lift this large is what a rule is for; with fewer episodes than it takes to tell it from 1, an interval that
# includes 1 says nothing yet, with more it says the rule does not work here
USEFUL_LIFT = 1.5


def enough_episodes(base_rate: float, z: float = 1.645) -> float:
    """Episodes at which a rule with lift ``USEFUL_LIFT`` has a 90 % interval clear of 1: ``(z / (L - 1))^2 (1 - p) / p``."""
    if not base_rate or not 0 < base_rate < 1:
        return float("inf")
    return (z / (USEFUL_LIFT - 1)) ** 2 * (1 - base_rate) / base_rate


def exact_lift_high(record: dict | pd.Series) -> float:
    """The upper end of the rate's 90 % Clopper-Pearson interval over the base rate: where a bootstrap of few positives
    collapses (0 of 46 resamples to 0 every time), this still says how high the rate could be."""
    from scipy import stats

    n, k, base = int(record.get("episodes") or 0), int(record.get("positives") or 0), float(record.get("base_rate") or 0)
    if not n or not base > 0:
        return float("inf")
    return float(stats.beta.ppf(0.95, k + 1, n - k)) / base if k < n else float("inf")


def sending(rule: Rule, record: dict | pd.Series | None) -> tuple[bool, str]:
    """Whether the rule's alerts are sent on this company, and why (its ``send`` setting, else its backtest)."""
    if rule.send == "always":
        return True, "forced on by its send setting"
    if rule.send == "never":
        return False, "forced off by its send setting"
    if record is None or not record.get("episodes"):
        return True, "no backtest yet"
    low, high, n = record.get("lift_low"), record.get("lift_high"), float(record["episodes"])
    high = max(high if high is not None and high == high else 0.0, exact_lift_high(record))
    if high < 1:
        return False, (f"its lift interval lies below 1 ({low:.2f}-{high:.2f} over {int(n):,} episodes): it anticipates "
                       f"its outcome less often than the base rate of {rule.eligible_text()}")
    need = enough_episodes(float(record.get("base_rate") or 0))
    if low is not None and low == low and low <= 1 and n >= need:
        return False, (f"its lift interval includes 1 ({low:.2f}-{high:.2f}) after {int(n):,} episodes, enough to show "
                       f"a lift of {USEFUL_LIFT:g} ({need:.0f}): no better than the base rate of {rule.eligible_text()}")
    return True, "its backtest does not show it failing"


def backtest_dates(first_usage: dt.date, data_end: dt.date) -> list[dt.date]:
    """Month ends from the first full month of usage to the data end."""
    from features.spine import month_ends

    return month_ends(first_usage, data_end)


def replay(source, settings, rules: tuple[Rule, ...] | None = None,  # noqa: ANN001 - DataSource, Settings
           snapshots_per_batch: int | None = 6) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every active rule's track record over the month-end snapshots the data covers, and why others are inactive."""
    from features.build import default_data_end, tables_from_backend, usage_span
    from features.conditions import thresholds
    from features.snapshots import history_features
    from serving.alerts.rules import active_rules, load_rules
    from serving.alerts.signals import usable_tables, with_signals

    tables = tables_from_backend(source.ibis(), usable_tables(source))
    first, _ = usage_span(tables)
    end = default_data_end(tables)
    rules, inactive = active_rules(rules or load_rules(settings.alerts_rules, thresholds(settings)), usable_tables(source))
    frame = history_features(source, backtest_dates(first, end), settings, data_end=end,
                             snapshots_per_batch=snapshots_per_batch, signals=True)
    holders = table_holders(source, sorted({t for r in rules for t in r.requires}))
    return track_record(with_signals(frame, source, settings), rules, replicates=settings.bootstrap_replicates,
                        holders=holders), inactive


def table_holders(source, tables: list[str]) -> dict[str, set[str]]:  # noqa: ANN001 - DataSource
    """Per table keyed by account: the accounts with at least one row in it (who a rule needing that table can fire
    on). A table without ``account_id`` (stage histories) says nothing per account and is left out."""
    out = {}
    for t in tables:
        table = source.ibis().table(t)
        if "account_id" in table.columns:
            out[t] = set(table.select("account_id").distinct().execute()["account_id"].astype(str))
    return out
