"""OpenAI Responses: `POST /v1/responses`, streamed as numbered `response.*` events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from conversations.demo_upstream import reply
from conversations.demo_upstream.chat import error_body
from conversations.demo_upstream.reply import Plan
from conversations.demo_upstream.request import (
    DemoRequest,
    as_dict,
    count_tokens,
    decode_data_url,
    measure,
    seed_of,
    text_of,
    want_int,
    want_model,
)
from conversations.demo_upstream.wire import Endpoint, Frame, ident, now, obfuscation, sse

_TEXT_PARTS = ("input_text", "output_text", "text")
FAILED_MESSAGE = "An error occurred while processing your request. Please try again."


def parse(body: dict[str, Any], raw: bytes) -> DemoRequest:
    model = want_model(body)
    items = _items(body.get("input"))
    users = [i for i in items if i.get("role") == "user"]
    last = users[-1] if users else {}
    chars, images = measure(items)
    instruction_chars, _ = measure(body.get("instructions"))
    reasoning = as_dict(body.get("reasoning"))
    format_type = as_dict(as_dict(body.get("text")).get("format")).get("type")
    return DemoRequest(
        model=model,
        body=body,
        seed=seed_of(raw),
        stream=body.get("stream") is True,
        user_text=text_of(last.get("content"), _TEXT_PARTS),
        images=_images(last.get("content")),
        input_tokens=count_tokens(chars + instruction_chars, images),
        ends_with_user=bool(items) and items[-1].get("role") == "user",
        reasoning=reasoning.get("effort") not in (None, "none"),
        json_mode=format_type in ("json_object", "json_schema"),
        max_tokens=want_int(body, "max_output_tokens"),
        obfuscate=as_dict(body.get("stream_options")).get("include_obfuscation") is not False,
    )


def _items(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [i for i in value if isinstance(i, dict)] if isinstance(value, list) else []


def _images(content: Any) -> tuple[bytes | None, ...]:
    parts = content if isinstance(content, list) else []
    urls = [
        p.get("image_url") for p in parts if isinstance(p, dict) and p.get("type") == "input_image"
    ]
    return tuple(decode_data_url(url) for url in urls)


def usage(request: DemoRequest, plan: Plan) -> dict[str, Any]:
    return {
        "input_tokens": request.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": plan.output_tokens,
        "output_tokens_details": {"reasoning_tokens": len(plan.reasoning)},
        "total_tokens": request.input_tokens + plan.output_tokens,
    }


class _Writer:
    """The events of one response: numbered in order, with the output items built so far."""

    def __init__(self, request: DemoRequest, plan: Plan) -> None:
        self.request, self.plan = request, plan
        self.created = now()
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.summary = as_dict(request.body.get("reasoning")).get("summary") is not None

    def event(self, kind: str, fields: dict[str, Any], piece: str = "") -> Frame:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        if piece and self.request.obfuscate:
            event["obfuscation"] = obfuscation(piece)
        self.sequence += 1
        return sse(event, kind, paced=bool(piece))

    def response(self, status: str, **changes: Any) -> dict[str, Any]:
        body = self.request.body
        return {
            "id": ident(self.request.seed, "resp_", 48),
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": self.request.model,
            "output": [],
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None, **as_dict(body.get("reasoning"))},
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {
                "format": {"type": "text"},
                "verbosity": "medium",
                **as_dict(body.get("text")),
            },
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": None,
            "user": None,
            "metadata": body.get("metadata") or {},
            **changes,
        }

    def added(self, item: dict[str, Any]) -> Frame:
        return self.event(
            "response.output_item.added", {"output_index": len(self.output), "item": item}
        )

    def done(self, item: dict[str, Any]) -> Frame:
        self.output.append(item)
        return self.event(
            "response.output_item.done", {"output_index": len(self.output) - 1, "item": item}
        )

    def where(self, item_id: str, **more: Any) -> dict[str, Any]:
        return {"item_id": item_id, "output_index": len(self.output), **more}

    @property
    def item_status(self) -> str:
        return "incomplete" if self.plan.finish == "length" else "completed"


def stream(request: DemoRequest, plan: Plan) -> Iterator[Frame]:
    writer = _Writer(request, plan)
    yield writer.event("response.created", {"response": writer.response("in_progress")})
    yield writer.event("response.in_progress", {"response": writer.response("in_progress")})
    yield from _items_of(writer)
    yield from _ending(writer)


def _items_of(writer: _Writer) -> Iterator[Frame]:
    if writer.plan.reasoning:
        yield from _reasoning_item(writer)
    if writer.plan.kind == "tool":
        yield from _function_call_item(writer)
    elif writer.plan.pieces or not writer.plan.reasoning:
        yield from _message_item(writer)


def _reasoning_item(writer: _Writer) -> Iterator[Frame]:
    item_id = ident(writer.request.seed, "rs_", 48, "reasoning")
    yield writer.added({"id": item_id, "type": "reasoning", "summary": []})
    summary = []
    if writer.summary:
        summary = [{"type": "summary_text", "text": writer.plan.reasoning_text}]
        yield from _summary_events(writer, item_id, summary[0])
    yield writer.done({"id": item_id, "type": "reasoning", "summary": summary})


def _summary_events(writer: _Writer, item_id: str, part: dict[str, Any]) -> Iterator[Frame]:
    empty = {"type": "summary_text", "text": ""}
    yield writer.event("response.reasoning_summary_part.added",
                       writer.where(item_id, summary_index=0, part=empty))  # fmt: skip
    for piece in writer.plan.reasoning:
        fields = writer.where(item_id, summary_index=0, delta=piece)
        yield writer.event("response.reasoning_summary_text.delta", fields, piece)
    fields = writer.where(item_id, summary_index=0, text=part["text"])
    yield writer.event("response.reasoning_summary_text.done", fields)
    yield writer.event("response.reasoning_summary_part.done",
                       writer.where(item_id, summary_index=0, part=part))  # fmt: skip


def _message_item(writer: _Writer) -> Iterator[Frame]:
    item_id = ident(writer.request.seed, "msg_", 48, "message")
    item = {
        "id": item_id,
        "type": "message",
        "status": "in_progress",
        "content": [],
        "role": "assistant",
    }
    yield writer.added(item)
    part: dict[str, Any] = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    yield writer.event(
        "response.content_part.added", writer.where(item_id, content_index=0, part=part)
    )
    for piece in writer.plan.pieces:
        fields = writer.where(item_id, content_index=0, delta=piece, logprobs=[])
        yield writer.event("response.output_text.delta", fields, piece)
    if writer.plan.cut:
        return
    part = {**part, "text": writer.plan.text}
    fields = writer.where(item_id, content_index=0, text=part["text"], logprobs=[])
    yield writer.event("response.output_text.done", fields)
    yield writer.event(
        "response.content_part.done", writer.where(item_id, content_index=0, part=part)
    )
    yield writer.done({**item, "status": writer.item_status, "content": [part]})


def _function_call_item(writer: _Writer) -> Iterator[Frame]:
    item_id = ident(writer.request.seed, "fc_", 48, "function")
    call_id = ident(writer.request.seed, "call_", 24, "tool")
    item = {"id": item_id, "type": "function_call", "status": "in_progress", "arguments": "",
            "call_id": call_id, "name": reply.TOOL_NAME}  # fmt: skip
    yield writer.added(item)
    for piece in writer.plan.pieces:
        yield writer.event(
            "response.function_call_arguments.delta", writer.where(item_id, delta=piece), piece
        )
    if writer.plan.cut:
        return
    arguments = writer.plan.text
    yield writer.event(
        "response.function_call_arguments.done", writer.where(item_id, arguments=arguments)
    )
    yield writer.done({**item, "status": writer.item_status, "arguments": arguments})


def _ending(writer: _Writer) -> Iterator[Frame]:
    fault = writer.request.fault
    if writer.plan.cut:
        if fault is not None and fault.kind == "inband":
            error = {"code": "server_error", "message": FAILED_MESSAGE}
            yield writer.event(
                "response.failed", {"response": writer.response("failed", error=error)}
            )
        return
    final = final_response(writer)
    yield writer.event(f"response.{final['status']}", {"response": final})


def final_response(writer: _Writer) -> dict[str, Any]:
    changes: dict[str, Any] = {"output": writer.output, "usage": usage(writer.request, writer.plan)}
    if writer.plan.finish == "length":
        changes["incomplete_details"] = {"reason": "max_output_tokens"}
        return writer.response("incomplete", **changes)
    return writer.response("completed", **changes)


def complete(request: DemoRequest, plan: Plan) -> dict[str, Any]:
    """The non-streamed `response` object: the state a stream would end in."""
    writer = _Writer(request, plan)
    for _ in _items_of(writer):
        pass
    return final_response(writer)


ENDPOINT = Endpoint(parse=parse, stream=stream, complete=complete, error_body=error_body)
