"""Real loopback receivers for the alert channels: an HTTP server that records requests (and can answer 500
or hang), honouring ``Idempotency-Key`` like a careful receiver, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class HttpReceiver:
    """Records every request; ``mode`` says how it answers: ok, fail (500), fail_first (500 for the first
    ``failures`` requests), hang_first (accept the first request, then hang past the client's timeout)."""

    mode: str = "ok"
    failures: int = 0
    hang_seconds: float = 1.5
    delay: float = 0.0  # seconds every request takes (a slow receiver keeps a run delivering)
    requests: list[dict] = field(default_factory=list)
    accepted: dict[str, bytes] = field(default_factory=dict)  # idempotency key -> body, once per key
    url: str = ""

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        n = len(self.requests)
        self.requests.append({"path": path, "headers": headers, "body": body})
        time.sleep(self.delay)
        if self.mode == "fail" or (self.mode == "fail_first" and n < self.failures):
            return 500
        key = headers.get("Idempotency-Key", f"no-key-{n}")
        self.accepted.setdefault(key, body)
        if self.mode == "hang_first" and n == 0:
            time.sleep(self.hang_seconds)
        return 200


def _handler(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = receiver.handle(self.path, dict(self.headers.items()), body)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:  # the client gave up while we hung
                pass

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    return Handler


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SmtpReceiver:
    """Accepts every message, except that it answers ``550`` to the recipients in ``refuse`` (a poisoned address)."""

    port: int
    messages: list = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201, N802
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802 - aiosmtpd's handler API
        from email import message_from_bytes

        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    from aiosmtpd.controller import Controller

    receiver = SmtpReceiver(free_port())
    controller = Controller(receiver, hostname="127.0.0.1", port=receiver.port)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()


_FEATURES: dict[tuple, object] = {}


@pytest.fixture(autouse=True)
def features_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real ``build_features``, remembered per data folder and dates: the runs of a test (and tests on the
    same folder contents) read the same immutable tables, so building them again would only cost time."""
    import hashlib

    import features.build as build

    real = build.build_features

    def remembered(source, as_of_dates, settings, data_end=None, snapshots_per_batch=None,  # noqa: ANN001, ANN202
                   signals=False):  # noqa: ANN001
        files = sorted(p for p in source.data_dir.rglob("*") if p.is_file())
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()
        key = (digest, tuple(as_of_dates), data_end, settings.horizon_days, signals)
        if key not in _FEATURES:
            _FEATURES[key] = real(source, as_of_dates, settings, data_end, snapshots_per_batch, signals=signals)
        return _FEATURES[key].copy()

    monkeypatch.setattr(build, "build_features", remembered)


@pytest.fixture
def postgres_store(postgres_url: str):  # noqa: ANN201
    """A PostgreSQL store URI in a schema of its own (dropped afterwards)."""
    import uuid

    import sqlalchemy as sa

    schema = f"alerts_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in postgres_url else "?"
    yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    engine.dispose()
