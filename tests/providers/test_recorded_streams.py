"""Recorded upstream streams give the same events however the bytes are chunked."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations.providers import get_protocol
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
RECORDINGS = sorted(
    (path.parent.name.replace("_", "-"), path)
    for path in FIXTURES.glob("*/*.sse")
    if path.parent.name in {"openai_chat", "anthropic_messages", "openai_responses"}
)
IDS = [f"{protocol}/{path.name}" for protocol, path in RECORDINGS]


def parse(protocol: str, chunks: list[bytes]) -> list:
    parser = get_protocol(protocol).new_parser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events + parser.close()


def whole(protocol: str, data: bytes) -> list:
    return parse(protocol, [data])


def test_every_protocol_has_recordings():
    assert {protocol for protocol, _ in RECORDINGS} == {
        "openai-chat",
        "anthropic-messages",
        "openai-responses",
    }


@pytest.mark.parametrize(("protocol", "path"), RECORDINGS, ids=IDS)
def test_a_recording_ends_with_a_finish_or_an_error_and_nothing_after(protocol, path):
    events = whole(protocol, path.read_bytes())
    last_kinds = {type(event) for event in events[-2:]}
    assert last_kinds & {Finish, StreamError}
    assert all(isinstance(event, EVENT_TYPES) for event in events)


@pytest.mark.parametrize(("protocol", "path"), RECORDINGS, ids=IDS)
def test_every_two_way_split_gives_the_same_events(protocol, path):
    data = path.read_bytes()
    expected = whole(protocol, data)
    for cut in range(1, len(data)):
        assert parse(protocol, [data[:cut], data[cut:]]) == expected, cut


@pytest.mark.parametrize(("protocol", "path"), RECORDINGS, ids=IDS)
def test_one_byte_chunks_give_the_same_events(protocol, path):
    data = path.read_bytes()
    assert parse(protocol, [data[i : i + 1] for i in range(len(data))]) == whole(protocol, data)


@pytest.mark.parametrize(("protocol", "path"), RECORDINGS, ids=IDS)
def test_every_fixed_chunk_size_gives_the_same_events(protocol, path):
    data = path.read_bytes()
    expected = whole(protocol, data)
    for size in range(2, 64):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert parse(protocol, chunks) == expected, size


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recording=st.sampled_from(RECORDINGS), cuts=st.lists(st.integers(0, 10_000), max_size=40))
def test_random_chunkings_give_the_same_events(recording, cuts):
    protocol, path = recording
    data = path.read_bytes()
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    assert parse(protocol, chunks) == whole(protocol, data)


@pytest.mark.parametrize(("protocol", "path"), RECORDINGS, ids=IDS)
def test_every_truncation_ends_in_an_error_or_the_full_answer(protocol, path):
    data = path.read_bytes()
    complete = whole(protocol, data)
    for cut in range(len(data)):
        events = whole(protocol, data[:cut])
        assert events == complete or isinstance(events[-1], StreamError), cut
