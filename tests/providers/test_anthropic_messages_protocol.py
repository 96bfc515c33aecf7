"""Anthropic Messages: the request we build and the events we read."""

from __future__ import annotations

import json

from conversations.providers.anthropic_messages import PROTOCOL
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

PNG = ImagePart("image/png", "iVBORw0KGgo=")
CONFIG = ProviderConfig(
    "anthropic-messages",
    "https://api.anthropic.com",
    api_key="sk-ant-test",
    auth_scheme="x-api-key",
)
HISTORY = (
    Turn("user", "Hi"),
    Turn("assistant", "Hello!"),
    Turn("user", "What is in this picture?", (PNG,)),
)
EVERY_PARAM = GenerationParams(
    max_tokens=256,
    temperature=0.2,
    top_p=0.9,
    stop=("END",),
    presence_penalty=0.5,
    frequency_penalty=0.5,
    seed=42,
    json_mode=True,
    reasoning_effort="high",
)


def body_for(turns=HISTORY, params=EVERY_PARAM, system="You are terse.") -> dict:
    request = ChatRequest(model="claude-sonnet-4-5", turns=turns, system=system, params=params)
    body = PROTOCOL.build_call(CONFIG, request).json
    assert body is not None
    return body


def events_of(*payloads: dict, stop: bool = True) -> list:
    parser = PROTOCOL.new_parser()
    raw = "".join(f"event: {p['type']}\ndata: {json.dumps(p)}\n\n" for p in payloads)
    raw += 'event: message_stop\ndata: {"type":"message_stop"}\n\n' if stop else ""
    return parser.feed(raw.encode()) + parser.close()


def test_the_call_posts_to_v1_messages_with_version_and_key_headers():
    call = PROTOCOL.build_call(CONFIG, ChatRequest(model="m", turns=HISTORY))
    assert call.method == "POST"
    assert call.url == "https://api.anthropic.com/v1/messages"
    assert call.headers["x-api-key"] == "sk-ant-test"
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in call.headers


def test_bearer_auth_is_a_per_provider_choice():
    config = ProviderConfig("anthropic-messages", "https://gw.example/v1", api_key="k")
    call = PROTOCOL.build_call(config, ChatRequest(model="m", turns=HISTORY))
    assert call.headers["authorization"] == "Bearer k"
    assert "x-api-key" not in call.headers
    assert call.url == "https://gw.example/v1/messages"


def test_the_body_carries_system_history_image_and_supported_parameters():
    body = body_for()
    assert body["model"] == "claude-sonnet-4-5"
    assert body["system"] == "You are terse."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "text", "text": "What is in this picture?"},
            ],
        },
    ]
    assert body["max_tokens"] == 256
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["stream"] is True


def test_unsupported_parameters_are_not_sent():
    body = body_for()
    for name in ("presence_penalty", "frequency_penalty", "seed", "response_format", "thinking"):
        assert name not in body
    assert "reasoning_effort" not in body


def test_max_tokens_is_always_sent_and_empty_system_left_out():
    body = body_for(params=GenerationParams(), system="")
    assert body["max_tokens"] == 4096
    assert "system" not in body


def test_thinking_sets_a_budget_below_max_tokens_and_drops_sampling_knobs():
    params = GenerationParams(max_tokens=1000, temperature=0.3, top_p=0.5, thinking_budget=2000)
    body = body_for(params=params)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert body["max_tokens"] > 2000
    assert "temperature" not in body
    assert "top_p" not in body


def test_a_tiny_thinking_budget_is_raised_to_the_minimum():
    body = body_for(params=GenerationParams(max_tokens=8000, thinking_budget=100))
    assert body["thinking"]["budget_tokens"] == 1024
    assert body["max_tokens"] == 8000


def test_roles_alternate_starting_with_user():
    turns = (
        Turn("assistant", "Welcome!"),
        Turn("user", "one"),
        Turn("user", "two"),
        Turn("assistant", ""),
        Turn("assistant", "reply"),
        Turn("user", "three"),
    )
    assert body_for(turns=turns)["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "reply"}]},
        {"role": "user", "content": [{"type": "text", "text": "three"}]},
    ]


def test_a_final_assistant_prefill_loses_trailing_whitespace():
    turns = (Turn("user", "Say hi"), Turn("assistant", "Hi \n"))
    assert body_for(turns=turns)["messages"][-1]["content"] == [{"type": "text", "text": "Hi"}]


def test_models_are_listed_with_a_large_page():
    call = PROTOCOL.models_call(CONFIG)
    assert call.method == "GET"
    assert call.url == "https://api.anthropic.com/v1/models?limit=1000"
    assert call.headers["x-api-key"] == "sk-ant-test"


def start(**usage: int) -> dict:
    return {"type": "message_start", "message": {"id": "msg_1", "usage": usage}}


def test_input_usage_counts_cached_tokens_and_the_last_usage_has_everything():
    events = events_of(
        start(input_tokens=10, cache_read_input_tokens=90, output_tokens=1),
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 7},
        },
    )
    assert events == [
        Usage(input_tokens=100, output_tokens=1, cached_tokens=90),
        Usage(input_tokens=100, output_tokens=7, cached_tokens=90),
        Finish("stop", "end_turn"),
    ]


def test_stop_reasons_are_mapped():
    def finish(reason: str) -> Finish:
        delta = {"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {}}
        return events_of(start(input_tokens=1), delta)[-1]

    assert finish("stop_sequence") == Finish("stop", "stop_sequence")
    assert finish("max_tokens") == Finish("length", "max_tokens")
    assert finish("tool_use") == Finish("tool_calls", "tool_use")
    assert finish("refusal") == Finish("content_filter", "refusal")
    assert finish("pause_turn") == Finish("other", "pause_turn")


def test_blocks_give_text_reasoning_and_tool_calls():
    block = "content_block_delta"
    events = events_of(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
        {"type": block, "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}},
        {"type": block, "index": 0, "delta": {"type": "signature_delta", "signature": "x"}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": block, "index": 1, "delta": {"type": "text_delta", "text": "ok"}},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "t", "name": "f"},
        },
        {"type": block, "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        {"type": "ping"},
        {"type": "some_future_event"},
    )
    assert events == [
        ReasoningDelta("hm"),
        TextDelta("ok"),
        ToolCallDelta(0, "t", "f"),
        ToolCallDelta(0, arguments="{}"),
    ]


def test_an_overloaded_error_event_is_retryable():
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert events_of(error) == [
        StreamError("the provider reported an error: Overloaded", "overloaded_error", True)
    ]


def test_an_invalid_request_error_event_is_not_retryable():
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
    assert events_of(error)[0].retryable is False


def test_eof_before_message_stop_is_an_error():
    events = events_of(start(input_tokens=1), stop=False)
    assert events[-1] == StreamError("the upstream closed the stream before finishing", "truncated")


def test_events_without_event_lines_are_read_by_their_type():
    parser = PROTOCOL.new_parser()
    delta = b'{"type":"text_delta","text":"x"}'
    raw = b'data: {"type":"content_block_delta","index":0,"delta":%s}\n\n' % delta
    raw += b'data: {"type":"message_stop"}\n\n'
    assert parser.feed(raw) + parser.close() == [TextDelta("x")]


def test_an_unexpected_shape_is_an_error_not_a_crash():
    parser = PROTOCOL.new_parser()
    events = parser.feed(
        b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":[]}\n\n'
    )
    assert events == []
    events = parser.feed(b'event: message_start\ndata: {"type":"message_start","message":7}\n\n')
    assert all(not isinstance(event, StreamError) for event in events)
