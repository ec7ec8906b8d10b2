"""The HTTP/1.1 protocol ``handrail serve`` runs: uvicorn's (httptools), with a bound on a
request's head.

httptools holds a request line and headers of any length until they end, so a client can
make the server buffer megabytes before the app sees anything (where
:class:`~handrail_server.guards.HeaderLimitMiddleware` answers 431 for more headers, or
more bytes of them, than allowed). :class:`BoundedHttpTools` counts the bytes of each head
as they arrive and, past ``HANDRAIL_MAX_HEADER_BYTES`` plus 16 KiB (room for the request
line), answers 431 itself and closes the connection.
"""

from __future__ import annotations

import asyncio
from functools import cache

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from handrail.ids import new_id

from .guards import header_problem
from .problems import PROBLEM
from .settings import Settings

__all__ = ["LINE_ROOM", "BoundedHttpTools", "head_limit", "server_options"]

LINE_ROOM = 16 * 1024
"""Bytes allowed a request head on top of its headers' limit (the request line)."""
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024


@cache
def head_limit() -> int:
    """The most bytes a request head may take (this process's settings, read once)."""
    return Settings().max_header_bytes + LINE_ROOM


class BoundedHttpTools(HttpToolsProtocol):
    """``HttpToolsProtocol`` that refuses a request head over :func:`head_limit` bytes.

    The refusal is written at once; what the client still sends is read and dropped for
    a moment (up to ``LINGER_BYTES``) before the connection closes, so that the client,
    still sending its head, reads the 431 rather than a reset."""

    _waiting = True  # the next bytes are a request head
    _heads = 0  # request heads parsed on this connection
    _head_bytes = 0
    _refused = False
    _dropped = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._waiting, self._heads, self._head_bytes = True, 0, 0

    def on_headers_complete(self) -> None:
        self._waiting = False
        self._heads += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._waiting, self._head_bytes = True, 0
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.close()
            return
        waiting, heads = self._waiting, self._heads
        super().data_received(data)
        if waiting and heads == self._heads and not self.transport.is_closing():
            self._head_bytes += len(data)  # no head ended in this chunk: all of it was head
            if self._head_bytes > head_limit():
                self._refuse()

    def _refuse(self) -> None:
        limit = head_limit()
        detail = f"the request's line and headers are over {limit} bytes"
        body = header_problem(detail, None, new_id(), max_head_bytes=limit)
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            + b"content-type: "
            + PROBLEM.encode()
            + b"\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n\r\n"
            + body
        )
        self._refused = True
        self._unset_keepalive_if_required()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)


def server_options() -> dict[str, object]:
    """What ``handrail serve`` gives ``uvicorn.run`` besides the app, host, port and
    workers (the tests start uvicorn with the same)."""
    return {"http": BoundedHttpTools, "log_level": "warning"}
