"""The drills' webhook receiver counts what a receiver would have been handed: a request
whose sender died between its headers and its body (``kill -9`` mid-send) is no delivery.

Before this, such a request was kept with an empty body: its signature failed, it counted as
one more (task, event) pair than the read-back explained, and kill-postgres failed now and
then ("326 events expected, 327 received")."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from tests.server._live import LOOPBACK, Receiver


def _send(port: int, head: bytes, body: bytes, *, whole: bool) -> None:
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(head + body)
        if whole:
            assert s.recv(64).startswith(b"HTTP/1.1 200")
        # else hang up mid-request, as a killed sender does


def _wait_for(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_request_cut_short_is_no_delivery() -> None:
    receiver = Receiver()
    receiver.start()
    try:
        head = (
            "POST /hooks HTTP/1.1\r\nHost: {h}\r\nwebhook-id: {i}\r\n"
            "content-type: application/json\r\ncontent-length: {n}\r\n\r\n"
        )
        cut = head.format(h=LOOPBACK, i="msg_cut", n=120).encode()
        _send(receiver.port, cut, b"", whole=False)  # the headers, and then nothing
        _send(receiver.port, cut, b'{"type":"task.po', whole=False)  # half the body
        body = b'{"type":"task.posted"}'
        ok = head.format(h=LOOPBACK, i="msg_ok", n=len(body)).encode()
        _send(receiver.port, ok, body, whole=True)
        _wait_for(lambda: getattr(receiver, "cut_short", 0) == 2 and receiver.snapshot())
        assert [(r.webhook_id, r.body) for r in receiver.snapshot()] == [("msg_ok", body)]
        assert receiver.cut_short == 2
    finally:
        receiver.stop()
