"""httpcore's network layer on plain asyncio: the sockets under httpx, cheaper per read.

An answer streamed at reading speed arrives one small chunk per socket read, so whatever a
read costs is paid per token. httpcore's default backend goes through anyio, which spends
a cancel scope (for the timeout) and an extra trip round the event loop on every read:
with a few hundred answers at once that was most of a core. This backend keeps each
connection's received bytes in its asyncio protocol and hands them over directly; the
read timeout (the longest silence allowed) is one timer per connection, pushed back lazily,
not a timer per read. HTTP itself (h11, pooling, TLS through `ssl`) stays httpx's and
httpcore's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import httpcore
import httpx

from conversations.providers.chunk_joiner import ChunkJoiner

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)

HIGH_WATER = 256 * 1024  # bytes buffered unread before the socket stops being read
LOW_WATER = 64 * 1024
HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's recommended head start per address

# Awaited by a read, in the reading task, before it takes bytes from the socket: by then the
# layers above have handled everything read before. A streaming answer sets it to publish its
# frame and sleep until the next one is due; tokens that arrive meanwhile wait in the buffer
# and come up in one read, so waking the task and climbing httpcore's and httpx's layers is
# paid once a frame, not once a token.
before_read: contextvars.ContextVar[Callable[[], Awaitable[None]] | None] = contextvars.ContextVar(
    "before_read", default=None
)


class _Connection(asyncio.Protocol):
    """One socket's received bytes and state, filled by the event loop's callbacks."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        # Copied out of each received bytes object: a small one that came from a 256 KiB
        # recv() can pin a page or more of the allocator while it waits to be read.
        self.received = bytearray()
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.deadline = math.inf  # loop time when the waiting read times out
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf

    # Event loop callbacks.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received += data
        if len(self.received) > HIGH_WATER and not self.reading_paused and self.transport:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost, self.eof = True, True
        self.error = self.error or exc
        self.stop_timer()
        self._wake()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # Reading.

    async def wait_readable(self, timeout: float | None) -> None:
        waiter = self.waiter = self.loop.create_future()
        if timeout is None:
            self.deadline = math.inf
        else:
            self.deadline = self.loop.time() + timeout
            if self.deadline < self.timer_at:
                self._set_timer(self.deadline)
        try:
            await waiter
        finally:
            self.waiter = None

    def _set_timer(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.timer_at = self.loop.call_at(when, self._check_deadline), when

    def _check_deadline(self) -> None:
        """The connection's one timer. Reads push the deadline later without touching it
        (the common case: a read every few milliseconds), so it may fire early: then it is
        set again for the deadline as it stands."""
        self.timer, self.timer_at = None, math.inf
        waiter = self.waiter
        if waiter is None or waiter.done() or self.deadline == math.inf:
            return
        if self.loop.time() >= self.deadline:
            waiter.set_exception(httpcore.ReadTimeout("timed out waiting for data"))
        else:
            self._set_timer(self.deadline)

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer, self.timer_at = None, math.inf

    def take(self, max_bytes: int) -> bytes:
        received = self.received
        if not received:
            if self.error is not None:
                raise httpcore.ReadError(str(self.error) or type(self.error).__name__)
            return b""  # end of stream
        # Everything that came while the reader was busy, in one go.
        if len(received) <= max_bytes:
            chunk = bytes(received)
            received.clear()
        else:
            chunk = bytes(received[:max_bytes])
            del received[:max_bytes]
        if self.reading_paused and len(received) <= LOW_WATER and self.transport:
            self.reading_paused = False
            self.transport.resume_reading()
        return chunk


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, connection: _Connection, transport: asyncio.Transport) -> None:
        self._connection = connection
        self._transport = transport
        # A read's complete HTTP chunks go up as one (a token each, from most upstreams).
        self._joiner = ChunkJoiner()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        connection = self._connection
        pace = before_read.get()
        if pace is not None:
            await pace()
        if not connection.received and not connection.eof:
            await connection.wait_readable(timeout)
        return self._joiner.feed(connection.take(max_bytes))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        connection = self._connection
        if connection.lost or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._joiner.sent(buffer)
        self._transport.write(buffer)
        if not connection.writing_paused:
            return
        drained = connection.drained = connection.loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await drained
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("timed out sending data") from exc
        finally:
            connection.drained = None
        if connection.lost:
            raise httpcore.WriteError("the connection closed while sending")

    async def aclose(self) -> None:
        self._connection.stop_timer()
        transport = self._transport
        transport.close()  # a FIN, or TLS's close_notify: written at once if the socket takes it
        transport.abort()  # and no waiting for the peer's reply to it

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        connection = self._connection
        try:
            transport = await connection.loop.start_tls(
                self._transport,
                connection,
                ssl_context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout if timeout else None,
            )
        except TimeoutError as exc:
            self._transport.abort()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from exc
        except (OSError, ssl.SSLError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(str(exc)) from exc
        if transport is None:
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        connection.transport = transport
        return AsyncioStream(connection, transport)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            # An idle pooled connection with data or EOF waiting has been closed or broken
            # by the server: httpcore drops it instead of sending a request on it.
            connection = self._connection
            return bool(connection.received) or connection.eof
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        # The host's addresses raced, each with a head start (as anyio does): a host whose
        # IPv6 route is broken still connects over IPv4 at once.
        connecting = loop.create_connection(
            _Connection, host, port, local_addr=local, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY
        )
        return await _connected(connecting, timeout, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await _connected(
            loop.create_unix_connection(_Connection, path), timeout, socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connected(
    connecting: Any, timeout: float | None, socket_options: Iterable[SocketOption] | None
) -> AsyncioStream:
    try:
        async with asyncio.timeout(timeout):
            transport, connection = await connecting
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout("timed out connecting") from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
    sock = transport.get_extra_info("socket")
    for option in socket_options or ():
        with contextlib.suppress(OSError):
            sock.setsockopt(*option)
    return AsyncioStream(connection, transport)


def upstream_client(limits: httpx.Limits, **client_options: Any) -> httpx.AsyncClient:
    """An httpx client whose connections run on `AsyncioBackend`: direct ones, and those
    through a proxy named in the environment (HTTPS_PROXY and the like, which httpx honours
    only for a client that builds its own transports). `client_options`: more arguments
    for `httpx.AsyncClient` (such as `verify`)."""
    client = httpx.AsyncClient(limits=limits, timeout=None, **client_options)  # noqa: S113 (set per request)
    # httpx builds the pools; the backend is chosen before any connection is made.
    for transport in [client._transport, *client._mounts.values()]:
        if transport is None:  # a NO_PROXY entry: no transport of its own
            continue
        pool = getattr(transport, "_pool", None)
        if not isinstance(pool, httpcore.AsyncConnectionPool):  # proxies' pools are, too
            raise TypeError(f"unexpected httpx transport {type(transport).__name__}")
        pool._network_backend = AsyncioBackend()
    return client
