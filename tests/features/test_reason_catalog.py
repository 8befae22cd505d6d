"""The declared catalog of concepts, reason templates and plays agrees with the feature registry."""

from __future__ import annotations

import re

import string

from features.reason_catalog import (
    BAND_PLAYS,
    CONCEPT_BY_NAME,
    PLAY_BY_NAME,
    PLAY_FOR_CONCEPT,
    PLAY_FOR_WHITESPACE_PART,
    PLAYS,
    REASON_TEMPLATES,
    TEMPLATE_BY_FEATURE,
    Condition,
)
from features.registry import FEATURES, feature_names

STATIC_ATTRIBUTES = {"segment", "industry", "region", "acquisition_channel", "tenure_months"}
TEMPLATE_FIELDS = {"value", "s", "pct", "ratio_pct", "direction", "change", "when", "share_of_arr", "p", "rank",
                   "peers", "detractor", "alert_pct"}


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_feature_has_a_declared_concept_and_every_signal_a_template():
    for spec in FEATURES:
        assert spec.concept in CONCEPT_BY_NAME, spec.name
        if CONCEPT_BY_NAME[spec.concept].role == "signal":
            assert spec.name in TEMPLATE_BY_FEATURE, spec.name
    assert {s.name for s in FEATURES if CONCEPT_BY_NAME[s.concept].role == "context"} >= STATIC_ATTRIBUTES
    assert len(TEMPLATE_BY_FEATURE) == len(REASON_TEMPLATES) and set(TEMPLATE_BY_FEATURE) <= set(feature_names())
    assert not set(TEMPLATE_BY_FEATURE) & STATIC_ATTRIBUTES


def test_every_template_names_a_comparison_and_only_known_fields():
    comparison_fields = {"past": {"change"}, "peers": {"p", "rank"}, "limit": {"pct", "share_of_arr", "value"},
                         "timing": {"when"}}
    for t in REASON_TEMPLATES:
        fields = _fields(t.text)
        assert fields <= TEMPLATE_FIELDS, (t.feature, fields - TEMPLATE_FIELDS)
        assert fields & comparison_fields[t.comparison], t
        if t.comparison == "peers":
            assert "{peers}" in t.text, t
        if t.comparison == "limit":
            assert "%" in t.text or "limit" in t.text, t
        if t.comparison == "timing":  # said as it is, never ranked among peers
            assert not fields & {"p", "rank", "peers"}, t
        assert not re.search(r"\d+ %", t.text.replace("{", "")), t  # thresholds come from settings, not the text


def test_plays_premises_read_registered_figures_and_every_route_leads_to_a_play():
    fields = {c.field for p in PLAYS for alt in p.premise for c in alt}
    assert fields <= set(feature_names()) | {"readiness_score", "health"}
    targets = set(PLAY_FOR_CONCEPT.values()) | set(PLAY_FOR_WHITESPACE_PART.values()) | set(BAND_PLAYS.values())
    assert targets <= set(PLAY_BY_NAME)
    assert {concept for concept, _ in PLAY_FOR_CONCEPT} <= set(CONCEPT_BY_NAME)
    # the premises: near a limit from 80 %, seats from 85 %, a cross-sell needs a product peers own
    assert Condition("quota_utilization_30d_pct", ">=", 80.0) in PLAY_BY_NAME["upgrade_conversation"].premise[0]
    assert Condition("seat_utilization_pct", ">=", 85.0) in PLAY_BY_NAME["seat_expansion"].premise[0]
    assert PLAY_BY_NAME["cross_sell"].premise == ((Condition("whitespace_products_usd", ">", 0),),)


def test_a_premise_holds_only_on_known_values_that_meet_it():
    near = PLAY_BY_NAME["upgrade_conversation"]
    assert near.premise_holds({"quota_utilization_30d_pct": 80.0, "whitespace_tier_usd": 1.0})
    assert not near.premise_holds({"quota_utilization_30d_pct": 79.9, "whitespace_tier_usd": 1.0})
    assert not near.premise_holds({"quota_utilization_30d_pct": float("nan"), "whitespace_tier_usd": 1.0})
    assert not near.premise_holds({"whitespace_tier_usd": 1.0})
    assert PLAY_BY_NAME["billing_follow_up"].premise_holds({"payment_failures_90d": 0.0, "late_payments_90d": 2.0})
    assert PLAY_BY_NAME["nurture_value_content"].premise_holds({})
