"""A graceful stop on SIGTERM: answer for a while, refuse new connections, finish what was accepted.

A supervised restart (systemd, a container runtime) sends SIGTERM and starts the next process once
this one has exited. What must not happen is a request that was *sent* and never answered: a
client cannot know whether it was served. A connection that is *refused* is safe, the client
retries it. So the stop runs in three steps:

1. **Drain** (``EXPANSION_DRAIN_SECONDS``): keep answering; ``/readyz`` says 503 so a load
   balancer stops sending; every answer carries ``Connection: close``, so no idle keep-alive
   connection is left for the shutdown to cut under a request already on its way.
2. **Close the door without slamming it**: a socket filter that drops every packet is attached
   to the listening socket, so a new connection attempt gets no handshake (the client's kernel
   retries the SYN, and later finds the port refused or the next process listening), while the
   connections already accepted by the kernel are still taken by the worker and answered. Only
   when that accept queue is empty is the listening socket shut down. Shutting it down at once
   resets whatever waits in its queue: connections whose request was already sent (measured: 0-5
   such requests per restart under 8 clients).
3. The server's own SIGTERM handler finishes the requests in flight and exits.

Linux only for step 2 (``SO_ATTACH_FILTER``); elsewhere the socket is shut down at once.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

SO_ATTACH_FILTER = 26  # linux/asm-generic/socket.h
QUEUE_WAIT_SECONDS = 3.0  # the longest the worker gets to take what the kernel already accepted
SETTLE_SECONDS = 0.2  # for requests on just-accepted connections to arrive before the server's shutdown


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


_DROP_ALL = (_SockFilter * 1)(_SockFilter(0x06, 0, 0, 0))  # BPF_RET | BPF_K, accept 0 bytes: drop


def drain_on_sigterm(seconds: float, draining: Callable[[bool], None]) -> None:
    """On SIGTERM, call ``draining(True)`` and keep answering for ``seconds``, then stop as described above.

    Only the main thread can set signal handlers; the server's own handler is the one replaced
    and called at the end. ``seconds <= 0`` leaves the server's handler alone.
    """
    previous = signal.getsignal(signal.SIGTERM)
    if seconds <= 0 or not callable(previous) or threading.current_thread() is not threading.main_thread():
        return
    started: list[bool] = []

    def drain(signum: int, frame: Any) -> None:
        if started:
            return  # the supervisor's signal and the process group's: one drain
        started.append(True)
        draining(True)
        log.info("SIGTERM: draining for %.1f s (readiness 503, connections closed after each answer), then stopping",
                 seconds)
        timer = threading.Timer(seconds, _close_door_then, args=(previous, signum, frame))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, drain)


def _listening_fds() -> list[int]:
    import psutil

    try:
        return [c.fd for c in psutil.Process().net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        return []


def drop_new_connections(sock: socket.socket) -> bool:
    """Attach a filter that drops every packet reaching the listening socket; False where unsupported."""
    prog = _SockFprog(1, ctypes.cast(_DROP_ALL, ctypes.POINTER(_SockFilter)))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(prog))
    except OSError:
        return False
    return True


def accept_queue(port: int) -> int:
    """Connections the kernel accepted on ``port`` that no process has taken yet (Linux; 0 elsewhere)."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]  # noqa: SIM115 - a /proc file, read at once
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN; rx_queue = accept backlog
                total += int(queues.split(":")[1], 16)
    return total


def _close_door_then(handler: Callable[[int, Any], None], signum: int, frame: Any) -> None:
    """Drop new connections, let the worker take the accepted ones, shut the socket, hand over to the server."""
    sockets = []
    for fd in _listening_fds():
        try:
            sockets.append(socket.socket(fileno=os.dup(fd)))
        except OSError:
            pass
    filtered = [s for s in sockets if drop_new_connections(s)]
    if filtered:
        ports = {s.getsockname()[1] for s in filtered}
        deadline = time.monotonic() + QUEUE_WAIT_SECONDS
        while any(accept_queue(p) for p in ports) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(SETTLE_SECONDS)
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # the supervisor holds the socket open: refuse from now on
        except OSError:
            pass
        sock.close()
    handler(signum, frame)
