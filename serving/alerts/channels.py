"""The alert channels: Slack, a generic JSON webhook and email, each one object behind one protocol.

Each ``Channel`` is registered by name in ``CHANNELS`` and says what its destination must
look like, whether that destination is a credential, what the settings must give it, the
message body it receives, the server it goes to and how one attempt is made. The routing
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

Delivery (retries with backoff, parking, receivers down) is ``serving.alerts.delivery``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import Any, Protocol

from features.config import Settings, redact_url
from serving.alerts import messages

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

    def notice(self, destination: str, subject: str, text: str, data: Mapping[str, Any]) -> dict:
        """The body of a notice that is not an account alert (a model-health alarm): ``data`` for machines."""
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

    def notice(self, destination: str, subject: str, text: str, data: Mapping[str, Any]) -> dict:
        return {"text": f"*{subject}*\n{text}"}

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

    def notice(self, destination: str, subject: str, text: str, data: Mapping[str, Any]) -> dict:
        return dict(data)

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

    def notice(self, destination: str, subject: str, text: str, data: Mapping[str, Any]) -> dict:
        return {"to": destination, "subject": subject, "body": text}

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
