"""OpenAI Chat Completions: the request we build and the events we read."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.providers.base import (
    ChatRequest,
    Finish,
    GenerationParams,
    ImagePart,
    ProviderConfig,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Turn,
    Usage,
)
from conversations.providers.openai_chat import PROTOCOL, ThinkSplitter

PNG = ImagePart("image/png", "iVBORw0KGgo=")
CONFIG = ProviderConfig("openai-chat", "https://api.openai.com/v1", api_key="sk-test")
EVERY_PARAM = GenerationParams(
    max_tokens=256,
    temperature=0.2,
    top_p=0.9,
    stop=("END", "STOP", "###", "---", "extra"),
    presence_penalty=0.5,
    frequency_penalty=-0.5,
    seed=42,
    json_mode=True,
    reasoning_effort="low",
    thinking_budget=2048,
)
REQUEST = ChatRequest(
    model="gpt-4o-mini",
    system="You are terse.",
    turns=(
        Turn("user", "Hi"),
        Turn("assistant", "Hello!"),
        Turn("user", "What is in this picture?", (PNG,)),
    ),
    params=EVERY_PARAM,
)


def events_of(*payloads: object, done: bool = True) -> list:
    parser = PROTOCOL.new_parser()
    raw = "".join(f"data: {json.dumps(p)}\n\n" for p in payloads)
    raw += "data: [DONE]\n\n" if done else ""
    return parser.feed(raw.encode()) + parser.close()


def delta(**fields: object) -> dict:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def test_the_call_posts_to_chat_completions_with_a_bearer_key():
    call = PROTOCOL.build_call(CONFIG, REQUEST)
    assert call.method == "POST"
    assert call.url == "https://api.openai.com/v1/chat/completions"
    assert call.headers["authorization"] == "Bearer sk-test"
    assert call.headers["accept"] == "text/event-stream"


def test_no_key_means_no_authorization_header():
    call = PROTOCOL.build_call(ProviderConfig("openai-chat", "http://localhost:8080"), REQUEST)
    assert "authorization" not in call.headers
    assert call.url == "http://localhost:8080/v1/chat/completions"


def test_the_body_carries_system_history_image_and_every_parameter():
    body = PROTOCOL.build_call(CONFIG, REQUEST).json
    assert body is not None
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
    ]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 256
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["stop"] == ["END", "STOP", "###", "---"]
    assert body["presence_penalty"] == 0.5
    assert body["frequency_penalty"] == -0.5
    assert body["seed"] == 42
    assert body["response_format"] == {"type": "json_object"}
    assert body["reasoning_effort"] == "low"
    assert "thinking" not in body


def test_unset_parameters_and_empty_system_are_left_out():
    request = ChatRequest(model="m", turns=(Turn("user", "Hi"), Turn("assistant", "")))
    body = PROTOCOL.build_call(CONFIG, request).json
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_models_are_listed_with_a_get_and_the_key():
    call = PROTOCOL.models_call(CONFIG)
    assert (call.method, call.url) == ("GET", "https://api.openai.com/v1/models")
    assert call.headers["authorization"] == "Bearer sk-test"


def test_usage_chunk_after_finish_is_reported():
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "completion_tokens_details": {"reasoning_tokens": 3},
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    events = events_of(
        delta(content="Hi"),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": usage},
    )
    assert events == [
        TextDelta("Hi"),
        Finish("stop", "stop"),
        Usage(input_tokens=10, output_tokens=5, reasoning_tokens=3, cached_tokens=4),
    ]


def test_finish_reasons_are_mapped_and_unknown_ones_kept_raw():
    def finish(reason: str) -> Finish:
        return events_of({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})[0]

    assert finish("length") == Finish("length", "length")
    assert finish("tool_calls") == Finish("tool_calls", "tool_calls")
    assert finish("content_filter") == Finish("content_filter", "content_filter")
    assert finish("eos") == Finish("other", "eos")


def test_reasoning_content_and_reasoning_fields_are_reasoning():
    events = events_of(delta(reasoning_content="a"), delta(reasoning="b"), delta(content="c"))
    assert events[:3] == [ReasoningDelta("a"), ReasoningDelta("b"), TextDelta("c")]


def test_tool_call_pieces_come_out_in_order():
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    events = events_of(
        delta(tool_calls=[first]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '{"a"'}}]),
        delta(tool_calls=[{"index": 1, "id": "call_2", "function": {"name": "g"}}]),
    )
    assert events[:3] == [
        ToolCallDelta(0, "call_1", "f", ""),
        ToolCallDelta(0, arguments='{"a"'),
        ToolCallDelta(1, "call_2", "g", ""),
    ]


def test_an_in_band_error_stops_the_stream():
    error = {"message": "boom", "type": "server_error", "code": None}
    events = events_of(delta(content="x"), {"error": error}, delta(content="never"))
    assert events == [
        TextDelta("x"),
        StreamError("the provider reported an error: boom", "server_error", True),
    ]


def test_malformed_json_is_a_stream_error():
    parser = PROTOCOL.new_parser()
    events = parser.feed(b'data: {"choices": [\n\n')
    assert len(events) == 1
    assert isinstance(events[0], StreamError)
    assert parser.close() == []


def test_eof_without_done_is_an_error():
    events = events_of(delta(content="x"), done=False)
    assert events == [
        TextDelta("x"),
        StreamError("the upstream closed the stream before finishing", "truncated"),
    ]


def test_nul_and_lone_surrogates_in_content_are_cleaned():
    events = events_of(delta(content="a\u0000b\ud800c"))
    assert events[0] == TextDelta("ab\ufffdc")


def test_think_tags_opening_the_answer_become_reasoning():
    events = events_of(delta(content="<think>\nplan</think>\n\nAnswer"))
    assert events[:2] == [ReasoningDelta("plan"), TextDelta("Answer")]


def test_think_tags_later_in_the_answer_are_left_as_text():
    events = events_of(delta(content="Use <think>"), delta(content=" tags</think>"))
    assert events[:2] == [TextDelta("Use <think>"), TextDelta(" tags</think>")]


def test_an_unclosed_think_block_is_flushed_as_reasoning_at_finish():
    events = events_of(
        delta(content="<think>hmm </th"),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
    )
    assert events == [ReasoningDelta("hmm"), ReasoningDelta(" </th"), Finish("length", "length")]


def test_a_partial_opening_tag_that_is_not_a_tag_is_text():
    splitter = ThinkSplitter()
    assert splitter.feed("<th") == []
    assert splitter.feed("is is HTML") == [TextDelta("<this is HTML")]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="<>/thinkab \n", max_size=40), st.lists(st.integers(1, 8), max_size=12))
def test_think_splitting_keeps_every_character_however_chunked(text, sizes):
    splitter, pos, out = ThinkSplitter(), 0, []
    for size in sizes:
        out += splitter.feed(text[pos : pos + size])
        pos += size
    out += splitter.feed(text[pos:]) + splitter.flush()
    reference = ThinkSplitter()
    whole = reference.feed(text) + reference.flush()
    assert "".join(e.text for e in out if isinstance(e, TextDelta)) == "".join(
        e.text for e in whole if isinstance(e, TextDelta)
    )
    assert "".join(e.text for e in out if isinstance(e, ReasoningDelta)) == "".join(
        e.text for e in whole if isinstance(e, ReasoningDelta)
    )
