"""Reasons on hand-built feature rows and contributions: one per concept, each with a comparison."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.reason_catalog import CONCEPT_BY_NAME, TEMPLATE_BY_FEATURE
from serving.scoring.peers import Peers
from serving.scoring.reasons import (
    CHURN_RISK,
    EXPANSION,
    HOLDS_BACK,
    LIFTS,
    explain_rows,
    rule_reasons,
    rule_reasons_rows,
    supports,
)
from serving.scoring.scorer import feature_specs
from serving.scoring.wording import duration, money

SPECS = feature_specs()
# A comparison a CSM can judge: a percentage (change on the past, share of a limit, peer percentile).
COMPARISON = re.compile(r"\d %")


def _book(n: int = 200, seed: int = 3) -> dict[str, np.ndarray]:
    """A hand-built book: one value per account for every feature that has a reason template."""
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for feature in TEMPLATE_BY_FEATURE:
        unit = SPECS[feature].unit
        if feature in ("nps_detractor",):
            values[feature] = rng.integers(0, 2, n).astype(float)
        elif "vs previous" in SPECS[feature].window or feature.endswith(("_slope_12w_pct", "_growth_180d_pct", "nps_change")):
            values[feature] = rng.normal(0, 40, n)
        elif unit in ("%",):
            values[feature] = rng.uniform(0, 120, n)
        elif unit.startswith("currency"):
            values[feature] = rng.uniform(0, 80_000, n)
        elif unit.startswith("score"):
            values[feature] = rng.uniform(1, 5, n).round(1)
        elif unit == "ratio 0-1":
            values[feature] = rng.uniform(0, 1, n)
        else:
            values[feature] = rng.poisson(4, n).astype(float)
    values["segment"] = rng.choice(np.array(["smb", "mid_market", "enterprise"], dtype=object), n)
    values["arr"] = rng.uniform(5_000, 200_000, n)
    for attribute in ("industry", "region", "acquisition_channel"):
        values[attribute] = rng.choice(np.array(["a", "b"], dtype=object), n)
    values["tenure_months"] = rng.uniform(1, 60, n)
    values["employees"] = rng.uniform(10, 5_000, n)
    return values


def _contributions(values: dict[str, np.ndarray], seed: int = 4) -> dict[str, tuple[list[str], np.ndarray]]:
    rng = np.random.default_rng(seed)
    features = list(values)
    n = len(values["segment"])
    return {EXPANSION: (features, rng.normal(0, 1, (n, len(features)))),
            CHURN_RISK: (features, rng.normal(0, 1, (n, len(features))))}


def test_two_features_of_one_concept_never_give_two_reasons_and_their_contributions_add_up() -> None:
    values = _book()
    reasons = explain_rows(values, _contributions(values), SPECS, top_k=5)
    assert sum(len(r) for r in reasons) > 500
    for items in reasons:
        concepts = [r.concept for r in items]
        assert len(concepts) == len(set(concepts)), concepts
        strengths = [abs(r.contribution) for r in items]
        assert strengths == sorted(strengths, reverse=True)
    # three usage-volume features of 0.3 each outweigh one quota feature of 0.8, and read as one reason
    row = {"events_7d": np.array([900.0] * 30), "events_30d": np.array([4_000.0] * 30),
           "events_90d": np.array([12_000.0] * 30), "quota_utilization_30d_pct": np.array([90.0] * 30)}
    row["events_7d"][1:] = row["events_30d"][1:] = row["events_90d"][1:] = 1.0  # the first account leads its peers
    features = list(row)
    contrib = np.tile([0.3, 0.3, 0.3, 0.8], (30, 1))
    first = explain_rows(row, {EXPANSION: (features, contrib)}, SPECS)[0]
    assert [(r.concept, r.feature) for r in first] == [("usage_volume", "events_7d"), ("quota", "quota_utilization_30d_pct")]
    assert first[0].contribution == pytest.approx(0.9)


def test_no_static_attribute_is_ever_a_reason() -> None:
    values = _book()
    attributes = ["segment", "industry", "region", "acquisition_channel", "tenure_months", "employees", "arr"]
    features = attributes + ["events_trend_30d_pct"]
    n = len(values["segment"])
    strong = np.column_stack([np.full((n, len(attributes)), 5.0), np.full(n, 0.1)])
    for items in explain_rows(values, {EXPANSION: (features, strong), CHURN_RISK: (features, strong)}, SPECS):
        assert all(r.feature == "events_trend_30d_pct" for r in items)
    assert {CONCEPT_BY_NAME[SPECS[a].concept].role for a in attributes} == {"context"}


def test_every_reason_text_carries_a_comparison_and_no_placeholder() -> None:
    values = _book()
    reasons = explain_rows(values, _contributions(values, seed=9), SPECS, top_k=5)
    seen = {"past": 0, "peers": 0, "limit": 0, "timing": 0}
    for r, items in enumerate(reasons):
        for item in items:
            seen[item.comparison] += 1
            if item.comparison == "timing":  # a renewal is said as it is, never ranked
                assert "%" not in item.text and " of " not in item.text, item.text
                continue
            assert COMPARISON.search(item.text), item.text
            assert not re.search(r"[{}]|nan|None", item.text), item.text
            if item.comparison == "peers":
                label = {"smb": "SMB", "mid_market": "mid-market", "enterprise": "enterprise"}[values["segment"][r]]
                assert f"of {label} accounts" in item.text, item.text
            if item.comparison == "past":
                assert re.search(r"(up|down) \d+ %", item.text), item.text
    assert min(seen.values()) > 20, seen


def test_a_raw_volume_is_ranked_among_the_accounts_segment_peers() -> None:
    n = 40
    values = {"events_30d": np.arange(n, dtype=float) * 1_000, "segment": np.array(["mid_market"] * 20 + ["smb"] * 20, dtype=object)}
    contrib = np.ones((n, 1))
    reasons = explain_rows(values, {EXPANSION: (["events_30d"], contrib)}, SPECS)
    # 19,000 events is the highest of the 20 mid-market accounts: top 1 in 20 = 5 %
    assert reasons[19][0].text == "19,000 events in 30 days, top 5 % of mid-market accounts"
    # 39,000 tops the smb peers but would be top 1 of 40 in the book: the segment ranks
    assert reasons[39][0].text == "39,000 events in 30 days, top 5 % of SMB accounts"
    # the rest of a segment is not singled out by its volume (top 20 % at most): no reason
    assert reasons[5] == [] and reasons[25] == [] and reasons[15] == []
    assert reasons[16][0].text == "16,000 events in 30 days, top 20 % of mid-market accounts"


def test_a_decline_is_never_a_readiness_reason_and_a_negligible_move_is_no_driver() -> None:
    spec = SPECS["active_users_trend_30d_pct"]
    moves = np.array([-30.0, -1.0, 1.0, 4.0, 30.0, np.nan])
    assert supports("active_users_trend_30d_pct", moves, EXPANSION, spec).tolist() == [False, False, False, False, True, False]
    assert supports("active_users_trend_30d_pct", moves, CHURN_RISK, spec).tolist() == [True, False, False, False, False, False]
    tickets = np.array([-50.0, 50.0])  # lower is good for tickets: a falling count reads as readiness
    assert supports("tickets_trend_30d_pct", tickets, EXPANSION, SPECS["tickets_trend_30d_pct"]).tolist() == [True, False]
    values = _book()
    reasons = explain_rows(values, _contributions(values, seed=11), SPECS)
    declines = 0
    for r, items in enumerate(reasons):
        for item in items:
            if item.comparison == "past" and SPECS[item.feature].good == "higher":
                declines += values[item.feature][r] < 0
                assert (values[item.feature][r] > 0) == (item.side == LIFTS), item
                assert ("up" in item.text) == (item.side == LIFTS), item.text
    assert declines > 0  # declines do appear, as risk


def test_levels_must_sit_on_the_side_of_the_book_that_drives_the_effect() -> None:
    seats = np.array([20.0, 60.0, 90.0])
    spec = SPECS["seat_utilization_pct"]
    assert supports("seat_utilization_pct", seats, EXPANSION, spec, typical=60.0).tolist() == [False, True, True]
    assert supports("seat_utilization_pct", seats, CHURN_RISK, spec, typical=60.0).tolist() == [True, True, False]
    meetings = np.array([0.0, 2.0])  # "No executive meetings" can explain risk, never readiness
    assert supports("exec_meetings_90d", meetings, EXPANSION, SPECS["exec_meetings_90d"]).tolist() == [False, True]


def test_renewal_and_money_read_as_people_say_them() -> None:
    assert money(48_200.4) == "$48,200" and money(1_250_000) == "$1,250,000"
    assert [duration(d) for d in (0.2, 1, 3, 20, 75, 400, 1_000)] == [
        "less than a day", "1 day", "3 days", "3 weeks", "2 months", "13 months", "3 years"]
    n = 30
    values = {"months_to_renewal": np.linspace(0.1, 12, n), "segment": np.array(["smb"] * n, dtype=object)}
    reasons = explain_rows(values, {CHURN_RISK: (["months_to_renewal"], np.ones((n, 1)))}, SPECS,
                           typical={"months_to_renewal": 6.0})
    assert reasons[0][0].text == "Renews in 3 days"  # no ranking: everyone renews some day
    assert reasons[-1] == []  # a renewal a year away is no reason


def test_rule_reasons_fire_on_thresholds_once_per_concept_with_comparisons() -> None:
    book = pd.DataFrame(_book(60))
    peers = Peers.of(book, TEMPLATE_BY_FEATURE)
    calm = {"quota_utilization_30d_pct": 50.0, "payment_failures_90d": 0.0, "urgent_tickets_30d": 0.0, "segment": "smb"}
    assert rule_reasons(calm, SPECS, peers=peers) == []
    hot = {"quota_utilization_30d_pct": 85.0, "payment_failures_90d": 9.0, "events_trend_30d_pct": 30.0,
           "active_users_trend_30d_pct": 25.0, "segment": "smb", "whitespace_usd": 1_000.0}
    reasons = rule_reasons(hot, SPECS, peers=peers)
    assert [r.feature for r in reasons] == ["payment_failures_90d", "quota_utilization_30d_pct",
                                            "active_users_trend_30d_pct", "events_trend_30d_pct"]
    assert reasons[0].effect == CHURN_RISK and reasons[0].contribution is None
    assert all(COMPARISON.search(r.text) for r in reasons), [r.text for r in reasons]  # whitespace without ARR: none
    values = {k: np.array([v] * 3, dtype=object if isinstance(v, str) else float) for k, v in hot.items()}
    values["events_trend_30d_pct"] = np.array([30.0, -30.0, 0.0])
    rows = rule_reasons_rows(values, SPECS, peers=peers)
    assert [len({r.concept for r in items}) == len(items) for items in rows] == [True] * 3
    assert [r.effect for r in rows[1] if r.concept == "usage_trend"] == [CHURN_RISK]


def test_context_is_shown_in_one_line_beside_the_reasons() -> None:
    from serving.scoring.wording import account_context

    frame = pd.DataFrame({"segment": ["mid_market", None], "industry": ["software", "retail"], "region": ["EMEA", None],
                          "acquisition_channel": ["self_serve", "direct"], "tenure_months": [7.2, float("nan")]})
    assert account_context(frame) == ["mid-market · software · EMEA · self-serve · customer for 7 months",
                                      "retail · direct"]


def test_durations_and_context_survive_values_beyond_any_calendar() -> None:
    import pandas as pd

    from serving.scoring.wording import account_context, duration

    assert duration(float("inf")) == "an unknown time" and duration(3.0) == "3 days"
    frame = pd.DataFrame({"tenure_months": [2.3e307, 7.0], "segment": ["smb", "smb"]})
    context = account_context(frame)  # 2.3e307 months overflows to infinite days: unknown, not a crash
    assert "customer for an unknown time" in str(context[0]) and "customer for 7 months" in str(context[1])


def test_both_sides_carry_reasons_and_no_sign_contradicts_its_side() -> None:
    values = _book(300)
    reasons = explain_rows(values, _contributions(values, seed=5), SPECS)
    both = sum(any(r.side == LIFTS for r in items) and any(r.side == HOLDS_BACK for r in items) for items in reasons)
    assert both >= 0.95 * len(reasons)
    for items in reasons:
        for side in (LIFTS, HOLDS_BACK):
            concepts = [r.concept for r in items if r.side == side]
            assert len(concepts) <= 3 and len(concepts) == len(set(concepts))
        for r in items:
            lifts = (r.effect == EXPANSION and r.contribution > 0)
            held = (r.effect == EXPANSION and r.contribution < 0) or (r.effect == CHURN_RISK and r.contribution > 0)
            assert (r.side == LIFTS and lifts) or (r.side == HOLDS_BACK and held), r


def test_a_low_score_is_explained_by_what_holds_it_back() -> None:
    n = 30
    values = {"feature_breadth_pct": np.full(n, 20.0), "events_trend_30d_pct": np.full(n, -40.0),
              "quota_utilization_30d_pct": np.full(n, 28.0), "segment": np.array(["smb"] * n, dtype=object)}
    features = list(values)[:3]
    contrib = np.tile([-0.5, -0.8, 0.2], (n, 1))  # all below the base value but the quota
    items = explain_rows(values, {EXPANSION: (features, contrib)}, SPECS, typical={"quota_utilization_30d_pct": 20.0})[0]
    assert [(r.side, r.text) for r in items] == [
        (HOLDS_BACK, "Usage down 40 % on the previous 30 days"),
        (HOLDS_BACK, "Using 20 % of the plan's features (30 days)")]  # 28 % of a limit lifts nothing


def test_words_a_csm_can_say_no_zero_counts_no_middling_ranks_the_alert_setting() -> None:
    values = _book(400)
    for name in ("bug_tickets_90d", "exec_meetings_90d", "payment_failures_90d"):
        values[name][:200] = 0.0
    reasons = explain_rows(values, _contributions(values, seed=13), SPECS)
    for r, items in enumerate(reasons):
        for item in items:
            assert not re.match(r"0 ", item.text), item.text
            rank = re.search(r"(?:top|bottom|longest-ago|most recent) (\d+) %", item.text)
            if rank:
                assert int(rank.group(1)) <= 20, item.text
            assert "the book" not in item.text
    row = {"days_over_quota_alert_30d": np.array([12.0] * 25)}
    said = explain_rows(row, {EXPANSION: (["days_over_quota_alert_30d"], np.ones((25, 1)))}, SPECS, alert_pct=85.0)
    assert said[0][0].text == "At the pace of 85 % of the plan's limit or more on 12 of the last 30 days"


@pytest.fixture(scope="module")
def company(feature_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(newest snapshot of the generated company, its scores with reasons) from models fitted on its history."""
    from features.registry import categorical_features, feature_names
    from serving.scoring.scorer import Scorer
    from training.models import fit_model

    labelled = feature_frame[feature_frame["expanded"].notna()]
    cut = sorted(labelled["as_of"].unique())[-3]
    train, valid = labelled[labelled["as_of"] < cut], labelled[labelled["as_of"] >= cut]
    models = [fit_model(name, train, valid, label, feature_names(), categorical_features(), num_boost_round=40)
              for name, label in (("expansion", "expanded"), ("churn", "churned"))]
    latest = feature_frame[feature_frame["as_of"] == feature_frame["as_of"].max()].reset_index(drop=True)
    return latest, Scorer(*models, SPECS).with_reference(latest).score(latest)


def test_every_reason_of_a_generated_company_reads_the_way_it_is_shown(company) -> None:
    """Sign against side, words against the value, no window beyond the tenure, no middling rank, no zero count."""
    from features.registry import full_window_days
    from serving.scoring.reasons import is_change
    from serving.scoring.wording import DAYS_PER_MONTH

    latest, scores = company
    reasons = [(i, d) for i, ds in enumerate(scores["reason_details"]) for d in ds]
    assert len(reasons) > 5 * len(scores) / 2
    for i, d in reasons:
        lifts, c = d["side"] == LIFTS, d["contribution"]
        assert lifts == (d["effect"] == EXPANSION and c > 0), d
        assert (not lifts) == ((d["effect"] == EXPANSION and c < 0) or (d["effect"] == CHURN_RISK and c > 0)), d
        spec, value = SPECS[d["feature"]], float(latest.at[i, d["feature"]])
        if is_change(d["feature"], spec) and spec.good in ("higher", "lower"):
            assert (" up " in f" {d['text']} ") == (value > 0), d
            assert lifts == ((value > 0) == (spec.good == "higher")), (d, value)
        window = full_window_days(spec)
        assert window is None or window <= latest.at[i, "tenure_months"] * DAYS_PER_MONTH + 1.5, (d, latest.at[i, "tenure_months"])
        rank = re.search(r"(?:top|bottom|longest-ago|most recent|like) (\d+) %", d["text"])
        assert not rank or int(rank.group(1)) <= 20, d["text"]
        assert not re.match(r"0 |No ", d["text"]) and "the book" not in d["text"] and "soonest" not in d["text"], d
    low = scores["readiness_score"] < 40
    held = scores["reason_details"].map(lambda ds: any(d["side"] == HOLDS_BACK for d in ds))
    assert held[low].mean() >= 0.9, held[low].mean()  # a low score is explained


def test_an_expansion_play_of_a_generated_company_carries_its_cautions(company) -> None:
    from features.reason_catalog import PLAY_BY_NAME
    from serving.scoring.plays import FACT_NAMES, active_cautions

    latest, scores = company
    warned = 0
    for i, facts in enumerate(latest[[c for c in FACT_NAMES if c in latest.columns]].to_dict("records")):
        warnings = active_cautions(facts)
        assert (scores.at[i, "caution"] is not None and scores.at[i, "caution"] == scores.at[i, "caution"]) == bool(warnings)
        if warnings and PLAY_BY_NAME[scores.at[i, "recommended_play"]].effect == "expansion":
            warned += 1
            assert scores.at[i, "recommended_play_text"].startswith("Before you raise"), scores.at[i, "recommended_play_text"]
            assert scores.at[i, "health"] == "green" or not any(w.blocks_upsell for w in warnings)
    assert warned > 0


def test_rule_reasons_stand_on_both_sides_too() -> None:
    book = pd.DataFrame(_book(60))
    peers = Peers.of(book, TEMPLATE_BY_FEATURE)
    account = {"quota_utilization_30d_pct": 85.0, "feature_breadth_pct": 30.0, "events_slope_12w_pct": -6.0,
               "seat_utilization_pct": 40.0, "segment": "smb"}
    reasons = rule_reasons(account, SPECS, peers=peers)
    assert [(r.side, r.feature) for r in reasons] == [
        (HOLDS_BACK, "events_slope_12w_pct"), (LIFTS, "quota_utilization_30d_pct"),
        (HOLDS_BACK, "feature_breadth_pct"), (HOLDS_BACK, "seat_utilization_pct")]
