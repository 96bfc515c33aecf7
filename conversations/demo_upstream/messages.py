"""Anthropic Messages: `POST /v1/messages`, streamed as `message_*` and `content_block_*` events."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from conversations.demo_upstream import reply
from conversations.demo_upstream.reply import Plan
from conversations.demo_upstream.request import (
    BadRequest,
    DemoRequest,
    count_tokens,
    decode_b64,
    measure,
    seed_of,
    text_of,
    want_int,
    want_model,
    want_stops,
)
from conversations.demo_upstream.wire import Endpoint, ErrorInfo, Frame, ident, sse

STOP_REASON = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool": "tool_use",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
CREDIT_MESSAGE = (
    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing"
    " to upgrade or purchase credits."
)
_TEXT_BLOCKS = ("text",)


def parse(body: dict[str, Any], raw: bytes) -> DemoRequest:
    model = want_model(body)
    max_tokens = want_int(body, "max_tokens")
    if max_tokens is None:
        raise BadRequest("max_tokens: Field required")
    messages = _messages(body.get("messages"))
    reasoning = _thinking(body.get("thinking"), max_tokens)
    last_user = next(m for m in reversed(messages) if m["role"] == "user")
    chars, images = measure(messages)
    system_chars, _ = measure(body.get("system"))
    return DemoRequest(
        model=model,
        body=body,
        seed=seed_of(raw),
        stream=body.get("stream") is True,
        user_text=text_of(last_user.get("content"), _TEXT_BLOCKS),
        images=_images(last_user.get("content")),
        input_tokens=count_tokens(chars + system_chars, images),
        ends_with_user=messages[-1]["role"] == "user" and not _has_tool_result(messages[-1]),
        reasoning=reasoning,
        max_tokens=max_tokens,
        stop=want_stops(body.get("stop_sequences"), "stop_sequences"),
    )


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise BadRequest("messages: at least one message is required")
    for number, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages.{number}.role: Input should be 'user' or 'assistant'")
    if value[0]["role"] != "user":
        raise BadRequest('messages: first message must use the "user" role')
    return value


def _thinking(value: Any, max_tokens: int) -> bool:
    if not isinstance(value, dict) or value.get("type") not in ("enabled", "adaptive"):
        return False
    if value["type"] == "adaptive":
        return True
    budget = value.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        raise BadRequest(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        )
    if max_tokens <= budget:
        raise BadRequest("`max_tokens` must be greater than `thinking.budget_tokens`.")
    return True


def _has_tool_result(message: dict[str, Any]) -> bool:
    content = message.get("content")
    blocks = content if isinstance(content, list) else []
    return any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks)


def _images(content: Any) -> tuple[bytes | None, ...]:
    blocks = content if isinstance(content, list) else []
    sources = [b.get("source") for b in blocks if isinstance(b, dict) and b.get("type") == "image"]
    return tuple(
        decode_b64(s.get("data")) if isinstance(s, dict) and s.get("type") == "base64" else None
        for s in sources
    )


def _message_id(request: DemoRequest) -> str:
    return ident(request.seed, "msg_01", 22)


def _tool_id(request: DemoRequest) -> str:
    return ident(request.seed, "toolu_01", 22, "tool")


def _signature(request: DemoRequest) -> str:
    digest = hashlib.sha512(f"{request.seed}:signature".encode()).digest()
    return base64.b64encode(digest * 2).decode()


def _usage(request: DemoRequest, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": request.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def _shell(request: DemoRequest) -> dict[str, Any]:
    return {
        "id": _message_id(request),
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(request, 1),
    }


class _Blocks:
    """Numbers the content blocks of one message and pings after the first opens."""

    def __init__(self) -> None:
        self.index = -1

    def start(self, block: dict[str, Any]) -> Iterator[Frame]:
        self.index += 1
        yield sse({"type": "content_block_start", "index": self.index, "content_block": block},
                  "content_block_start")  # fmt: skip
        if self.index == 0:
            yield sse({"type": "ping"}, "ping")

    def delta(self, delta: dict[str, Any], *, paced: bool = True) -> Frame:
        event = {"type": "content_block_delta", "index": self.index, "delta": delta}
        return sse(event, "content_block_delta", paced=paced)

    def stop(self) -> Frame:
        return sse({"type": "content_block_stop", "index": self.index}, "content_block_stop")


def stream(request: DemoRequest, plan: Plan) -> Iterator[Frame]:
    yield sse({"type": "message_start", "message": _shell(request)}, "message_start")
    blocks = _Blocks()
    if plan.reasoning:
        yield from _thinking_block(blocks, request, plan)
    if plan.kind == "tool":
        yield from _tool_block(blocks, request, plan)
    elif plan.pieces or not plan.reasoning:
        yield from _text_block(blocks, plan)
    if plan.cut:
        yield from _inband_error(request)
        return
    delta = {"stop_reason": STOP_REASON[plan.finish], "stop_sequence": plan.stop_sequence}
    usage = {"output_tokens": plan.output_tokens}
    yield sse({"type": "message_delta", "delta": delta, "usage": usage}, "message_delta")
    yield sse({"type": "message_stop"}, "message_stop")


def _thinking_block(blocks: _Blocks, request: DemoRequest, plan: Plan) -> Iterator[Frame]:
    yield from blocks.start({"type": "thinking", "thinking": "", "signature": ""})
    for piece in plan.reasoning:
        yield blocks.delta({"type": "thinking_delta", "thinking": piece})
    yield blocks.delta({"type": "signature_delta", "signature": _signature(request)}, paced=False)
    yield blocks.stop()


def _text_block(blocks: _Blocks, plan: Plan) -> Iterator[Frame]:
    yield from blocks.start({"type": "text", "text": ""})
    for piece in plan.pieces:
        yield blocks.delta({"type": "text_delta", "text": piece})
    if not plan.cut:
        yield blocks.stop()


def _tool_block(blocks: _Blocks, request: DemoRequest, plan: Plan) -> Iterator[Frame]:
    block = {"type": "tool_use", "id": _tool_id(request), "name": reply.TOOL_NAME, "input": {}}
    yield from blocks.start(block)
    yield blocks.delta({"type": "input_json_delta", "partial_json": ""}, paced=False)
    for piece in plan.pieces:
        yield blocks.delta({"type": "input_json_delta", "partial_json": piece})
    if not plan.cut:
        yield blocks.stop()


def _inband_error(request: DemoRequest) -> Iterator[Frame]:
    if request.fault is not None and request.fault.kind == "inband":
        error = {"type": "overloaded_error", "message": "Overloaded"}
        yield sse({"type": "error", "error": error}, "error")


def complete(request: DemoRequest, plan: Plan) -> dict[str, Any]:
    """The non-streamed `message` object."""
    content: list[dict[str, Any]] = []
    if plan.reasoning:
        thinking = plan.reasoning_text
        content.append({"type": "thinking", "thinking": thinking, "signature": _signature(request)})
    if plan.kind == "tool":
        content.append({"type": "tool_use", "id": _tool_id(request), "name": reply.TOOL_NAME,
                        "input": _tool_input(plan.text)})  # fmt: skip
    elif plan.pieces or not plan.reasoning:
        content.append({"type": "text", "text": plan.text})
    return {
        **_shell(request),
        "content": content,
        "stop_reason": STOP_REASON[plan.finish],
        "stop_sequence": plan.stop_sequence,
        "usage": _usage(request, plan.output_tokens),
    }


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def error_body(error: ErrorInfo) -> dict[str, Any]:
    kind = ERROR_TYPES.get(error.status) or (
        "invalid_request_error" if error.status < 500 else "api_error"
    )
    request_id = ident(seed_of(error.message.encode()), "req_011C", 20)
    return {
        "type": "error",
        "error": {"type": kind, "message": error.message},
        "request_id": request_id,
    }


QUOTA = ErrorInfo(400, CREDIT_MESSAGE, quota=True)
ENDPOINT = Endpoint(
    parse=parse,
    stream=stream,
    complete=complete,
    error_body=error_body,
    request_id_header=b"request-id",
    quota=QUOTA,
)
