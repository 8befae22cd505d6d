"""Episodes over a calendar and the decision of each (pure functions, hand-built frames)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from serving.alerts.episodes import decide, entering, entering_over, episode_id, week_start

D = dt.date


def conditions(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["account_id", "as_of", "rule"]).assign(as_of=lambda f: pd.to_datetime(f["as_of"]))


def test_an_episode_starts_on_entering_not_while_staying_and_again_after_leaving() -> None:
    dates = [D(2025, 1, 1), D(2025, 1, 2), D(2025, 1, 3), D(2025, 1, 4), D(2025, 1, 5)]
    c = conditions([("a", "2025-01-01", "r"), ("a", "2025-01-02", "r"),  # in at the first date: no episode
                    ("b", "2025-01-02", "r"), ("b", "2025-01-03", "r"),  # enters on the 2nd, stays
                    ("b", "2025-01-05", "r"),                            # leaves on the 4th, enters again
                    ("b", "2025-01-03", "s")])
    starts = entering_over(c, dates)
    assert set(zip(starts["account_id"], starts["as_of"].dt.date, starts["rule"])) == {
        ("b", D(2025, 1, 2), "r"), ("b", D(2025, 1, 5), "r"), ("b", D(2025, 1, 3), "s")}
    now = pd.DataFrame({"account_id": ["a", "b"], "rule": ["r", "r"]})
    assert entering(now, pd.DataFrame({"account_id": ["a"], "rule": ["r"]}))["account_id"].tolist() == ["b"]


def test_decisions_snooze_route_and_cap_by_expected_value() -> None:
    new = pd.DataFrame({
        "account_id": ["a1", "a2", "a3", "a4", "a5", "a6"], "rule": ["r"] * 6,
        "csm_owner": pd.array(["kim", "kim", "kim", "kim", "lee", None], dtype="string"),
        "expected_value": [100.0, 500.0, 300.0, 900.0, 50.0, 10.0],
    })
    out = decide(new, snoozed={("a4", "r")}, routed={"kim", "lee"}, sent_this_week={"kim": 3}, cap=5)
    status = dict(zip(out["account_id"], out["status"]))
    # kim has 2 places left this week: a4 is snoozed; of a1, a2, a3 the two worth most go
    assert status == {"a1": "held", "a2": "queued", "a3": "queued", "a4": "snoozed", "a5": "queued", "a6": "unrouted"}


def test_ids_and_weeks_are_stable() -> None:
    assert episode_id("a", "r", D(2025, 3, 31)) == episode_id("a", "r", D(2025, 3, 31))
    assert episode_id("a", "r", D(2025, 3, 31)) != episode_id("a", "r", D(2025, 4, 1))
    assert week_start(D(2025, 3, 30)) == D(2025, 3, 24) and week_start(D(2025, 3, 31)) == D(2025, 3, 31)
