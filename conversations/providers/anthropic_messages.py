"""The Anthropic Messages wire protocol."""

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
from .sse import EventStreamParser, SSEMessage, get_dict, get_int, get_str, load_object, malformed

NAME = "anthropic-messages"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # required by the API; also the answer room left beside thinking
MIN_THINKING_BUDGET = 1024  # the API rejects smaller budgets
MODELS_PAGE_SIZE = 1000  # the largest page /v1/models serves; its default is 20
_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
RETRYABLE_ERROR_TYPES = frozenset({"overloaded_error", "api_error"})


def auth_headers(config: ProviderConfig) -> dict[str, str]:
    headers = {"anthropic-version": API_VERSION, "accept": "application/json"}
    if config.api_key and config.auth_scheme == "x-api-key":
        headers["x-api-key"] = config.api_key
    elif config.api_key:
        headers["authorization"] = f"Bearer {config.api_key}"
    return headers


def _blocks(turn: Turn, *, last: bool) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": image.media_type, "data": image.data_b64},
        }
        for image in turn.images
    ]
    # The API rejects empty text blocks and a final assistant turn ending in whitespace.
    text = turn.text.rstrip() if last and turn.role == "assistant" else turn.text
    if text.strip():
        blocks.append({"type": "text", "text": text})
    return blocks


def _messages(turns: tuple[Turn, ...]) -> list[dict[str, Any]]:
    """Messages that start with a user turn and alternate roles, as the API demands."""
    messages: list[dict[str, Any]] = []
    for position, turn in enumerate(turns):
        blocks = _blocks(turn, last=position == len(turns) - 1)
        if not blocks:
            continue
        if messages and messages[-1]["role"] == turn.role:
            messages[-1]["content"].extend(blocks)
        elif messages or turn.role == "user":
            messages.append({"role": turn.role, "content": blocks})
        # A leading assistant turn (a greeting) is dropped: the API cannot start with one.
    return messages


def _sampling(params: GenerationParams) -> dict[str, Any]:
    body: dict[str, Any] = {"max_tokens": params.max_tokens or DEFAULT_MAX_TOKENS}
    if params.stop:
        body["stop_sequences"] = list(params.stop)
    if params.thinking_budget is None:
        optional = {"temperature": params.temperature, "top_p": params.top_p}
        body.update({key: value for key, value in optional.items() if value is not None})
        return body
    # With thinking, max_tokens counts the thinking too and must exceed the budget, and
    # sampling is fixed (temperature 1, the default), so temperature/top_p are left out.
    budget = max(params.thinking_budget, MIN_THINKING_BUDGET)
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if body["max_tokens"] <= budget:
        body["max_tokens"] = budget + DEFAULT_MAX_TOKENS
    return body


class AnthropicMessagesProtocol:
    name = NAME

    def build_call(self, config: ProviderConfig, request: ChatRequest) -> HttpCall:
        body: dict[str, Any] = {"model": request.model}
        if request.system:
            body["system"] = request.system
        body["messages"] = _messages(request.turns)
        body.update(_sampling(request.params))
        body["stream"] = True
        headers = {**auth_headers(config), "accept": "text/event-stream"}
        return HttpCall("POST", join_url(config.base_url, "messages"), headers, body)

    def new_parser(self) -> MessagesParser:
        return MessagesParser()

    def models_call(self, config: ProviderConfig) -> HttpCall:
        url = join_url(config.base_url, f"models?limit={MODELS_PAGE_SIZE}")
        return HttpCall("GET", url, auth_headers(config))


class MessagesParser(EventStreamParser):
    """Parses Messages stream events up to `message_stop`."""

    def __init__(self) -> None:
        super().__init__()
        self._input: dict[str, int | None] = {}
        self._tools: dict[int, int] = {}  # content block index -> tool call ordinal

    def on_message(self, message: SSEMessage) -> list[Event]:
        data = load_object(message.data)
        if data is None:
            return [malformed()]
        kind = get_str(data, "type") or message.event  # gateways may drop `event:` lines
        if kind == "message_stop":
            self.finished = True
            return []
        handler = _HANDLERS.get(kind)
        return handler(self, data) if handler else []  # ping and future events are ignored

    def _message_start(self, data: dict[str, Any]) -> list[Event]:
        self._input = _input_usage(get_dict(get_dict(data, "message"), "usage"))
        return [self._usage(get_dict(get_dict(data, "message"), "usage"))]

    def _block_start(self, data: dict[str, Any]) -> list[Event]:
        block = get_dict(data, "content_block")
        kind = get_str(block, "type")
        if kind == "tool_use":
            ordinal = self._tools.setdefault(get_int(data, "index") or 0, len(self._tools))
            return [ToolCallDelta(ordinal, get_str(block, "id"), get_str(block, "name"))]
        if kind == "text" and (text := get_str(block, "text")):
            return [TextDelta(text)]
        if kind == "thinking" and (text := get_str(block, "thinking")):
            return [ReasoningDelta(text)]
        return []

    def _block_delta(self, data: dict[str, Any]) -> list[Event]:
        delta = get_dict(data, "delta")
        kind = get_str(delta, "type")
        if kind == "text_delta" and (text := get_str(delta, "text")):
            return [TextDelta(text)]
        if kind == "thinking_delta" and (text := get_str(delta, "thinking")):
            return [ReasoningDelta(text)]
        if kind == "input_json_delta" and (part := get_str(delta, "partial_json")):
            ordinal = self._tools.get(get_int(data, "index") or 0, 0)
            return [ToolCallDelta(ordinal, arguments=part)]
        return []  # signature_delta and friends carry nothing to show

    def _message_delta(self, data: dict[str, Any]) -> list[Event]:
        usage = get_dict(data, "usage")
        self._input.update({k: v for k, v in _input_usage(usage).items() if v is not None})
        events: list[Event] = [self._usage(usage)]
        if reason := get_str(get_dict(data, "delta"), "stop_reason"):
            events.append(Finish(_FINISH.get(reason, "other"), reason))
        return events

    def _error(self, data: dict[str, Any]) -> list[Event]:
        error = get_dict(data, "error")
        kind = get_str(error, "type")
        message = get_str(error, "message") or kind or "no details given"
        retryable = kind in RETRYABLE_ERROR_TYPES
        return [StreamError(f"the provider reported an error: {message}", kind, retryable)]

    def _usage(self, usage: dict[str, Any]) -> Usage:
        cached = self._input.get("cache_read_input_tokens")
        parts = [self._input.get(key) for key in _INPUT_KEYS]
        total = sum(p or 0 for p in parts) if any(p is not None for p in parts) else None
        return Usage(total, get_int(usage, "output_tokens"), None, cached)


# Anthropic counts cached input apart from `input_tokens`; the sum is the whole prompt,
# which is what `Usage.input_tokens` means for every protocol (as in OpenAI's counts).
_INPUT_KEYS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _input_usage(usage: dict[str, Any]) -> dict[str, int | None]:
    return {key: get_int(usage, key) for key in _INPUT_KEYS}


_HANDLERS = {
    "message_start": MessagesParser._message_start,
    "content_block_start": MessagesParser._block_start,
    "content_block_delta": MessagesParser._block_delta,
    "message_delta": MessagesParser._message_delta,
    "error": MessagesParser._error,
}

PROTOCOL = AnthropicMessagesProtocol()
