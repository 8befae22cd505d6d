"""Delivery: each pending outbox message to its channel, at least once, with its idempotency key.

HTTP channels (Slack incoming webhook, generic JSON webhook) POST the stored body with an
``Idempotency-Key`` header; the generic webhook also signs the body with HMAC-SHA256
(``X-Expansion-Signature: sha256=<hex>``, key ``Settings.alerts_webhook_secret``). Email
goes over SMTP with a ``Message-ID`` derived from the key, so a receiver that keeps the
key sees a retry as the same message. A timeout, a connection error, a 5xx or a 429 is
retried with exponential backoff; a message still undelivered after
``alerts_max_attempts`` stays pending with its last error for the next run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

from features.config import Settings
from serving.alerts.store import AlertStore

SIGNATURE_HEADER = "X-Expansion-Signature"


class DeliveryError(Exception):
    """One failed attempt; ``retry`` says whether another attempt could succeed."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact request body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} from {url}", retry=exc.code >= 500 or exc.code == 429) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__} on {url}: {getattr(exc, 'reason', exc)}") from None


def _email(message: dict, key: str, settings: Settings) -> None:
    body = json.loads(message["payload"])
    email = EmailMessage()
    email["From"], email["To"], email["Subject"] = settings.alerts_email_from, body["to"], body["subject"]
    email["Message-ID"] = f"<{key}@expansion.alerts>"
    email["X-Idempotency-Key"] = key
    email.set_content(body["body"])
    try:
        with smtplib.SMTP(settings.alerts_smtp_host, settings.alerts_smtp_port, timeout=settings.alerts_timeout_seconds) as smtp:
            smtp.send_message(email)
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {exc.smtp_code} from {settings.alerts_smtp_host}", retry=400 <= exc.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__} on {settings.alerts_smtp_host}:{settings.alerts_smtp_port}: {exc}") from None


def send(message: dict, settings: Settings) -> None:
    """One attempt at one message; raises DeliveryError when the receiver did not accept it."""
    key, body = message["message_key"], message["payload"].encode()
    if message["channel"] == "email":
        _email(message, key, settings)
        return
    headers = {"Idempotency-Key": key}
    if message["channel"] == "webhook":
        if not settings.alerts_webhook_secret:
            raise DeliveryError("webhook: EXPANSION_ALERTS_WEBHOOK_SECRET is not set, so the body cannot be signed", retry=False)
        headers[SIGNATURE_HEADER] = signature(settings.alerts_webhook_secret, body)
    _post(message["destination"], body, headers, settings.alerts_timeout_seconds)


def _receiver(message: dict, settings: Settings) -> str:
    """The server a message goes to: its URL, or the SMTP relay for every email."""
    if message["channel"] == "email":
        return f"smtp://{settings.alerts_smtp_host}:{settings.alerts_smtp_port}"
    return message["destination"]


@dataclass
class Delivery:
    """What a delivery pass did: messages sent, and those kept for the next run with their last error."""

    sent: int = 0
    attempts: int = 0
    kept: list[dict] = field(default_factory=list)


def deliver(store: AlertStore, settings: Settings, clock: Callable[[], dt.datetime],
            sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """Try every pending message (this run's and earlier runs' failures), each with retries and backoff."""
    result = Delivery()
    down: set[str] = set()  # a receiver that failed every attempt this run is not hammered again
    for message in store.pending():
        receiver = _receiver(message, settings)
        if receiver in down:
            skipped = f"not tried again this run: {receiver} failed every attempt on an earlier message"
            store.mark(message["message_key"], sent_at=None, attempts=0, error=skipped)
            result.kept.append({**message, "last_error": skipped})
            continue
        error, tries = None, 0
        for attempt in range(settings.alerts_max_attempts):
            tries += 1
            try:
                send(message, settings)
                error = None
                break
            except DeliveryError as exc:
                error = str(exc)
                if not exc.retry or attempt + 1 == settings.alerts_max_attempts:
                    break
                sleep(settings.alerts_backoff_seconds * 2**attempt)
        result.attempts += tries
        if error is None:
            store.mark(message["message_key"], sent_at=clock(), attempts=tries, error=None)
            result.sent += 1
        else:
            store.mark(message["message_key"], sent_at=None, attempts=tries, error=error)
            result.kept.append({**message, "last_error": error, "attempts": (message["attempts"] or 0) + tries})
            down.add(receiver)
    return result
