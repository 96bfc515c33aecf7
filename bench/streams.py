"""Client side of a benchmark: tabs (websockets) that ask for answers and time every token."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bench import wsclient
from bench.upstream import RECEIVED, TOKEN

FINAL = re.compile(r'data-role="assistant" data-status="(complete|error|cancelled)"')
REFUSED = re.compile(r'class="notice notice--error"[^>]*>\s*<span>(.*?)</span>', re.S)


def spec(n: int, delay: float = 0.0, ttfb: float = 0.0, document: str = "mixed") -> str:
    """The message text that scripts the fake upstream (see bench.upstream): n tokens of
    `document` ("mixed": short blocks of every kind; "long": one long table, then code)."""
    nonce = uuid.uuid4().hex[:6]
    return f"bench:n={n},d={delay:g},t={ttfb:g},k={nonce},m={document}"


@dataclass
class Answer:
    """One answer as a client saw it; times in ns (client clock) and µs (upstream stamps)."""

    nonce: str
    sent_ns: int
    done: asyncio.Future[str]
    expected: int = 0  # tokens the upstream will send
    first_token_ns: int | None = None
    first_token_sent_us: int | None = None
    upstream_received_us: int | None = None
    lags_ms: list[float] = field(default_factory=list)
    sent_us: list[int] = field(default_factory=list)  # upstream stamp of each lag sample
    seen: set[int] = field(default_factory=set)
    frames: int = 0
    error: str = ""

    def feed(self, received_ns: int, text: str) -> None:
        self.frames += 1
        for match in TOKEN.finditer(text):
            nonce, seq, stamp = match.groups()
            if nonce != self.nonce or int(seq) in self.seen:
                continue
            self.seen.add(int(seq))
            self.lags_ms.append(received_ns / 1e6 - int(stamp) / 1e3)
            self.sent_us.append(int(stamp))
            if seq == "0":
                self.first_token_ns = received_ns
                self.first_token_sent_us = int(stamp)
        got = RECEIVED.search(text) if self.upstream_received_us is None else None
        if got and got.group(1) == self.nonce:
            self.upstream_received_us = int(got.group(2))
        self._settle(text)

    def _settle(self, text: str) -> None:
        if self.done.done():
            return
        if final := FINAL.search(text):
            self.done.set_result(final.group(1))
        elif refused := REFUSED.search(text):
            self.error = refused.group(1)
            self.done.set_result("refused")

    @property
    def tokens(self) -> int:
        """Tokens delivered: up to the last stamp seen (tokens arrive in order)."""
        return max(self.seen) + 1 if self.seen else 0

    def relay(self) -> tuple[float, float, float] | None:
        """(overhead, before the upstream call, after it) in ms; see bench.relay."""
        if None in (self.first_token_ns, self.first_token_sent_us, self.upstream_received_us):
            return None
        assert self.first_token_ns and self.first_token_sent_us and self.upstream_received_us
        ttft = (self.first_token_ns - self.sent_ns) / 1e6
        upstream_ttfb = (self.first_token_sent_us - self.upstream_received_us) / 1e3
        before = self.upstream_received_us / 1e3 - self.sent_ns / 1e6
        after = self.first_token_ns / 1e6 - self.first_token_sent_us / 1e3
        return ttft - upstream_ttfb, before, after


class Tab:
    """One open websocket on a conversation; at most one answer watched at a time."""

    def __init__(self) -> None:
        self.ws: wsclient.WebSocket | None = None
        self.answer: Answer | None = None
        self.frames = 0

    @classmethod
    async def open(cls, host: str, port: int, path: str, cookie: str) -> Tab:
        tab = cls()
        tab.ws = await wsclient.connect(
            host, port, path, cookie=f"sessionid={cookie}", on_message=tab.on_message
        )
        return tab

    def on_message(self, received_ns: int, text: str) -> None:
        self.frames += 1
        if self.answer is not None:
            self.answer.feed(received_ns, text)

    def watch(self, nonce: str, sent_ns: int, expected: int = 0) -> Answer:
        """Follow an answer someone else asked for (another tab, another worker)."""
        done = asyncio.get_running_loop().create_future()
        self.answer = Answer(nonce, sent_ns, done, expected)
        return self.answer

    def ask(self, text: str, model_id: int, watchers: Sequence[Tab] = ()) -> list[Answer]:
        """Send a message; returns this tab's Answer first, then one per watcher."""
        assert self.ws is not None
        nonce = re.search(r"k=([0-9a-z]+)", text).group(1)  # type: ignore[union-attr]
        expected = int(re.search(r"n=(\d+)", text).group(1))  # type: ignore[union-attr]
        sent_ns = time.time_ns()
        answers = [tab.watch(nonce, sent_ns, expected) for tab in (self, *watchers)]
        frame = {
            "action": "send",
            "text": text,
            "client_id": uuid.uuid4().hex,
            "model": str(model_id),
            "HEADERS": {"HX-Request": "true"},
        }
        self.ws.send(json.dumps(frame))
        return answers

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def open_tabs(
    host: str, port: int, paths: Iterable[str], cookie: str, parallel: int = 32
) -> list[Tab]:
    """Open many tabs, `parallel` handshakes at a time (each one hits the session table)."""
    gate = asyncio.Semaphore(parallel)

    async def one(path: str) -> Tab:
        async with gate:
            return await Tab.open(host, port, path, cookie)

    return list(await asyncio.gather(*(one(p) for p in paths)))


async def settle(answers: Sequence[Answer], timeout: float) -> tuple[int, int]:
    """Wait (bounded) for answers to end; returns (completed, failed or unfinished)."""
    futures = [a.done for a in answers]
    if futures:
        await asyncio.wait(futures, timeout=timeout)
    ok = sum(1 for f in futures if f.done() and f.result() == "complete")
    return ok, len(futures) - ok


def lags(answers: Iterable[Answer], since_us: int = 0, until_us: int = 2**63) -> list[float]:
    """Delivery lags (ms) of the tokens the upstream sent within [since_us, until_us]."""
    return [
        lag
        for a in answers
        for lag, sent in zip(a.lags_ms, a.sent_us, strict=True)
        if since_us <= sent <= until_us
    ]


def all_streaming(answers: list[Answer]) -> tuple[int, int]:
    """The span (upstream µs) in which every answer was streaming; (0, 2**63) if none."""
    spans = [(min(a.sent_us), max(a.sent_us)) for a in answers if a.sent_us]
    if len(spans) < len(answers):
        return 0, 2**63
    since, until = max(s for s, _ in spans), min(u for _, u in spans)
    return (since, until) if since < until else (0, 2**63)
