"""Runs a wire protocol over httpx: a streamed call becomes typed events or a ProviderError."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from .base import (
    ChatRequest,
    Event,
    HttpCall,
    ProviderConfig,
    ProviderError,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    WireProtocol,
)
from .sse import get_dict, get_str, load_object

OnAttempt = Callable[[int, ProviderError | None], Awaitable[None]]
Sleep = Callable[[float], Awaitable[object]]

CONTENT_EVENTS = (TextDelta, ReasoningDelta, ToolCallDelta)
MAX_ERROR_BODY = 64 * 1024
BACKOFF_FIRST, BACKOFF_CAP, RETRY_AFTER_CAP = 0.5, 8.0, 30.0
MAX_DETAIL = 500  # characters of an upstream error message worth showing

_STATUS_TEXT = {
    400: "the provider rejected the request",
    401: "the provider rejected the API key",
    403: "the provider refused access (check the key's permissions)",
    404: "model or endpoint not found (check the model id and the base URL)",
    408: "the provider timed out",
    413: "request too large (try a shorter conversation or smaller images)",
    422: "the provider rejected the request",
    429: "rate limited by the provider",
    500: "the provider had an internal error",
    502: "the provider's gateway could not reach it (bad gateway)",
    503: "the provider is unavailable",
    504: "the provider's gateway timed out",
    529: "the provider is overloaded",
}
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
# Words in a 429 body meaning money ran out: waiting will not help, so no retry.
_QUOTA_MARKERS = (
    "insufficient_quota",  # OpenAI
    "spend limit",  # Anthropic: "would exceed your account's monthly spend limit"
    "spend_limit",
    "specified api usage limits",
    "billing_hard_limit",
    "credit balance",
    "budget",  # LiteLLM-style gateways: "Budget has been exceeded"
)


async def stream_events(
    client: httpx.AsyncClient,
    protocol: WireProtocol,
    config: ProviderConfig,
    request: ChatRequest,
    *,
    sleep: Sleep = asyncio.sleep,
    on_attempt: OnAttempt | None = None,
) -> AsyncGenerator[Event, None]:
    """Stream one answer, retrying failures that happen before any content arrives.

    Raises `ProviderError`. `on_attempt(n, error)` is awaited after every attempt, with
    `error=None` for the one that succeeded. Cancellation closes the upstream connection;
    a caller that stops iterating early should use `contextlib.aclosing` to do the same.
    """
    call = protocol.build_call(config, request)
    retries = max(config.max_retries, 0)
    for attempt in range(1, retries + 2):
        started = False
        try:
            async with contextlib.aclosing(_attempt(client, protocol, config, call)) as events:
                async for event in events:
                    started = started or isinstance(event, CONTENT_EVENTS)
                    yield event
        except ProviderError as error:
            if on_attempt is not None:
                await on_attempt(attempt, error)
            if started or not error.retryable or attempt > retries:
                raise
            await sleep(retry_delay(attempt, error.retry_after))
            continue
        if on_attempt is not None:
            await on_attempt(attempt, None)
        return


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff (0.5 s, 1 s, 2 s ... 8 s), or the upstream's Retry-After."""
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_CAP)
    return min(BACKOFF_FIRST * 2.0 ** (attempt - 1), BACKOFF_CAP)


def timeout_for(config: ProviderConfig) -> httpx.Timeout:
    # `read` is the longest silence allowed between two chunks, not the whole answer.
    return httpx.Timeout(
        connect=config.connect_timeout,
        read=config.read_timeout,
        write=config.read_timeout,
        pool=config.connect_timeout,
    )


async def _attempt(
    client: httpx.AsyncClient, protocol: WireProtocol, config: ProviderConfig, call: HttpCall
) -> AsyncGenerator[Event, None]:
    answered = False
    try:
        async with client.stream(
            call.method, call.url, timeout=timeout_for(config), **request_body(call)
        ) as response:
            answered = True
            await _check_response(response, config)
            parser = protocol.new_parser()
            # aiter_bytes (not aiter_raw) so a gateway that compresses its stream still works.
            # Read here, not in a generator of its own: a layer costs a microsecond a chunk.
            async for chunk in response.aiter_bytes():
                for event in joined(parser.feed(chunk)):
                    yield _checked(event, config)
            for event in joined(parser.close()):
                yield _checked(event, config)
    except httpx.HTTPError as exc:
        raise transport_error(exc, config, answered=answered) from exc
    except httpx.InvalidURL as exc:
        raise ProviderError("the provider's base URL is not valid", code="invalid_url") from exc


def joined(events: list[Event]) -> list[Event]:
    """One read's events with each run of text (or of reasoning) joined into one delta.

    A paced answer reads once a frame, so one read brings every token since the last: as
    one delta each, they climbed two generators and the answer's bookkeeping one at a time,
    to be joined into the same frame anyway."""
    if len(events) < 2:
        return events
    out: list[Event] = []
    text: list[str] = []
    reasoning: list[str] = []  # at most one of the two holds a run at a time

    def end_run() -> None:
        if text:
            out.append(TextDelta("".join(text)))
            text.clear()
        if reasoning:
            out.append(ReasoningDelta("".join(reasoning)))
            reasoning.clear()

    for event in events:
        if isinstance(event, TextDelta):
            if reasoning:
                end_run()
            text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            if text:
                end_run()
            reasoning.append(event.text)
        else:
            end_run()
            out.append(event)
    end_run()
    return out


def request_body(call: HttpCall) -> dict[str, Any]:
    """httpx arguments for the call's headers and JSON body.

    Encoded here with ASCII escapes: httpx's own encoder would raise on a lone surrogate
    or NaN deep in a conversation; escaped, the upstream gets to judge them instead.
    """
    if call.json is None:
        return {"headers": call.headers}
    headers = {"content-type": "application/json", **call.headers}
    return {"headers": headers, "content": json.dumps(call.json).encode("ascii")}


def _checked(event: Event, config: ProviderConfig) -> Event:
    if isinstance(event, StreamError):
        message = scrub(event.message, config.api_key)
        raise ProviderError(message, code=event.code, retryable=event.retryable)
    return event


async def _check_response(response: httpx.Response, config: ProviderConfig) -> None:
    if not response.is_success:
        body = await read_head(response)
        raise error_for_status(response.status_code, body, response.headers, config.api_key)
    content_type = response.headers.get("content-type", "").lower()
    if not content_type.startswith("text/event-stream"):
        message, code = upstream_detail(await read_head(response))
        text = "the upstream did not answer with an event stream"
        text += f": {message}" if message else " (check the base URL)"
        raise ProviderError(scrub(text, config.api_key), status=response.status_code, code=code)


async def read_head(response: httpx.Response, limit: int = MAX_ERROR_BODY) -> str:
    """At most `limit` bytes of the body: enough for an error, bounded for a huge one."""
    body = bytearray()
    with contextlib.suppress(httpx.HTTPError):  # a cut-off body is still worth reading
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= limit:
                break
    return body[:limit].decode("utf-8", errors="replace")


def error_for_status(
    status: int, body: str, headers: Mapping[str, str], api_key: str = ""
) -> ProviderError:
    """A plain-words ProviderError for an HTTP error status and its (JSON) body."""
    message, code = upstream_detail(body)
    retryable = status in RETRYABLE_STATUSES or status >= 500
    text = _STATUS_TEXT.get(status) or _generic_status_text(status)
    if status == 429 and any(marker in body.lower() for marker in _QUOTA_MARKERS):
        text, retryable = "the provider's spend or quota limit was reached", False
    text = f"{text} (HTTP {status})" + (f": {message}" if message else "")
    return ProviderError(
        scrub(text, api_key),
        status=status,
        code=code,
        retryable=retryable,
        retry_after=parse_retry_after(headers) if retryable else None,
    )


def _generic_status_text(status: int) -> str:
    if 300 <= status < 400:
        return "the provider redirected the request (check the base URL)"
    if status >= 500:
        return "the provider had a server error"
    return "the provider refused the request"


def upstream_detail(body: str) -> tuple[str, str]:
    """(message, code) from an OpenAI-, Anthropic- or gateway-style JSON error body."""
    data = load_object(body.strip())
    if data is None:
        return "", ""  # HTML or plain text: the status says more than the page would
    error = data.get("error")
    if isinstance(error, str):
        return _short(error), ""
    detail = get_dict(data, "error")
    message = get_str(detail, "message") or get_str(data, "message") or get_str(data, "detail")
    code = detail.get("code") or get_str(detail, "type")
    return _short(message), str(code or "")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from `retry-after-ms`, or `Retry-After` in seconds or as a date."""
    with contextlib.suppress(ValueError):
        if millis := headers.get("retry-after-ms"):
            return _seconds(float(millis) / 1000)
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return _seconds(float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return _seconds((when - datetime.now(UTC)).total_seconds())


def _seconds(value: float) -> float | None:
    return max(0.0, value) if math.isfinite(value) else None


def transport_error(
    exc: httpx.HTTPError, config: ProviderConfig, *, answered: bool
) -> ProviderError:
    """A ProviderError for a network failure; `answered`: response headers had arrived."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return ProviderError("could not connect to the provider", code="connect", retryable=True)
    if isinstance(exc, httpx.ReadTimeout):
        text = f"the provider stopped responding (no data for {config.read_timeout:g} s)"
        return ProviderError(text, code="read_timeout")
    if isinstance(exc, httpx.WriteError | httpx.WriteTimeout):
        text = "could not send the request to the provider"
        return ProviderError(text, code="write", retryable=True)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        if answered:
            text = "the connection to the provider dropped mid-answer"
            return ProviderError(text, code="dropped")
        text = "the provider closed the connection without answering"
        return ProviderError(text, code="dropped", retryable=True)
    return ProviderError("could not reach the provider", code=type(exc).__name__)


def scrub(text: str, api_key: str) -> str:
    """Remove the API key from text bound for people, even if the upstream echoed it."""
    key = api_key.strip()
    return text.replace(key, "[redacted key]") if len(key) >= 4 else text
