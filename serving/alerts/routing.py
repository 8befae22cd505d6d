"""Where each CSM's alerts go: a TOML routing file keyed by ``csm_owner``.

```toml
account_url = "https://cs.example.com/accounts/{account_id}"   # optional: the link in every alert

[[route]]
csm_owner = "kim"                 # an accounts.csm_owner value, or "*" for every CSM not listed
slack = "https://hooks.slack.com/services/T000/B000/XXXX"     # Slack incoming webhook (Block Kit)
webhook = "https://ops.example.com/hooks/alerts"              # generic JSON webhook, HMAC-signed
email = "kim@example.com"         # SMTP (Settings.alerts_smtp_host / _port / alerts_email_from)
digest = false                    # true: one message per CSM per run day instead of one per alert
```

The channels a route may name are those of the registry (``serving.alerts.channels.CHANNELS``);
any other key of a route is an error at load that names the file, the route and the known
channels.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from features.config import Settings
from serving.alerts.channels import CHANNELS

ANY_CSM = "*"
ROUTE_FIELDS = ("csm_owner", "digest")


class RoutingError(ValueError):
    """A routing file that cannot be used: names the file, the route and the field."""


@dataclass(frozen=True)
class Route:
    """One CSM's channels (``(channel, destination)`` pairs) and whether they get a daily digest."""

    csm_owner: str
    channels: tuple[tuple[str, str], ...]
    digest: bool = False


@dataclass(frozen=True)
class Routing:
    """Routes by CSM, the catch-all route, and the account link template."""

    routes: dict[str, Route]
    account_url: str | None = None

    def route_for(self, csm_owner: str | None) -> Route | None:
        return self.routes.get(csm_owner or "") or self.routes.get(ANY_CSM)

    def routed(self, csms: list[str]) -> set[str]:
        """Which of ``csms`` have a route."""
        return {c for c in csms if self.route_for(c) is not None}

    def check(self, settings: Settings, origin: str) -> None:
        """Refuse a routing that names a channel the settings leave unable to send (a webhook without its key)."""
        for name, found in CHANNELS.items():
            missing = found.unready(settings)
            users = [r.csm_owner for r in self.routes.values() if any(c == name for c, _ in r.channels)]
            if missing and users:
                raise RoutingError(f"{origin}: route(s) for {', '.join(map(repr, users))} use {name}: {missing}")

    def secrets(self) -> list[str]:
        """The destinations that are credentials (webhook URLs): delivery finds the real ones here."""
        return [d for r in self.routes.values() for c, d in r.channels if CHANNELS[c].secret]

    def link(self, account_id: str) -> str | None:
        return None if not self.account_url else self.account_url.format(account_id=account_id)


def parse_routing(text: str, origin: str) -> Routing:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RoutingError(f"{origin}: not valid TOML: {exc}") from None
    extra = set(data) - {"route", "account_url"}
    if extra:
        raise RoutingError(f"{origin}: unknown top-level key(s) {', '.join(sorted(extra))}")
    url = data.get("account_url")
    if url is not None and (not isinstance(url, str) or "{account_id}" not in url):
        raise RoutingError(f"{origin}: account_url must be a string containing {{account_id}}")
    routes: dict[str, Route] = {}
    for i, raw in enumerate(data.get("route", [])):
        where = f"{origin}: route {i + 1}"
        if not isinstance(raw, dict) or not isinstance(raw.get("csm_owner"), str) or not raw["csm_owner"]:
            raise RoutingError(f"{where}.csm_owner: each [[route]] names a csm_owner (or \"*\")")
        where = f"{origin}: route for {raw['csm_owner']!r}"
        unknown = set(raw) - {*ROUTE_FIELDS, *CHANNELS}
        if unknown:
            raise RoutingError(f"{where}: unknown channel(s) {', '.join(sorted(unknown))} (known channels: "
                               f"{', '.join(CHANNELS)}; a route also takes {' and '.join(ROUTE_FIELDS)})")
        channels = []
        for name, found in CHANNELS.items():
            if name in raw:
                value = raw[name]
                if not isinstance(value, str) or not value:
                    raise RoutingError(f"{where}.{name}: expected a non-empty string")
                problem = found.problem(value)
                if problem:
                    raise RoutingError(f"{where}.{name}: {problem}")
                channels.append((name, value))
        if not channels:
            raise RoutingError(f"{where}: no channel ({', '.join(CHANNELS)})")
        if raw["csm_owner"] in routes:
            raise RoutingError(f"{where}: declared twice")
        routes[raw["csm_owner"]] = Route(raw["csm_owner"], tuple(channels), bool(raw.get("digest", False)))
    return Routing(routes, url)


def load_routing(path: Path | None) -> Routing | None:
    """The routing of ``path``; None when no file is configured or the default file does not exist."""
    if path is None or not Path(path).is_file():
        return None
    return parse_routing(Path(path).read_text(encoding="utf-8"), str(path))
