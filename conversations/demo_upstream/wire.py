"""Bytes on the wire: JSON and SSE framing, response headers, and the per-protocol hooks."""

from __future__ import annotations

import hashlib
import json
import string
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from conversations.demo_upstream.reply import Plan
from conversations.demo_upstream.request import DemoRequest

Headers = list[tuple[bytes, bytes]]
JSON_TYPE = b"application/json"
SSE_TYPE = b"text/event-stream; charset=utf-8"
RETRY_STATUSES = frozenset({429, 503, 529})
_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Frame:
    """One write to the client; `paced` ones carry a piece and wait `token_delay` first."""

    data: bytes
    paced: bool = False


@dataclass(frozen=True)
class Reply:
    """A whole HTTP answer: a JSON body, or SSE frames streamed after the headers."""

    status: int
    headers: Headers
    body: bytes = b""
    frames: Iterator[Frame] | None = None
    hang: bool = False  # send the headers, then nothing until the client leaves


@dataclass(frozen=True)
class ErrorInfo:
    status: int
    message: str
    param: str | None = None
    quota: bool = False  # a spend limit, not a rate limit: never worth a retry
    request_id: str = ""


OPENAI_QUOTA = ErrorInfo(
    429,
    "You exceeded your current quota, please check your plan and billing details. For more"
    " information on this error, read the docs:"
    " https://platform.openai.com/docs/guides/error-codes/api-errors.",
    quota=True,
)


@dataclass(frozen=True)
class Endpoint:
    """What one wire protocol plugs into the app."""

    parse: Callable[[dict[str, Any], bytes], DemoRequest]
    stream: Callable[[DemoRequest, Plan], Iterator[Frame]]
    complete: Callable[[DemoRequest, Plan], dict[str, Any]]
    error_body: Callable[[ErrorInfo], dict[str, Any]]
    request_id_header: bytes = b"x-request-id"
    quota: ErrorInfo = OPENAI_QUOTA


def dumps(value: Any) -> str:
    """Compact JSON with raw UTF-8, as both vendors send it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def sse(data: dict[str, Any] | str, event: str | None = None, *, paced: bool = False) -> Frame:
    text = data if isinstance(data, str) else dumps(data)
    head = f"event: {event}\n" if event else ""
    return Frame(f"{head}data: {text}\n\n".encode(), paced)


def now() -> int:
    return int(time.time())


def ident(seed: str, prefix: str, length: int = 24, salt: str = "") -> str:
    """A stable id shaped like the vendor's, derived from the request body's hash."""
    number = int.from_bytes(hashlib.sha512(f"{seed}:{salt}".encode()).digest())
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(_ALNUM))
        chars.append(_ALNUM[digit])
    return prefix + "".join(chars)


def obfuscation(piece: str) -> str:
    """Padding OpenAI adds to delta events so their sizes do not leak the tokens."""
    return _ALNUM[: max(1, 16 - len(piece.encode()))]


def json_reply(
    status: int,
    body: dict[str, Any],
    extra: Sequence[tuple[bytes, bytes]] = (),
    *,
    retry: bool = True,
) -> Reply:
    """A whole JSON answer; 429, 503 and 529 say when to retry unless `retry` is False."""
    headers = [(b"content-type", JSON_TYPE), *extra]
    if retry and status in RETRY_STATUSES:
        headers.append((b"retry-after", b"1"))
    return Reply(status, headers, dumps(body).encode())


def sse_headers(extra: Sequence[tuple[bytes, bytes]]) -> Headers:
    return [(b"content-type", SSE_TYPE), (b"cache-control", b"no-cache"), *extra]
