"""One condition table: a threshold setting moves the plays, the rule reasons, the alerts and their texts together."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.conditions import LEVELS, thresholds
from features.config import Settings
from features.reason_catalog import CAUTIONS, PLAYS
from serving.alerts.rules import RuleError, load_rules, parse_rules
from serving.scoring.plays import recommend
from serving.scoring.reasons import EXPANSION, RULES, ReasonItem, explain_rows, rule_reasons_rows
from serving.scoring.scorer import feature_specs

NEAR_LIMIT = ReasonItem("Usage at 86 % of the plan's limit (30 days)", "quota_utilization_30d_pct", EXPANSION, 0.9,
                        "quota", "limit")
ACCOUNT = {  # 86 % of its quota, seats far from full, healthy
    "segment": "mid_market", "events_30d": 43_000.0, "quota_utilization_30d_pct": 86.0, "whitespace_tier_usd": 14_400.0,
    "seats": 40.0, "mrr": 2_000.0, "arr": 24_000.0, "whitespace_usd": 30_000.0, "active_users_30d": 20.0,
    "seat_utilization_pct": 50.0, "readiness_score": 55.0,
}


def _everywhere(settings: Settings) -> dict[str, object]:
    """What the plays, the rule reasons and the alerts make of ACCOUNT under ``settings``."""
    levels = thresholds(settings)
    play = recommend([NEAR_LIMIT], ACCOUNT, "green", "nurture", levels).play
    values = {k: np.array([v], dtype=object if isinstance(v, str) else float) for k, v in ACCOUNT.items()}
    reasons = [r.feature for r in rule_reasons_rows(values, feature_specs(), alert_pct=settings.quota_alert_pct)[0]]
    rule = next(r for r in load_rules(None, levels) if r.name == "usage_near_limit")
    frame = pd.DataFrame({k: [v] for k, v in ACCOUNT.items()})
    row = {"days_over_quota_alert_30d": np.array([12.0] * 25)}
    text = explain_rows(row, {EXPANSION: (["days_over_quota_alert_30d"], np.ones((25, 1)))}, feature_specs(),
                        alert_pct=settings.quota_alert_pct)[0][0].text
    return {"play": play, "quota_reason": "quota_utilization_30d_pct" in reasons, "alert": bool(rule.mask(frame)[0]),
            "title": rule.title, "reason_text": text}


def test_the_quota_setting_moves_plays_reasons_alerts_and_their_texts_together() -> None:
    default = _everywhere(Settings(_env_file=None))
    assert default == {"play": "upgrade_conversation", "quota_reason": True, "alert": True,
                       "title": "Usage at 80 % of the plan's limit or 85 % of its seats",
                       "reason_text": "At the pace of 80 % of the plan's limit or more on 12 of the last 30 days"}
    raised = _everywhere(Settings(_env_file=None, quota_alert_pct=90.0))
    assert raised == {"play": "nurture_value_content", "quota_reason": False, "alert": False,
                      "title": "Usage at 90 % of the plan's limit or 85 % of its seats",
                      "reason_text": "At the pace of 90 % of the plan's limit or more on 12 of the last 30 days"}


def test_seats_full_is_one_number_for_plays_reasons_and_alerts() -> None:
    def seats_full_thresholds() -> set[float]:
        found = {c.threshold for p in PLAYS for alt in p.premise for c in alt if c.level == "seats_full"}
        found |= {c.threshold for c, _ in RULES if c.level == "seats_full"}
        rule = next(r for r in load_rules() if r.name == "usage_near_limit")
        return found | {c.value for c in rule.any_of if c.feature == "seat_utilization_pct"}

    assert seats_full_thresholds() == {85.0}
    # every shipped premise or rule on seats or quota use names its condition: no number of its own
    for condition in [c for p in PLAYS for alt in p.premise for c in alt] + [c for c, _ in RULES] + \
            [c for w in CAUTIONS for alt in w.premise for c in alt]:
        if condition.field in ("seat_utilization_pct", "quota_utilization_30d_pct") and condition.op == ">=":
            assert condition.level in {lv.name for lv in LEVELS}, condition


def test_an_unknown_named_condition_is_refused_naming_it() -> None:
    text = """[[rule]]
name = "r"
outcome = "expanded"
any = [{ condition = "seats_nearly_full" }]
"""
    with pytest.raises(RuleError, match=r"rule 'r'.any\[0\].condition: 'seats_nearly_full' is not a condition"):
        parse_rules(text, "mine.toml")
