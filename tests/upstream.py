"""Real HTTP/1.1 servers on 127.0.0.1 for tests: a scripted fake upstream and an ASGI host.

Each server runs its own asyncio loop in a daemon thread, so sync tests, async tests and a
separate daphne process can all reach it by URL. Replies end with `Connection: close`;
streamed ones use chunked transfer encoding, as real upstreams do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, Self, TypeVar
from urllib.parse import unquote

import h11
import pytest

T = TypeVar("T")
Then = Literal["close", "abort", "hang"]
SSE_TYPE = "text/event-stream; charset=utf-8"
READ_SIZE = 65536


# --- Scripts and records -----------------------------------------------------------


@dataclass
class Scripted:
    """One reply: status and headers, then `chunks` with `delay` seconds between them.

    `then` says how it ends: "close" finishes the body and closes the connection;
    "abort" closes it mid-body (no terminating chunk); "hang" sends nothing more until
    the client goes away. Without a content-type header, 200 means SSE, others JSON.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    delay: float = 0.0
    then: Then = "close"

    @classmethod
    def json(
        cls, body: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Scripted:
        """A whole JSON reply with a Content-Length, like an upstream's error answers."""
        data = json.dumps(body).encode()
        extra = {"content-type": "application/json", "content-length": str(len(data))}
        return cls(status, {**extra, **(headers or {})}, [data])

    def header_list(self) -> list[tuple[str, str]]:
        names = {name.lower() for name in self.headers}
        headers = list(self.headers.items())
        if "content-type" not in names:
            headers.append(("content-type", SSE_TYPE if self.status == 200 else "application/json"))
        return [*headers, ("connection", "close")]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


# --- The loop thread and the shared HTTP plumbing ------------------------------------


class _ServerThread:
    """A TCP server on 127.0.0.1:0 whose connections are handled on a private loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread.start()
        self._server = self.call(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"

    def call(self, coro: Awaitable[T], timeout: float = 10.0) -> T:
        async def run() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, h11.ProtocolError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _shutdown(self) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self.call(self._shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> RecordedRequest | None:
    """One whole request off the wire; None when the client closed first."""
    start: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, h11.Request):
            start = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and start is not None:
            headers = {k.decode().lower(): v.decode("latin-1") for k, v in start.headers}
            return RecordedRequest(
                start.method.decode(), start.target.decode(), headers, bytes(body)
            )
        elif isinstance(event, h11.ConnectionClosed):
            return None


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


async def _wait_eof(reader: asyncio.StreamReader) -> None:
    """Returns when the client closes its side (anything it sends meanwhile is ignored)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(READ_SIZE):
            pass


# --- The scripted fake upstream ------------------------------------------------------


class FakeUpstream(_ServerThread):
    """Serves scripted replies in order (500 once they run out) and records the requests.

    `url` is the base URL with `/v1`; `disconnects` counts clients that left while a reply
    was still being sent.
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self._queue: deque[Scripted] = deque()
        self._lock = threading.Condition()
        super().__init__()
        self.url = f"{self.origin}/v1"

    def script(self, *replies: Scripted) -> FakeUpstream:
        with self._lock:
            self._queue.extend(replies)
        return self

    def wait_for_disconnect(self, timeout: float = 5.0, count: int = 1) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self.disconnects >= count, timeout)

    async def await_disconnect(self, timeout: float = 5.0, count: int = 1) -> bool:
        return await asyncio.to_thread(self.wait_for_disconnect, timeout, count)

    def _next_reply(self) -> Scripted:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return Scripted.json({"error": {"message": "FakeUpstream: no scripted reply left"}}, 500)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        request = await _read_request(conn, reader)
        if request is None:
            return
        self.requests.append(request)
        eof = asyncio.ensure_future(_wait_eof(reader))
        try:
            if not await _send_scripted(conn, writer, self._next_reply(), eof):
                with self._lock:
                    self.disconnects += 1
                    self._lock.notify_all()
        finally:
            eof.cancel()


async def _send_scripted(
    conn: h11.Connection, writer: asyncio.StreamWriter, reply: Scripted, eof: asyncio.Future[None]
) -> bool:
    """Play one scripted reply; False when the client went away before it was over."""
    writer.transport.set_write_buffer_limits(0)  # drain() then means "handed to the kernel"
    try:
        response = h11.Response(
            status_code=reply.status, headers=reply.header_list(), reason=_reason(reply.status)
        )
        writer.write(conn.send(response))
        await writer.drain()
        for number, chunk in enumerate(reply.chunks):
            if number and reply.delay and not await _idle(eof, reply.delay):
                return False
            if eof.done():
                return False
            writer.write(conn.send(h11.Data(data=chunk)))
            await writer.drain()
        return await _finish(conn, writer, reply.then, eof)
    except ConnectionError:
        return False


async def _finish(
    conn: h11.Connection, writer: asyncio.StreamWriter, then: Then, eof: asyncio.Future[None]
) -> bool:
    if then == "hang":
        await eof
        return False
    if then == "close":
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
    return True


async def _idle(eof: asyncio.Future[None], seconds: float) -> bool:
    """Sleep, or stop early if the client leaves; True if it is still there."""
    done, _ = await asyncio.wait({eof}, timeout=seconds)
    return not done


def fake_upstream_fixture() -> Iterator[FakeUpstream]:
    """A fresh FakeUpstream per test (import as a fixture: see `fake_upstream`)."""
    with FakeUpstream() as upstream:
        yield upstream


fake_upstream = pytest.fixture(fake_upstream_fixture, name="fake_upstream")


# --- Hosting an ASGI app on a real port ---------------------------------------------

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class AsgiServer(_ServerThread):
    """A minimal HTTP/1.1 -> ASGI bridge: one request per connection, streamed responses,
    and `http.disconnect` when the client closes. Like daphne, sends after that are dropped.

    Exceptions the app raises are kept in `errors` so a test can assert there were none.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.errors: list[BaseException] = []
        super().__init__()
        self.url = self.origin

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        request = await _read_request(conn, reader)
        if request is None:
            return
        exchange = _Exchange(conn, writer, request, asyncio.ensure_future(_wait_eof(reader)))
        try:
            await self.app(exchange.scope(writer), exchange.receive, exchange.send)
        except Exception as exc:
            self.errors.append(exc)
        finally:
            exchange.eof.cancel()
        await exchange.finish()


class _Exchange:
    """The ASGI side of one request/response on a connection."""

    def __init__(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        request: RecordedRequest,
        eof: asyncio.Future[None],
    ) -> None:
        self.conn, self.writer, self.request, self.eof = conn, writer, request, eof
        self.body_sent = False
        self.started = False
        self.complete = False

    def scope(self, writer: asyncio.StreamWriter) -> dict[str, Any]:
        path, _, query = self.request.path.partition("?")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": self.request.method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.encode(), v.encode("latin-1")) for k, v in self.request.headers.items()],
            "client": writer.get_extra_info("peername")[:2],
            "server": writer.get_extra_info("sockname")[:2],
        }

    async def receive(self) -> Message:
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": self.request.body, "more_body": False}
        if not self.complete:
            await asyncio.shield(self.eof)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.eof.done() or self.complete:
            return
        if message["type"] == "http.response.start":
            self.started = True
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
            headers.append((b"connection", b"close"))
            status = message["status"]
            response = h11.Response(status_code=status, headers=headers, reason=_reason(status))
            await self._write(self.conn.send(response))
        elif message["type"] == "http.response.body":
            await self._body(message.get("body", b""), message.get("more_body", False))

    async def _body(self, body: bytes, more: bool) -> None:
        data = self.conn.send(h11.Data(data=body)) if body else b""
        if not more:
            data += self.conn.send(h11.EndOfMessage())
            self.complete = True
        await self._write(data)

    async def _write(self, data: bytes | None) -> None:
        if data:
            self.writer.write(data)
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    async def finish(self) -> None:
        if not self.started and not self.eof.done():
            self.started = True
            await self.send({"type": "http.response.start", "status": 500, "headers": []})
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})


def serve_asgi_in_thread(app: ASGIApp) -> tuple[str, Callable[[], None]]:
    """Serve `app` on a real port; returns its origin URL and a function that stops it."""
    server = AsgiServer(app)
    return server.url, server.close


# --- SSE bytes as the vendors send them ---------------------------------------------


def sse(data: Mapping[str, Any] | str, event: str | None = None) -> bytes:
    """One server-sent event; mappings become compact JSON, as OpenAI and Anthropic send."""
    text = (
        data
        if isinstance(data, str)
        else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    )
    head = f"event: {event}\n" if event else ""
    lines = "".join(f"data: {line}\n" for line in text.split("\n"))
    return f"{head}{lines}\n".encode()


def openai_usage(
    prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0
) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion_stream(
    pieces: Sequence[str],
    usage: Mapping[str, Any] | None = None,
    finish: str | None = "stop",
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    completion_id: str = "chatcmpl-Bx3fAkeUpstreamTest0001",
    created: int = 1_750_000_000,
) -> list[bytes]:
    """The chunks of a streamed Chat Completion, one SSE event each, ending in `[DONE]`.

    With `usage` (see `openai_usage`) every chunk carries `"usage":null` and a last chunk
    with `choices: []` carries the usage, as with `stream_options.include_usage`.
    `finish=None` leaves out the finish chunk and `[DONE]` (a stream cut short).
    """
    head = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_560af6e559",
    }

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        body: dict[str, Any] = {**head, "choices": [choice]}
        if usage is not None:
            body["usage"] = None
        return sse(body)

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [chunk({"content": piece}) for piece in pieces]
    if finish is None:
        return chunks
    chunks.append(chunk({}, finish))
    if usage is not None:
        chunks.append(sse({**head, "choices": [], "usage": dict(usage)}))
    return [*chunks, sse("[DONE]")]


def messages_stream(
    pieces: Sequence[str],
    *,
    input_tokens: int = 10,
    stop_reason: str | None = "end_turn",
    model: str = "claude-sonnet-4-5-20250929",
    message_id: str = "msg_01FakeUpstreamTest00001",
) -> list[bytes]:
    """An Anthropic Messages stream of one text block; `stop_reason=None` cuts it short."""
    message: dict[str, Any] = {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 1},
    }  # fmt: skip
    block = {"type": "text", "text": ""}
    chunks = [
        sse({"type": "message_start", "message": message}, "message_start"),
        sse(
            {"type": "content_block_start", "index": 0, "content_block": block},
            "content_block_start",
        ),
        sse({"type": "ping"}, "ping"),
    ]
    for piece in pieces:
        delta = {"type": "text_delta", "text": piece}
        chunks.append(
            sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")
        )
    if stop_reason is None:
        return chunks
    end = {"stop_reason": stop_reason, "stop_sequence": None}
    return [
        *chunks,
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse(
            {"type": "message_delta", "delta": end, "usage": {"output_tokens": len(pieces)}},
            "message_delta",
        ),
        sse({"type": "message_stop"}, "message_stop"),
    ]
