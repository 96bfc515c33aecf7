"""The asyncio network backend under the app's httpx client, against real local servers:
TLS, read timeouts as the longest silence, pooled connections, back-pressure both ways.

Everything else a provider call does goes through it too: test_stream_transport.py runs on
this backend and on httpx's default one.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import ssl
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conversations.providers import get_protocol
from conversations.providers.base import ChatRequest, ProviderConfig, TextDelta, Turn
from conversations.providers.network import HIGH_WATER, AsyncioStream, before_read, upstream_client
from conversations.providers.transport import stream_events
from conversations.runs import Runs
from tests.upstream import chat_completion_stream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
REQUEST = ChatRequest(model="gpt-test", turns=(Turn("user", "Hi"),))


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return await reader.readexactly(length)


class Server:
    """An asyncio server on 127.0.0.1 running `handler` per connection, counting them."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler, self.tls = handler, tls
        self.connections = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def config(self, scheme: str = "http", **fields: float) -> ProviderConfig:
        host = "localhost" if scheme == "https" else "127.0.0.1"
        options = {"read_timeout": 5.0, "connect_timeout": 2.0, "max_retries": 0} | fields
        return ProviderConfig("openai-chat", f"{scheme}://{host}:{self.port}/v1", **options)  # type: ignore[arg-type]


async def text_of(client: httpx.AsyncClient, config: ProviderConfig) -> str:
    protocol = get_protocol("openai-chat")
    events = [e async for e in stream_events(client, protocol, config, REQUEST)]
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def stream_chunks(*texts: str) -> list[bytes]:
    """An SSE answer as its HTTP chunks, one event each."""
    return chat_completion_stream(list(texts))


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *texts: str) -> None:
    writer.write(HEAD + b"".join(chunk(c) for c in stream_chunks(*texts)) + b"0\r\n\r\n")
    await writer.drain()


def self_signed() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh certificate for localhost, and a client context that
    trusts exactly that certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*_files(pem, key_pem))
    client = ssl.create_default_context(cadata=pem.decode())
    return server, client


def _files(cert: bytes, key: bytes) -> tuple[str, str]:
    import tempfile

    folder = tempfile.mkdtemp()
    paths = (f"{folder}/cert.pem", f"{folder}/key.pem")
    for path, data in zip(paths, (cert, key), strict=True):
        with open(path, "wb") as file:
            file.write(data)
    return paths


async def test_an_answer_streams_over_tls():
    server_tls, client_tls = self_signed()

    async def handler(reader, writer):
        await read_request(reader)
        await answer(reader, writer, "Hello", " over", " TLS")

    client = upstream_client(httpx.Limits(), verify=client_tls)
    async with Server(handler, tls=server_tls) as server, client:
        assert await text_of(client, server.config("https")) == "Hello over TLS"
        # httpcore asks the stream for the TLS session (to see what ALPN chose).
        async with client.stream("POST", f"https://localhost:{server.port}/v1/x") as response:
            stream = response.extensions["network_stream"]
            assert isinstance(stream, AsyncioStream)
            assert stream.get_extra_info("ssl_object") is not None


async def test_an_untrusted_certificate_is_refused():
    server_tls, _ = self_signed()

    async def handler(reader, writer):
        await read_request(reader)
        await answer(reader, writer, "never")

    async with Server(handler, tls=server_tls) as server, upstream_client(httpx.Limits()) as client:
        with pytest.raises(Exception, match="could not connect"):
            await text_of(client, server.config("https"))


async def test_the_read_timeout_is_the_longest_silence_not_the_whole_answer():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(HEAD)
        for piece in stream_chunks(*["tick "] * 30):
            writer.write(chunk(piece))
            await writer.drain()
            await asyncio.sleep(0.05)  # 1.5 s in all, never near 1 s without data
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with Server(handler) as server, upstream_client(httpx.Limits()) as client:
        assert await text_of(client, server.config(read_timeout=1.0)) == "tick " * 30


async def test_a_silence_longer_than_the_read_timeout_ends_the_answer_in_time():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(HEAD + chunk(stream_chunks("first")[0]))
        await writer.drain()
        await reader.read()  # silent until the client hangs up

    async with Server(handler) as server, upstream_client(httpx.Limits()) as client:
        started = time.monotonic()
        with pytest.raises(Exception, match=r"no data for 0\.3 s"):
            await text_of(client, server.config(read_timeout=0.3))
        assert 0.25 <= time.monotonic() - started < 2


async def test_a_shorter_timeout_on_a_reused_connection_still_applies():
    """The connection's timer was set for a long timeout by the first answer; the second
    answer's short one must not wait for it."""
    answers = 0

    async def handler(reader, writer):
        nonlocal answers
        while True:
            await read_request(reader)
            answers += 1
            if answers == 1:
                await answer(reader, writer, "kept alive")
                continue
            writer.write(HEAD)
            await writer.drain()
            await reader.read()

    async with Server(handler) as server, upstream_client(httpx.Limits()) as client:
        assert await text_of(client, server.config(read_timeout=60)) == "kept alive"
        started = time.monotonic()
        with pytest.raises(Exception, match=r"no data for 0\.3 s"):
            await text_of(client, server.config(read_timeout=0.3))
        assert time.monotonic() - started < 5
        assert server.connections == 1  # the second answer did reuse the connection


async def test_a_pooled_connection_the_server_closed_is_not_used_again():
    async def handler(reader, writer):
        await read_request(reader)
        await answer(reader, writer, "once")
        # No "connection: close": the client believes it may reuse this connection.

    async with Server(handler) as server, upstream_client(httpx.Limits()) as client:
        assert await text_of(client, server.config()) == "once"
        await asyncio.sleep(0.1)  # the server's FIN arrives while the connection is idle
        assert await text_of(client, server.config()) == "once"
        assert server.connections == 2


async def test_unread_data_stops_the_socket_being_read_and_none_is_lost():
    size = 8 * 1024 * 1024
    blob = bytes(range(256)) * (size // 256)

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        writer.write(blob)
        await writer.drain()

    async with Server(handler) as server, upstream_client(httpx.Limits()) as client:
        async with client.stream("GET", f"http://127.0.0.1:{server.port}/") as response:
            stream = response.extensions["network_stream"]
            received = bytearray()
            async for data in response.aiter_raw():
                received += data
                if len(received) < 1024 * 1024:
                    await asyncio.sleep(0.05)  # a slow reader: the server gets ahead
                    assert len(stream._connection.received) <= HIGH_WATER + 256 * 1024
        assert received == blob


def tokens_every(seconds: float, texts: list[str]) -> Handler:
    """A server answering with `texts` a token each `seconds`, each in its own segment."""

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(HEAD)
        for data in stream_chunks(*texts):
            writer.write(chunk(data))
            await writer.drain()
            await asyncio.sleep(seconds)
        writer.write(b"0\r\n\r\n")

    return handler


async def test_a_read_awaits_before_read_first_and_gets_all_that_came_meanwhile():
    texts = [f"t{n} " for n in range(20)]
    handler = tokens_every(0.005, texts)

    paced: list[float] = []

    async def pace() -> None:  # as a streaming answer does: no read before its next frame
        paced.append(time.monotonic())
        await asyncio.sleep(0.1)

    async with Server(handler) as server, upstream_client(httpx.Limits()) as client:
        token = before_read.set(pace)
        try:
            assert await text_of(client, server.config()) == "".join(texts)
        finally:
            before_read.reset(token)
        assert await text_of(client, server.config()) == "".join(texts)  # unset: not paced
    # 22 chunks over about 0.1 s: each read takes what the pause let gather, not one token.
    assert 1 <= len(paced) <= 8


async def test_what_came_while_a_frame_was_published_does_not_hold_back_the_rest():
    """A pacing read publishes (an await: a Redis round trip), then sleeps. What arrives in
    either comes up in the read that follows: none of it waits for the next frame (an
    upstream socket left unpolled only while sleeping held one back a frame, every frame)."""
    go = asyncio.Queue[None]()

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(HEAD)
        for data in stream_chunks("one ", "two ", "three ", "four "):
            if re.search(rb'"content":"[a-z]', data):  # each word when the client's pace says
                await go.get()
            writer.write(chunk(data))
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    async def pace() -> None:
        go.put_nowait(None)  # a token comes while the frame is published...
        await asyncio.sleep(0.02)
        go.put_nowait(None)  # ...and another while the next frame is waited for
        await asyncio.sleep(0.02)

    async with Server(handler) as server, upstream_client(httpx.Limits()) as client:
        token = before_read.set(pace)
        try:
            url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
            async with client.stream("POST", url, content=b"{}") as response:
                reads = [piece async for piece in response.aiter_raw()]
        finally:
            before_read.reset(token)
    assert b'"one "' in reads[0] and b'"two "' in reads[0]  # both, in the first read
    assert b'"three "' in reads[1] and b'"four "' in reads[1]


async def test_a_paced_answer_streams_whole_over_tls():
    """TLS decrypts below the connection: what the server sent while a read waited comes up
    whole all the same."""
    server_tls, client_tls = self_signed()
    texts = [f"t{n} " for n in range(30)]

    async def pace() -> None:
        await asyncio.sleep(0.03)

    client = upstream_client(httpx.Limits(), verify=client_tls)
    async with Server(tokens_every(0.003, texts), tls=server_tls) as server, client:
        token = before_read.set(pace)
        try:
            assert await text_of(client, server.config("https")) == "".join(texts)
        finally:
            before_read.reset(token)


async def test_a_large_request_body_waits_for_the_server_to_read_it():
    size = 16 * 1024 * 1024

    async def handler(reader, writer):
        await asyncio.sleep(0.3)  # the client's socket buffer fills meanwhile
        body = await read_request(reader)
        await answer(reader, writer, str(len(body)))

    async with Server(handler) as server, upstream_client(httpx.Limits()) as client:
        url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
        async with client.stream("POST", url, content=b"x" * size) as response:
            assert str(size).encode() in await response.aread()


async def test_a_server_that_never_reads_the_request_is_a_write_timeout():
    async def handler(reader, writer):
        await asyncio.sleep(30)

    async with Server(handler) as server, upstream_client(httpx.Limits()) as client:
        url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
        with pytest.raises(httpx.WriteTimeout):
            await client.post(url, content=b"x" * 64 * 1024 * 1024, timeout=0.3)


async def test_a_proxy_named_in_the_environment_is_used_on_this_backend(monkeypatch):
    """Teams behind a corporate proxy set HTTPS_PROXY/HTTP_PROXY: the upstream is reached
    through it, on the same backend."""
    request_lines: list[bytes] = []

    async def proxy(reader, writer):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_lines.append(head.split(b"\r\n", 1)[0])
            fields = (line.partition(b":") for line in head.split(b"\r\n")[1:] if line)
            headers = {name.strip().lower(): value.strip() for name, _, value in fields}
            await reader.readexactly(int(headers.get(b"content-length", b"0")))
            await answer(reader, writer, "via", " the proxy")

    async with Server(proxy) as server:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("NO_PROXY", "example.internal")  # a mount without a transport
        config = ProviderConfig("openai-chat", "http://upstream.invalid/v1", max_retries=0)
        async with Runs().client() as client:
            assert await text_of(client, config) == "via the proxy"
            async with client.stream("GET", "http://upstream.invalid/x") as response:
                assert isinstance(response.extensions["network_stream"], AsyncioStream)
    assert request_lines[0] == b"POST http://upstream.invalid/v1/chat/completions HTTP/1.1"


async def test_the_app_streams_answers_on_this_backend():
    async def handler(reader, writer):
        await read_request(reader)
        await answer(reader, writer, "ok")

    async with Server(handler) as server:
        client = Runs().client()
        try:
            async with client.stream("GET", f"http://127.0.0.1:{server.port}/") as response:
                assert isinstance(response.extensions["network_stream"], AsyncioStream)
        finally:
            await client.aclose()


async def test_httpcore_asks_sniffio_without_searching_the_path_for_it():
    """httpcore imports sniffio for every lock and event it makes, several a request; were it
    not installed, each would be a failed import, searched for along sys.path."""
    import sys

    from httpcore import _synchronization

    searched: list[str] = []

    class Recorder:
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            searched.append(name)

    sys.meta_path.insert(0, Recorder())
    try:
        assert _synchronization.current_async_library() == "asyncio"
    finally:
        sys.meta_path.pop(0)
    assert searched == []
