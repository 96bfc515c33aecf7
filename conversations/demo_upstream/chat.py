"""OpenAI Chat Completions: `POST /v1/chat/completions`, streamed as `chat.completion.chunk`s."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from conversations.demo_upstream import reply
from conversations.demo_upstream.reply import Plan
from conversations.demo_upstream.request import (
    BadRequest,
    DemoRequest,
    as_dict,
    count_tokens,
    decode_data_url,
    measure,
    seed_of,
    text_of,
    want_int,
    want_model,
    want_stops,
)
from conversations.demo_upstream.wire import (
    Endpoint,
    ErrorInfo,
    Frame,
    ident,
    now,
    obfuscation,
    sse,
)

FINGERPRINT = "fp_d3m0c0ffee"
FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool": "tool_calls"}
_TEXT_PARTS = ("text",)


def parse(body: dict[str, Any], raw: bytes) -> DemoRequest:
    model = want_model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("[] is too short - 'messages'", "messages")
    if not all(isinstance(m, dict) for m in messages):
        raise BadRequest("Invalid type for 'messages': expected an array of objects.", "messages")
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        raise BadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    return _request(body, raw, model, messages, as_dict(options))


def _request(
    body: dict[str, Any], raw: bytes, model: str, messages: list[Any], options: dict[str, Any]
) -> DemoRequest:
    users = [m for m in messages if m.get("role") == "user"]
    last = users[-1] if users else {}
    chars, images = measure(messages)
    format_type = as_dict(body.get("response_format")).get("type")
    return DemoRequest(
        model=model,
        body=body,
        seed=seed_of(raw),
        stream=body.get("stream") is True,
        user_text=text_of(last.get("content"), _TEXT_PARTS),
        images=_images(last.get("content")),
        input_tokens=count_tokens(chars, images),
        ends_with_user=messages[-1].get("role") == "user",
        reasoning=body.get("reasoning_effort") not in (None, "none"),
        json_mode=format_type in ("json_object", "json_schema"),
        max_tokens=want_int(body, "max_completion_tokens", "max_tokens"),
        stop=want_stops(body.get("stop"), "stop"),
        include_usage=options.get("include_usage") is True,
        obfuscate=options.get("include_obfuscation", True) is not False,
    )


def _images(content: Any) -> tuple[bytes | None, ...]:
    if not isinstance(content, list):
        return ()
    parts = [p for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
    urls = [p.get("image_url") for p in parts]
    return tuple(decode_data_url(u.get("url") if isinstance(u, dict) else u) for u in urls)


def usage(request: DemoRequest, plan: Plan) -> dict[str, Any]:
    return {
        "prompt_tokens": request.input_tokens,
        "completion_tokens": plan.output_tokens,
        "total_tokens": request.input_tokens + plan.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": len(plan.reasoning),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class _Chunks:
    """Builds the chunks of one completion: same id, created and model on each."""

    def __init__(self, request: DemoRequest) -> None:
        self.request = request
        self.head = {
            "id": ident(request.seed, "chatcmpl-", 29),
            "object": "chat.completion.chunk",
            "created": now(),
            "model": request.model,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }

    def choice(self, delta: dict[str, Any], finish: str | None = None, piece: str = "") -> Frame:
        chunk: dict[str, Any] = {
            **self.head,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.request.include_usage:
            chunk["usage"] = None
        if piece and self.request.obfuscate:
            chunk["obfuscation"] = obfuscation(piece)
        return sse(chunk, paced=bool(piece))

    def usage(self, plan: Plan) -> Frame:
        return sse({**self.head, "choices": [], "usage": usage(self.request, plan)})


def stream(request: DemoRequest, plan: Plan) -> Iterator[Frame]:
    chunks = _Chunks(request)
    yield from _reasoning(chunks, plan)
    yield from (_tool_call if plan.kind == "tool" else _answer)(chunks, plan)
    if plan.cut:
        yield from _inband_error(request)
        return
    yield chunks.choice({}, FINISH[plan.finish])
    if request.include_usage:
        yield chunks.usage(plan)
    yield sse("[DONE]")


def _reasoning(chunks: _Chunks, plan: Plan) -> Iterator[Frame]:
    if not plan.reasoning:
        return
    yield chunks.choice({"role": "assistant", "content": None, "reasoning_content": ""})
    for piece in plan.reasoning:
        yield chunks.choice({"content": None, "reasoning_content": piece}, piece=piece)


def _answer(chunks: _Chunks, plan: Plan) -> Iterator[Frame]:
    if not plan.reasoning:
        yield chunks.choice({"role": "assistant", "content": "", "refusal": None})
    for piece in plan.pieces:
        delta = (
            {"content": piece, "reasoning_content": None} if plan.reasoning else {"content": piece}
        )
        yield chunks.choice(delta, piece=piece)


def _tool_call(chunks: _Chunks, plan: Plan) -> Iterator[Frame]:
    call = {
        "index": 0,
        "id": ident(chunks.request.seed, "call_", 24, "tool"),
        "type": "function",
        "function": {"name": reply.TOOL_NAME, "arguments": ""},
    }
    opening = {} if plan.reasoning else {"role": "assistant", "content": None}
    yield chunks.choice({**opening, "tool_calls": [call], "refusal": None})
    for piece in plan.pieces:
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        yield chunks.choice(delta, piece=piece)


def _inband_error(request: DemoRequest) -> Iterator[Frame]:
    if request.fault is not None and request.fault.kind == "inband":
        message = "The server had an error while processing your request. Sorry about that!"
        yield sse(
            {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        )


def complete(request: DemoRequest, plan: Plan) -> dict[str, Any]:
    """The non-streamed `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": plan.text, "refusal": None}
    if plan.kind == "tool":
        message["content"] = None
        message["tool_calls"] = [_full_call(request, plan)]
    if plan.reasoning:
        message["reasoning_content"] = plan.reasoning_text
    message["annotations"] = []
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": FINISH[plan.finish],
    }
    return {
        "id": ident(request.seed, "chatcmpl-", 29),
        "object": "chat.completion",
        "created": now(),
        "model": request.model,
        "choices": [choice],
        "usage": usage(request, plan),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def _full_call(request: DemoRequest, plan: Plan) -> dict[str, Any]:
    function = {"name": reply.TOOL_NAME, "arguments": plan.text}
    return {
        "id": ident(request.seed, "call_", 24, "tool"),
        "type": "function",
        "function": function,
    }


def error_body(error: ErrorInfo) -> dict[str, Any]:
    kind, code = _error_kind(error)
    return {"error": {"message": error.message, "type": kind, "param": error.param, "code": code}}


def _error_kind(error: ErrorInfo) -> tuple[str, str | None]:
    if error.quota:
        return "insufficient_quota", "insufficient_quota"
    if error.status == 401:
        return "invalid_request_error", "invalid_api_key"
    if error.status == 429:
        return "requests", "rate_limit_exceeded"
    if error.status >= 500:
        return "server_error", None
    return "invalid_request_error", None


ENDPOINT = Endpoint(parse=parse, stream=stream, complete=complete, error_body=error_body)
