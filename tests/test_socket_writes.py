"""Daphne's connections offer a frame to the socket at once (chatsite/socket_writes.py), on
real TCP sockets: sent in the same turn when nothing is queued, queued in order otherwise."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest
from twisted.internet import abstract, protocol, tcp

from chatsite import socket_writes


class Reactor:
    """What a connection asks of its reactor here (in Twisted's names): to be told when it can
    read or write."""

    def __init__(self) -> None:
        self.readers: set[object] = set()
        self.writers: set[object] = set()

    def addReader(self, reader: object) -> None:
        self.readers.add(reader)

    def addWriter(self, writer: object) -> None:
        self.writers.add(writer)

    def removeWriter(self, writer: object) -> None:
        self.writers.discard(writer)


@pytest.fixture
def pair(monkeypatch) -> Iterator[tuple[tcp.Server, socket.socket, Reactor]]:
    """A daphne-side connection and the browser's end of it, over loopback."""
    monkeypatch.setattr(tcp.Server, "write", socket_writes.write_now)
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(listener.getsockname())
    ours, address = listener.accept()
    listener.close()
    ours.setblocking(False)
    reactor = Reactor()
    connection = tcp.Server(ours, protocol.Protocol(), address, None, 1, reactor)  # type: ignore[arg-type]
    yield connection, peer, reactor
    peer.close()
    ours.close()


def received_now(peer: socket.socket) -> bytes:
    readable, _, _ = select.select([peer], [], [], 0.2)
    return peer.recv(1 << 20) if readable else b""


def test_a_frame_goes_to_an_idle_socket_in_the_same_turn(pair):
    connection, peer, reactor = pair
    connection.write(b"frame one")
    connection.write(b", frame two")
    assert received_now(peer) == b"frame one, frame two"
    assert not reactor.writers  # no wait for the loop to say the socket is writable


def test_what_a_full_socket_does_not_take_is_queued_and_frames_keep_their_order(pair):
    connection, peer, reactor = pair
    big = bytes(range(256)) * 40_000  # 10 MB: more than the socket buffers take
    connection.write(big)
    assert connection in reactor.writers  # the rest waits for the socket
    connection.write(b"the frame after")
    received = b""
    while len(received) < len(big) + 15:
        if connection in reactor.writers:
            connection.doWrite()  # the loop's turn: the socket can be written
        received += received_now(peer)
    assert received == big + b"the frame after"
    assert not reactor.writers


def test_the_site_installs_it():
    import chatsite.asgi  # noqa: F401 (daphne imports it the same way)

    assert tcp.Server.write is socket_writes.write_now


def test_a_twisted_without_what_it_reads_keeps_its_own_write(monkeypatch):
    monkeypatch.setattr(tcp.Server, "write", socket_writes._queued_write)
    monkeypatch.delattr(abstract.FileDescriptor, "dataBuffer")
    socket_writes.install()
    assert tcp.Server.write is socket_writes._queued_write
