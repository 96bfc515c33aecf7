"""What the demo reads from a request, whatever its wire protocol."""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

IMAGE_TOKENS = 85  # what one image adds to the input tokens
IMAGE_PART_TYPES = ("image_url", "image", "input_image")  # tuples: `in` must not hash odd JSON
TEXT_KEYS = ("text", "content", "arguments", "output", "thinking")

FaultKind = Literal["error", "quota", "drop", "inband", "hang"]
_FAULT = re.compile(r"\[demo:(?:error=(\d{3})|(quota|drop|inband-error|hang))\]")
_FAULT_WORDS: dict[str, FaultKind] = {
    "quota": "quota",
    "drop": "drop",
    "inband-error": "inband",
    "hang": "hang",
}
_DATA_URL = re.compile(r"data:[^,;]*(?:;[^,;]*)*;base64,", re.IGNORECASE)


class BadRequest(Exception):
    """The request breaks the protocol's rules; answered with HTTP 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 0


TITLE_REQUEST = "Write a short title"  # how the app asks for a conversation title


@dataclass(frozen=True)
class DemoRequest:
    """One request, normalised: the last user turn plus the knobs the demo honours."""

    model: str
    body: dict[str, Any]
    seed: str  # hex digest of the raw body: deterministic ids
    stream: bool
    user_text: str  # text of the last user turn
    images: tuple[bytes | None, ...]  # its images; None when they cannot be read offline
    input_tokens: int
    ends_with_user: bool = True  # False when the last turn carries tool results
    reasoning: bool = False
    json_mode: bool = False
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    include_usage: bool = False
    obfuscate: bool = True

    @property
    def is_title_request(self) -> bool:
        # The app's title prompt quotes the conversation, triggers and all: never act on them.
        return self.user_text.startswith(TITLE_REQUEST)

    @property
    def fault(self) -> Fault | None:
        return None if self.is_title_request else parse_fault(self.user_text)

    @property
    def wants_tool(self) -> bool:
        return self.ends_with_user and "/tool" in self.user_text and not self.is_title_request


def parse_fault(text: str) -> Fault | None:
    """Read a `[demo:...]` trigger: error=CODE, quota, drop, inband-error or hang."""
    match = _FAULT.search(text)
    if match is None:
        return None
    if match.group(1):
        return Fault("error", int(match.group(1)))
    kind = _FAULT_WORDS[match.group(2)]
    return Fault(kind, 429 if kind == "quota" else 0)


def seed_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def count_tokens(chars: int, images: int) -> int:
    """The demo's honest tokenizer: four characters a token, a flat price per image."""
    return math.ceil(chars / 4) + IMAGE_TOKENS * images


def measure(value: Any) -> tuple[int, int]:
    """Characters of text and number of images anywhere in a message's content."""
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, list):
        return _sum(measure(item) for item in value)
    if not isinstance(value, dict):
        return 0, 0
    if value.get("type") in IMAGE_PART_TYPES:
        return 0, 1
    return _sum(measure(value[key]) for key in TEXT_KEYS if key in value)


def _sum(pairs: Iterable[tuple[int, int]]) -> tuple[int, int]:
    chars = images = 0
    for c, i in pairs:
        chars, images = chars + c, images + i
    return chars, images


def text_of(content: Any, part_types: tuple[str, ...]) -> str:
    """The text of a content field: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [
        p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in part_types
    ]
    return "\n".join(t for t in texts if isinstance(t, str))


def decode_data_url(url: Any) -> bytes | None:
    """The bytes of a base64 `data:` URL; None for anything else (offline: no fetching)."""
    if not isinstance(url, str):
        return None
    match = _DATA_URL.match(url)
    return decode_b64(url[match.end() :]) if match else None


def decode_b64(data: Any) -> bytes | None:
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: odd types are not the demo's to judge."""
    return value if isinstance(value, dict) else {}


def want_int(body: dict[str, Any], *keys: str) -> int | None:
    """The first of `keys` holding an integer; a wrong type is the client's mistake."""
    for key in keys:
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"Invalid type for '{key}': expected an integer.", key)
        return value
    return None


def want_stops(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v)
    raise BadRequest(f"Invalid type for '{key}': expected a string or a list of strings.", key)


def want_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter", "model")
    return model
