"""Delivery: each pending outbox message to its channel (``serving.alerts.channels``), at least once, with its
idempotency key.

Failures are judged per message. A timeout, a connection error, a 5xx or a 429 is retried
with exponential backoff; a message still undelivered after ``alerts_max_attempts`` stays
pending with its last error for the next run, and that receiver is not tried again this
run. A receiver that answers and refuses one message for good (an SMTP 5xx for its
recipient, an HTTP 4xx) *parks* that message with the reason and goes on with the rest of
the queue: one bad address never holds up everyone else's alerts.

Webhook URLs are credentials: the store keeps them redacted (``features.config.redact_url``)
and delivery finds the real URL in the routing file; nothing printed or stored shows one.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from features.config import Settings, is_redacted, redact_url
from serving.alerts.channels import CHANNELS, DeliveryError, send
from serving.alerts.store import AlertStore


class LeaseLost(Exception):
    """Another run took the delivery lease (this one stalled past it): stop sending."""


def _receiver(message: dict, settings: Settings) -> str:
    """The server a message goes to: its (redacted) URL, or the SMTP relay for every email."""
    known = CHANNELS.get(message["channel"])
    return known.receiver(message["destination"], settings) if known else message["destination"]


def url_book(urls: list[str]) -> dict[str, str]:
    """Redacted URL -> real URL, for the webhook URLs the routing names (delivery's only source of them)."""
    return {redact_url(u): u for u in urls}


@dataclass
class Delivery:
    """What a delivery pass did: messages sent, kept for the next run, parked for good, each with its last error."""

    sent: int = 0
    attempts: int = 0
    kept: list[dict] = field(default_factory=list)
    parked: list[dict] = field(default_factory=list)
    due: int = 0
    repeats: int = 0

    @property
    def failed(self) -> bool:
        """True when a message that was due did not go out (kept or parked): the run exits non-zero."""
        return bool(self.kept or self.parked)


def _attempts(message: dict, url: str | None, settings: Settings, store: AlertStore,
              sleep: Callable[[float], None]) -> tuple[DeliveryError | None, int, bool]:
    """Try one message up to ``alerts_max_attempts`` times: (the last error or None, tries, sent as a repeat)."""
    error, tries, earlier = None, 0, int(message["attempts"] or 0)
    for attempt in range(settings.alerts_max_attempts):
        tries += 1
        repeat = earlier + attempt > 0  # an earlier attempt may have reached the receiver
        store.count_attempt(message["message_key"])  # before sending: a kill after the send still shows an attempt
        try:
            send(message, settings, url, repeat)
            return None, tries, repeat
        except DeliveryError as exc:
            error = exc
            if not exc.retry or attempt + 1 == settings.alerts_max_attempts:
                break
            sleep(settings.alerts_backoff_seconds * 2**attempt)
    return error, tries, False


def deliver(store: AlertStore, settings: Settings, clock: Callable[[], dt.datetime],
            sleep: Callable[[float], None] = time.sleep, urls: list[str] | None = None,
            renew: Callable[[], bool] | None = None) -> Delivery:
    """Try every pending message (this run's and earlier runs' failures), each with retries and backoff.

    ``urls``: the webhook URLs the routing names (the store holds them redacted). ``renew()``
    extends the run's lease before each message; False means it was lost: stop, the rest stays pending.
    """
    book = url_book(urls or [])
    store.scrub()
    result = Delivery()
    down: set[str] = set()  # a receiver that failed every attempt this run is not hammered again
    pending = store.pending()
    result.due = len(pending)
    for message in pending:
        if renew is not None and not renew():
            raise LeaseLost("the alerts lease was taken by another run: stopped delivering")
        receiver = _receiver(message, settings)
        if receiver in down:
            skipped = f"not tried again this run: {receiver} failed every attempt on an earlier message"
            store.mark(message["message_key"], sent_at=None, error=skipped)
            result.kept.append({**message, "last_error": skipped})
            continue
        destination = message["destination"]
        url = book.get(destination) or (destination if not is_redacted(destination) else None)
        error, tries, repeat = _attempts(message, url, settings, store, sleep)
        result.attempts += tries
        if error is None:
            store.mark(message["message_key"], sent_at=clock(), error=None)
            result.sent += 1
            result.repeats += int(repeat)
        elif error.park:
            store.mark(message["message_key"], sent_at=None, error=str(error), park=True)
            result.parked.append({**message, "last_error": str(error)})
        else:
            store.mark(message["message_key"], sent_at=None, error=str(error))
            result.kept.append({**message, "last_error": str(error), "attempts": int(message["attempts"] or 0) + tries})
            if not error.own:
                down.add(receiver)
    return result
