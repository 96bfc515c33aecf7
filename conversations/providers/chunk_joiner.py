"""The complete chunks of a chunked HTTP/1.1 response, joined into one as they are read.

Upstreams send an answer's Server-Sent Events an HTTP chunk each, a token apiece, and h11,
httpcore and httpx handle every chunk as an event of its own, climbing their layers once a
chunk: about 27 µs a token. Chunk boundaries mean nothing in HTTP (RFC 9112 lets any
intermediary cut or join them), so the bytes one socket read brings are handed up with
their complete chunks joined into one, and the layers above run once a read.

It follows the responses on one connection closely enough to find chunk boundaries: the
status line and header fields, then chunks, trailers, or a body of known length. Whatever
it does not understand (chunk extensions, folded header lines, a body that runs to the
connection's end, a HEAD or CONNECT request) turns it off for the rest of the connection,
so the bytes go up exactly as they came. It never holds bytes back: a chunk that is not
complete in this read is passed on as it is, and only followed.
"""

from __future__ import annotations

import re

# States
HEAD = 0  # a response's status line and header fields
SIZE = 1  # a chunk's size line
DATA = 2  # a chunk's data and the CRLF after it: `left` bytes
TRAILERS = 3  # the trailer fields after the last chunk, up to an empty line
LENGTH = 4  # a body of known length: `left` bytes
OFF = 5  # passing everything through

MAX_LINE = 64 * 1024  # a longer line turns it off (as do more than 200 header fields)
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})\r\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})[ \r\n]")


class ChunkJoiner:
    """One connection's incoming bytes, from the first response on: `feed` each read."""

    __slots__ = ("fields", "left", "line", "state")

    def __init__(self) -> None:
        self.state = HEAD
        self.left = 0
        self.line = b""  # an incomplete line, already passed on, kept to be read whole
        self.fields: list[bytes] = []  # the header block's lines so far

    def sent(self, data: bytes) -> None:
        """Bytes written to the connection: a request whose response has no body of its own
        kind (HEAD) or is followed by a tunnel (CONNECT) turns joining off."""
        if data.startswith((b"HEAD ", b"CONNECT ")):
            self.state = OFF

    def feed(self, data: bytes) -> bytes:
        if self.state == OFF:
            return data
        out: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            state = self.state
            if state in (DATA, LENGTH):
                step = min(self.left, end - pos)
                out.append(data[pos : pos + step])
                pos += step
                self.left -= step
                if not self.left:
                    self.state = SIZE if state == DATA else HEAD
                continue
            if state == SIZE and not self.line:
                pos = _join(data, pos, out)
                if pos == end:
                    break
            newline = data.find(b"\n", pos)
            if newline < 0:  # the line goes on in a later read
                self.line += data[pos:]
                out.append(data[pos:])
                if len(self.line) > MAX_LINE:
                    self.state = OFF
                break
            line = self.line + data[pos : newline + 1] if self.line else data[pos : newline + 1]
            out.append(data[pos : newline + 1])
            self.line, pos = b"", newline + 1
            self._read_line(line)
            if self.state == OFF:
                out.append(data[pos:])
                break
        return out[0] if len(out) == 1 else b"".join(out)

    def _read_line(self, line: bytes) -> None:
        state = self.state
        if state == SIZE:
            match = _SIZE_LINE.fullmatch(line)
            if match is None:  # an extension, or something h11 will refuse
                self.state = OFF
                return
            size = int(match[1], 16)
            if size:
                self.state, self.left = DATA, size + 2
            else:
                self.state = TRAILERS
        elif state == TRAILERS:
            if line in (b"\r\n", b"\n"):
                self.state = HEAD
        elif line not in (b"\r\n", b"\n"):  # HEAD: a status line or header field
            if line[:1] in (b" ", b"\t") or len(self.fields) > 200:  # folded, or too many
                self.state = OFF
            else:
                self.fields.append(line)
        elif self.fields:  # the header block's end
            fields, self.fields = self.fields, []
            self._start_body(fields)
        else:  # an empty line where a status line should be: h11 refuses it
            self.state = OFF

    def _start_body(self, fields: list[bytes]) -> None:
        status = _STATUS_LINE.match(fields[0])
        if status is None:
            self.state = OFF
            return
        code = int(status[1])
        chunked, length = False, None
        for field in fields[1:]:
            name, colon, value = field.partition(b":")
            name = name.strip().lower()
            if not colon:
                self.state = OFF
                return
            if name == b"transfer-encoding":
                if value.strip().lower() != b"chunked" or chunked:
                    self.state = OFF
                    return
                chunked = True
            elif name == b"content-length":
                value = value.strip()
                if not value.isdigit() or (length is not None and int(value) != length):
                    self.state = OFF
                    return
                length = int(value)
        if code == 101:  # the connection is something else from here on
            self.state = OFF
        elif code < 200 or code in (204, 304):  # no body: the next response follows
            self.state = HEAD
        elif chunked:
            self.state = SIZE
        elif length is not None:
            self.state, self.left = (LENGTH, length) if length else (HEAD, 0)
        else:  # read until the connection closes
            self.state = OFF


def _join(data: bytes, pos: int, out: list[bytes]) -> int:
    """The chunks that start at `pos` and are complete in `data`, appended to `out` as one
    chunk; returns where the first incomplete (or last, or unreadable) chunk starts."""
    pieces: list[bytes] = []
    size_line = _SIZE_LINE.match
    first, end = pos, len(data)
    while True:
        match = size_line(data, pos)
        if match is None:
            break
        size = int(match[1], 16)
        start = match.end()
        stop = start + size
        if not size or stop + 2 > end or data[stop : stop + 2] != b"\r\n":
            break
        pieces.append(data[start:stop])
        pos = stop + 2
    if len(pieces) == 1:
        out.append(data[first:pos])
    elif pieces:
        joined = b"".join(pieces)
        out.append(b"%x\r\n%b\r\n" % (len(joined), joined))
    return pos
