"""What an alert says, and the message each channel receives (Slack Block Kit, JSON webhook, email).

Each channel of ``serving.alerts.channels.CHANNELS`` renders its body with one of the
``*_payload`` builders here; ``channels.payload`` stores it as JSON text.

An alert names the account, what fired with its numbers against the threshold, the money
at stake, the talk track of the rule's play in the account's own figures, the rule's
track record, and a link to the account page when the routing file gives one. A digest
puts one CSM's alerts of a run into one message.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from features.reason_catalog import PLAY_BY_NAME
from features.registry import feature_names, get
from serving.alerts.backtest import track_sentence
from serving.alerts.rules import Rule
from serving.scoring.plays import talk_track_fields
from serving.scoring.wording import money, num, render_text


def _value_text(name: str, value: Any, symbol: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    if isinstance(value, str):
        return value
    unit = get(name).unit if name in feature_names() else ("%" if name.endswith("_pct") else "")
    if unit.startswith("currency") or name.endswith("_amount"):
        return money(float(value), symbol)
    return f"{num(float(value))}{' %' if unit.startswith('%') else ''}"


def fired_lines(rule: Rule, facts: Mapping[str, Any], symbol: str) -> list[str]:
    """'quota_utilization_30d_pct: 91 % (rule: >= 85)' for each condition of the rule."""
    return [f"{c.feature}: {_value_text(c.feature, facts.get(c.feature), symbol)} (rule: {c.op} {c.value})"
            for c in (*rule.all_of, *rule.any_of)]


def talk_track(rule: Rule, facts: Mapping[str, Any], symbol: str) -> str:
    """The rule's play talk track in the account's figures, or the play's headline when a figure is unknown."""
    play = PLAY_BY_NAME[rule.play]
    return render_text(play.talk_track, talk_track_fields({**facts, "currency_symbol": symbol})) or play.headline


def alert(rule: Rule, episode: Mapping[str, Any], facts: Mapping[str, Any], record: Mapping | None,
          link: str | None, symbol: str) -> dict:
    """One alert as plain data: what every channel renders."""
    at_stake = facts.get(rule.money)
    return {
        "episode_id": episode["episode_id"], "account_id": str(episode["account_id"]),
        "csm_owner": episode.get("csm_owner"), "as_of": str(episode["started"]), "rule": rule.name,
        "title": rule.title, "fired": fired_lines(rule, facts, symbol),
        "money_at_stake": _value_text(rule.money, at_stake, symbol), "money_field": rule.money,
        "talk_track": talk_track(rule, facts, symbol), "track_record": track_sentence(record, rule),
        "link": link,
    }


def message_key(channel: str, destination: str, episode_ids: Sequence[str], digest_day: str | None = None) -> str:
    """The idempotency key of one message: the same alerts to the same place always give the same key."""
    text = "|".join([channel, destination, digest_day or "", *sorted(episode_ids)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


SLACK_DIGEST_ALERTS = 7


def _slack_alert_blocks(a: Mapping[str, Any]) -> list[dict]:
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{a['title']}* · account *{a['account_id']}*"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": line} for line in a["fired"][:9]]
         + [{"type": "mrkdwn", "text": f"at stake ({a['money_field']}): {a['money_at_stake']}"}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Talk track*: {a['talk_track']}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": a["track_record"]}]},
    ]
    if a.get("link"):
        blocks.append({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open account"},
                                                        "url": a["link"]}]})
    return blocks


def slack_payload(alerts: Sequence[Mapping[str, Any]], digest: bool) -> dict:
    """A Slack incoming-webhook body: ``text`` (the notification fallback) and Block Kit ``blocks``."""
    if not digest:
        a = alerts[0]
        return {"text": f"{a['title']}: account {a['account_id']}", "blocks": _slack_alert_blocks(a)}
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": f"{len(alerts)} account alerts"}}]
    shown = alerts[:SLACK_DIGEST_ALERTS]  # Slack accepts up to 50 blocks; each alert takes up to 6
    for a in shown:
        blocks += [*_slack_alert_blocks(a), {"type": "divider"}]
    if len(alerts) > len(shown):
        rest = ", ".join(f"{a['title']} ({a['account_id']})" for a in alerts[len(shown):])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"Also: {rest}"[:2900]}})
    return {"text": f"{len(alerts)} account alerts", "blocks": blocks}


def webhook_payload(alerts: Sequence[Mapping[str, Any]], key: str, digest: bool) -> dict:
    return {"idempotency_key": key, "digest": digest, "alerts": list(alerts)}


def email_payload(alerts: Sequence[Mapping[str, Any]], to: str, digest: bool) -> dict:
    subject = (f"{len(alerts)} account alerts" if digest
               else f"{alerts[0]['title']}: account {alerts[0]['account_id']}")
    parts = []
    for a in alerts:
        lines = [f"{a['title']} - account {a['account_id']}", *[f"  {x}" for x in a["fired"]],
                 f"  at stake ({a['money_field']}): {a['money_at_stake']}", f"  Talk track: {a['talk_track']}",
                 f"  ({a['track_record']})"]
        if a.get("link"):
            lines.append(f"  {a['link']}")
        parts.append("\n".join(lines))
    return {"to": to, "subject": subject, "body": "\n\n".join(parts) + "\n"}
