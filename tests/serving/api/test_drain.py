"""The stop's middle step on a real loopback socket: new connections wait, accepted ones are kept.

Shutting a listening socket down resets every connection waiting in its accept queue, including
ones whose request was already sent: a lost request for the client. With the drop-all filter
attached first, new attempts get no handshake (nothing sent, the client's kernel retries) and the
queued connection is still taken and answered.
"""

from __future__ import annotations

import socket
import sys
import time

import pytest

from serving.api.drain import accept_queue, drop_new_connections

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_ATTACH_FILTER and /proc/net/tcp are Linux's")


def _listener() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    return server, server.getsockname()[1]


def _queued_request(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=2)
    client.sendall(b"POST /score HTTP/1.1\r\n\r\n")
    deadline = time.monotonic() + 2
    while accept_queue(port) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    return client


def test_shutting_the_listening_socket_at_once_resets_a_request_already_sent() -> None:
    server, port = _listener()
    client = _queued_request(port)
    assert accept_queue(port) == 1
    server.shutdown(socket.SHUT_RDWR)
    with pytest.raises(ConnectionResetError):
        client.recv(1)  # what the restart measured as a cut request before the filter
    client.close()
    server.close()


def test_with_the_filter_new_connections_wait_and_the_queued_one_is_answered() -> None:
    server, port = _listener()
    client = _queued_request(port)
    assert drop_new_connections(server)
    late = socket.socket()
    late.settimeout(0.3)
    with pytest.raises(TimeoutError):
        late.connect(("127.0.0.1", port))  # no handshake: nothing sent, the client's kernel retries the SYN
    late.close()
    conn, _ = server.accept()
    assert accept_queue(port) == 0
    assert conn.recv(64).startswith(b"POST /score")
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert client.recv(64).startswith(b"HTTP/1.1 200")
    server.shutdown(socket.SHUT_RDWR)  # the queue is empty: nothing left to reset
    for s in (conn, client, server):
        s.close()
