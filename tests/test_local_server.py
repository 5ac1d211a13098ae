"""The local API server: idle keep-alive connections block no one, a burst is accepted, 100-continue is answered."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

BODY = json.dumps({"code": ""}).encode()


def _connect(stack) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", stack.api_port), timeout=5)
    sock.settimeout(5)
    return sock


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _login_request(extra_headers: bytes = b"") -> bytes:
    return (
        b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + extra_headers
        + b"Content-Length: %d\r\n\r\n" % len(BODY)
    )


def test_connections_kept_open_do_not_hold_up_new_ones(stack, api):
    idle = [_connect(stack) for _ in range(8)]
    try:
        for sock in idle[:4]:
            sock.sendall(_login_request() + BODY)
            assert _read_response(sock).startswith(b"HTTP/1.1 400")
        assert api.post("/auth/login", json={"code": ""}).status_code == 400
        again = idle[0]
        again.sendall(_login_request() + BODY)
        assert _read_response(again).startswith(b"HTTP/1.1 400")
    finally:
        for sock in idle:
            sock.close()


def test_expect_100_continue_is_answered_before_the_body_is_sent(stack):
    with _connect(stack) as sock:
        sock.sendall(_login_request(b"Expect: 100-continue\r\n"))
        sock.settimeout(1)
        try:
            interim = sock.recv(65536)
        except TimeoutError:
            pytest.fail("no 100 Continue within a second")
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.settimeout(5)
        sock.sendall(BODY)
        response = _read_response(sock)
    assert response.startswith(b"HTTP/1.1 400")
    assert json.loads(response.partition(b"\r\n\r\n")[2])["code"] == "INVALID_REQUEST"


def test_a_burst_of_32_simultaneous_connections_is_served_without_a_dropped_connection(stack):
    """A connection the listen backlog drops waits a second for its SYN to be retried, or is reset."""
    together = threading.Barrier(32)

    def one_request(_: int) -> tuple[float, bytes]:
        together.wait()
        began = time.monotonic()
        with _connect(stack) as sock:
            connecting = time.monotonic() - began
            sock.sendall(_login_request() + BODY)
            return connecting, _read_response(sock)

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(one_request, range(32)))
    assert all(response.startswith(b"HTTP/1.1 400") for _, response in results)
    assert max(connecting for connecting, _ in results) < 0.9
