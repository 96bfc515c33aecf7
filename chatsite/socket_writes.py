"""Daphne's socket writes offered to the socket at once, not on the event loop's next turn.

Twisted queues every write and asks the event loop to say when the socket can be written
(an epoll registration), writes on that turn, then unregisters: two `epoll_ctl` calls, a
callback and Twisted's logging context per websocket frame. With a few hundred answers
streaming, that was a tenth of a worker's CPU. A socket with nothing queued almost always
takes a frame whole, so it is offered the frame first. What it does not take is queued as
before, behind nothing (nothing was queued), so frames keep their order; errors and TLS
connections take Twisted's own path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import tcp

_queued_write: Callable[[Any, bytes], None] = tcp.Server.write


def write_now(self: tcp.Server, data: bytes) -> None:
    if (
        data
        and not self.TLS
        and self.connected
        and not self.disconnecting
        and not self._writeDisconnected
        and not self._tempDataLen
        and self.offset == len(self.dataBuffer)
        and isinstance(data, bytes)
    ):
        sent = self.writeSomeData(data)
        if isinstance(sent, int) and sent > 0:  # else lost, or full: Twisted's path finds out
            if sent == len(data):
                return
            data = data[sent:]
    _queued_write(self, data)


# What write_now reads of a connection, as Twisted 26.10 (pinned) has it.
_READS = ("TLS", "connected", "disconnecting", "_writeDisconnected", "dataBuffer", "offset")


def install() -> None:
    """Accepted connections (daphne's) write this way; idempotent. A Twisted whose
    connections lack what `write_now` reads keeps its own path."""
    if tcp.Server.write is not write_now and all(hasattr(tcp.Server, n) for n in _READS):
        tcp.Server.write = write_now  # type: ignore[method-assign, assignment]
