"""The OpenAI Chat Completions wire protocol (also spoken by Gemini, DeepSeek, local servers)."""

from __future__ import annotations

from typing import Any

from .base import (
    ChatRequest,
    Event,
    Finish,
    FinishReason,
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

NAME = "openai-chat"
MAX_STOP_SEQUENCES = 4  # the API rejects more
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the pre-tools name for the same thing
    "content_filter": "content_filter",
}
# In-band error types after which a fresh request may well succeed.
RETRYABLE_ERROR_TYPES = frozenset(
    {"server_error", "api_error", "overloaded_error", "service_unavailable", "overloaded"}
)


def bearer_headers(config: ProviderConfig) -> dict[str, str]:
    """Headers for OpenAI-style auth; local servers often need no key at all."""
    headers = {"accept": "application/json"}
    if config.api_key:
        headers["authorization"] = f"Bearer {config.api_key}"
    return headers


def stream_headers(config: ProviderConfig) -> dict[str, str]:
    return {**bearer_headers(config), "accept": "text/event-stream"}


def _message(turn: Turn) -> dict[str, Any] | None:
    if not turn.text and not turn.images:
        return None  # e.g. a reply that failed before its first word
    if turn.role == "assistant" or not turn.images:
        return {"role": turn.role, "content": turn.text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
    for image in turn.images:
        parts.append({"type": "image_url", "image_url": {"url": image.data_url}})
    return {"role": "user", "content": parts}


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    messages = [{"role": "system", "content": request.system}] if request.system else []
    for turn in request.turns:
        if (message := _message(turn)) is not None:
            messages.append(message)
    return messages


def _params(request: ChatRequest) -> dict[str, Any]:
    p = request.params
    optional = {
        "max_tokens": p.max_tokens,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "stop": list(p.stop[:MAX_STOP_SEQUENCES]) or None,
        "presence_penalty": p.presence_penalty,
        "frequency_penalty": p.frequency_penalty,
        "seed": p.seed,
        "response_format": {"type": "json_object"} if p.json_mode else None,
        "reasoning_effort": p.reasoning_effort,
    }
    return {key: value for key, value in optional.items() if value is not None}


class OpenAIChatProtocol:
    name = NAME

    def build_call(self, config: ProviderConfig, request: ChatRequest) -> HttpCall:
        body = {
            "model": request.model,
            "messages": _messages(request),
            "stream": True,
            "stream_options": {"include_usage": True},
            **_params(request),
        }
        url = join_url(config.base_url, "chat/completions")
        return HttpCall("POST", url, stream_headers(config), body)

    def new_parser(self) -> ChatParser:
        return ChatParser()

    def models_call(self, config: ProviderConfig) -> HttpCall:
        return HttpCall("GET", join_url(config.base_url, "models"), bearer_headers(config))


class ThinkSplitter:
    """Splits `<think>...</think>` that opens an answer into reasoning and text.

    Local servers put a model's reasoning inside `content`. Only a block that opens the
    answer counts, so an answer that merely talks about the tag is left alone. Tags may
    arrive split across chunks: a possible partial tag is held back until it resolves,
    and so is trailing whitespace, so the result does not depend on the chunking.
    """

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        # start -> opened -> think -> after -> text, or start -> text
        self._phase = "start"
        self._pending = ""

    def feed(self, text: str) -> list[Event]:
        if self._phase == "text":  # past any think block: nothing is ever held back here
            return [TextDelta(text)] if text else []
        buf, self._pending = self._pending + text, ""
        out: list[Event] = []
        if self._phase == "start":
            buf = self._start(buf)
        if self._phase == "opened":  # the blank line models put after <think>
            buf = buf.lstrip()
            self._phase = "think" if buf else "opened"
        if self._phase == "think":
            buf = self._think(buf, out)
        if self._phase == "after":  # and the one after </think>
            buf = buf.lstrip()
            self._phase = "text" if buf else "after"
        if self._phase == "text" and buf:
            out.append(TextDelta(buf))
        return out

    def flush(self) -> list[Event]:
        pending, self._pending = self._pending, ""
        if not pending:
            return []
        return [ReasoningDelta(pending) if self._phase == "think" else TextDelta(pending)]

    def _start(self, buf: str) -> str:
        head = buf.lstrip()
        if head.startswith(self.OPEN):
            self._phase = "opened"
            return head[len(self.OPEN) :]
        if self.OPEN.startswith(head):  # blank so far, or a partial "<thi"
            self._pending = buf
            return ""
        self._phase = "text"
        return buf

    def _think(self, buf: str, out: list[Event]) -> str:
        end = buf.find(self.CLOSE)
        if end >= 0:
            reasoning, rest = buf[:end].rstrip(), buf[end + len(self.CLOSE) :]
            self._phase = "after"
        else:
            keep = _partial_suffix(buf, self.CLOSE)
            reasoning, rest = buf[: len(buf) - keep].rstrip(), ""
            self._pending = buf[len(reasoning) :]
        if reasoning:
            out.append(ReasoningDelta(reasoning))
        return rest


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that could begin `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ChatParser(EventStreamParser):
    """Parses `chat.completion.chunk` events up to `data: [DONE]`."""

    def __init__(self) -> None:
        super().__init__()
        self._think = ThinkSplitter()

    def on_message(self, message: SSEMessage) -> list[Event]:
        if message.data[:1] != "{" and message.data.strip() == "[DONE]":
            self.finished = True
            return self._think.flush()
        chunk = load_object(message.data)
        if chunk is None:
            return [malformed()]
        if chunk.get("error"):  # some proxies send `"error": null` on every chunk
            return [in_band_error(chunk["error"])]
        events = self._choice(chunk.get("choices"))
        if usage := get_dict(chunk, "usage"):
            events.append(_usage(usage))
        return events

    def _choice(self, choices: object) -> list[Event]:
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return []  # the usage chunk has `choices: []`
        choice = choices[0]
        delta = get_dict(choice, "delta")
        events: list[Event] = []
        # Most chunks carry only `content`: the `in` tests spare the other lookups.
        if ("reasoning_content" in delta or "reasoning" in delta) and (
            reasoning := get_str(delta, "reasoning_content") or get_str(delta, "reasoning")
        ):
            events.append(ReasoningDelta(reasoning))
        content = get_str(delta, "content")
        if "refusal" in delta:
            content += get_str(delta, "refusal")
        if content:
            events.extend(self._think.feed(content))
        if "tool_calls" in delta:
            events.extend(_tool_calls(delta["tool_calls"]))
        if choice.get("finish_reason") is not None and (reason := get_str(choice, "finish_reason")):
            events.extend(self._think.flush())
            events.append(Finish(_FINISH.get(reason, "other"), reason))
        return events


def _tool_calls(calls: object) -> list[Event]:
    if not isinstance(calls, list):
        return []
    events: list[Event] = []
    for position, call in enumerate(calls):
        if not isinstance(call, dict):
            continue
        function = get_dict(call, "function")
        index = get_int(call, "index")
        events.append(
            ToolCallDelta(
                index=position if index is None else index,
                call_id=get_str(call, "id"),
                name=get_str(function, "name"),
                arguments=get_str(function, "arguments"),
            )
        )
    return events


def _usage(usage: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=get_int(usage, "prompt_tokens"),
        output_tokens=get_int(usage, "completion_tokens"),
        reasoning_tokens=get_int(get_dict(usage, "completion_tokens_details"), "reasoning_tokens"),
        cached_tokens=get_int(get_dict(usage, "prompt_tokens_details"), "cached_tokens"),
    )


def in_band_error(error: object) -> StreamError:
    """`{"error": {...}}` sent after HTTP 200 (OpenAI and most compatible servers)."""
    if isinstance(error, str):
        return StreamError(f"the provider reported an error: {error}")
    detail = error if isinstance(error, dict) else {}
    message = get_str(detail, "message") or "no details given"
    kind = get_str(detail, "type")
    code = str(detail.get("code") or kind)  # some servers send a number here
    retryable = kind in RETRYABLE_ERROR_TYPES or code in RETRYABLE_ERROR_TYPES
    return StreamError(f"the provider reported an error: {message}", code, retryable)


PROTOCOL = OpenAIChatProtocol()
