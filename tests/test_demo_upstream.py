"""The offline demo upstream, driven over real HTTP in each of its three wire protocols."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from conversations.demo_upstream import DemoUpstream, make_app
from conversations.demo_upstream.reply import split_pieces
from tests.upstream import AsgiServer, chat_completion_stream

PREFIX = "/demo-upstream"
HELLO = "Hello there, demo! Tell me about streaming."
TIMES = "\u00d7"  # the multiplication sign between width and height


# --- Helpers ------------------------------------------------------------------------


class Demo:
    """The demo app on a real port, with a client and a record of disconnects."""

    def __init__(self, token_delay: float = 0.0) -> None:
        self.disconnected = threading.Event()
        self.app: DemoUpstream = make_app(
            token_delay=token_delay, on_disconnect=self.disconnected.set
        )
        self.server = AsgiServer(self.app)
        self.base = f"{self.server.url}{PREFIX}/v1"
        self.client = httpx.Client(timeout=10)

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.client.post(f"{self.base}/{path}", json=body, **kwargs)

    def events(self, path: str, body: dict[str, Any]) -> list[tuple[str | None, str]]:
        response = self.post(path, {**body, "stream": True})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        return parse_sse(response.content)

    def close(self) -> None:
        self.client.close()
        self.server.close()


@pytest.fixture
def demo() -> Iterator[Demo]:
    running = Demo()
    yield running
    running.close()
    assert running.server.errors == []


def parse_sse(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) pairs, parsed by hand as a strict client would."""
    events = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        if data:
            events.append((name, "\n".join(data)))
    return events


def chat_body(content: Any = HELLO, **extra: Any) -> dict[str, Any]:
    return {"model": "demo", "messages": [{"role": "user", "content": content}], **extra}


def messages_body(content: Any = HELLO, **extra: Any) -> dict[str, Any]:
    return {
        "model": "demo",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": content}],
        **extra,
    }


def responses_body(content: Any = HELLO, **extra: Any) -> dict[str, Any]:
    return {"model": "demo", "input": [{"role": "user", "content": content}], **extra}


def chat_chunks(events: list[tuple[str | None, str]]) -> list[dict[str, Any]]:
    assert events[-1] == (None, "[DONE]")
    return [json.loads(data) for _, data in events[:-1]]


def chat_text(chunks: list[dict[str, Any]], key: str = "content") -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


def typed(events: list[tuple[str | None, str]]) -> list[dict[str, Any]]:
    """Anthropic and Responses events: the SSE name always equals the JSON `type`."""
    payloads = [json.loads(data) for _, data in events]
    assert [name for name, _ in events] == [p["type"] for p in payloads]
    return payloads


def deltas(payloads: list[dict[str, Any]], kind: str, field: str = "delta") -> list[str]:
    return [p[field] for p in payloads if p["type"] == kind]


def block_deltas(payloads: list[dict[str, Any]], kind: str, field: str) -> list[str]:
    found = [p["delta"] for p in payloads if p["type"] == "content_block_delta"]
    return [d[field] for d in found if d["type"] == kind]


def png_data_url(width: int = 640, height: int = 480) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def input_tokens(*texts: str, images: int = 0) -> int:
    return math.ceil(sum(len(t) for t in texts) / 4) + 85 * images


# --- OpenAI Chat Completions ---------------------------------------------------------


def test_chat_stream_is_well_formed_and_ends_with_done(demo: Demo) -> None:
    chunks = chat_chunks(
        demo.events("chat/completions", chat_body(stream_options={"include_usage": True}))
    )
    first, *middle, finish, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert {c["id"] for c in chunks} == {first["id"]}
    assert first["id"].startswith("chatcmpl-")
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert all(c["choices"][0]["finish_reason"] is None for c in middle)
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == len(middle)
    assert usage["usage"]["prompt_tokens"] == input_tokens(HELLO)
    assert usage["usage"]["total_tokens"] == len(middle) + input_tokens(HELLO)
    assert 150 <= len(middle) <= 250


def test_chat_reply_is_rich_markdown_quoting_the_user(demo: Demo) -> None:
    text = chat_text(chat_chunks(demo.events("chat/completions", chat_body())))
    assert text.startswith("## ")
    assert f'"{HELLO}"' in text
    assert "\n- " in text
    assert "| --- | --- |" in text
    assert "```python\n" in text
    assert "`demo`" in text


def test_chat_pieces_are_small_and_token_like(demo: Demo) -> None:
    chunks = chat_chunks(demo.events("chat/completions", chat_body()))
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert max(len(p) for p in pieces) <= 6
    assert 2 <= sum(len(p) for p in pieces) / len(pieces) <= 5


def test_same_request_gives_the_same_reply(demo: Demo) -> None:
    first = chat_text(chat_chunks(demo.events("chat/completions", chat_body())))
    again = chat_text(chat_chunks(demo.events("chat/completions", chat_body())))
    other = chat_text(chat_chunks(demo.events("chat/completions", chat_body("Something else"))))
    assert first == again
    assert first != other


def test_chat_long_messages_are_quoted_in_part(demo: Demo) -> None:
    text = chat_text(chat_chunks(demo.events("chat/completions", chat_body("word " * 100))))
    assert '"' + ("word " * 24).strip() + "…" in text


def test_chat_usage_chunk_only_when_asked(demo: Demo) -> None:
    chunks = chat_chunks(demo.events("chat/completions", chat_body()))
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_chat_chunks_are_laid_out_like_openai(demo: Demo) -> None:
    """Same keys in the same order as the recorded-shape helper the other tests use."""
    body = chat_body(stream_options={"include_usage": True, "include_obfuscation": False})
    response = demo.post("chat/completions", {**body, "stream": True})
    reference = chat_completion_stream(["Hi"], usage={"prompt_tokens": 1})
    ours = [json.loads(d) for _, d in parse_sse(response.content)[:-1]]
    theirs = [json.loads(d) for _, d in parse_sse(b"".join(reference))[:-1]]
    assert [list(c) for c in ours[:2]] == [list(c) for c in theirs[:2]]
    assert list(ours[-1]) == list(theirs[-1])
    assert response.content.startswith(b'data: {"id":"chatcmpl-')
    assert response.content.endswith(b"}\n\ndata: [DONE]\n\n")


def test_chat_without_stream_answers_one_completion(demo: Demo) -> None:
    response = demo.post("chat/completions", chat_body())
    body = response.json()
    assert response.headers["content-type"] == "application/json"
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"].startswith("## ")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == len(
        split_pieces(body["choices"][0]["message"]["content"])
    )


def test_chat_reasoning_effort_streams_reasoning_content_first(demo: Demo) -> None:
    body = chat_body(reasoning_effort="high", stream_options={"include_usage": True})
    chunks = chat_chunks(demo.events("chat/completions", body))
    kinds = [
        "reasoning" if c["choices"][0]["delta"].get("reasoning_content") else "content"
        for c in chunks
        if c["choices"]
        and c["choices"][0]["delta"].get(
            "reasoning_content", c["choices"][0]["delta"].get("content")
        )
    ]
    assert kinds == sorted(kinds, reverse=True)  # all reasoning, then all content
    reasoning = [
        c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("reasoning_content")
    ]
    assert all(c["choices"][0]["delta"]["content"] is None for c in reasoning)
    assert 30 <= len(reasoning) <= 60
    details = chunks[-1]["usage"]["completion_tokens_details"]
    assert details["reasoning_tokens"] == len(reasoning)
    assert chunks[-1]["usage"]["completion_tokens"] > len(reasoning)


def test_chat_json_mode_streams_a_json_object(demo: Demo) -> None:
    body = chat_body("Give me JSON", response_format={"type": "json_object"})
    chunks = chat_chunks(demo.events("chat/completions", body))
    answer = json.loads(chat_text(chunks))
    assert answer["echo"] == "Give me JSON"
    assert isinstance(answer["items"], list)
    assert len(chunks) > 10


def test_chat_max_tokens_stops_with_length(demo: Demo) -> None:
    body = chat_body(max_completion_tokens=7, stream_options={"include_usage": True})
    chunks = chat_chunks(demo.events("chat/completions", body))
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 7
    assert len(chat_text(chunks)) > 0


def test_chat_stop_sequence_cuts_before_it(demo: Demo) -> None:
    chunks = chat_chunks(demo.events("chat/completions", chat_body(stop=["| --- |"])))
    text = chat_text(chunks)
    assert "| Protocol | Path |" in text
    assert "---" not in text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_chat_tool_trigger_streams_a_tool_call(demo: Demo) -> None:
    chunks = chat_chunks(demo.events("chat/completions", chat_body("Weather please /tool")))
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"][0]["delta"].get("tool_calls")
    ]
    assert calls[0]["id"].startswith("call_")
    assert calls[0]["function"]["name"] == "get_weather"
    assert all("id" not in c and "name" not in c["function"] for c in calls[1:])
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert json.loads(arguments) == {"city": "Paris", "unit": "celsius"}
    assert len(calls) > 3
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_chat_tool_result_gets_a_text_answer(demo: Demo) -> None:
    body = chat_body("Weather please /tool")
    body["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees"},
    ]  # fmt: skip
    chunks = chat_chunks(demo.events("chat/completions", body))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chat_text(chunks).startswith("## ")


def test_chat_image_is_decoded_and_reported(demo: Demo) -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": png_data_url()}},
    ]
    body = chat_body(parts, stream_options={"include_usage": True})
    chunks = chat_chunks(demo.events("chat/completions", body))
    assert chat_text(chunks).startswith(f"I received 1 image: PNG, 640{TIMES}480.\n")
    assert chunks[-1]["usage"]["prompt_tokens"] == input_tokens("What is this?", images=1)


def test_chat_unreadable_images_are_reported_as_such(demo: Demo) -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    text = chat_text(chat_chunks(demo.events("chat/completions", chat_body(parts))))
    assert text.startswith(
        "I received 2 images: an image I could not read; an image I could not read."
    )


def test_chat_stream_options_need_stream(demo: Demo) -> None:
    response = demo.post("chat/completions", chat_body(stream_options={"include_usage": True}))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream_options"


# --- Anthropic Messages --------------------------------------------------------------


def test_messages_stream_follows_the_event_grammar(demo: Demo) -> None:
    payloads = typed(demo.events("messages", messages_body(system="Be brief.")))
    types = [p["type"] for p in payloads]
    texts = block_deltas(payloads, "text_delta", "text")
    assert types == [
        "message_start", "content_block_start", "ping", *["content_block_delta"] * len(texts),
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    message = payloads[0]["message"]
    assert message["id"].startswith("msg_")
    assert message["content"] == []
    assert message["usage"]["input_tokens"] == input_tokens(HELLO, "Be brief.")
    assert payloads[1]["content_block"] == {"type": "text", "text": ""}
    assert payloads[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert payloads[-2]["usage"] == {"output_tokens": len(texts)}
    assert "".join(texts).startswith("## ")


def test_messages_require_max_tokens(demo: Demo) -> None:
    body = messages_body()
    del body["max_tokens"]
    response = demo.post("messages", body)
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in response.json()["error"]["message"]
    assert response.headers["request-id"] == response.json()["request_id"]


def test_messages_must_start_with_a_user_turn(demo: Demo) -> None:
    body = messages_body()
    body["messages"].insert(0, {"role": "assistant", "content": "Hi"})
    response = demo.post("messages", body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_messages_thinking_block_comes_before_the_text(demo: Demo) -> None:
    body = messages_body(thinking={"type": "enabled", "budget_tokens": 1024})
    payloads = typed(demo.events("messages", body))
    starts = [p for p in payloads if p["type"] == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["thinking", "text"]
    assert [s["index"] for s in starts] == [0, 1]
    thinking = block_deltas(payloads, "thinking_delta", "thinking")
    signatures = block_deltas(payloads, "signature_delta", "signature")
    assert len(thinking) >= 30
    assert len(signatures) == 1
    signature_at = next(
        i for i, p in enumerate(payloads) if p.get("delta", {}).get("type") == "signature_delta"
    )
    assert payloads[signature_at + 1] == {"type": "content_block_stop", "index": 0}
    texts = block_deltas(payloads, "text_delta", "text")
    assert payloads[-2]["usage"]["output_tokens"] == len(thinking) + len(texts)


def test_messages_thinking_budget_is_validated(demo: Demo) -> None:
    body = messages_body(thinking={"type": "enabled", "budget_tokens": 100})
    assert demo.post("messages", body).status_code == 400


def test_messages_tool_trigger_streams_tool_use(demo: Demo) -> None:
    payloads = typed(demo.events("messages", messages_body("/tool weather")))
    start = next(p for p in payloads if p["type"] == "content_block_start")
    assert start["content_block"]["type"] == "tool_use"
    assert start["content_block"]["name"] == "get_weather"
    assert start["content_block"]["input"] == {}
    assert start["content_block"]["id"].startswith("toolu_")
    partial = block_deltas(payloads, "input_json_delta", "partial_json")
    assert json.loads("".join(partial)) == {"city": "Paris", "unit": "celsius"}
    assert payloads[-2]["delta"]["stop_reason"] == "tool_use"
    assert payloads[-2]["usage"]["output_tokens"] == len([p for p in partial if p])


def test_messages_image_block_is_reported(demo: Demo) -> None:
    data = png_data_url(32, 16).split(",", 1)[1]
    blocks = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
        {"type": "text", "text": "Look"},
    ]
    payloads = typed(demo.events("messages", messages_body(blocks)))
    assert "".join(block_deltas(payloads, "text_delta", "text")).startswith(
        f"I received 1 image: PNG, 32{TIMES}16."
    )
    assert payloads[0]["message"]["usage"]["input_tokens"] == input_tokens("Look", images=1)


def test_messages_stop_sequence_is_reported(demo: Demo) -> None:
    payloads = typed(demo.events("messages", messages_body(stop_sequences=["```"])))
    assert "```" not in "".join(block_deltas(payloads, "text_delta", "text"))
    assert payloads[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "```"}


def test_messages_max_tokens_stops_the_answer(demo: Demo) -> None:
    payloads = typed(demo.events("messages", messages_body(max_tokens=5)))
    assert len(block_deltas(payloads, "text_delta", "text")) == 5
    assert payloads[-2]["delta"]["stop_reason"] == "max_tokens"
    assert payloads[-2]["usage"]["output_tokens"] == 5


def test_messages_without_stream_answer_one_message(demo: Demo) -> None:
    body = demo.post("messages", messages_body("/tool")).json()
    assert body["type"] == "message"
    assert body["stop_reason"] == "tool_use"
    assert body["content"][0]["input"] == {"city": "Paris", "unit": "celsius"}


# --- OpenAI Responses ---------------------------------------------------------------


def test_responses_stream_follows_the_event_grammar(demo: Demo) -> None:
    payloads = typed(demo.events("responses", responses_body(instructions="Be brief.")))
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    texts = deltas(payloads, "response.output_text.delta")
    assert [p["type"] for p in payloads] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", *["response.output_text.delta"] * len(texts),
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    final = payloads[-1]["response"]
    assert final["status"] == "completed"
    assert final["id"] == payloads[0]["response"]["id"]
    assert final["output"][0]["content"][0]["text"] == "".join(texts)
    assert deltas(payloads, "response.output_text.done", "text") == ["".join(texts)]
    assert final["usage"]["output_tokens"] == len(texts)
    assert final["usage"]["input_tokens"] == input_tokens(HELLO, "Be brief.")
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 0}


def test_responses_accept_a_plain_string_input(demo: Demo) -> None:
    payloads = typed(demo.events("responses", {"model": "demo", "input": HELLO}))
    assert f'"{HELLO}"' in "".join(deltas(payloads, "response.output_text.delta"))


def test_responses_reasoning_item_comes_first(demo: Demo) -> None:
    body = responses_body(reasoning={"effort": "low", "summary": "auto"})
    payloads = typed(demo.events("responses", body))
    added = [p["item"]["type"] for p in payloads if p["type"] == "response.output_item.added"]
    assert added == ["reasoning", "message"]
    summary = deltas(payloads, "response.reasoning_summary_text.delta")
    assert len(summary) >= 30
    first_text = next(
        i for i, p in enumerate(payloads) if p["type"] == "response.output_text.delta"
    )
    last_summary = max(
        i for i, p in enumerate(payloads) if p["type"] == "response.reasoning_summary_text.delta"
    )
    assert last_summary < first_text
    usage = payloads[-1]["response"]["usage"]
    assert usage["output_tokens_details"]["reasoning_tokens"] == len(summary)
    assert usage["output_tokens"] == len(summary) + len(
        deltas(payloads, "response.output_text.delta")
    )


def test_responses_json_mode_streams_a_json_object(demo: Demo) -> None:
    body = responses_body("JSON please", text={"format": {"type": "json_object"}})
    payloads = typed(demo.events("responses", body))
    assert (
        json.loads("".join(deltas(payloads, "response.output_text.delta")))["echo"] == "JSON please"
    )


def test_responses_max_output_tokens_ends_incomplete(demo: Demo) -> None:
    payloads = typed(demo.events("responses", responses_body(max_output_tokens=16)))
    assert len(deltas(payloads, "response.output_text.delta")) == 16
    final = payloads[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["usage"]["output_tokens"] == 16


def test_responses_tool_trigger_streams_a_function_call(demo: Demo) -> None:
    payloads = typed(demo.events("responses", responses_body("/tool")))
    item = next(p["item"] for p in payloads if p["type"] == "response.output_item.added")
    assert item["type"] == "function_call"
    assert item["name"] == "get_weather"
    arguments = "".join(deltas(payloads, "response.function_call_arguments.delta"))
    assert json.loads(arguments) == {"city": "Paris", "unit": "celsius"}
    assert deltas(payloads, "response.function_call_arguments.done", "arguments") == [arguments]
    assert payloads[-1]["response"]["output"][0]["call_id"] == item["call_id"]


def test_responses_input_image_is_reported(demo: Demo) -> None:
    parts = [
        {"type": "input_text", "text": "See"},
        {"type": "input_image", "image_url": png_data_url(8, 8)},
    ]
    payloads = typed(demo.events("responses", responses_body(parts)))
    assert "".join(deltas(payloads, "response.output_text.delta")).startswith(
        f"I received 1 image: PNG, 8{TIMES}8."
    )


def test_responses_without_stream_answer_the_final_response(demo: Demo) -> None:
    body = demo.post("responses", responses_body()).json()
    assert body["object"] == "response"
    assert body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"].startswith("## ")


# --- Models, routing and bad requests ------------------------------------------------


def test_models_lists_the_demo_models(demo: Demo) -> None:
    body = demo.client.get(f"{demo.base}/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["demo", "demo-vision", "demo-reasoning"]
    assert all(m["object"] == "model" and m["display_name"] and m["owned_by"] for m in body["data"])


def test_unknown_path_is_a_json_404(demo: Demo) -> None:
    response = demo.client.post(f"{demo.base}/embeddings", json={})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"Invalid URL (POST {PREFIX}/v1/embeddings)"


def test_wrong_method_is_refused(demo: Demo) -> None:
    assert demo.client.get(f"{demo.base}/chat/completions").status_code == 405


@pytest.mark.parametrize(
    ("path", "shape"),
    [("chat/completions", "openai"), ("messages", "anthropic"), ("responses", "openai")],
)
def test_bad_json_is_a_400_in_the_protocols_shape(demo: Demo, path: str, shape: str) -> None:
    response = demo.client.post(
        f"{demo.base}/{path}", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    body = response.json()
    if shape == "anthropic":
        assert body["type"] == "error"
        assert body["error"]["type"] == "invalid_request_error"
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}


def test_api_keys_are_accepted_and_never_echoed(demo: Demo) -> None:
    secret = "sk-demo-SECRET-0123456789"
    headers = {"authorization": f"Bearer {secret}", "x-api-key": secret}
    for path, body in [("chat/completions", chat_body()), ("messages", messages_body())]:
        response = demo.post(path, {**body, "stream": True}, headers=headers)
        assert response.status_code == 200
        assert secret not in response.text
        assert secret not in str(response.headers)


# --- Fault triggers ------------------------------------------------------------------

BODIES = {"chat/completions": chat_body, "messages": messages_body, "responses": responses_body}


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize(
    ("status", "retry_after"), [(429, "1"), (503, "1"), (529, "1"), (400, None)]
)
def test_error_trigger_answers_that_status(
    demo: Demo, path: str, status: int, retry_after: str | None
) -> None:
    response = demo.post(path, {**BODIES[path](f"fail [demo:error={status}]"), "stream": True})
    assert response.status_code == status
    assert response.headers.get("retry-after") == retry_after
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if path == "messages":
        expected = {
            429: "rate_limit_error",
            503: "api_error",
            529: "overloaded_error",
            400: "invalid_request_error",
        }
        assert body["type"] == "error"
        assert body["error"]["type"] == expected[status]
    else:
        assert body["error"]["message"]


def test_quota_trigger_is_a_spend_limit_error(demo: Demo) -> None:
    openai = demo.post("chat/completions", chat_body("[demo:quota]"))
    assert openai.status_code == 429
    assert "retry-after" not in openai.headers
    assert openai.json()["error"]["code"] == "insufficient_quota"
    anthropic = demo.post("messages", messages_body("[demo:quota]"))
    assert anthropic.status_code == 400
    assert "credit balance" in anthropic.json()["error"]["message"]


def test_drop_ends_chat_stream_without_done(demo: Demo) -> None:
    events = demo.events("chat/completions", chat_body("[demo:drop]"))
    assert (None, "[DONE]") not in events
    chunks = [json.loads(d) for _, d in events]
    assert len(chunks) == 11  # the role chunk, then ten pieces
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


def test_drop_ends_messages_stream_without_message_stop(demo: Demo) -> None:
    payloads = typed(demo.events("messages", messages_body("[demo:drop]")))
    assert len(block_deltas(payloads, "text_delta", "text")) == 10
    assert payloads[-1]["type"] == "content_block_delta"


def test_drop_ends_responses_stream_without_a_terminal_event(demo: Demo) -> None:
    payloads = typed(demo.events("responses", responses_body("[demo:drop]")))
    assert len(deltas(payloads, "response.output_text.delta")) == 10
    assert payloads[-1]["type"] == "response.output_text.delta"


def test_inband_error_in_chat_is_an_error_chunk(demo: Demo) -> None:
    events = demo.events("chat/completions", chat_body("[demo:inband-error]"))
    last = json.loads(events[-1][1])
    assert set(last) == {"error"}
    assert last["error"]["type"] == "server_error"
    assert len(events) == 12


def test_inband_error_in_messages_is_an_overloaded_error_event(demo: Demo) -> None:
    events = demo.events("messages", messages_body("[demo:inband-error]"))
    assert events[-1][0] == "error"
    assert json.loads(events[-1][1]) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_inband_error_in_responses_is_response_failed(demo: Demo) -> None:
    payloads = typed(demo.events("responses", responses_body("[demo:inband-error]")))
    assert payloads[-1]["type"] == "response.failed"
    assert payloads[-1]["response"]["status"] == "failed"
    assert payloads[-1]["response"]["error"]["code"] == "server_error"


def test_hang_sends_headers_then_nothing_until_the_client_leaves() -> None:
    demo = Demo()
    try:
        timeout = httpx.Timeout(5, read=0.3)
        with demo.client.stream(
            "POST",
            f"{demo.base}/chat/completions",
            json=chat_body("[demo:hang]", stream=True),
            timeout=timeout,
        ) as response:
            assert response.status_code == 200
            with pytest.raises(httpx.ReadTimeout):
                response.read()
        assert demo.disconnected.wait(5)
        assert demo.app.disconnects == 1
    finally:
        demo.close()


def test_client_disconnect_stops_the_stream_promptly() -> None:
    demo = Demo(token_delay=0.05)  # a whole reply would take about ten seconds
    try:
        started = time.monotonic()
        with demo.client.stream(
            "POST", f"{demo.base}/messages", json=messages_body(stream=True)
        ) as response:
            lines = response.iter_lines()
            assert any("text_delta" in next(lines) for _ in range(20))
        assert demo.disconnected.wait(2)
        assert time.monotonic() - started < 3
        assert demo.app.disconnects == 1
        assert demo.server.errors == []
    finally:
        demo.close()


def test_finished_streams_are_not_counted_as_disconnects(demo: Demo) -> None:
    demo.events("chat/completions", chat_body())
    assert demo.app.disconnects == 0


async def test_a_send_that_raises_counts_as_a_disconnect() -> None:
    app = make_app(token_delay=0)
    sent: list[MutableMapping[str, Any]] = []
    body = json.dumps(chat_body(stream=True)).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        if len(sent) == 5:
            raise OSError("client went away")
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": f"{PREFIX}/v1/chat/completions",
        "headers": [],
    }
    await asyncio.wait_for(app(scope, receive, send), 2)
    assert app.disconnects == 1
    assert len(sent) == 5


async def test_lifespan_is_acknowledged() -> None:
    inbox = [{"type": "lifespan.shutdown"}, {"type": "lifespan.startup"}]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop()

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await make_app()({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# --- Pieces and packaging ------------------------------------------------------------


@given(st.text())
def test_pieces_join_back_into_the_text(text: str) -> None:
    assert "".join(split_pieces(text)) == text


JSON_KEYS = ["type", "text", "url", "image_url", "source", "data", "role", "content", "effort",
             "summary", "format", "budget_tokens", "include_usage", "media_type"]  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(JSON_KEYS), inner, max_size=3)
    ),
    max_leaves=8,
)
turns = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "tool", "system"])},
        optional={"content": json_values},
    ),
    max_size=3,
)
OPTIONAL_FIELDS = ["stream", "stop", "stop_sequences", "thinking", "reasoning", "reasoning_effort",
                   "response_format", "text", "stream_options", "system", "instructions",
                   "max_tokens", "max_output_tokens", "max_completion_tokens"]  # fmt: skip
bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["demo", ""])},
    optional={
        "messages": turns,
        "input": turns | st.text(),
        **dict.fromkeys(OPTIONAL_FIELDS, json_values),
    },
)


@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(list(BODIES)), body=bodies)
def test_odd_bodies_get_an_answer_or_a_400_never_a_crash(path: str, body: dict[str, Any]) -> None:
    reply = make_app().answer("POST", f"{PREFIX}/v1/{path}", json.dumps(body).encode())
    assert reply.status in (200, 400) or b"[demo:" in json.dumps(body).encode()
    frames = list(reply.frames or ())
    assert all(frame.data.endswith(b"\n\n") for frame in frames)


def test_the_demo_does_not_import_django() -> None:
    code = (
        "import sys, conversations.demo_upstream;"
        "print(any(m.startswith('django') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
