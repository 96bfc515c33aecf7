"""A scripted HTTP/1.1 upstream on 127.0.0.1 for the provider tests."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from conversations.providers.network import upstream_client

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SSE = "text/event-stream"


@dataclass
class Reply:
    """One scripted answer. `then` says what happens after the chunks are sent:
    "end" finishes the body, "drop" closes the socket mid-body, "hang" keeps the
    connection open and silent until the client goes away, "slam" closes the socket
    before any response at all."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": SSE})
    chunks: list[bytes] = field(default_factory=list)
    then: Literal["end", "drop", "hang", "slam"] = "end"


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ScriptedServer:
    """Answers each request with the next scripted `Reply`, over real sockets."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[SeenRequest] = []
        self.client_went_away = asyncio.Event()  # set when a held ("hang") reply saw EOF
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reply(
        self,
        status: int = 200,
        *chunks: bytes,
        headers: dict[str, str] | None = None,
        then: Literal["end", "drop", "hang", "slam"] = "end",
    ) -> None:
        self.replies.append(Reply(status, headers or {"content-type": SSE}, list(chunks), then))

    def reply_json(self, status: int, payload: Any, **headers: str) -> None:
        body = json.dumps(payload).encode()
        self.reply(status, body, headers={"content-type": "application/json", **headers})

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                reply = self.replies.pop(0) if self.replies else Reply(500, {}, [b"unscripted"])
                if not await self._send(reply, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _send(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Send one reply; False when the connection is finished with."""
        if reply.then == "slam":
            return False
        head = [f"HTTP/1.1 {reply.status} {_phrase(reply.status)}", "transfer-encoding: chunked"]
        head += [f"{name}: {value}" for name, value in reply.headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        for chunk in reply.chunks:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            await asyncio.sleep(0)  # give each chunk its own trip to the client
        if reply.then == "drop":
            return False
        if reply.then == "hang":
            await writer.drain()
            await reader.read()  # returns b"" once the client closes its side
            self.client_went_away.set()
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # 529 and friends are not in the standard list
        return "Unlisted"


async def _read_request(reader: asyncio.StreamReader) -> SeenRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    first, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = first.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return SeenRequest(method, path, headers, body)


@pytest.fixture
async def upstream():
    server = ScriptedServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(params=["asyncio", "anyio"])
async def http_client(request):
    """The client the app streams with (httpcore on plain asyncio), and httpx's default."""
    client = upstream_client(httpx.Limits()) if request.param == "asyncio" else httpx.AsyncClient()
    async with client:
        yield client


def read_fixture(protocol: str, name: str) -> bytes:
    return (FIXTURES / protocol / name).read_bytes()


@pytest.fixture
def fixture_bytes():
    """`fixture_bytes("openai_chat", "text_with_usage.sse")` -> the recorded stream."""
    return read_fixture
