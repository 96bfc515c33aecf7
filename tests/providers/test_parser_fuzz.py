"""Whatever bytes an upstream sends, the parsers return events and never raise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.providers import PROTOCOLS
from conversations.providers.base import (
    Finish,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EVENT_TYPES = (TextDelta, ReasoningDelta, ToolCallDelta, Usage, Finish, StreamError)
NAMES = sorted(PROTOCOLS)
EVENT_NAMES = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "message_delta",
    "message_stop",
    "error",
    "ping",
    "response.output_text.delta",
    "response.reasoning_summary_part.added",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.completed",
    "response.incomplete",
    "response.failed",
]
KEYS = [
    "type",
    "choices",
    "delta",
    "content",
    "usage",
    "error",
    "message",
    "index",
    "content_block",
    "response",
    "item",
    "output_index",
    "tool_calls",
    "function",
    "finish_reason",
    "stop_reason",
    "incomplete_details",
    "reason",
    "summary_index",
    "text",
    "thinking",
    "partial_json",
    "reasoning_content",
    "input_tokens",
    "prompt_tokens",
    "code",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.text(max_size=5)
    | st.sampled_from(EVENT_NAMES),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)


def run(protocol: str, chunks: list[bytes]) -> list:
    parser = PROTOCOLS[protocol].new_parser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    events += parser.close()
    assert all(isinstance(event, EVENT_TYPES) for event in events)
    return events


@pytest.mark.parametrize("protocol", NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.lists(st.binary(max_size=80), max_size=10))
def test_random_bytes_never_raise(protocol, data):
    run(protocol, data)


@pytest.mark.parametrize("protocol", NAMES)
@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(
        st.sampled_from([b"data: ", b"event: ", b":", b"\n", b"\r\n", b"\r", b"[DONE]", b"{", b"}"])
        | st.binary(max_size=6),
        max_size=40,
    )
)
def test_sse_shaped_noise_never_raises(protocol, lines):
    run(protocol, lines)


@pytest.mark.parametrize("protocol", NAMES)
@settings(max_examples=300, deadline=None)
@given(payloads=st.lists(st.tuples(st.sampled_from(EVENT_NAMES), json_values), max_size=6))
def test_any_json_shape_is_read_without_tripping_over_it(protocol, payloads):
    raw = "".join(f"event: {name}\ndata: {json.dumps(value)}\n\n" for name, value in payloads)
    events = run(protocol, [raw.encode()])
    assert not any("could not read" in e.message for e in events if isinstance(e, StreamError))


@pytest.mark.parametrize("protocol", NAMES)
@settings(max_examples=100, deadline=None)
@given(cut=st.integers(0, 10_000), flip=st.integers(0, 10_000), byte=st.integers(0, 255))
def test_truncated_or_corrupted_recordings_never_raise(protocol, cut, flip, byte):
    for path in sorted((FIXTURES / protocol.replace("-", "_")).glob("*.sse")):
        data = bytearray(path.read_bytes())
        data[flip % len(data)] = byte
        events = run(protocol, [bytes(data[: cut % (len(data) + 1)])])
        assert events, "a stream always ends in a Finish or a StreamError"
