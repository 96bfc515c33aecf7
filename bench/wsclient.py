"""A small, cheap RFC 6455 websocket client on asyncio.Protocol, for thousands of sockets.

Each text message is handed to `on_message(received_ns, text)`, stamped with the wall-clock
time its last bytes were read; pings are answered; frames we send are masked, as clients must.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
import time
from collections.abc import Callable

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OnMessage = Callable[[int, str], None]


class HandshakeError(Exception):
    pass


class WebSocket(asyncio.Protocol):
    def __init__(self, on_message: OnMessage | None = None) -> None:
        self.on_message = on_message or (lambda _t, _s: None)
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshake: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.open = False
        self._fragments: list[bytes] = []
        self.messages = 0

    # --- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.open:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[: end + 4])
            del self.buffer[: end + 4]
            self.open = True
            if not self.handshake.done():
                self.handshake.set_result(head)
        received = time.time_ns()
        while self._parse_one(received):
            pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError("closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(1006)

    # --- frames ---------------------------------------------------------------------

    def _parse_one(self, received: int) -> bool:
        buf = self.buffer
        if len(buf) < 2:
            return False
        fin, opcode = buf[0] & 0x80, buf[0] & 0x0F
        length, offset = buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return False
            length, offset = struct.unpack_from("!H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return False
            length, offset = struct.unpack_from("!Q", buf, 2)[0], 10
        if buf[1] & 0x80:  # servers never mask; skip the key if one does
            offset += 4
        if len(buf) < offset + length:
            return False
        payload = bytes(buf[offset : offset + length])
        del buf[: offset + length]
        self._frame(fin, opcode, payload, received)
        return True

    def _frame(self, fin: int, opcode: int, payload: bytes, received: int) -> None:
        if opcode in (0x0, 0x1, 0x2):
            self._fragments.append(payload)
            if fin:
                data = b"".join(self._fragments)
                self._fragments.clear()
                self.messages += 1
                self.on_message(received, data.decode("utf-8", "replace"))
        elif opcode == 0x9:
            self._send_frame(0xA, payload)
        elif opcode == 0x8:
            code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
            if not self.closed.done():
                self.closed.set_result(code)
            self._send_frame(0x8, payload[:2])
            if self.transport is not None:
                self.transport.close()

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        self.transport.write(head + mask + _masked(payload, mask))

    # --- API ------------------------------------------------------------------------

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    async def close(self, timeout: float = 2.0) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self._send_frame(0x8, struct.pack("!H", 1000))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        self.transport.close()


def _masked(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return b""
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


async def connect(
    host: str,
    port: int,
    path: str,
    *,
    cookie: str = "",
    origin: str | None = None,
    on_message: OnMessage | None = None,
    timeout: float = 10.0,
) -> WebSocket:
    """Open a websocket; raises HandshakeError unless the server answers 101."""
    loop = asyncio.get_running_loop()
    _, ws = await asyncio.wait_for(
        loop.create_connection(lambda: WebSocket(on_message), host, port), timeout
    )
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: {origin or f'http://{host}:{port}'}",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    assert ws.transport is not None
    ws.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = await asyncio.wait_for(ws.handshake, timeout)
    status = head.split(b"\r\n", 1)[0]
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
    if b" 101 " not in status or accept not in head:
        ws.transport.close()
        raise HandshakeError(status.decode("latin-1"))
    return ws
