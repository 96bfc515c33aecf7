"""OpenAI Responses: the request we build and the events we read."""

from __future__ import annotations

import json

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
from conversations.providers.openai_responses import PROTOCOL

PNG = ImagePart("image/png", "iVBORw0KGgo=")
CONFIG = ProviderConfig("openai-responses", "https://api.openai.com/v1", api_key="sk-test")
EVERY_PARAM = GenerationParams(
    max_tokens=256,
    temperature=0.2,
    top_p=0.9,
    stop=("END",),
    presence_penalty=0.5,
    frequency_penalty=0.5,
    seed=42,
    json_mode=True,
    reasoning_effort="medium",
    thinking_budget=2048,
)
REQUEST = ChatRequest(
    model="gpt-5-mini",
    system="You are terse.",
    turns=(
        Turn("user", "Hi"),
        Turn("assistant", "Hello!"),
        Turn("user", "What is in this picture?", (PNG,)),
    ),
    params=EVERY_PARAM,
)


def events_of(*payloads: dict) -> list:
    parser = PROTOCOL.new_parser()
    raw = "".join(f"event: {p['type']}\ndata: {json.dumps(p)}\n\n" for p in payloads)
    return parser.feed(raw.encode()) + parser.close()


def completed(**usage: object) -> dict:
    return {"type": "response.completed", "response": {"status": "completed", "usage": usage}}


def test_the_call_posts_to_responses_with_a_bearer_key():
    call = PROTOCOL.build_call(CONFIG, REQUEST)
    assert (call.method, call.url) == ("POST", "https://api.openai.com/v1/responses")
    assert call.headers["authorization"] == "Bearer sk-test"


def test_the_body_carries_instructions_history_image_and_supported_parameters():
    body = PROTOCOL.build_call(CONFIG, REQUEST).json
    assert body is not None
    assert body["model"] == "gpt-5-mini"
    assert body["instructions"] == "You are terse."
    assert body["input"] == [
        {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in this picture?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
            ],
        },
    ]
    assert body["max_output_tokens"] == 256
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert body["text"] == {"format": {"type": "json_object"}}
    assert body["stream"] is True
    assert body["store"] is False


def test_parameters_responses_lacks_are_not_sent():
    body = PROTOCOL.build_call(CONFIG, REQUEST).json
    assert body is not None
    for name in ("stop", "presence_penalty", "frequency_penalty", "seed", "max_tokens", "thinking"):
        assert name not in body


def test_unset_parameters_and_empty_system_are_left_out():
    request = ChatRequest(model="m", turns=(Turn("user", "Hi"), Turn("assistant", "")))
    assert PROTOCOL.build_call(CONFIG, request).json == {
        "model": "m",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
        "store": False,
        "stream": True,
    }


def test_completed_reports_usage_then_stop():
    events = events_of(
        {"type": "response.output_text.delta", "delta": "Hi"},
        completed(
            input_tokens=10,
            output_tokens=5,
            input_tokens_details={"cached_tokens": 4},
            output_tokens_details={"reasoning_tokens": 3},
        ),
    )
    assert events == [
        TextDelta("Hi"),
        Usage(input_tokens=10, output_tokens=5, reasoning_tokens=3, cached_tokens=4),
        Finish("stop", "completed"),
    ]


def test_a_function_call_makes_the_finish_tool_calls():
    item = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": ""}
    events = events_of(
        {"type": "response.output_item.added", "output_index": 1, "item": item},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "{}"},
        completed(),
    )
    assert events == [
        ToolCallDelta(0, "call_1", "f", ""),
        ToolCallDelta(0, arguments="{}"),
        Usage(),
        Finish("tool_calls", "completed"),
    ]


def test_reasoning_text_and_summaries_are_reasoning():
    events = events_of(
        {"type": "response.reasoning_text.delta", "delta": "a"},
        {"type": "response.reasoning_summary_part.added", "summary_index": 0},
        {"type": "response.reasoning_summary_text.delta", "delta": "b"},
        {"type": "response.reasoning_summary_part.added", "summary_index": 1},
        {"type": "response.reasoning_summary_text.delta", "delta": "c"},
        completed(),
    )
    assert events[:4] == [
        ReasoningDelta("a"),
        ReasoningDelta("b"),
        ReasoningDelta("\n\n"),
        ReasoningDelta("c"),
    ]


def test_incomplete_for_max_output_tokens_is_length():
    incomplete = {
        "type": "response.incomplete",
        "response": {"incomplete_details": {"reason": "max_output_tokens"}, "usage": {}},
    }
    assert events_of(incomplete)[-1] == Finish("length", "max_output_tokens")


def test_incomplete_for_another_reason_is_other_or_content_filter():
    def reason(raw: str) -> Finish:
        details = {"incomplete_details": {"reason": raw}}
        return events_of({"type": "response.incomplete", "response": details})[-1]

    assert reason("content_filter") == Finish("content_filter", "content_filter")
    assert reason("weird") == Finish("other", "weird")


def test_failed_is_an_error_with_its_code():
    error = {"code": "server_error", "message": "The model failed."}
    events = events_of({"type": "response.failed", "response": {"error": error}})
    assert events == [
        StreamError("the provider reported an error: The model failed.", "server_error", True)
    ]


def test_a_bare_error_event_is_an_error():
    events = events_of({"type": "error", "code": "invalid_prompt", "message": "No."})
    assert events == [StreamError("the provider reported an error: No.", "invalid_prompt", False)]


def test_a_done_line_from_a_gateway_is_tolerated():
    parser = PROTOCOL.new_parser()
    raw = f"data: {json.dumps(completed())}\n\ndata: [DONE]\n\n".encode()
    assert parser.feed(raw) + parser.close() == [Usage(), Finish("stop", "completed")]


def test_eof_without_a_terminal_event_is_an_error():
    events = events_of({"type": "response.output_text.delta", "delta": "x"})
    assert events[-1] == StreamError("the upstream closed the stream before finishing", "truncated")
