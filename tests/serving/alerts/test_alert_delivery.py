"""Live runs against real loopback receivers: episodes, dedupe on re-run, snooze, cap, retries, a receiver down."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from features.config import Settings
from features.io import open_data
from serving.alerts.run import open_store, run_alerts

FIRST, SECOND = dt.date(2025, 3, 1), dt.date(2025, 3, 31)
SECRET = "test-secret"
CLOCK = lambda: dt.datetime(2025, 4, 1, 8, 0, tzinfo=dt.UTC)  # noqa: E731 - the entry point's clock, fixed


def boost_usage(tables: dict[str, pd.DataFrame]) -> None:
    """A1 (CSM kim) uses 15 more events a day from 2025-03-10: 108 % of its quota by 2025-03-31 (75 % before)."""
    u = tables["usage_daily"]
    boost = (u["account_id"] == "A1") & (pd.to_datetime(u["date"]) >= "2025-03-10") & (u["feature_key"] == "dash")
    u.loc[boost, "events"] = u.loc[boost, "events"] + 15


@pytest.fixture
def company(tiny_company: Callable[..., Path]) -> Path:
    return tiny_company(boost_usage)


def settings_for(tmp_path: Path, routing: str | None, **extra: object) -> Settings:
    home = tmp_path / "home"
    if routing is not None:
        (home / "alerts").mkdir(parents=True, exist_ok=True)
        (home / "alerts" / "routing.toml").write_text(routing, encoding="utf-8")
    base = dict(home=home, alerts_webhook_secret=SECRET, alerts_backoff_seconds=0.01, alerts_timeout_seconds=0.5,
                alerts_max_attempts=3)
    return Settings(_env_file=None, **{**base, **extra})


def routing(url: str, smtp_port: int | None = None, digest: bool = False) -> str:
    email = 'email = "kim@example.com"\n' if smtp_port else ""
    return (f'account_url = "https://cs.example.com/accounts/{{account_id}}"\n[[route]]\ncsm_owner = "kim"\n'
            f'slack = "{url}/slack"\nwebhook = "{url}/hook"\n{email}digest = {str(digest).lower()}\n')


def run(data: Path, day: dt.date, settings: Settings):  # noqa: ANN201
    source = open_data(data)
    try:
        return run_alerts(source, day, settings, clock=CLOCK, sleep=lambda s: None)
    finally:
        source.close()


def table(settings: Settings, name: str) -> pd.DataFrame:
    store = open_store(settings)
    try:
        return store.table(name)
    finally:
        store.close()


def test_an_episode_is_delivered_once_to_every_channel_and_a_rerun_sends_nothing(company, tmp_path, http_receiver,
                                                                                   smtp_receiver) -> None:
    settings = settings_for(tmp_path, routing(http_receiver.url, smtp_receiver.port), alerts_smtp_port=smtp_receiver.port)
    first = run(company, FIRST, settings)
    # A2 has been a detractor with a failed payment all along: already in those conditions, so no episode
    assert len(first.episodes) == 0 and http_receiver.requests == []

    second = run(company, SECOND, settings)
    fired = set(zip(second.episodes["account_id"], second.episodes["rule"]))
    assert fired == {("A1", "usage_near_limit"), ("A1", "readiness_outreach")}
    assert set(second.episodes["status"]) == {"queued"}
    assert second.delivery.sent == 6 and second.delivery.kept == []  # 2 alerts x slack, webhook, email

    slack = [json.loads(r["body"]) for r in http_receiver.requests if r["path"] == "/slack"]
    near = next(m for m in slack if "85 %" in m["text"])
    text = json.dumps(near["blocks"])
    assert "A1" in text and "quota_utilization_30d_pct: 108 %" in text and "Talk track" in text
    assert "https://cs.example.com/accounts/A1" in text
    assert "no track record yet" in text
    hooks = [r for r in http_receiver.requests if r["path"] == "/hook"]
    for r in hooks:
        expected = "sha256=" + hmac.new(SECRET.encode(), r["body"], hashlib.sha256).hexdigest()
        assert r["headers"]["X-Expansion-Signature"] == expected
        assert json.loads(r["body"])["idempotency_key"] == r["headers"]["Idempotency-Key"]
    assert len(smtp_receiver.messages) == 2
    assert {m["To"] for m in smtp_receiver.messages} == {"kim@example.com"}
    assert all(m["Message-ID"].startswith("<") for m in smtp_receiver.messages)

    again = run(company, SECOND, settings)  # the same snapshot again
    assert len(again.episodes) == 0 and again.delivery.sent == 0
    assert len(http_receiver.requests) == 4 and len(smtp_receiver.messages) == 2
    assert len(table(settings, "episodes")) == 2
    assert (table(settings, "outbox")["status"] == "sent").all()


def test_an_older_snapshot_than_the_last_run_is_refused(company, tmp_path) -> None:
    from serving.alerts.run import AlertError

    settings = settings_for(tmp_path, None)
    run(company, SECOND, settings)
    with pytest.raises(AlertError, match="older 2025-03-01"):
        run(company, FIRST, settings)


def test_a_snoozed_rule_is_recorded_but_not_sent(company, tmp_path, http_receiver) -> None:
    settings = settings_for(tmp_path, routing(http_receiver.url))
    run(company, FIRST, settings)
    store = open_store(settings)
    store.snooze("A1", "usage_near_limit", dt.date(2025, 4, 30))
    store.close()
    result = run(company, SECOND, settings)
    status = dict(zip(result.episodes["rule"], result.episodes["status"]))
    assert status == {"usage_near_limit": "snoozed", "readiness_outreach": "queued"}
    assert all("85 %" not in json.loads(r["body"]).get("text", "") for r in http_receiver.requests)


def test_the_weekly_cap_keeps_the_highest_expected_value_and_reports_the_rest(company, tmp_path, http_receiver) -> None:
    settings = settings_for(tmp_path, routing(http_receiver.url), alerts_weekly_cap=1)
    run(company, FIRST, settings)
    store = open_store(settings)
    record = pd.DataFrame([{"rule": "usage_near_limit", "outcome": "expanded", "episodes": 40, "positives": 20,
                            "rate": 0.5, "base_rate": 0.1},
                           {"rule": "readiness_outreach", "outcome": "expanded", "episodes": 40, "positives": 4,
                            "rate": 0.1, "base_rate": 0.1}]).reindex(columns=[
        "rule", "outcome", "episodes", "positives", "rate", "rate_low", "rate_high", "base_rate", "lift", "lift_low",
        "lift_high", "arr_at_fire", "outcome_arr"])
    store.save_track_record(record, CLOCK())
    store.close()
    result = run(company, SECOND, settings)
    status = dict(zip(result.episodes["rule"], result.episodes["status"]))
    assert status == {"usage_near_limit": "queued", "readiness_outreach": "held"}
    assert result.count("held") == 1
    bodies = [json.loads(r["body"]) for r in http_receiver.requests if r["path"] == "/slack"]
    assert len(bodies) == 1 and "followed by an expansion 50 % of the time" in json.dumps(bodies[0])


def test_a_digest_puts_a_csms_alerts_of_the_day_in_one_message(company, tmp_path, http_receiver) -> None:
    settings = settings_for(tmp_path, routing(http_receiver.url, digest=True))
    run(company, FIRST, settings)
    result = run(company, SECOND, settings)
    assert result.count("queued") == 2 and result.messages == 2  # one slack digest, one webhook digest
    hook = json.loads(next(r["body"] for r in http_receiver.requests if r["path"] == "/hook"))
    assert hook["digest"] is True and len(hook["alerts"]) == 2


def test_retries_after_500_and_a_timeout_never_produce_a_second_message(company, tmp_path, http_receiver) -> None:
    settings = settings_for(tmp_path, routing(http_receiver.url), alerts_timeout_seconds=0.3)
    run(company, FIRST, settings)
    http_receiver.mode = "hang_first"  # takes the first message, then hangs past the timeout: the sender retries
    result = run(company, SECOND, settings)
    assert result.delivery.sent == 4 and result.delivery.kept == []
    assert len(http_receiver.requests) == 5  # one retry
    assert len(http_receiver.accepted) == 4  # the retry carried the same key: no second message

    other = settings_for(tmp_path / "b", routing(http_receiver.url))
    http_receiver.requests.clear()
    http_receiver.accepted.clear()
    http_receiver.mode, http_receiver.failures = "fail_first", 2
    run(company, FIRST, other)
    result = run(company, SECOND, other)
    assert result.delivery.sent == 4 and len(http_receiver.requests) == 6 and len(http_receiver.accepted) == 4
    outbox = table(other, "outbox")
    assert sorted(outbox["attempts"]) == [1, 1, 1, 3]


def test_a_receiver_down_for_a_whole_run_keeps_its_messages_for_the_next(company, tmp_path, http_receiver) -> None:
    settings = settings_for(tmp_path, routing(http_receiver.url))
    run(company, FIRST, settings)
    http_receiver.mode = "fail"
    down = run(company, SECOND, settings)
    assert down.delivery.sent == 0 and len(down.delivery.kept) == 4
    assert all("HTTP 500" in m["last_error"] or "failed every attempt" in m["last_error"] for m in down.delivery.kept)
    outbox = table(settings, "outbox")
    assert (outbox["status"] == "pending").all() and outbox["last_error"].notna().all()

    http_receiver.mode = "ok"
    later = run(company, SECOND, settings)  # the next run: no new episode, the kept messages go out
    assert len(later.episodes) == 0 and later.delivery.sent == 4
    assert len(http_receiver.accepted) == 4
    assert (table(settings, "outbox")["status"] == "sent").all()


def test_episodes_without_a_route_are_recorded_as_unrouted(company, tmp_path) -> None:
    settings = settings_for(tmp_path, None)
    run(company, FIRST, settings)
    result = run(company, SECOND, settings)
    assert set(result.episodes["status"]) == {"unrouted"} and result.messages == 0


@pytest.mark.postgres
def test_state_and_outbox_in_postgresql(company, tmp_path, http_receiver, postgres_store) -> None:
    settings = settings_for(tmp_path, routing(http_receiver.url), alerts_store=postgres_store)
    run(company, FIRST, settings)
    http_receiver.mode = "fail"
    assert run(company, SECOND, settings).delivery.sent == 0
    http_receiver.mode = "ok"
    later = run(company, SECOND, settings)
    assert len(later.episodes) == 0 and later.delivery.sent == 4 and len(http_receiver.accepted) == 4
    assert (table(settings, "outbox")["status"] == "sent").all()


def test_a_webhook_route_without_a_signing_key_is_refused_before_anything_is_written(company, tmp_path,
                                                                                        http_receiver) -> None:
    from serving.alerts.routing import RoutingError

    settings = settings_for(tmp_path, routing(http_receiver.url), alerts_webhook_secret=None)
    with pytest.raises(RoutingError, match="EXPANSION_ALERTS_WEBHOOK_SECRET"):
        run(company, FIRST, settings)
    assert open_store(settings).last_run() is None
