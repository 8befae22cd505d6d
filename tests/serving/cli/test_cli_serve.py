"""`expansion serve` owns the server it starts: stopping the command stops the server and frees its port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "EXPANSION_HOME": str(home), "BENTOML_HOME": str(home / "bentoml"),
           "EXPANSION_MODEL_SOURCE": "none"}
    env.pop("EXPANSION_API_KEY", None)
    cmd = [sys.executable, "-m", "serving.cli", "serve", "--insecure", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(home / "serve.log", "wb"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"expansion serve exited: {(home / 'serve.log').read_text()[-2000:]}")
        time.sleep(0.3)
    proc.kill()
    pytest.fail("expansion serve not ready within 60 s")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_to_expansion_serve_stops_its_server_and_frees_the_port(tmp_path: Path, signum: int) -> None:
    port = _free_port()
    proc = _start(tmp_path, port)
    try:
        assert not _port_is_free(port)
        proc.send_signal(signum)
        code = proc.wait(timeout=40)
        assert code in (0, 128 + signal.SIGTERM), (tmp_path / "serve.log").read_text()[-2000:]
        with pytest.raises(httpx.TransportError):  # nothing answers any more, not even a moment later
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        time.sleep(2)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        assert _port_is_free(port)
    finally:
        if proc.poll() is None:
            proc.kill()
