"""The demo's deterministic answer: its text, its token-like pieces and where it stops."""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from typing import Literal

from conversations.demo_upstream.request import DemoRequest

TIMES = "\u00d7"  # the multiplication sign, as in "PNG, 640 by 480"
QUOTE_CHARS = 120
FAULT_PIECES = 10  # how much a dropped or failing stream sends first
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = json.dumps({"city": "Paris", "unit": "celsius"})

Finish = Literal["stop", "length", "stop_sequence", "tool"]
_PIECE = re.compile(r" ?\w+| ?[^\w\s]+|\s+")
_CODE = """```python
def greet(name: str) -> str:
    return f"Hello, {name}!"
```"""


@dataclass(frozen=True)
class Plan:
    """What will be streamed: reasoning pieces, then answer (or tool argument) pieces."""

    kind: Literal["text", "tool"]
    reasoning: tuple[str, ...]
    pieces: tuple[str, ...]
    finish: Finish
    stop_sequence: str | None = None
    cut: bool = False  # a drop or in-band error interrupts it after `pieces`

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    @property
    def output_tokens(self) -> int:
        return len(self.reasoning) + len(self.pieces)


def split_pieces(text: str) -> list[str]:
    """Token-like pieces (a word with its space, a punctuation run, whitespace); joined
    back they give `text` exactly."""
    pieces: list[str] = []
    for match in _PIECE.finditer(text):
        word = match.group()
        step = len(word) if len(word) <= 6 else math.ceil(len(word) / math.ceil(len(word) / 5))
        pieces.extend(word[i : i + step] for i in range(0, len(word), step))
    return pieces


def quote(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= QUOTE_CHARS else flat[:QUOTE_CHARS].rstrip() + "…"


def describe_image(data: bytes | None) -> str:
    """Format and size, e.g. "PNG, 640x480" with a multiplication sign, read by Pillow.

    Pillow is imported here so the demo still runs (and says so) without it.
    """
    if data is None:
        return "an image I could not read"
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return f"{image.format}, {image.width}{TIMES}{image.height}"
    except Exception:  # Pillow missing, or bytes it cannot identify: say so, never fail
        return "an image I could not read"


def images_line(images: tuple[bytes | None, ...]) -> str:
    count = len(images)
    described = "; ".join(describe_image(data) for data in images)
    return f"I received {count} image{'s' if count != 1 else ''}: {described}."


def markdown_reply(request: DemoRequest) -> str:
    said = quote(request.user_text)
    opening = [images_line(request.images), ""] if request.images else []
    return "\n".join(
        [
            *opening,
            "## A reply from the demo upstream",
            "",
            f'You wrote: "{said}". I am `{request.model}`, an offline stand-in, so no'
            " real model read this and nothing left the machine.",
            "",
            "- Replies stream in small, token-like pieces.",
            "- The same message always gets the same answer.",
            "- Usage is honest: one output token per piece sent.",
            "",
            "| Protocol | Path |",
            "| --- | --- |",
            "| OpenAI Chat | `/v1/chat/completions` |",
            "| Anthropic | `/v1/messages` |",
            "| OpenAI Responses | `/v1/responses` |",
            "",
            _CODE,
            "",
            "Try `/tool`, an image, or `[demo:drop]` next.",
        ]
    )


def json_reply(request: DemoRequest) -> str:
    answer = {
        "answer": "This is the offline demo upstream.",
        "echo": request.user_text[:QUOTE_CHARS],
        "images": [describe_image(data) for data in request.images],
        "items": ["heading", "list", "table", "code"],
        "model": request.model,
    }
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":"))


def reasoning_reply(request: DemoRequest) -> str:
    words = len(request.user_text.split())
    return (
        f"The message has {words} word{'s' if words != 1 else ''}. A good demo answer"
        " shows a heading, a quote, a list, a table and some code, so I will lay those"
        " out in order and keep it short."
    )


def title_reply(request: DemoRequest) -> str:
    """A title from the first words of the quoted user message, as a real model might."""
    _, _, rest = request.user_text.partition("User: ")
    words = rest.split("\n", 1)[0].strip().rstrip("?!.").split()[:5]
    return " ".join(words).capitalize() if words else "Demo conversation"


def answer_text(request: DemoRequest) -> str:
    if request.is_title_request:
        return title_reply(request)
    return json_reply(request) if request.json_mode else markdown_reply(request)


def cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, str | None]:
    """The text before the earliest stop sequence, and that sequence (or None)."""
    found = [(text.find(stop), stop) for stop in stops if stop in text]
    if not found:
        return text, None
    at, stop = min(found)
    return text[:at], stop


def _answer(request: DemoRequest) -> tuple[list[str], Finish, str | None]:
    if request.wants_tool:
        return split_pieces(TOOL_ARGUMENTS), "tool", None
    text, stop = cut_at_stop(answer_text(request), request.stop)
    return split_pieces(text), ("stop_sequence" if stop else "stop"), stop


def build_plan(request: DemoRequest) -> Plan:
    """Reasoning first, then the answer, both within `max_tokens`; faults cut it short."""
    reasoning = split_pieces(reasoning_reply(request)) if request.reasoning else []
    pieces, finish, stop = _answer(request)
    budget = request.max_tokens
    if budget is not None and len(reasoning) + len(pieces) > budget:
        reasoning = reasoning[: max(budget, 0)]
        pieces = pieces[: max(budget - len(reasoning), 0)]
        finish, stop = "length", None
    fault = request.fault
    cut = fault is not None and fault.kind in ("drop", "inband")
    kind: Literal["text", "tool"] = "tool" if request.wants_tool else "text"
    kept = pieces[:FAULT_PIECES] if cut else pieces
    return Plan(kind, tuple(reasoning), tuple(kept), finish, stop, cut)
