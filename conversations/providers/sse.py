"""Incremental Server-Sent Events decoding, shared by the protocol parsers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from .base import Event, StreamError

DEFAULT_MAX_SIZE = 1024 * 1024
TRUNCATED = "the upstream closed the stream before finishing"

# One regex finds any of the three line endings; "\r\n" first so it wins over "\r".
_EOL = re.compile(rb"\r\n|\r|\n")
# JSON may escape a lone surrogate ("\ud800"); no encoder downstream accepts one.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class SSEMessage:
    event: str  # "message" when the stream gave no `event:` line
    data: str


class SSEDecoder:
    """Turns bytes split anywhere into whole `SSEMessage`s (WHATWG event-stream rules).

    Only the bytes up to the last line ending of a chunk are decoded, and in one piece:
    a line ending is ASCII, so no UTF-8 character is ever cut, and decoding the lines
    together gives what decoding each would. The rest waits in `_buf`, which by then holds
    no line ending, so each chunk is scanned once. A line or event larger than `max_size`
    bytes sets `error` and stops decoding, so a broken upstream cannot grow memory forever.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size
        self.error: str | None = None
        self._buf = bytearray()  # the start of a line whose ending has not arrived
        self._skip_lf = False  # the last chunk ended in "\r": a leading "\n" belongs to it
        self._first_line = True
        self._event = ""
        self._data: list[str] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        if self.error is not None:
            return []
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r")) + 1
        if cut == 0:
            self._buf += chunk
            if len(self._buf) > self.max_size:
                self._overflow()
            return []
        lines = chunk[:cut]
        if self._buf:
            lines = bytes(self._buf) + lines
            self._buf.clear()
        self._buf += chunk[cut:]
        self._skip_lf = cut == len(chunk) and chunk[cut - 1] == 0x0D
        out: list[SSEMessage] = []
        self._take_lines(lines, out)
        if self.error is None and len(self._buf) > self.max_size:
            self._overflow()
        return out

    def close(self) -> list[SSEMessage]:
        """End of stream: a last line without its newline still counts (lenient)."""
        out: list[SSEMessage] = []
        if self.error is None and self._buf:
            self._take_lines(bytes(self._buf) + b"\n", out)
            self._buf.clear()
        if self.error is None:
            self._dispatch(out)
        return out

    def _take_lines(self, raw: bytes, out: list[SSEMessage]) -> None:
        """Whole lines, each with its ending."""
        if len(raw) > self.max_size and any(len(line) > self.max_size for line in _EOL.split(raw)):
            # Rare: keep what comes before the overlong line, as line-by-line reading would.
            for line in _EOL.split(raw)[:-1]:
                if len(line) > self.max_size:
                    self._overflow()
                    return
                self._take_lines(line + b"\n", out)
            return
        text = raw.decode("utf-8", errors="replace")
        if self._first_line:
            text = text.removeprefix("\ufeff")  # a BOM may open the stream
            self._first_line = False
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        lines.pop()  # the empty string after the last line ending
        for line in lines:
            if not line:
                self._dispatch(out)
            elif line[0] != ":":  # lines starting with ":" are comments
                name, _, value = line.partition(":")
                self._field(name, value[1:] if value[:1] == " " else value)
                if self.error is not None:
                    return

    def _field(self, name: str, value: str) -> None:
        if name == "data":
            self._data.append(value)
            self._size += len(value) + 1
            if self._size > self.max_size:
                self._overflow()
        elif name == "event":
            self._event = value
        # `id` and `retry` only matter to reconnecting browsers; unknown fields are ignored.

    def _dispatch(self, out: list[SSEMessage]) -> None:
        if self._data:
            data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
            out.append(SSEMessage(self._event or "message", data))
            self._data = []
        self._event, self._size = "", 0

    def _overflow(self) -> None:
        self.error = f"the upstream sent an event larger than {self.max_size // 1024} KiB"
        self._buf.clear()
        self._data = []


def clean_text(text: str) -> str:
    """Drop NUL characters and lone surrogates, which databases and encoders reject."""
    if text.isascii() and "\x00" not in text:
        return text
    return _SURROGATE.sub("\ufffd", text.replace("\x00", ""))


def load_object(data: str) -> dict[str, Any] | None:
    """Parse one event's JSON payload; None when it is not a JSON object.

    orjson reads an event in a quarter of the time; the standard library takes what it
    refuses but an upstream may still send (NaN, a lone surrogate escape, huge numbers).
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(data)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def get_dict(obj: object, key: str) -> dict[str, Any]:
    """`obj[key]` when both are dicts, else an empty dict: upstream shapes vary."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def get_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return clean_text(value) if isinstance(value, str) else ""


def get_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class EventStreamParser:
    """Base for the protocol parsers: SSE framing, the terminal event, and failure.

    Subclasses implement `on_message`. Once the terminal event or a `StreamError` has
    been seen, later input is ignored. `feed` and `close` never raise.
    """

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self.finished = False
        self.failed = False

    def on_message(self, message: SSEMessage) -> list[Event]:
        raise NotImplementedError

    def feed(self, chunk: bytes) -> list[Event]:
        if self.finished or self.failed:
            return []
        out = self._handle(self._decoder.feed(chunk))
        if self._decoder.error is not None and not self.failed:
            out.append(self._fail(StreamError(self._decoder.error, code="oversized_event")))
        return out

    def close(self) -> list[Event]:
        if self.finished or self.failed:
            return []
        out = self._handle(self._decoder.close())
        if not (self.finished or self.failed):
            out.append(self._fail(StreamError(TRUNCATED, code="truncated")))
        return out

    def _handle(self, messages: list[SSEMessage]) -> list[Event]:
        out: list[Event] = []
        for message in messages:
            if self.finished or self.failed:
                break
            out.extend(self._safe_on_message(message))
        return out

    def _safe_on_message(self, message: SSEMessage) -> list[Event]:
        try:
            events = self.on_message(message)
        except Exception:  # an upstream shape we did not foresee must not crash the stream
            events = [StreamError("the provider sent an event this app could not read")]
        for i, event in enumerate(events):
            if isinstance(event, StreamError):
                self.failed = True
                return events[: i + 1]
        return events

    def _fail(self, error: StreamError) -> StreamError:
        self.failed = True
        return error


def malformed() -> StreamError:
    """The error for a `data:` payload that is not a JSON object."""
    return StreamError("the provider sent malformed data", code="malformed")
