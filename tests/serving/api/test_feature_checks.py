"""Rules for supplied feature values: derived from the registry and contract, and met by what the pipeline builds."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from features import registry
from features.contract import SEGMENTS
from serving.api.feature_checks import check_features, feature_rules, json_value, openapi_features
from serving.scoring.scorer import feature_specs


@pytest.fixture(scope="module")
def rules() -> dict:
    return feature_rules(feature_specs())


def test_every_registry_feature_has_a_rule_stated_in_words(rules: dict) -> None:
    assert set(rules) == set(registry.feature_names())
    assert all(r.rule for r in rules.values())
    assert rules["segment"].allowed == SEGMENTS and rules["industry"].allowed is None


def test_values_the_pipeline_builds_all_pass(rules: dict, feature_frame: pd.DataFrame) -> None:
    """A rule stricter than the pipeline would refuse real accounts: every built value must pass."""
    for name, rule in rules.items():
        values = feature_frame[name].astype(object).where(feature_frame[name].notna(), None)
        broken = {v for v in values if rule.problem(v if not isinstance(v, float) or not math.isnan(v) else None)}
        assert not broken, f"{name}: built values {sorted(map(str, broken))[:5]} break {rule.rule!r}"


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("tickets_90d", -1, "below the minimum of 0"),
        ("whitespace_usd", float("inf"), "not a finite number"),
        ("dau_mau_30d", float("nan"), "not a finite number"),
        ("dau_mau_30d", 1.5, "above the maximum of 1"),
        ("csat_latest", 0.5, "below the minimum of 1"),
        ("nps_change", -11, "below the minimum of -10"),
        ("months_to_fiscal_year_start", 12, "above the maximum of 11"),
        ("plan_tier_rank", 0, "below the minimum of 1"),
        ("days_since_exec_touch", 400, "above the maximum of 365"),
        ("mrr_growth_180d_pct", -100.1, "below the minimum of -100"),
        ("acquisition_channel", "cold_call", "not an allowed value"),
        ("industry", "", "text must have"),
        ("events_7d", "12", "expected a number"),
    ],
)
def test_each_rule_refuses_what_the_contract_refuses(rules: dict, name: str, value: object, why: str) -> None:
    ((field, sent, rule),) = check_features({name: value}, rules)
    assert field == name and why in rule and rules[name].rule in rule
    assert json_value(sent) == (str(value) if isinstance(value, float) and not math.isfinite(value) else value)


def test_edges_and_unknown_values_are_accepted(rules: dict) -> None:
    edges = {"feature_breadth_pct": 100.0, "events_trend_30d_pct": -100.0, "nps_detractor": 1, "segment": None,
             "quota_utilization_30d_pct": 250.0, "events_slope_12w_pct": -80.0, "industry": "Software"}
    assert check_features(edges, rules) == []
    assert check_features({"anything": 1}, {}) == []  # no registry and no model: nothing to check against
    assert check_features({"no_such": 1}, rules)[0][2].startswith("unknown feature")


def test_a_model_feature_missing_from_the_registry_must_still_be_finite() -> None:
    rules = feature_rules({}, [("custom_score", False), ("custom_tier", True)])
    assert check_features({"custom_score": 1e12, "custom_tier": "gold"}, rules) == []
    assert "finite" in check_features({"custom_score": float("inf")}, rules)[0][2]


def test_openapi_features_replaces_the_free_form_dict_everywhere(rules: dict) -> None:
    loose = {"anyOf": [{"type": "object", "additionalProperties": {"type": "number"}}, {"type": "null"}]}
    account = {"properties": {"account_id": {"type": "string"}, "features": loose}}
    spec = openapi_features({"components": {"schemas": {"AccountInput": account}}}, rules)
    features = spec["components"]["schemas"]["AccountInput"]["properties"]["features"]["anyOf"][0]
    assert set(features["properties"]) == set(rules) and features["additionalProperties"] is False
    assert features["properties"]["dau_mau_30d"]["anyOf"][0] == {"type": "number", "minimum": 0.0, "maximum": 1.0}


def test_openapi_states_the_batch_size_limit_of_every_batch_field(rules: dict) -> None:
    """A client validating against the document must not send a batch the service then refuses."""
    from serving.api.schemas import RankRequest, ScoreRequest

    schemas = {"ScoreRequest": ScoreRequest.model_json_schema(), "RankRequest": RankRequest.model_json_schema()}
    spec = openapi_features({"components": {"schemas": schemas}}, rules, max_batch_size=250)
    score, rank = spec["components"]["schemas"]["ScoreRequest"], spec["components"]["schemas"]["RankRequest"]
    assert score["properties"]["accounts"]["maxItems"] == 250
    (ids,) = [v for v in rank["properties"]["account_ids"]["anyOf"] if v.get("type") == "array"]
    assert ids["maxItems"] == 250 and rank["properties"]["limit"]["maximum"] == 250
    assert "maxItems" not in openapi_features({"components": {"schemas": {"S": ScoreRequest.model_json_schema()}}},
                                              rules)["components"]["schemas"]["S"]["properties"]["accounts"]
