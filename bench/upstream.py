"""A fast fake Chat Completions upstream for benchmarks: raw asyncio HTTP/1.1, SSE, keep-alive.

Run as `python -m bench.upstream` (prints `PORT <n>`); the harness runs it in its own process
so its work never delays the clients' clocks. Each reply is scripted by the last user message,
which carries `bench:n=50,d=0.02,t=0,k=ab12`:

- n: tokens, one per SSE chunk (or b: bytes, at PIECE characters a token);
- d: seconds between tokens (0: as fast as the socket takes them);
- t: time to first byte (seconds before the response head);
- k: a nonce naming this answer's stamps;
- m: which Markdown: `mixed` (the default: short sections of every kind) or `long` (one long
  table, then one long code block: blocks that stay open for hundreds of frames).

Tokens are PIECE characters of a Markdown document (headings, prose, lists, code, tables), as
real answers are about four characters a token. Token 0, every STAMP_EVERY-th token and the
last one also carry a stamp ` Z<k>-<seq>-<µs> ` (µs: wall-clock send time, time.time_ns() //
1000); token 0 is preceded by ` Y<k>-<µs> ` (when the request arrived). The stamps let a
client in another process compute delivery lag from the HTML frames it receives: `TOKEN` and
`RECEIVED` find them in plain text appends and in rendered Markdown alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from dataclasses import dataclass

TOKEN = re.compile(r"Z([0-9a-z]+)-(\d+)-(\d+)")
RECEIVED = re.compile(r"Y([0-9a-z]+)-(\d+)")
SPEC = re.compile(r"bench:(\S+)")
BATCH = 64  # chunks written per drain at zero delay
PIECE = 4  # characters of the document per token
STAMP_EVERY = 16

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
_CHUNK_START = (
    b'data: {"id":"chatcmpl-bench0001","object":"chat.completion.chunk","created":1750000000,'
    b'"model":"bench-model","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":'
)
_CHUNK_END = b',"logprobs":null,"finish_reason":null}]}\n\n'


def now_us() -> int:
    return time.time_ns() // 1000


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def content_chunk(text: str) -> bytes:
    delta = b'{"content":' + json.dumps(text).encode() + b"}"
    return _chunked(_CHUNK_START + delta + _CHUNK_END)


def _tail(tokens: int) -> bytes:
    finish = (
        b'data: {"id":"chatcmpl-bench0001","object":"chat.completion.chunk","created":1750000000,'
        b'"model":"bench-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    )
    usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}
    usage_chunk = b'data: {"id":"chatcmpl-bench0001","object":"chat.completion.chunk",'
    usage_chunk += b'"created":1750000000,"model":"bench-model","choices":[],"usage":'
    usage_chunk += json.dumps(usage).encode() + b"}\n\n"
    return _chunked(finish) + _chunked(usage_chunk) + _chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n"


ROLE_CHUNK = _chunked(
    _CHUNK_START + b'{"role":"assistant","content":"","refusal":null}' + _CHUNK_END
)


@dataclass
class Spec:
    tokens: int = 5
    delay: float = 0.0
    ttfb: float = 0.0
    nonce: str = "x"
    document: str = "mixed"
    received_us: int = 0

    @classmethod
    def parse(cls, text: str, received_us: int) -> Spec:
        spec = cls(received_us=received_us)
        found = SPEC.search(text)
        for item in (found.group(1) if found else "").split(","):
            key, _, value = item.partition("=")
            if key == "n":
                spec.tokens = max(1, min(int(value), 1_000_000))
            elif key == "b":
                spec.tokens = max(1, min(int(value) // PIECE, 1_000_000))
            elif key == "d":
                spec.delay = float(value)
            elif key == "t":
                spec.ttfb = float(value)
            elif key == "k":
                spec.nonce = value
            elif key == "m" and value in DOCUMENTS:
                spec.document = value
        return spec

    def token(self, seq: int) -> str:
        tokens = DOCUMENTS[self.document]
        piece = tokens[seq % len(tokens)]
        if seq % STAMP_EVERY and seq != self.tokens - 1:
            return piece
        stamp = f" Z{self.nonce}-{seq}-{now_us()} "
        if seq == 0:
            stamp = f" Y{self.nonce}-{self.received_us}{stamp}"
        return stamp + piece


WORDS = [
    "stream",
    "token",
    "relay",
    "socket",
    "frame",
    "latency",
    "budget",
    "worker",
    "answer",
    "model",
    "upstream",
    "channel",
    "group",
    "layer",
    "buffer",
    "render",
    "markdown",
    "browser",
    "scroll",
    "paint",
    "thread",
    "process",
    "memory",
]


def markdown_document(size: int) -> str:
    """Deterministic Markdown of `size` characters: headings, prose, lists, code, a table."""
    parts: list[str] = []
    total, n = 0, 0
    while total < size:
        n += 1
        words = " ".join(WORDS[(n * 7 + i) % len(WORDS)] for i in range(60))
        block = [
            f"## Section {n}\n\n",
            f"The {words}, with **bold** and `code` in it.\n\n",
            f"- first {WORDS[n % len(WORDS)]}\n- second item\n- third item\n\n",
            f"```python\ndef step_{n}(x):\n    return x * {n} + 1\n```\n\n",
            f"| a | b |\n|---|---|\n| {n} | {n * 2} |\n\n",
        ]
        for text in block:
            parts.append(text)
            total += len(text)
    return "".join(parts)[:size]


def long_blocks_document(size: int) -> str:
    """Deterministic Markdown of about `size` characters: one table, then one code block."""
    text, n = "| n | name | triple |\n|---|---|---|\n", 0
    while len(text) < size // 2:
        n += 1
        text += f"| {n} | {WORDS[n % len(WORDS)]} number {n} | {n * 3} |\n"
    text, n = text + "\n```python\ndef run(value):\n", 0
    while len(text) < size - 5:
        n += 1
        text += f"    value = step_{n}(value, {n})  # {WORDS[n % len(WORDS)]}\n"
    return text + "```\n"


def as_tokens(text: str) -> list[str]:
    return [text[i : i + PIECE] for i in range(0, len(text), PIECE)]


DOCUMENT = markdown_document(64_000)
# The browser benchmark streams 20 KB of `long`: about 10 KB of table, then 10 KB of code.
DOCUMENTS = {"mixed": as_tokens(DOCUMENT), "long": as_tokens(long_blocks_document(20_000))}


class Upstream:
    """Counts what it serves; `serve` runs forever."""

    def __init__(self) -> None:
        self.requests = 0
        self.tokens_sent = 0
        self.active = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another on this connection
                body = await read_request(reader)
                if body is None:
                    return
                if body == b"STATS":
                    await self._stats(writer)
                    return
                await self.reply(body, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _stats(self, writer: asyncio.StreamWriter) -> None:
        data = json.dumps(
            {"requests": self.requests, "tokens_sent": self.tokens_sent, "active": self.active}
        ).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
        writer.write(b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(data), data))
        await writer.drain()

    async def reply(self, body: bytes, writer: asyncio.StreamWriter) -> None:
        received = now_us()
        self.requests += 1
        spec = Spec.parse(last_user_text(body), received)
        self.active += 1
        try:
            if spec.ttfb:
                await asyncio.sleep(spec.ttfb)
            writer.write(HEAD + ROLE_CHUNK)
            if spec.delay > 0:
                await self._paced(spec, writer)
            else:
                await self._burst(spec, writer)
            writer.write(_tail(spec.tokens))
            await writer.drain()
        finally:
            self.active -= 1

    async def _burst(self, spec: Spec, writer: asyncio.StreamWriter) -> None:
        for start in range(0, spec.tokens, BATCH):
            end = min(start + BATCH, spec.tokens)
            writer.write(b"".join(content_chunk(spec.token(i)) for i in range(start, end)))
            self.tokens_sent += end - start
            await writer.drain()

    async def _paced(self, spec: Spec, writer: asyncio.StreamWriter) -> None:
        """One timer callback per token (cheaper than a coroutine sleep each), on a fixed
        schedule so tokens do not drift later under load."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        transport = writer.transport
        start = loop.time()

        def tick(seq: int) -> None:
            if transport.is_closing():
                if not done.done():
                    done.set_exception(ConnectionResetError("client went away"))
                return
            transport.write(content_chunk(spec.token(seq)))
            self.tokens_sent += 1
            if seq + 1 < spec.tokens:
                loop.call_at(start + (seq + 1) * spec.delay, tick, seq + 1)
            elif not done.done():
                done.set_result(None)

        if spec.tokens:
            tick(0)
        else:
            done.set_result(None)
        await done


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """The body of the next request (None at a clean end); `GET /stats` gives b"STATS"."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line, *lines = head.decode("latin-1").split("\r\n")
    if request_line.startswith("GET /stats"):
        return b"STATS"
    length = 0
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return await reader.readexactly(length) if length else b""


def last_user_text(body: bytes) -> str:
    with contextlib.suppress(ValueError, TypeError, KeyError, IndexError):
        messages = json.loads(body)["messages"]
        users = [m for m in messages if m.get("role") == "user"]
        content = users[-1]["content"]
        return content if isinstance(content, str) else json.dumps(content)
    return ""


async def serve(port: int = 0) -> None:
    upstream = Upstream()
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", port, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
