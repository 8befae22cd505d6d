"""Plays on hand-built reasons and facts: premises hold in the account's numbers, health comes first."""

from __future__ import annotations

import re

import numpy as np
import pytest

from features.reason_catalog import PLAY_BY_NAME, PLAYS
from serving.scoring.plays import FACT_NAMES, active_cautions, candidates, recommend, talk_track_fields
from serving.scoring.reasons import CHURN_RISK, EXPANSION, ReasonItem
from serving.scoring.wording import fields_of

NEAR_LIMIT = ReasonItem("Usage at 86 % of the plan's limit (30 days)", "quota_utilization_30d_pct", EXPANSION, 0.9,
                        "quota", "limit")
SEATS_FULL = ReasonItem("92 % of licensed seats in use (30 days)", "seat_utilization_pct", EXPANSION, 0.5,
                        "seats", "limit")
LOST_SPONSOR = ReasonItem("Last executive contact 7 months ago, longest-ago 5 % of SMB accounts",
                          "days_since_exec_touch", CHURN_RISK, 0.4, "sponsor", "peers")
TICKETS = ReasonItem("3 urgent tickets in 30 days, top 2 % of SMB accounts", "urgent_tickets_30d", CHURN_RISK, 0.9,
                     "support", "peers")

ACCOUNT = {
    "segment": "mid_market", "events_30d": 43_000.0, "quota_utilization_30d_pct": 86.0, "whitespace_tier_usd": 14_400.0,
    "seats": 40.0, "mrr": 2_000.0, "arr": 24_000.0, "whitespace_usd": 30_000.0, "active_users_30d": 37.0,
    "seat_utilization_pct": 92.5, "whitespace_products_usd": 6_000.0, "products_owned": 1.0, "readiness_score": 82.0,
    "days_since_exec_touch": 210.0, "exec_meetings_180d": 0.0, "payment_failures_90d": 1.0, "late_payments_90d": 0.0,
    "months_to_renewal": 0.1, "tickets_30d": 6.0, "urgent_tickets_30d": 3.0, "outage_tickets_90d": 1.0,
    "feature_breadth_pct": 40.0, "events_trend_30d_pct": -30.0, "nps_detractor": 1.0, "nps_latest": 4.0,
    "churn_probability": 0.31,
}


def test_the_first_play_whose_premise_holds_in_the_accounts_numbers_is_chosen() -> None:
    assert recommend([NEAR_LIMIT, SEATS_FULL], ACCOUNT, "green", "outreach").play == "upgrade_conversation"
    far_from_limit = {**ACCOUNT, "quota_utilization_30d_pct": 32.0}
    assert recommend([NEAR_LIMIT, SEATS_FULL], far_from_limit, "green", "outreach").play == "seat_expansion"
    neither = {**far_from_limit, "seat_utilization_pct": 42.0}
    assert recommend([NEAR_LIMIT, SEATS_FULL], neither, "green", "outreach").play == "expansion_conversation"
    low_readiness = {**neither, "readiness_score": 55.0}
    assert recommend([NEAR_LIMIT, SEATS_FULL], low_readiness, "green", "nurture").play == "nurture_value_content"
    unknown_quota = {**ACCOUNT, "quota_utilization_30d_pct": float("nan")}  # unlimited plan: no upgrade talk
    assert recommend([NEAR_LIMIT], unknown_quota, "green", "nurture").play == "nurture_value_content"


def test_red_health_gets_a_risk_play_first_and_green_never_one() -> None:
    assert recommend([NEAR_LIMIT, LOST_SPONSOR], ACCOUNT, "red", "outreach").play == "executive_check_in"
    assert recommend([NEAR_LIMIT], ACCOUNT, "red", "outreach").play == "executive_check_in"  # premise holds
    calm = {**ACCOUNT, "days_since_exec_touch": 10.0, "exec_meetings_180d": 2.0, "payment_failures_90d": 0.0,
            "urgent_tickets_30d": 0.0, "outage_tickets_90d": 0.0, "nps_detractor": 0.0}
    assert recommend([NEAR_LIMIT], calm, "red", "outreach").play == "success_plan_review"
    assert recommend([TICKETS, NEAR_LIMIT], ACCOUNT, "green", "outreach").play == "upgrade_conversation"
    assert recommend([TICKETS], ACCOUNT, "yellow", "nurture").play == "support_escalation"
    assert all(PLAY_BY_NAME[p].effect != "churn_risk" for p in candidates([TICKETS, LOST_SPONSOR], "green", "nurture"))


def test_talk_tracks_use_the_accounts_own_figures() -> None:
    track = recommend([NEAR_LIMIT], ACCOUNT, "green", "outreach").talk_track
    # 43,000 events at 86 % of the limit: a limit of 50,000; 14,400 a year over 40 seats: $30 per seat a month
    assert "43,000 events" in track and "86 % of its plan's limit of 50,000" in track
    assert "$30 more per seat a month" in track and "$14,400 a year for its 40 seats" in track and "$30,000" in track
    seats = recommend([SEATS_FULL], {**ACCOUNT, "quota_utilization_30d_pct": 10.0}, "green", "outreach").talk_track
    assert "37 people used the product in the last 30 days on 40 licensed seats (92 % in use)" in seats
    assert "$50 a month" in seats  # 2,000 MRR / 40 seats
    billing = recommend([], ACCOUNT, "red", "adoption")
    assert billing.play == "executive_check_in" and "7 months ago" in billing.talk_track


@pytest.mark.parametrize("play", [p.name for p in PLAYS])
def test_every_talk_track_renders_without_an_empty_placeholder(play: str) -> None:
    fields = talk_track_fields({**ACCOUNT, "health": "red"})
    assert set(fields_of(PLAY_BY_NAME[play].talk_track)) <= set(fields)
    text = PLAY_BY_NAME[play].talk_track.format_map({k: fields[k] for k in fields_of(PLAY_BY_NAME[play].talk_track)})
    assert not re.search(r"[{}]|None|nan", text), text


def test_on_random_accounts_the_chosen_plays_premise_always_holds() -> None:
    rng = np.random.default_rng(2)
    reasons_pool = [NEAR_LIMIT, SEATS_FULL, LOST_SPONSOR, TICKETS]
    chosen = set()
    for _ in range(400):
        facts = {k: (float(rng.uniform(0, 2) * v) if isinstance(v, float) and rng.random() > 0.15 else
                     (float("nan") if isinstance(v, float) else v)) for k, v in ACCOUNT.items()}
        health = str(rng.choice(["green", "yellow", "red"]))
        band = str(rng.choice(["outreach", "nurture", "adoption"]))
        reasons = [r for r in reasons_pool if rng.random() > 0.5]
        choice = recommend(reasons, facts, health, band)
        assert PLAY_BY_NAME[choice.play].premise_holds({**facts, "health": health}), (choice.play, facts)
        assert not re.search(r"[{}]|None|nan", choice.talk_track), choice.talk_track
        assert health != "red" or PLAY_BY_NAME[choice.play].effect == "churn_risk"
        warnings = active_cautions(facts)
        if PLAY_BY_NAME[choice.play].effect == "expansion" and warnings:
            assert choice.caution and choice.talk_track.startswith("Before you raise"), choice
            assert health == "green" or not any(w.blocks_upsell for w in warnings), (health, warnings)
        chosen.add(choice.play)
    assert len(chosen) >= 7
    assert {c.field for p in PLAYS for alt in p.premise for c in alt} <= set(FACT_NAMES) | {"health"}


def test_an_opportunity_carries_its_churn_side_warnings_and_falling_usage_holds_upsell_back() -> None:
    calm = {**ACCOUNT, "events_trend_30d_pct": 12.0, "payment_failures_90d": 0.0, "nps_detractor": 0.0,
            "nps_latest": 9.0, "days_since_exec_touch": 20.0}
    plain = recommend([NEAR_LIMIT], calm, "green", "outreach")
    assert plain.play == "upgrade_conversation" and plain.caution is None
    assert plain.talk_track.startswith("The account used 43,000 events")
    falling = {**calm, "events_trend_30d_pct": -26.0}
    green = recommend([NEAR_LIMIT], falling, "green", "outreach")  # churn risk low: the play may lead, with its caution
    assert green.play == "upgrade_conversation" and green.caution == "Usage down 26 % on the previous 30 days"
    assert green.talk_track.startswith("Before you raise the upgrade, ask about the drop in usage "
                                       "(down 26 % on the previous 30 days). The account used")
    yellow = recommend([NEAR_LIMIT], falling, "yellow", "outreach")  # churn risk not low: no upsell first
    assert PLAY_BY_NAME[yellow.play].effect != "expansion" and yellow.caution == green.caution
    slope = recommend([NEAR_LIMIT], {**calm, "events_slope_12w_pct": -6.3, "payment_failures_90d": 2.0}, "green",
                      "outreach")
    assert slope.caution == "Usage down 6 % a week over the last 12 weeks; 2 failed payments in 90 days"
    assert "ask about the drop in usage (down 6 % a week over the last 12 weeks) and the failed payments." in slope.talk_track
    quiet = recommend([NEAR_LIMIT], {**calm, "nps_detractor": 1.0, "nps_latest": 3.0, "days_since_exec_touch": 200.0},
                      "yellow", "outreach")  # a detractor or a silent sponsor is said, but does not hold the play back
    assert quiet.play == "upgrade_conversation"
    assert quiet.caution == "Latest NPS answer 3 of 10 (a detractor); no executive contact for 7 months"
