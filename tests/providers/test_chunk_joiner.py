"""The chunk joiner under the app's httpx client: the bytes it hands up must be read by h11
exactly as the bytes that came (same responses, same bodies, same trailers), with the
complete chunks of a read joined into one."""

from __future__ import annotations

import itertools

import h11
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations.providers.chunk_joiner import OFF, ChunkJoiner
from conversations.providers.network import upstream_client
from tests.providers.test_network_backend import HEAD, Server, chunk, read_request

# One response on the wire: (request method, the response's bytes).
Exchange = tuple[str, bytes]


@st.composite
def exchanges(draw: st.DrawFn) -> Exchange:
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))  # h11 reads bare LF lines too
    kind = draw(st.sampled_from(["chunked", "chunked", "chunked", "length", "empty", "head"]))
    head = b""
    if draw(st.booleans()) and draw(st.booleans()):
        head += b"HTTP/1.1 100 Continue" + eol + eol
    status = 204 if kind == "empty" else draw(st.sampled_from([200, 200, 429, 500]))
    head += b"HTTP/1.1 %d Whatever%bcontent-type: text/event-stream%b" % (status, eol, eol)
    datas = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=12))
    if kind == "length":
        body = b"".join(datas)
        return "GET", head + b"content-length: %d" % len(body) + eol + eol + body
    if kind in ("empty", "head"):
        length = b"content-length: 17" + eol if kind == "head" else b""
        return ("HEAD" if kind == "head" else "GET"), head + length + eol
    head += b"Transfer-Encoding: chunked" + eol + eol
    pieces = []
    for data in datas:
        size = b"%x" % len(data)
        size = draw(st.sampled_from([size, size.upper(), b"0" + size]))
        extension = b";note=1" if draw(st.integers(0, 15)) == 0 else b""
        pieces.append(size + extension + b"\r\n" + data + b"\r\n")
    trailer = b"x-trailer: done\r\n" if draw(st.booleans()) else b""
    return "POST", head + b"".join(pieces) + b"0\r\n" + trailer + b"\r\n"


def cuts(data: bytes, draw: st.DrawFn) -> list[bytes]:
    """`data` as the reads of a socket might bring it."""
    points = sorted(draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=8)))
    edges = [0, *[p for p in points if p < len(data)], len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def h11_reads(exchanges: list[Exchange], reads: list[list[bytes]]) -> list[object]:
    """What h11, as httpcore drives it, makes of each exchange's reads: its events, with a
    response's data joined into one (how it was cut is the joiner's business)."""
    connection = h11.Connection(h11.CLIENT)
    events: list[object] = []
    for (method, _), pieces in zip(exchanges, reads, strict=True):
        connection.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        connection.send(h11.EndOfMessage())
        body = b""
        for piece in pieces:
            connection.receive_data(piece)
            while (event := connection.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
                if isinstance(event, h11.Data):
                    body += event.data
                else:
                    events.append(event)
        assert isinstance(events[-1], h11.EndOfMessage)
        events.append(body)
        connection.start_next_cycle()
    return events


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_what_h11_reads_is_what_came(data):
    sequence = data.draw(st.lists(exchanges(), min_size=1, max_size=4))
    raw = [cuts(wire, data.draw) for _, wire in sequence]
    joiner = ChunkJoiner()
    joined = []
    for (method, _), pieces in zip(sequence, raw, strict=True):
        joiner.sent(b"%s / HTTP/1.1\r\n" % method.encode())
        joined.append([out for piece in pieces if (out := joiner.feed(piece))])
        # Never holds bytes back: every read gives bytes to read.
        assert len(joined[-1]) == len(pieces)
    assert h11_reads(sequence, joined) == h11_reads(sequence, raw)
    # It follows every response it can: only an extension or a HEAD request turn it off.
    followable = all(b";note" not in wire and method != "HEAD" for method, wire in sequence)
    assert (joiner.state != OFF) == followable


def test_complete_chunks_in_one_read_go_up_as_one():
    joiner = ChunkJoiner()
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    tokens = [b"data: token %d\n\n" % n for n in range(40)]
    first = joiner.feed(head + b"".join(chunk(t) for t in tokens[:10]) + b"1")
    # The ten complete chunks are one; the size line begun at the end goes on as it came.
    assert first == head + chunk(b"".join(tokens[:10])) + b"1"
    rest = b"".join(chunk(t) for t in tokens[10:])[1:] + b"0\r\n\r\n"
    second = joiner.feed(rest)
    # The chunk begun in the first read goes up as it came, the 29 after it as one.
    assert (
        second == rest[: len(chunk(tokens[10])) - 1] + chunk(b"".join(tokens[11:])) + b"0\r\n\r\n"
    )
    # The connection's next response is followed too.
    again = joiner.feed(head + chunk(b"a") + chunk(b"b") + b"0\r\n\r\n")
    assert again == head + chunk(b"ab") + b"0\r\n\r\n"


def test_what_it_does_not_follow_turns_it_off_for_the_connection():
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    with_extension = ChunkJoiner()
    wire = head + b"3;x=y\r\nabc\r\n" + chunk(b"d") + chunk(b"e")
    assert with_extension.feed(wire) == wire
    assert with_extension.state == OFF
    until_close = ChunkJoiner()
    wire = b"HTTP/1.1 200 OK\r\n\r\n" + chunk(b"d") + chunk(b"e")
    assert until_close.feed(wire) == wire
    assert until_close.state == OFF
    tunnel = ChunkJoiner()
    tunnel.sent(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
    assert tunnel.state == OFF


def test_a_malformed_chunk_is_refused_by_h11_as_it_would_be_without_joining():
    wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunk(b"a")
    wire += b"3\r\nabcXY" + chunk(b"b") + b"0\r\n\r\n"  # no CRLF after the data
    for received in (wire, ChunkJoiner().feed(wire)):
        with pytest.raises(h11.RemoteProtocolError):
            h11_reads([("POST", wire)], [[received]])


async def test_an_answer_of_many_chunks_reaches_httpx_in_a_few_pieces():
    tokens = [b'data: {"n": %d}\n\n' % n for n in range(300)]

    async def handler(reader, writer):
        for _ in range(2):  # two answers on one pooled connection
            await read_request(reader)
            writer.write(HEAD + b"".join(chunk(t) for t in tokens) + b"0\r\n\r\n")
            await writer.drain()

    async with Server(handler) as server, upstream_client(httpx.Limits()) as client:
        for _ in range(2):
            async with client.stream("POST", f"http://127.0.0.1:{server.port}/", json={}) as r:
                pieces = [piece async for piece in r.aiter_raw()]
            assert b"".join(pieces) == b"".join(tokens)
            # One piece a read (64 KiB at most), not one a chunk.
            assert len(pieces) <= 3
        assert server.connections == 1
