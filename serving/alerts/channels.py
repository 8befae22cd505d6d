"""Delivery: each pending outbox message to its channel, at least once, with its idempotency key.

Every channel is one object behind the ``Channel`` protocol, registered by name in
``CHANNELS``: what its destination must look like, whether that destination is a credential,
the message body it receives, the server it goes to and how one attempt is made. The routing
file (``serving.alerts.routing``) knows the channels from this registry alone, so a channel
it does not hold is an error when the file is loaded, and a stored message of an unknown
channel is parked, never sent as something else.

HTTP channels (Slack incoming webhook, generic JSON webhook) POST the stored body with an
``Idempotency-Key`` header; the generic webhook also signs the body with HMAC-SHA256
(``X-Expansion-Signature: sha256=<hex>``, key ``Settings.alerts_webhook_secret``); Slack
also gets the key in the message ``metadata``. Email goes over SMTP with a ``Message-ID``
derived from the key and an ``X-Idempotency-Key`` header, so a receiver that keeps the key
sees a retry as the same message. A message that may have reached its receiver before (an
earlier attempt timed out, or a run was killed between sending and marking it) carries
``X-Expansion-Repeat: true`` (Slack: ``metadata.event_payload.repeat``).

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
import hashlib
import hmac
import json
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

from features.config import Settings, is_redacted, redact_url
from serving.alerts import messages
from serving.alerts.store import AlertStore

SIGNATURE_HEADER = "X-Expansion-Signature"
REPEAT_HEADER = "X-Expansion-Repeat"
SLACK_EVENT = "expansion_alert"


class DeliveryError(Exception):
    """One failed attempt: ``retry`` whether another attempt could succeed, ``park`` whether the receiver refused
    this message for good (its recipient or content), so that the rest of the queue goes on without it."""

    def __init__(self, message: str, retry: bool = True, park: bool = False, own: bool = False) -> None:
        super().__init__(message)
        self.retry = retry
        self.park = park
        self.own = own or park  # about this message alone (its recipient): the receiver still takes the others


class LeaseLost(Exception):
    """Another run took the delivery lease (this one stalled past it): stop sending."""


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact request body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json", **headers})
    shown = redact_url(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        transient = exc.code >= 500 or exc.code in (408, 429)
        raise DeliveryError(f"HTTP {exc.code} from {shown}", retry=transient, park=not transient) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = str(getattr(exc, "reason", exc)).replace(url, shown)
        raise DeliveryError(f"{type(exc).__name__} on {shown}: {reason}") from None


def _email(message: dict, key: str, settings: Settings, repeat: bool) -> None:
    body = json.loads(message["payload"])
    email = EmailMessage()
    email["From"], email["To"], email["Subject"] = settings.alerts_email_from, body["to"], body["subject"]
    email["Message-ID"] = f"<{key}@expansion.alerts>"
    email["X-Idempotency-Key"] = key
    if repeat:
        email[REPEAT_HEADER] = "true"
    email.set_content(body["body"])
    relay = f"{settings.alerts_smtp_host}:{settings.alerts_smtp_port}"
    try:
        with smtplib.SMTP(settings.alerts_smtp_host, settings.alerts_smtp_port, timeout=settings.alerts_timeout_seconds) as smtp:
            smtp.send_message(email)
    except smtplib.SMTPRecipientsRefused as exc:  # the relay answered: this recipient, not the relay, is the problem
        code, text = next(iter(exc.recipients.values()), (550, b""))
        reason = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        raise DeliveryError(f"SMTP {code} for {body['to']} from {relay}: {reason}", retry=400 <= code < 500,
                            park=code >= 500, own=True) from None
    except smtplib.SMTPResponseException as exc:
        reason = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise DeliveryError(f"SMTP {exc.smtp_code} from {relay}: {reason}", retry=400 <= exc.smtp_code < 500,
                            park=exc.smtp_code >= 500) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__} on {relay}: {exc}") from None


class Channel(Protocol):
    """One way of delivering alerts: a route's field of that name holds its destination."""

    name: str
    #: The destination is a credential (a webhook URL): stored and shown redacted, sent to from the routing file.
    secret: bool

    def problem(self, destination: str) -> str | None:
        """Why ``destination`` cannot be used (said at load), else None."""
        ...

    def unready(self, settings: Settings) -> str | None:
        """What the settings lack for this channel to send anything, else None."""
        ...

    def render(self, alerts: Sequence[Mapping[str, Any]], destination: str, key: str, digest: bool) -> dict:
        """The message body this channel stores and sends."""
        ...

    def receiver(self, destination: str, settings: Settings) -> str:
        """The server a message goes to (shown, never a secret): failures are counted per receiver."""
        ...

    def send(self, message: dict, settings: Settings, url: str | None, repeat: bool) -> None:
        """One attempt (``url``: the real destination of a secret one); raises DeliveryError when not accepted."""
        ...


class _HttpChannel:
    """A JSON body POSTed to a webhook URL with an ``Idempotency-Key`` header."""

    name = ""
    secret = True

    def problem(self, destination: str) -> str | None:
        return None if destination.startswith(("http://", "https://")) else f"{destination!r} is not an http(s) URL"

    def unready(self, settings: Settings) -> str | None:
        return None

    def receiver(self, destination: str, settings: Settings) -> str:
        return destination

    def _signed(self, body: bytes, key: str, repeat: bool, settings: Settings) -> tuple[bytes, dict[str, str]]:
        """The body as sent and this channel's own headers."""
        return body, {}

    def send(self, message: dict, settings: Settings, url: str | None, repeat: bool) -> None:
        if url is None:
            raise DeliveryError(f"{message['channel']} {message['destination']}: no route names this URL any more "
                                "(routing file changed?)", retry=False, own=True)
        key = message["message_key"]
        body, own_headers = self._signed(message["payload"].encode(), key, repeat, settings)
        headers = {"Idempotency-Key": key, **({REPEAT_HEADER: "true"} if repeat else {}), **own_headers}
        _post(url, body, headers, settings.alerts_timeout_seconds)


class SlackChannel(_HttpChannel):
    """A Slack incoming webhook: Block Kit, the key and the repeat flag in the message ``metadata``."""

    name = "slack"

    def render(self, alerts: Sequence[Mapping[str, Any]], destination: str, key: str, digest: bool) -> dict:
        return messages.slack_payload(alerts, digest)

    def _signed(self, body: bytes, key: str, repeat: bool, settings: Settings) -> tuple[bytes, dict[str, str]]:
        data = json.loads(body)
        data["metadata"] = {"event_type": SLACK_EVENT, "event_payload": {"idempotency_key": key, "repeat": repeat}}
        return json.dumps(data, sort_keys=True).encode(), {}


class WebhookChannel(_HttpChannel):
    """A generic JSON webhook, its body signed with HMAC-SHA256 (``Settings.alerts_webhook_secret``)."""

    name = "webhook"

    def unready(self, settings: Settings) -> str | None:
        return None if settings.alerts_webhook_secret else \
            "a webhook is signed with EXPANSION_ALERTS_WEBHOOK_SECRET, which is not set: set it"

    def render(self, alerts: Sequence[Mapping[str, Any]], destination: str, key: str, digest: bool) -> dict:
        return messages.webhook_payload(alerts, key, digest)

    def _signed(self, body: bytes, key: str, repeat: bool, settings: Settings) -> tuple[bytes, dict[str, str]]:
        if not settings.alerts_webhook_secret:
            raise DeliveryError("webhook: EXPANSION_ALERTS_WEBHOOK_SECRET is not set, so the body cannot be signed",
                                retry=False)
        return body, {SIGNATURE_HEADER: signature(settings.alerts_webhook_secret, body)}


class EmailChannel:
    """Plain-text email over the SMTP relay of the settings; the destination is the recipient's address."""

    name = "email"
    secret = False

    def problem(self, destination: str) -> str | None:
        return None if "@" in destination else f"{destination!r} is not an email address"

    def unready(self, settings: Settings) -> str | None:
        return None

    def render(self, alerts: Sequence[Mapping[str, Any]], destination: str, key: str, digest: bool) -> dict:
        return messages.email_payload(alerts, destination, digest)

    def receiver(self, destination: str, settings: Settings) -> str:
        return f"smtp://{settings.alerts_smtp_host}:{settings.alerts_smtp_port}"  # every email goes to the one relay

    def send(self, message: dict, settings: Settings, url: str | None, repeat: bool) -> None:
        _email(message, message["message_key"], settings, repeat)


#: The channels by name, in the order routes list them.
CHANNELS: dict[str, Channel] = {c.name: c for c in (SlackChannel(), WebhookChannel(), EmailChannel())}


class UnknownChannel(KeyError):
    """A channel name the registry does not hold."""

    def __str__(self) -> str:
        return str(self.args[0])


def channel(name: str) -> Channel:
    """The registered channel ``name``; an unknown name is an error listing the known ones."""
    try:
        return CHANNELS[name]
    except KeyError:
        raise UnknownChannel(f"unknown alert channel {name!r} (known channels: {', '.join(CHANNELS)})") from None


def payload(name: str, destination: str, alerts: Sequence[Mapping[str, Any]], key: str, digest: bool) -> str:
    """The stored message body for channel ``name`` (JSON text)."""
    return json.dumps(channel(name).render(alerts, destination, key, digest), default=str, sort_keys=True)


def shown(name: str, destination: str) -> str:
    """The destination as stored and printed: redacted when it is a credential."""
    return redact_url(destination) if channel(name).secret else destination


def send(message: dict, settings: Settings, url: str | None = None, repeat: bool = False) -> None:
    """One attempt at one message (``url``: the real webhook URL); raises DeliveryError when it was not accepted."""
    try:
        found = channel(message["channel"])
    except UnknownChannel as exc:  # written by another release, or by hand: never sent as something else
        raise DeliveryError(f"{exc}: not sent", retry=False, park=True) from None
    found.send(message, settings, url, repeat)


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
