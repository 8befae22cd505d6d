"""Named conditions on an account's numbers and their thresholds, declared once.

Plays (:mod:`features.reason_catalog`), the rule reasons (:mod:`serving.scoring.reasons`) and the
shipped alert rules (``serving/alerts/rules.toml``: ``{ condition = "seats_full" }``) read
these by name, so "seats full" or "near the plan's limit" means the same number in a play,
a reason and an alert. A threshold that is a setting names it (``setting``): the setting in
force replaces the default everywhere at once, and texts that quote a threshold (an alert's
title, the reason "At the pace of {alert_pct} % of the plan's limit") are formatted from it.
``docs/features.md`` lists them (generated from :data:`LEVELS`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "!=": operator.ne,
}


@dataclass(frozen=True)
class Level:
    """One named condition: ``feature op threshold``, its default, the setting that overrides it, what it says."""

    name: str
    feature: str
    op: str
    default: float
    says: str
    setting: str | None = None

    def __str__(self) -> str:
        return f"{self.feature} {self.op} {self.default:g}"


LEVELS: tuple[Level, ...] = (
    # 80-85 % of a quota is the moment to talk (event-triggered outreach converts ~2x)
    Level("near_quota", "quota_utilization_30d_pct", ">=", 80.0, "usage near the plan's limit", "quota_alert_pct"),
    Level("seats_full", "seat_utilization_pct", ">=", 85.0, "licensed seats nearly all in use"),
    Level("seats_idle", "seat_utilization_pct", "<", 50.0, "half the licensed seats or more unused"),
    # a 20 % swing in usage over 30 days is a trend; 3 % a week over 12 weeks is about a third of a week's usage
    Level("usage_falling", "events_trend_30d_pct", "<=", -20.0, "usage falling on the previous 30 days"),
    Level("usage_rising", "events_trend_30d_pct", ">=", 20.0, "usage rising on the previous 30 days"),
    Level("usage_sliding", "events_slope_12w_pct", "<=", -3.0, "usage sliding over 12 weeks"),
    Level("usage_climbing", "events_slope_12w_pct", ">=", 3.0, "usage climbing over 12 weeks"),
    Level("users_rising", "active_users_trend_30d_pct", ">=", 20.0, "active users rising on the previous 30 days"),
    Level("users_falling", "active_users_trend_30d_pct", "<=", -20.0, "active users falling on the previous 30 days"),
    Level("executive_silence", "days_since_exec_touch", ">=", 180.0, "no executive contact for half a year"),
    Level("breadth_wide", "feature_breadth_pct", ">=", 80.0, "most of the plan's features in use"),
)
LEVEL_BY_NAME: dict[str, Level] = {lv.name: lv for lv in LEVELS}



def docs_table() -> list[str]:
    """The conditions as a Markdown table (for ``docs/features.md``)."""
    lines = ["| condition | means | default | setting |", "|---|---|---|---|"]
    lines += [f"| `{lv.name}`: `{lv}` | {lv.says} | {lv.default:g} | {f'`{lv.setting}`' if lv.setting else '-'} |"
              for lv in LEVELS]
    return lines


def level(name: str) -> Level:
    """The named condition; KeyError naming the unknown name and the known ones."""
    try:
        return LEVEL_BY_NAME[name]
    except KeyError:
        raise KeyError(f"condition {name!r} is not declared in features.conditions "
                       f"(known: {', '.join(LEVEL_BY_NAME)})") from None


def thresholds(settings: Any = None, **values: float) -> dict[str, float]:
    """Every named threshold: its default, the setting in force when ``settings`` (a ``Settings`` or a mapping of
    setting name -> value) holds it, and ``values`` by setting name (``quota_alert_pct=85``)."""
    out = {}
    for lv in LEVELS:
        value = lv.default
        if lv.setting is not None:
            if isinstance(settings, Mapping) and lv.setting in settings:
                value = settings[lv.setting]
            elif settings is not None and not isinstance(settings, Mapping) and hasattr(settings, lv.setting):
                value = getattr(settings, lv.setting)
            value = values.get(lv.setting, value)
        out[lv.name] = float(value)
    return out


def format_levels(text: str, levels: Mapping[str, float]) -> str:
    """``text`` with each ``{name}`` of a declared condition replaced by its threshold (``85``, ``-20``)."""
    for name, value in levels.items():
        text = text.replace("{" + name + "}", f"{value:g}")
    return text
