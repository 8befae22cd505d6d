"""Numbers as a CSM reads them, and reason texts filled from the declared templates.

Money carries the currency symbol and thousands separators ("$48,200"), durations are
said the way people say them ("3 days", "5 weeks", "4 months"), never "0.1 months".
The templates and their comparisons are declared in :mod:`features.reason_catalog`.
"""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pandas import NA as pd_NA

from features.config import Settings
from features.reason_catalog import CURRENCY_SYMBOL, ReasonTemplate

DAYS_PER_MONTH = 30.4375
#: The ``quota_alert_pct`` setting's default; the scorer passes the setting in force.
DEFAULT_ALERT_PCT: float = Settings.model_fields["quota_alert_pct"].default


def num(v: float) -> str:
    """A count or measure with thousands separators; one decimal only below 10 and when not whole."""
    return f"{v:,.0f}" if abs(v) >= 10 or float(v).is_integer() else f"{v:,.1f}"


def money(v: float, symbol: str = CURRENCY_SYMBOL) -> str:
    """An amount in whole currency units with thousands separators: '$48,200'."""
    return f"{'-' if v < 0 else ''}{symbol}{abs(v):,.0f}"


def duration(days: float) -> str:
    """A duration as people say it: 'less than a day', '3 days', '5 weeks', '4 months', '2 years'."""
    if not math.isfinite(days):  # a supplied value beyond any calendar: say so rather than fail
        return "an unknown time"
    if days < 1:
        return "less than a day"
    if days < 14:
        d = round(days)
        return f"{d} day{'' if d == 1 else 's'}"
    if days < 8 * 7:
        return f"{round(days / 7)} weeks"
    months = days / DAYS_PER_MONTH
    if months < 24:
        m = round(months)
        return f"{m} month{'' if m == 1 else 's'}"
    return f"{round(months / 12)} years"


def _in_days(feature: str, value: float) -> float:
    return value * DAYS_PER_MONTH if feature.startswith("months_") else value


def reason_fields(template: ReasonTemplate, value: float, unit: str, *, arr: float | None = None,
                  p: float | None = None, high: bool = True, peers: str = "all accounts",
                  symbol: str = CURRENCY_SYMBOL, alert_pct: float = DEFAULT_ALERT_PCT) -> dict[str, Any]:
    """The fields ``template`` names, from the value and its comparisons (None: unknown)."""
    pct_rank = max(1, math.ceil(p)) if p is not None and not math.isnan(p) else None
    context = _Context(template, value, unit, arr, pct_rank, high, peers, symbol, alert_pct)
    return {name: _MAKERS[name](context) for name in fields_of(template.text)}


@dataclass(slots=True)
class _Context:
    template: ReasonTemplate
    value: float
    unit: str
    arr: float | None
    pct_rank: int | None
    high: bool
    peers: str
    symbol: str
    alert_pct: float


def _value(c: _Context) -> str:
    if c.unit.startswith("currency"):
        return money(c.value, c.symbol)
    return f"{c.value:.1f}" if c.unit == "score 1-5" else num(c.value)


_MAKERS: dict[str, Callable[[_Context], Any]] = {
    "value": _value,
    "s": lambda c: "" if c.value == 1 else "s",
    "pct": lambda c: f"{c.value:.0f}",
    "ratio_pct": lambda c: f"{100 * c.value:.0f}",
    "direction": lambda c: "up" if c.value >= 0 else "down",
    "change": lambda c: f"{abs(c.value):.0f}",
    "when": lambda c: duration(_in_days(c.template.feature, c.value)),
    "share_of_arr": lambda c: f"{100 * c.value / c.arr:,.0f}" if c.arr else None,
    "p": lambda c: c.pct_rank,
    "rank": lambda c: None if c.pct_rank is None else f"{c.template.words[0 if c.high else 1]} {c.pct_rank} %",
    "peers": lambda c: c.peers,
    "alert_pct": lambda c: f"{c.alert_pct:.0f}",
    "detractor": lambda c: "Detractor NPS response (6 or less)" if c.value >= 1 else "No detractor NPS response",
}


@functools.cache
def fields_of(text: str) -> tuple[str, ...]:
    """The ``{field}`` names a template text uses."""
    return tuple(dict.fromkeys(name for _, name, _, _ in string.Formatter().parse(text) if name))


def render(template: ReasonTemplate, fields: dict[str, Any]) -> str | None:
    """The reason template filled in and capitalised, or None when a field it names is unknown."""
    text = render_text(template.text, fields)
    return None if text is None else text[0].upper() + text[1:]


def render_text(text: str, fields: Mapping[str, Any]) -> str | None:
    """``text`` with its ``{fields}`` filled in, or None when one is unknown: never an empty placeholder.

    ``fields`` may compute values lazily: only the names ``text`` uses are read.
    """
    values = {}
    for name in fields_of(text):
        value = fields.get(name)
        if value is None:
            return None
        values[name] = value
    return text.format_map(values)


#: Context attributes shown beside the reasons (never as one), in the order they are read.
CONTEXT_FIELDS = ("segment", "industry", "region", "acquisition_channel", "tenure_months")


def account_context(frame: Any) -> list[str | None]:
    """Per row of a feature frame, its context in one line: 'mid-market · software · EMEA · direct · customer for 7 months'."""
    from features.reason_catalog import SEGMENT_LABELS

    parts: list[list[str]] = [[] for _ in range(len(frame))]
    for name in CONTEXT_FIELDS:
        if name not in frame.columns:
            continue
        for i, v in enumerate(frame[name].tolist()):
            if v is None or v is pd_NA or (isinstance(v, float) and not math.isfinite(v)):
                continue
            if name == "tenure_months":
                parts[i].append(f"customer for {duration(float(v) * DAYS_PER_MONTH)}")
            elif name == "segment":
                parts[i].append(SEGMENT_LABELS.get(str(v), str(v)))
            else:
                parts[i].append(str(v).replace("_", "-") if name == "acquisition_channel" else str(v))
    return [" · ".join(p) or None for p in parts]
