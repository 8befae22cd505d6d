"""Alert channels behind one protocol: the routing file knows them from the registry alone (an unknown one is an
error at load), every registered channel renders and delivers through the same path, and a stored message of an
unknown channel is parked, never sent as something else."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from serving.alerts.channels import CHANNELS, UnknownChannel, payload, shown
from serving.alerts.delivery import deliver
from serving.alerts.routing import RoutingError, load_routing, parse_routing
from serving.alerts.run import open_store

from test_alert_delivery import CLOCK, FIRST, SECRET, settings_for, table

ALERT = {"episode_id": "ep-1", "account_id": "A1", "csm_owner": "kim", "as_of": "2025-03-31", "rule": "seats_full",
         "title": "Seats nearly full", "fired": ["quota_utilization_30d_pct: 91 % (rule: >= 85)"],
         "money_at_stake": "$12,000", "money_field": "whitespace_usd", "talk_track": "Talk about the next tier.",
         "track_record": "12 of 40 such alerts expanded", "link": None}


def test_an_unknown_channel_in_the_routing_file_is_an_error_naming_the_file_the_route_and_the_known_channels(
        tmp_path: Path) -> None:
    path = tmp_path / "routing.toml"
    path.write_text('[[route]]\ncsm_owner = "kim"\nemail = "kim@example.com"\nteams = "https://teams.example.com/x"\n',
                    encoding="utf-8")
    with pytest.raises(RoutingError) as caught:
        load_routing(path)
    message = str(caught.value)
    assert str(path) in message and "'kim'" in message and "unknown channel(s) teams" in message
    assert all(name in message for name in CHANNELS)


def test_the_routing_accepts_every_registered_channel_and_checks_its_destination() -> None:
    destinations = {"slack": "https://hooks.slack.com/services/T/B/X", "webhook": "https://ops.example.com/hook",
                    "email": "kim@example.com"}
    assert set(CHANNELS) == set(destinations)
    lines = "".join(f'{name} = "{destinations[name]}"\n' for name in CHANNELS)
    routing = parse_routing(f'[[route]]\ncsm_owner = "*"\n{lines}', "routing.toml")
    assert routing.route_for("anyone").channels == tuple((name, destinations[name]) for name in CHANNELS)
    assert routing.secrets() == [destinations["slack"], destinations["webhook"]]  # webhook URLs are credentials
    with pytest.raises(RoutingError, match=r"route for 'kim'\.slack: 'kim@example.com' is not an http\(s\) URL"):
        parse_routing('[[route]]\ncsm_owner = "kim"\nslack = "kim@example.com"\n', "routing.toml")
    with pytest.raises(RoutingError, match=r"route for 'kim'\.email: 'https://x' is not an email address"):
        parse_routing('[[route]]\ncsm_owner = "kim"\nemail = "https://x"\n', "routing.toml")


def test_a_channel_the_settings_cannot_send_on_is_refused_naming_the_route_and_the_setting(tmp_path: Path) -> None:
    routing = parse_routing('[[route]]\ncsm_owner = "lee"\nwebhook = "https://ops.example.com/hook"\n', "r.toml")
    with pytest.raises(RoutingError, match="r.toml: route.s. for 'lee' use webhook: .*EXPANSION_ALERTS_WEBHOOK_SECRET"):
        routing.check(settings_for(tmp_path, None, alerts_webhook_secret=None), "r.toml")
    routing.check(settings_for(tmp_path, None), "r.toml")  # with the key set


def test_an_unknown_channel_has_no_body_and_no_shown_destination() -> None:
    with pytest.raises(UnknownChannel, match="unknown alert channel 'teams' .known channels: slack, webhook, email"):
        payload("teams", "https://teams.example.com/x", [ALERT], "key", digest=False)
    with pytest.raises(UnknownChannel):
        shown("teams", "https://teams.example.com/x")
    assert shown("email", "kim@example.com") == "kim@example.com"
    assert "services" not in shown("slack", "https://hooks.slack.com/services/T/B/X")


def _queue(settings, rows: list[dict]) -> None:  # noqa: ANN001
    store = open_store(settings)
    empty = pd.DataFrame({"account_id": pd.Series(dtype="string"), "rule": pd.Series(dtype="string")})
    try:
        store.commit_run(FIRST, CLOCK(), [], empty, pd.DataFrame(), rows)
    finally:
        store.close()


def _message(key: str, channel: str, destination: str, body: str) -> dict:
    return {"message_key": key, "channel": channel, "destination": destination, "csm_owner": "kim", "payload": body,
            "episode_ids": "ep-1", "status": "pending", "attempts": 0, "last_error": None, "queued_as_of": FIRST,
            "sent_at": None}


def test_every_registered_channel_delivers_its_own_body_and_an_unknown_one_is_parked(
        tmp_path: Path, http_receiver, smtp_receiver) -> None:  # noqa: ANN001 - fixtures
    settings = settings_for(tmp_path, None, alerts_smtp_port=smtp_receiver.port)
    real = {"slack": f"{http_receiver.url}/slack", "webhook": f"{http_receiver.url}/hook", "email": "kim@example.com"}
    rows = [_message(f"key-{name}", name, shown(name, real[name]), payload(name, real[name], [ALERT], f"key-{name}", False))
            for name in CHANNELS]
    rows.append(_message("key-teams", "teams", f"{http_receiver.url}/teams", json.dumps({"text": "x"})))
    _queue(settings, rows)
    store = open_store(settings)
    try:
        result = deliver(store, settings, CLOCK, sleep=lambda s: None, urls=[real["slack"], real["webhook"]])
    finally:
        store.close()
    assert (result.due, result.sent, len(result.parked), len(result.kept)) == (4, 3, 1, 0)
    assert sorted(r["path"] for r in http_receiver.requests) == ["/hook", "/slack"]  # nothing went to /teams
    assert [m["To"] for m in smtp_receiver.messages] == ["kim@example.com"]
    bodies = {r["path"]: json.loads(r["body"]) for r in http_receiver.requests}
    assert bodies["/slack"]["blocks"] and bodies["/slack"]["metadata"]["event_payload"]["idempotency_key"] == "key-slack"
    assert bodies["/hook"]["alerts"][0]["episode_id"] == "ep-1"
    hook = next(r for r in http_receiver.requests if r["path"] == "/hook")
    assert hook["headers"]["X-Expansion-Signature"].startswith("sha256=") and SECRET not in hook["body"].decode()
    outbox = table(settings, "outbox").set_index("message_key")
    assert outbox.loc["key-teams", "status"] == "parked"
    assert "unknown alert channel 'teams'" in outbox.loc["key-teams", "last_error"]
    assert (outbox.drop("key-teams")["status"] == "sent").all()


def test_a_notice_that_is_not_an_account_alert_takes_each_channels_own_form() -> None:
    data = {"kind": "model_health", "alarm": "calibration_drift", "model": "churn"}
    bodies = {name: found.notice(f"{name}-destination", "Model health: drift", "Churn is over-predicted.", data)
              for name, found in CHANNELS.items()}
    assert bodies["email"] == {"to": "email-destination", "subject": "Model health: drift",
                               "body": "Churn is over-predicted."}
    assert bodies["slack"] == {"text": "*Model health: drift*\nChurn is over-predicted."}
    assert bodies["webhook"] == data and set(bodies) == set(CHANNELS)
