"""The OpenAI Responses wire protocol."""

from __future__ import annotations

from typing import Any

from .base import (
    ChatRequest,
    Event,
    Finish,
    FinishReason,
    GenerationParams,
    HttpCall,
    ProviderConfig,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Turn,
    Usage,
    join_url,
)
from .openai_chat import bearer_headers, stream_headers
from .sse import EventStreamParser, SSEMessage, get_dict, get_int, get_str, load_object, malformed

NAME = "openai-responses"
_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
RETRYABLE_ERROR_CODES = frozenset({"server_error", "overloaded_error", "api_error"})
_TEXT_DELTAS = frozenset({"response.output_text.delta", "response.refusal.delta"})
_REASONING_DELTAS = frozenset(
    {"response.reasoning_summary_text.delta", "response.reasoning_text.delta"}
)


def _item(turn: Turn) -> dict[str, Any] | None:
    if turn.role == "assistant":
        parts = [{"type": "output_text", "text": turn.text}] if turn.text else []
    else:
        parts = [{"type": "input_text", "text": turn.text}] if turn.text else []
        parts += [{"type": "input_image", "image_url": i.data_url} for i in turn.images]
    return {"role": turn.role, "content": parts} if parts else None


def _options(params: GenerationParams) -> dict[str, Any]:
    # Responses has no stop sequences, penalties or seed: those are not sent.
    optional = {
        "max_output_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "reasoning": (
            {"effort": params.reasoning_effort, "summary": "auto"}
            if params.reasoning_effort
            else None
        ),
        "text": {"format": {"type": "json_object"}} if params.json_mode else None,
    }
    return {key: value for key, value in optional.items() if value is not None}


class OpenAIResponsesProtocol:
    name = NAME

    def build_call(self, config: ProviderConfig, request: ChatRequest) -> HttpCall:
        items = [item for turn in request.turns if (item := _item(turn)) is not None]
        body: dict[str, Any] = {"model": request.model, "input": items}
        if request.system:
            body["instructions"] = request.system
        body.update(_options(request.params))
        # Each request carries the whole conversation, so nothing needs keeping upstream.
        body["store"] = False
        body["stream"] = True
        url = join_url(config.base_url, "responses")
        return HttpCall("POST", url, stream_headers(config), body)

    def new_parser(self) -> ResponsesParser:
        return ResponsesParser()

    def models_call(self, config: ProviderConfig) -> HttpCall:
        return HttpCall("GET", join_url(config.base_url, "models"), bearer_headers(config))


class ResponsesParser(EventStreamParser):
    """Parses Responses stream events up to `response.completed`/`incomplete`/`failed`."""

    def __init__(self) -> None:
        super().__init__()
        self._tools: dict[int, int] = {}  # output index -> tool call ordinal

    def on_message(self, message: SSEMessage) -> list[Event]:
        if message.data.strip() == "[DONE]":
            return []  # not part of Responses, but some gateways add it
        data = load_object(message.data)
        if data is None:
            return [malformed()]
        kind = get_str(data, "type") or message.event
        if kind in _TEXT_DELTAS and (text := get_str(data, "delta")):
            return [TextDelta(text)]
        if kind in _REASONING_DELTAS and (text := get_str(data, "delta")):
            return [ReasoningDelta(text)]
        handler = _HANDLERS.get(kind)
        return handler(self, data) if handler else []

    def _summary_part(self, data: dict[str, Any]) -> list[Event]:
        # Summaries come in parts; keep them apart as paragraphs.
        return [ReasoningDelta("\n\n")] if (get_int(data, "summary_index") or 0) > 0 else []

    def _item_added(self, data: dict[str, Any]) -> list[Event]:
        item = get_dict(data, "item")
        if get_str(item, "type") != "function_call":
            return []
        ordinal = self._ordinal(data)
        call_id, name = get_str(item, "call_id"), get_str(item, "name")
        return [ToolCallDelta(ordinal, call_id, name, get_str(item, "arguments"))]

    def _arguments(self, data: dict[str, Any]) -> list[Event]:
        part = get_str(data, "delta")
        return [ToolCallDelta(self._ordinal(data), arguments=part)] if part else []

    def _completed(self, data: dict[str, Any]) -> list[Event]:
        self.finished = True
        reason: FinishReason = "tool_calls" if self._tools else "stop"
        return [_usage(get_dict(data, "response")), Finish(reason, "completed")]

    def _incomplete(self, data: dict[str, Any]) -> list[Event]:
        self.finished = True
        response = get_dict(data, "response")
        raw = get_str(get_dict(response, "incomplete_details"), "reason")
        return [_usage(response), Finish(_INCOMPLETE.get(raw, "other"), raw or "incomplete")]

    def _failed(self, data: dict[str, Any]) -> list[Event]:
        return [_error(get_dict(get_dict(data, "response"), "error"))]

    def _bare_error(self, data: dict[str, Any]) -> list[Event]:
        return [_error(get_dict(data, "error") or data)]

    def _ordinal(self, data: dict[str, Any]) -> int:
        return self._tools.setdefault(get_int(data, "output_index") or 0, len(self._tools))


def _usage(response: dict[str, Any]) -> Usage:
    usage = get_dict(response, "usage")
    return Usage(
        input_tokens=get_int(usage, "input_tokens"),
        output_tokens=get_int(usage, "output_tokens"),
        reasoning_tokens=get_int(get_dict(usage, "output_tokens_details"), "reasoning_tokens"),
        cached_tokens=get_int(get_dict(usage, "input_tokens_details"), "cached_tokens"),
    )


def _error(error: dict[str, Any]) -> StreamError:
    message = get_str(error, "message") or "no details given"
    code = str(error.get("code") or get_str(error, "type"))
    retryable = code in RETRYABLE_ERROR_CODES
    return StreamError(f"the provider reported an error: {message}", code, retryable)


_HANDLERS = {
    "response.reasoning_summary_part.added": ResponsesParser._summary_part,
    "response.output_item.added": ResponsesParser._item_added,
    "response.function_call_arguments.delta": ResponsesParser._arguments,
    "response.completed": ResponsesParser._completed,
    "response.incomplete": ResponsesParser._incomplete,
    "response.failed": ResponsesParser._failed,
    "error": ResponsesParser._bare_error,
}

PROTOCOL = OpenAIResponsesProtocol()
