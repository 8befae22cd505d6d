"""Message shapes: a Slack digest stays within Block Kit's 50 blocks, keys are stable per content."""

from __future__ import annotations

from serving.alerts.messages import message_key, slack_payload


def alert(i: int) -> dict:
    return {"episode_id": f"e{i}", "account_id": f"A{i}", "title": "Usage at 85 %", "fired": ["quota: 90 %"] * 12,
            "money_at_stake": "$1,000", "money_field": "whitespace_usd", "talk_track": "Talk.", "track_record": "r",
            "link": f"https://x/{i}"}


def test_a_large_slack_digest_stays_within_block_kit_limits() -> None:
    body = slack_payload([alert(i) for i in range(20)], digest=True)
    assert len(body["blocks"]) <= 50
    assert all(len(b.get("fields", [])) <= 10 for b in body["blocks"])
    assert "A19" in body["blocks"][-1]["text"]["text"]


def test_message_keys_depend_on_content_not_order() -> None:
    assert message_key("slack", "u", ["a", "b"]) == message_key("slack", "u", ["b", "a"])
    assert message_key("slack", "u", ["a"]) != message_key("webhook", "u", ["a"])
    assert message_key("email", "k", ["a"], "2025-03-31") != message_key("email", "k", ["a"], "2025-04-01")
