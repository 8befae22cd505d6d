"""Delivery under faults, against real loopback receivers: a poisoned recipient, two runs at once, a crash between a
send and its mark, and webhook URLs (credentials) that are never printed nor stored."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from serving.alerts.channels import REPEAT_HEADER
from serving.alerts.delivery import deliver
from serving.alerts.run import AlertBusy, open_store

from test_alert_delivery import CLOCK, FIRST, SECOND, SECRET, company, routing, run, settings_for, table  # noqa: F401 - company: a fixture

POISONED = "gone@example.com"


def _queue(settings, addresses: list[str]) -> None:  # noqa: ANN001
    """Email messages left pending by earlier runs, oldest first (the poisoned one at the head of the queue)."""
    store = open_store(settings)
    rows = [{"message_key": f"key-{i}", "channel": "email", "destination": a, "csm_owner": a.split("@")[0],
             "payload": json.dumps({"to": a, "subject": f"alert {i}", "body": "usage dropped"}),
             "episode_ids": f"e{i}", "status": "pending", "attempts": 0, "last_error": None,
             "queued_as_of": FIRST + dt.timedelta(days=i), "sent_at": None} for i, a in enumerate(addresses)]
    try:
        store.commit_run(FIRST, CLOCK(), [], _no_conditions(), _no_episodes(), rows)
    finally:
        store.close()


def _no_conditions():  # noqa: ANN202
    import pandas as pd

    return pd.DataFrame({"account_id": pd.Series(dtype="string"), "rule": pd.Series(dtype="string")})


def _no_episodes():  # noqa: ANN202
    import pandas as pd

    return pd.DataFrame()


def test_a_rejected_recipient_is_parked_with_its_reason_and_the_rest_of_the_queue_goes_on(tmp_path, smtp_receiver) -> None:
    settings = settings_for(tmp_path, None, alerts_smtp_port=smtp_receiver.port)
    smtp_receiver.refuse = {POISONED}
    _queue(settings, [POISONED, "kim@example.com", "lee@example.com", "ana@example.com"])
    store = open_store(settings)
    try:
        result = deliver(store, settings, CLOCK, sleep=lambda s: None)
    finally:
        store.close()
    assert (result.due, result.sent, len(result.kept), len(result.parked)) == (4, 3, 0, 1) and result.failed
    assert result.attempts == 4  # a 550 is final: not retried
    assert {m["To"] for m in smtp_receiver.messages} == {"kim@example.com", "lee@example.com", "ana@example.com"}
    outbox = table(settings, "outbox").set_index("message_key")
    assert outbox.loc["key-0", "status"] == "parked" and "SMTP 550" in outbox.loc["key-0", "last_error"]
    assert POISONED in outbox.loc["key-0", "last_error"] and "no such user" in outbox.loc["key-0", "last_error"]
    assert (outbox.drop("key-0")["status"] == "sent").all()

    store = open_store(settings)
    try:
        again = deliver(store, settings, CLOCK, sleep=lambda s: None)  # the parked message is not retried
    finally:
        store.close()
    assert (again.due, again.sent, again.failed) == (0, 0, False)


def test_an_alerts_run_that_fails_to_deliver_exits_non_zero(company, tmp_path, http_receiver, smtp_receiver,
                                                             monkeypatch) -> None:
    from serving.cli import app

    smtp_receiver.refuse = {"kim@example.com"}
    home = tmp_path / "home"
    (home / "alerts").mkdir(parents=True)
    (home / "alerts" / "routing.toml").write_text(routing(http_receiver.url, smtp_receiver.port), encoding="utf-8")
    for name, value in {"HOME": str(home), "ALERTS_WEBHOOK_SECRET": SECRET, "ALERTS_SMTP_PORT": str(smtp_receiver.port),
                        "ALERTS_BACKOFF_SECONDS": "0", "ALERTS_TIMEOUT_SECONDS": "1"}.items():
        monkeypatch.setenv(f"EXPANSION_{name}", value)
    first = CliRunner().invoke(app, ["alerts", "--data", str(company), "--as-of", FIRST.isoformat()])
    assert first.exit_code == 0, first.output  # nothing was due
    second = CliRunner().invoke(app, ["alerts", "--data", str(company), "--as-of", SECOND.isoformat()])
    said = " ".join((second.stdout + second.stderr).split())
    assert second.exit_code == 5, said
    assert "delivered 4 message(s)" in said and "2 parked" in said and "SMTP 550 for kim@example.com" in said
    assert len(http_receiver.accepted) == 4  # Slack and webhook went out all the same
    assert "/slack" not in said and "/hook" not in said  # webhook URLs are credentials


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_two_runs_at_once_never_send_the_same_message(backend, company, tmp_path, http_receiver, smtp_receiver,
                                                      request) -> None:
    extra = {"alerts_store": request.getfixturevalue("postgres_store")} if backend == "postgresql" else {}
    settings = settings_for(tmp_path, routing(http_receiver.url, smtp_receiver.port),
                            alerts_smtp_port=smtp_receiver.port, **extra)
    run(company, FIRST, settings)
    http_receiver.delay = 0.3  # the first run is still delivering when the second starts
    outcome: dict[str, object] = {}

    def first_run() -> None:
        outcome["first"] = run(company, SECOND, settings)

    thread = threading.Thread(target=first_run)
    thread.start()
    for _ in range(200):
        if http_receiver.requests:
            break
        threading.Event().wait(0.05)
    with pytest.raises(AlertBusy, match="holds the lease"):
        run(company, SECOND, settings)
    thread.join(30)
    assert outcome["first"].delivery.sent == 6
    keys = [r["headers"]["Idempotency-Key"] for r in http_receiver.requests]
    assert len(keys) == len(set(keys)) == 4 and len(smtp_receiver.messages) == 2

    http_receiver.delay = 0
    later = run(company, SECOND, settings)  # the lease was given back: the next run runs, with nothing left to send
    assert later.delivery.due == 0 and len(http_receiver.requests) == 4


def test_a_send_that_a_crash_kept_from_being_marked_is_resent_marked_as_a_repeat(company, tmp_path, http_receiver,
                                                                                 smtp_receiver) -> None:
    settings = settings_for(tmp_path, routing(http_receiver.url, smtp_receiver.port), alerts_smtp_port=smtp_receiver.port)
    run(company, FIRST, settings)

    def dying_clock() -> dt.datetime:  # the process dies right after the first send, before marking it sent
        if http_receiver.requests or smtp_receiver.messages:
            raise KeyboardInterrupt
        return CLOCK()

    from features.io import open_data
    from serving.alerts.run import run_alerts

    source = open_data(company)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_alerts(source, SECOND, settings, clock=dying_clock, sleep=lambda s: None)
    finally:
        source.close()
    assert len(http_receiver.requests) + len(smtp_receiver.messages) == 1
    first = (http_receiver.requests[0]["headers"] if http_receiver.requests else dict(smtp_receiver.messages[0].items()))
    first_key = first.get("Idempotency-Key") or first["X-Idempotency-Key"]
    assert REPEAT_HEADER not in first
    _lapse_lease(settings)  # the killed run's lease lapses (its expiry passes)

    after = run(company, SECOND, settings)
    assert after.delivery.sent == 6 and after.delivery.repeats == 1
    resent = [r["headers"] for r in http_receiver.requests if r["headers"].get("Idempotency-Key") == first_key] + \
        [dict(m.items()) for m in smtp_receiver.messages if m["X-Idempotency-Key"] == first_key]
    assert len(resent) == 2 and resent[-1][REPEAT_HEADER] == "true"  # the same key, marked as a repeat
    others = [r["headers"] for r in http_receiver.requests] + [dict(m.items()) for m in smtp_receiver.messages]
    assert sum(REPEAT_HEADER in h for h in others) == 1
    assert len(http_receiver.accepted) == 4  # the receiver kept one message per key
    slack = [json.loads(r["body"]) for r in http_receiver.requests if r["path"] == "/slack"]
    assert all(m["metadata"]["event_payload"]["idempotency_key"] for m in slack)
    assert all(m["X-Idempotency-Key"] and m["Message-ID"].startswith(f"<{m['X-Idempotency-Key']}@")
               for m in smtp_receiver.messages)


def _lapse_lease(settings) -> None:  # noqa: ANN001
    from serving.alerts.store import LEASES

    store = open_store(settings)
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.update(LEASES).values(expires_at=CLOCK() - dt.timedelta(seconds=1)))
    finally:
        store.close()


def test_webhook_urls_are_never_stored_nor_shown(company, tmp_path, http_receiver) -> None:
    settings = settings_for(tmp_path, routing(http_receiver.url))
    run(company, FIRST, settings)
    http_receiver.mode = "fail"
    down = run(company, SECOND, settings)
    assert len(down.delivery.kept) == 4
    store = open_store(settings)
    try:
        with store.engine.connect() as conn:
            dumped = " ".join(str(row) for t in store.engine.dialect.get_table_names(conn)
                              for row in conn.execute(sa.text(f'SELECT * FROM "{t}"')))
    finally:
        store.close()
    assert "/slack" not in dumped and "/hook" not in dumped and "/…#" in dumped
    assert all("/slack" not in m["last_error"] and "/hook" not in m["last_error"] for m in down.delivery.kept)
    http_receiver.mode = "ok"
    assert run(company, SECOND, settings).delivery.sent == 4  # delivery finds the real URL in the routing
    assert {r["path"] for r in http_receiver.requests[-4:]} == {"/slack", "/hook"}


def test_outbox_rows_an_older_release_stored_in_clear_are_redacted_and_still_delivered(company, tmp_path,
                                                                                       http_receiver) -> None:
    settings = settings_for(tmp_path, routing(http_receiver.url))
    run(company, FIRST, settings)
    http_receiver.mode = "fail"
    run(company, SECOND, settings)
    store = open_store(settings)
    from serving.alerts.store import OUTBOX

    with store.engine.begin() as conn:  # as an older release left them: URLs in clear
        conn.execute(sa.update(OUTBOX).where(OUTBOX.c.channel == "slack").values(
            destination=f"{http_receiver.url}/slack", last_error=f"HTTP 500 from {http_receiver.url}/slack"))
    store.close()
    http_receiver.mode = "ok"
    assert run(company, SECOND, settings).delivery.sent == 4
    outbox = table(settings, "outbox")
    assert not outbox["destination"].str.contains("/slack").any()
    assert not outbox["last_error"].fillna("").str.contains("/slack").any()
