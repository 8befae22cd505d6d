"""Alert delivery with poisoned recipients: how many messages go out, how many are parked, what the run exits with.

Run: ``python benchmarks/check_alert_delivery.py [--messages 511] [--poisoned 5]`` (a few seconds). Queues
``--messages`` e-mail alerts in a SQLite alert store, the first ``--poisoned`` of them (the head of the
queue) to addresses a local SMTP server (aiosmtpd) refuses with ``550``, and runs delivery three times,
as three nightly runs would. Prints per run: due, sent, parked, kept, attempts, and the exit code
``expansion alerts`` gives for it; then what the SMTP server received.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import tempfile
from pathlib import Path

import pandas as pd

from features.config import Settings
from serving.alerts.delivery import deliver
from serving.alerts.store import AlertStore
from serving.cli.common import EXIT_OK, EXIT_UNDELIVERED

CLOCK = lambda: dt.datetime(2026, 7, 1, 6, 0, tzinfo=dt.UTC)  # noqa: E731 - the entry point's clock, fixed


class Relay:
    """Accepts every message except for the refused recipients (``550``)."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse, self.received = refuse, []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201, N802
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        self.received.append(envelope.rcpt_tos[0])
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=511)
    parser.add_argument("--poisoned", type=int, default=5)
    args = parser.parse_args()
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addresses = [f"gone{i}@example.com" for i in range(args.poisoned)]
    addresses += [f"csm{i}@example.com" for i in range(args.messages - args.poisoned)]
    relay = Relay(set(addresses[: args.poisoned]))
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    home = Path(tempfile.mkdtemp(prefix="check_alerts_"))
    settings = Settings(_env_file=None, home=home, alerts_smtp_port=port, alerts_backoff_seconds=0.0)
    store = AlertStore(settings)  # the product store under the home
    rows = [{"message_key": f"k{i:05d}", "channel": "email", "destination": a, "csm_owner": a.split("@")[0],
             "payload": json.dumps({"to": a, "subject": f"alert {i}", "body": "usage dropped"}), "episode_ids": f"e{i}",
             "status": "pending", "attempts": 0, "last_error": None, "queued_as_of": dt.date(2026, 6, 30), "sent_at": None}
            for i, a in enumerate(addresses)]
    no_conditions = pd.DataFrame({"account_id": pd.Series(dtype="string"), "rule": pd.Series(dtype="string")})
    store.commit_run(dt.date(2026, 6, 30), CLOCK(), [], no_conditions, pd.DataFrame(), rows)
    try:
        for run in (1, 2, 3):
            d = deliver(store, settings, CLOCK, sleep=lambda s: None)
            code = EXIT_UNDELIVERED if d.failed else EXIT_OK
            print(f"run {run}: due {d.due}, sent {d.sent}, parked {len(d.parked)}, kept {len(d.kept)}, "
                  f"attempts {d.attempts}, exit {code}")
            for m in d.parked[:2]:
                print(f"  parked: {m['destination']}: {m['last_error']}")
    finally:
        store.close()
        controller.stop()
    print(f"relay received {len(relay.received)} of {args.messages} messages, each once: "
          f"{len(set(relay.received)) == len(relay.received)}")


if __name__ == "__main__":
    main()
