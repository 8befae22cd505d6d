"""Rules files: the shipped rules, user rules over any registered feature, and errors that name file, rule, field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from features.registry import feature_names
from serving.alerts.rules import RuleError, active_rules, in_condition, load_rules, parse_rules


def test_the_shipped_rules_cover_the_leading_indicators() -> None:
    names = {r.name for r in load_rules()}
    assert names == {"usage_near_limit", "usage_drop", "readiness_outreach", "health_red", "nps_detractor",
                     "payment_failed", "exec_silence_enterprise", "stale_expansion_opportunity"}


def test_rules_needing_absent_tables_are_inactive_and_say_why() -> None:
    rules, inactive = active_rules(load_rules(), ["accounts", "subscriptions", "usage_daily"])
    assert "stale_expansion_opportunity" in inactive and "opportunities" in inactive["stale_expansion_opportunity"]
    assert "payment_failed" in inactive and "usage_near_limit" in {r.name for r in rules}


@pytest.mark.parametrize("feature", feature_names())
def test_a_user_rule_may_read_any_registered_feature(feature: str, tmp_path: Path) -> None:
    from features.registry import categorical_features

    value = '"x"' if feature in categorical_features() else "1"
    path = tmp_path / "rules.toml"
    path.write_text(f'[[rule]]\nname = "mine"\noutcome = "expanded"\nall = [{{ feature = "{feature}", op = "==", value = {value} }}]\n')
    assert load_rules(path)[0].features == (feature,)


@pytest.mark.parametrize(("body", "message"), [
    ('[[rule]]\nname = "r"\noutcome = "expanded"\nall = [{ feature = "nope", op = ">=", value = 1 }]',
     "rule 'r'.all[0].feature: 'nope' is neither a registered feature"),
    ('[[rule]]\nname = "r"\noutcome = "expanded"\nall = [{ feature = "events_30d", op = "~", value = 1 }]',
     "rule 'r'.all[0].op"),
    ('[[rule]]\nname = "r"\noutcome = "expanded"\nall = [{ feature = "segment", op = ">=", value = 1 }]',
     "segment is categorical"),
    ('[[rule]]\nname = "r"\noutcome = "upsold"\nall = [{ feature = "events_30d", op = ">=", value = 1 }]',
     "rule 'r'.outcome"),
    ('[[rule]]\nname = "r"\noutcome = "expanded"', "needs at least one condition"),
    ('[[rule]]\nname = "r"\noutcome = "expanded"\nplay = "dance"\nall = [{ feature = "events_30d", op = ">=", value = 1 }]',
     "rule 'r'.play"),
    ('[[rule]]\nname = "r"\noutcome = "expanded"\nall = [{ feature = "events_30d", op = ">=", value = 1 }]\n'
     '[[rule]]\nname = "r"\noutcome = "expanded"\nall = [{ feature = "events_30d", op = ">=", value = 1 }]',
     "declared twice: r"),
    ("not toml [", "not valid TOML"),
])
def test_a_bad_rules_file_names_the_file_the_rule_and_the_field(body: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(RuleError, match=str(path)) as error:
        load_rules(path)
    assert message in str(error.value)


def test_conditions_all_any_and_unknown_values() -> None:
    rules = parse_rules("""
[[rule]]
name = "silent_enterprise"
outcome = "churned"
all = [{ feature = "segment", op = "==", value = "enterprise" },
       { feature = "days_since_exec_touch", op = ">=", value = 90, missing_counts = true }]

[[rule]]
name = "near"
outcome = "expanded"
any = [{ feature = "quota_utilization_30d_pct", op = ">=", value = 85 },
       { feature = "seat_utilization_pct", op = ">=", value = 85 }]
""", "inline")
    frame = pd.DataFrame({
        "account_id": pd.array(["a", "b", "c", "d"], dtype="string"), "as_of": pd.Timestamp(dt.date(2025, 1, 31)),
        "segment": pd.array(["enterprise", "enterprise", "smb", "enterprise"], dtype="string"),
        "days_since_exec_touch": [120.0, float("nan"), 200.0, 30.0],
        "quota_utilization_30d_pct": [90.0, float("nan"), 10.0, 10.0],
        "seat_utilization_pct": [10.0, 10.0, 86.0, float("nan")],
    })
    hits = in_condition(rules, frame)
    assert set(zip(hits["account_id"], hits["rule"])) == {
        ("a", "silent_enterprise"), ("b", "silent_enterprise"), ("a", "near"), ("c", "near")}
