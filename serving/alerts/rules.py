"""Alert rules: declared in one TOML file, checked on load, evaluated over a feature frame.

The shipped rules live in ``serving/alerts/rules.toml``; ``Settings.alerts_rules`` points
at a user file instead. A rule may read any registered feature (``features.registry``)
and the signals of :mod:`serving.alerts.signals`, or name a condition of
:mod:`features.conditions` (``{ condition = "seats_full" }``), shared with the plays and the
rule reasons; its threshold is the one in force (``levels``) and a title may quote it
(``"Usage at {near_quota} % of a plan limit"``). A mistake names the file, the rule and
the field, and no rule of that file is used.
"""

from __future__ import annotations

import operator
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.conditions import LEVEL_BY_NAME, format_levels, thresholds
from features.contract import TABLES
from features.reason_catalog import PLAY_BY_NAME
from features.registry import categorical_features, feature_names, signal_names
from serving.alerts.signals import CATEGORICAL_SIGNALS, SIGNALS

OUTCOMES: dict[str, str] = {
    "expanded": "an expansion",
    "churned": "churn",
    "contracted": "a contraction",
    "churned_or_contracted": "churn or a contraction",
}
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne}
SEND = ("auto", "always", "never")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class RuleError(ValueError):
    """A rules file that cannot be used: names the file, the rule and the field."""


@dataclass(frozen=True)
class Condition:
    """``feature op value``; with ``missing_counts`` a null value meets the condition."""

    feature: str
    op: str
    value: float | str
    missing_counts: bool = False

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        column = frame[self.feature]
        if isinstance(self.value, str):
            values = column.astype("string")
            missing = values.isna().to_numpy()
            met = _OPS[self.op](values.fillna(""), self.value).to_numpy(dtype=bool)
        else:
            numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            missing = np.isnan(numbers)
            with np.errstate(invalid="ignore"):
                met = _OPS[self.op](numbers, float(self.value)) & ~missing
        return met | (missing & self.missing_counts)

    def __str__(self) -> str:
        return f"{self.feature} {self.op} {self.value}" + (" (or unknown)" if self.missing_counts else "")


@dataclass(frozen=True)
class Rule:
    """One alert rule: all of ``all_of`` and, when given, any of ``any_of``."""

    name: str
    title: str
    outcome: str
    play: str
    money: str
    all_of: tuple[Condition, ...] = ()
    any_of: tuple[Condition, ...] = ()
    requires: tuple[str, ...] = ()
    send: str = "auto"  # auto: sent unless its backtest says it does not work here; always / never: forced

    @property
    def scope(self) -> tuple[Condition, ...]:
        """The ``all`` conditions on an account attribute (segment, industry, channel, region): who the rule can fire on."""
        return tuple(c for c in self.all_of if c.feature in categorical_features())

    def eligible(self, frame: pd.DataFrame, holders: dict[str, set[str]] | None = None) -> np.ndarray:
        """Rows of ``frame`` the rule can fire on: within its scope, and accounts holding rows of every required table
        (``holders``: table -> account ids; unknown tables count as held)."""
        met = np.ones(len(frame), dtype=bool)
        for c in self.scope:
            met &= c.mask(frame)
        ids = frame["account_id"].astype(str)
        for t in self.requires:
            if holders is not None and t in holders:
                met &= ids.isin(holders[t]).to_numpy()
        return met

    def eligible_text(self) -> str:
        """'enterprise accounts with activities', or 'all accounts'."""
        who = " and ".join(str(c.value) if c.op == "==" else f"{c.feature} {c.op} {c.value}" for c in self.scope)
        tables = f" with {', '.join(self.requires)}" if self.requires else ""
        return f"{who + ' ' if who else 'all '}accounts{tables}"

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.feature for c in (*self.all_of, *self.any_of)))

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of ``frame`` (features and signals) in the rule's condition."""
        met = np.ones(len(frame), dtype=bool)
        for c in self.all_of:
            met &= c.mask(frame)
        if self.any_of:
            met &= np.logical_or.reduce([c.mask(frame) for c in self.any_of])
        return met

    def condition_text(self) -> str:
        parts = [" and ".join(map(str, self.all_of))] if self.all_of else []
        if self.any_of:
            parts.append("(" + " or ".join(map(str, self.any_of)) + ")" if self.all_of else " or ".join(map(str, self.any_of)))
        return " and ".join(parts)

    def missing_tables(self, present: list[str] | tuple[str, ...]) -> list[str]:
        return [t for t in self.requires if t not in present]


def known_names() -> set[str]:
    """What a condition may read: every registered feature and alert signal, and the signals derived from them."""
    return set(feature_names()) | set(signal_names()) | set(SIGNALS)


def _categorical(name: str) -> bool:
    return name in categorical_features() or name in CATEGORICAL_SIGNALS


def _condition(raw: Any, where: str, levels: dict[str, float]) -> Condition:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: a condition is a table {{feature, op, value}} or {{condition}}, got {raw!r}")
    if "condition" in raw:
        extra = set(raw) - {"condition", "missing_counts"}
        if extra:
            raise RuleError(f"{where}: a named condition takes only missing_counts beside it, got {', '.join(sorted(extra))}")
        name = raw["condition"]
        if name not in LEVEL_BY_NAME:
            raise RuleError(f"{where}.condition: {name!r} is not a condition of features.conditions "
                            f"({', '.join(LEVEL_BY_NAME)})")
        lv = LEVEL_BY_NAME[name]
        raw = {"feature": lv.feature, "op": lv.op, "value": levels[name], **{k: v for k, v in raw.items() if k != "condition"}}
    extra = set(raw) - {"feature", "op", "value", "missing_counts"}
    if extra:
        raise RuleError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
    feature, op, value = raw.get("feature"), raw.get("op"), raw.get("value")
    if feature not in known_names():
        raise RuleError(f"{where}.feature: {feature!r} is neither a registered feature nor an alert signal")
    if op not in _OPS:
        raise RuleError(f"{where}.op: {op!r} is not one of {', '.join(_OPS)}")
    if _categorical(feature):
        if not isinstance(value, str) or op not in ("==", "!="):
            raise RuleError(f"{where}: {feature} is categorical: compare it with == or != to a string")
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuleError(f"{where}.value: {feature} is numeric: the value must be a number, got {value!r}")
    return Condition(feature, op, value if isinstance(value, str) else float(value), bool(raw.get("missing_counts", False)))


def _rule(raw: Any, index: int, origin: str, levels: dict[str, float]) -> Rule:
    where = f"{origin}: rule {index + 1}"
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: expected a [[rule]] table")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RuleError(f"{where}.name: {name!r} must be lower-case letters, digits and _")
    where = f"{origin}: rule {name!r}"
    extra = set(raw) - {"name", "title", "outcome", "play", "money", "all", "any", "requires", "send"}
    if extra:
        raise RuleError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
    if raw.get("outcome") not in OUTCOMES:
        raise RuleError(f"{where}.outcome: {raw.get('outcome')!r} is not one of {', '.join(OUTCOMES)}")
    play = raw.get("play", "nurture_value_content")
    if play not in PLAY_BY_NAME:
        raise RuleError(f"{where}.play: {play!r} is not a play of the catalog ({', '.join(PLAY_BY_NAME)})")
    money = raw.get("money", "arr")
    if money not in known_names() or _categorical(money):
        raise RuleError(f"{where}.money: {money!r} is not a numeric feature or signal")
    requires = raw.get("requires", [])
    if not isinstance(requires, list) or any(t not in TABLES for t in requires):
        raise RuleError(f"{where}.requires: expected a list of contract tables, got {requires!r}")
    all_of = tuple(_condition(c, f"{where}.all[{i}]", levels) for i, c in enumerate(raw.get("all", [])))
    any_of = tuple(_condition(c, f"{where}.any[{i}]", levels) for i, c in enumerate(raw.get("any", [])))
    if not all_of and not any_of:
        raise RuleError(f"{where}: needs at least one condition in 'all' or 'any'")
    send = raw.get("send", "auto")
    if send not in SEND:
        raise RuleError(f"{where}.send: {send!r} is not one of {', '.join(SEND)}")
    title = format_levels(str(raw.get("title") or name), levels)
    return Rule(name, title, raw["outcome"], play, money, all_of, any_of, tuple(requires), send)


def parse_rules(text: str, origin: str, levels: dict[str, float] | None = None) -> tuple[Rule, ...]:
    """Rules from TOML text; ``origin`` names the file in errors; ``levels``: the thresholds in force of the named
    conditions (:func:`features.conditions.thresholds` of the settings; the defaults when None)."""
    levels = thresholds() if levels is None else levels
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{origin}: not valid TOML: {exc}") from None
    extra = set(data) - {"rule"}
    if extra:
        raise RuleError(f"{origin}: unknown top-level key(s) {', '.join(sorted(extra))} (rules are [[rule]] tables)")
    rules = tuple(_rule(raw, i, origin, levels) for i, raw in enumerate(data.get("rule", [])))
    if not rules:
        raise RuleError(f"{origin}: no [[rule]] declared")
    names = [r.name for r in rules]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise RuleError(f"{origin}: rule name(s) declared twice: {', '.join(dupes)}")
    return rules


def load_rules(path: Path | None = None, levels: dict[str, float] | None = None) -> tuple[Rule, ...]:
    """The rules of ``path``, or the shipped defaults when None; ``levels`` as in :func:`parse_rules`."""
    if path is None:
        return parse_rules(resources.files("serving.alerts").joinpath("rules.toml").read_text("utf-8"),
                           "rules.toml (shipped)", levels)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"{path}: cannot read the rules file: {exc}") from None
    return parse_rules(text, str(path), levels)


def active_rules(rules: tuple[Rule, ...], present: list[str] | tuple[str, ...]) -> tuple[tuple[Rule, ...], dict[str, str]]:
    """Rules whose tables are present, and why each other rule is inactive."""
    inactive = {r.name: f"needs table(s) {', '.join(m)} with rows" for r in rules if (m := r.missing_tables(present))}
    return tuple(r for r in rules if r.name not in inactive), inactive


def in_condition(rules: tuple[Rule, ...], frame: pd.DataFrame) -> pd.DataFrame:
    """Long frame of (account_id, as_of, rule) for every row of ``frame`` in a rule's condition."""
    parts = []
    for rule in rules:
        hit = frame.loc[rule.mask(frame), ["account_id", "as_of"]].copy()
        hit["rule"] = rule.name
        parts.append(hit)
    if not parts:
        return pd.DataFrame({"account_id": pd.Series(dtype="string"), "as_of": pd.Series(dtype="datetime64[ns]"),
                             "rule": pd.Series(dtype="string")})
    out = pd.concat(parts, ignore_index=True)
    out["rule"] = out["rule"].astype("string")
    return out
