"""stream_events against a real local HTTP server: success, every failure, retries."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from conversations.providers import get_protocol
from conversations.providers.base import (
    ChatRequest,
    Event,
    Finish,
    ProviderConfig,
    ProviderError,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Turn,
    Usage,
)
from conversations.providers.transport import (
    error_for_status,
    joined,
    parse_retry_after,
    read_head,
    retry_delay,
    stream_events,
)
from tests.ports import free_port
from tests.upstream import chat_completion_stream

KEY = "sk-test-SECRET-0123456789abcdef"
REQUEST = ChatRequest(model="gpt-test", turns=(Turn("user", "Hi"),), system="Be brief.")


class Recorder:
    """Stands in for asyncio.sleep and on_attempt, remembering what they were given."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.attempts: list[tuple[int, ProviderError | None]] = []

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)

    async def on_attempt(self, number: int, error: ProviderError | None) -> None:
        self.attempts.append((number, error))


def config_for(upstream, protocol="openai-chat", **overrides) -> ProviderConfig:
    base = upstream.base_url if protocol != "anthropic-messages" else upstream.base_url[:-3]
    fields = {"api_key": KEY, "read_timeout": 5.0, "connect_timeout": 2.0, "max_retries": 2}
    return ProviderConfig(protocol, base, **{**fields, **overrides})


async def collect(client, config, recorder=None, sink=None) -> list:
    recorder = recorder or Recorder()
    events = sink if sink is not None else []
    stream = stream_events(
        client,
        get_protocol(config.protocol),
        config,
        REQUEST,
        sleep=recorder.sleep,
        on_attempt=recorder.on_attempt,
    )
    async for event in stream:
        events.append(event)
    return events


def chunked(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def test_a_normal_stream_arrives_as_events(upstream, http_client, fixture_bytes):
    upstream.reply(200, *chunked(fixture_bytes("openai_chat", "text_with_usage.sse")))
    recorder = Recorder()
    events = await collect(http_client, config_for(upstream), recorder)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "héllo 🌍 日本"
    assert events[-2:] == [Finish("stop", "stop"), Usage(19, 5, 0, 0)]
    seen = upstream.requests[0]
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.json()["messages"][0] == {"role": "system", "content": "Be brief."}
    assert recorder.attempts == [(1, None)]


async def test_anthropic_stream_goes_to_v1_messages(upstream, http_client, fixture_bytes):
    upstream.reply(200, *chunked(fixture_bytes("anthropic_messages", "text.sse"), 13))
    config = config_for(upstream, "anthropic-messages", auth_scheme="x-api-key")
    events = await collect(http_client, config)
    assert events[-1] == Finish("stop", "end_turn")
    assert upstream.requests[0].path == "/v1/messages"
    assert upstream.requests[0].headers["x-api-key"] == KEY


async def test_a_rejected_key_is_reported_plainly_without_the_key(upstream, http_client):
    body = {"error": {"message": f"Incorrect API key provided: {KEY}.", "code": "invalid_api_key"}}
    upstream.reply_json(401, body)
    with pytest.raises(ProviderError) as caught:
        await collect(http_client, config_for(upstream))
    error = caught.value
    assert "the provider rejected the API key" in error.message
    assert KEY not in error.message
    assert KEY not in str(error)
    assert (error.status, error.code, error.retryable) == (401, "invalid_api_key", False)
    assert len(upstream.requests) == 1


async def test_rate_limit_is_retried_after_the_given_delay(upstream, http_client, fixture_bytes):
    upstream.reply_json(
        429, {"error": {"message": "Slow down", "type": "rate_limit_error"}}, **{"retry-after": "3"}
    )
    upstream.reply(200, fixture_bytes("openai_chat", "text_with_usage.sse"))
    recorder = Recorder()
    events = await collect(http_client, config_for(upstream), recorder)
    assert events[-2] == Finish("stop", "stop")
    assert recorder.delays == [3.0]
    assert [(n, e and e.status) for n, e in recorder.attempts] == [(1, 429), (2, None)]
    assert len(upstream.requests) == 2


async def test_exhausted_quota_is_not_retried(upstream, http_client):
    error = {
        "message": "You exceeded your current quota.",
        "type": "insufficient_quota",
        "code": "insufficient_quota",
    }
    upstream.reply_json(429, {"error": error}, **{"retry-after": "1"})
    recorder = Recorder()
    with pytest.raises(ProviderError) as caught:
        await collect(http_client, config_for(upstream), recorder)
    assert caught.value.retryable is False
    assert "quota limit was reached" in caught.value.message
    assert recorder.delays == []
    assert len(upstream.requests) == 1


async def test_anthropic_spend_limit_is_not_retried(upstream, http_client):
    message = "This request would exceed your account's monthly spend limit."
    upstream.reply_json(
        429, {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
    )
    with pytest.raises(ProviderError) as caught:
        await collect(http_client, config_for(upstream, "anthropic-messages"))
    assert caught.value.retryable is False
    assert message in caught.value.message
    assert len(upstream.requests) == 1


async def test_overload_is_retried_with_backoff_then_reported(upstream, http_client):
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    for _ in range(3):
        upstream.reply_json(529, body)
    recorder = Recorder()
    with pytest.raises(ProviderError) as caught:
        await collect(http_client, config_for(upstream, "anthropic-messages"), recorder)
    assert "the provider is overloaded" in caught.value.message
    assert caught.value.retryable is True
    assert recorder.delays == [0.5, 1.0]
    assert [n for n, _ in recorder.attempts] == [1, 2, 3]
    assert len(upstream.requests) == 3


async def test_an_html_page_with_status_200_is_not_an_event_stream(upstream, http_client):
    upstream.reply(
        200, b"<html><body>Welcome to nginx!</body></html>", headers={"content-type": "text/html"}
    )
    with pytest.raises(ProviderError) as caught:
        await collect(http_client, config_for(upstream))
    assert "the upstream did not answer with an event stream" in caught.value.message
    assert caught.value.retryable is False


async def test_a_json_error_with_status_200_says_what_went_wrong(upstream, http_client):
    upstream.reply_json(200, {"error": {"message": "model 'x' not loaded"}})
    with pytest.raises(ProviderError, match="event stream: model 'x' not loaded"):
        await collect(http_client, config_for(upstream))


async def test_an_in_band_error_after_text_is_raised_without_retry(
    upstream, http_client, fixture_bytes
):
    upstream.reply(200, *chunked(fixture_bytes("openai_chat", "error_after_text.sse")))
    events: list = []
    with pytest.raises(ProviderError) as caught:
        await collect(http_client, config_for(upstream), sink=events)
    assert events == [TextDelta("Partial")]
    assert caught.value.code == "server_error"
    assert len(upstream.requests) == 1


async def test_an_in_band_overload_before_any_text_is_retried(upstream, http_client, fixture_bytes):
    upstream.reply(200, fixture_bytes("anthropic_messages", "overloaded.sse"))
    upstream.reply(200, fixture_bytes("anthropic_messages", "text.sse"))
    recorder = Recorder()
    events = await collect(http_client, config_for(upstream, "anthropic-messages"), recorder)
    assert events[-1] == Finish("stop", "end_turn")
    assert recorder.delays == [0.5]
    assert len(upstream.requests) == 2


async def test_a_connection_dropped_mid_stream_is_reported(upstream, http_client, fixture_bytes):
    data = fixture_bytes("openai_chat", "text_with_usage.sse")
    upstream.reply(200, data[: data.index("éllo".encode())], then="drop")
    events: list = []
    with pytest.raises(ProviderError) as caught:
        await collect(http_client, config_for(upstream), sink=events)
    assert caught.value.message == "the connection to the provider dropped mid-answer"
    assert TextDelta("h") in events
    assert len(upstream.requests) == 1


async def test_a_stream_that_ends_without_its_terminal_event_is_an_error(
    upstream, http_client, fixture_bytes
):
    data = fixture_bytes("openai_chat", "text_with_usage.sse")
    upstream.reply(200, data[: data.index(b"data: [DONE]")])
    with pytest.raises(ProviderError, match="closed the stream before finishing"):
        await collect(http_client, config_for(upstream))


async def test_a_connection_closed_before_any_answer_is_retried(
    upstream, http_client, fixture_bytes
):
    upstream.reply(then="slam")
    upstream.reply(200, fixture_bytes("openai_chat", "text_with_usage.sse"))
    recorder = Recorder()
    events = await collect(http_client, config_for(upstream), recorder)
    assert events[-1] == Usage(19, 5, 0, 0)
    first_error = recorder.attempts[0][1]
    assert first_error is not None
    assert first_error.message == "the provider closed the connection without answering"


async def test_a_silent_upstream_times_out_with_a_clear_message(upstream, http_client):
    upstream.reply(200, then="hang")
    with pytest.raises(ProviderError) as caught:
        await collect(http_client, config_for(upstream, read_timeout=0.3))
    assert caught.value.message == "the provider stopped responding (no data for 0.3 s)"
    assert len(upstream.requests) == 1


async def test_cancelling_the_consumer_closes_the_upstream_connection(
    upstream, http_client, fixture_bytes
):
    data = fixture_bytes("openai_chat", "text_with_usage.sse")
    upstream.reply(200, data[: data.index("éllo".encode())], then="hang")
    events: list = []
    task = asyncio.create_task(collect(http_client, config_for(upstream), sink=events))
    async with asyncio.timeout(2):
        while not events:
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(upstream.client_went_away.wait(), timeout=2)


async def test_an_unreachable_provider_is_a_retried_connect_error(http_client):
    config = ProviderConfig("openai-chat", f"http://127.0.0.1:{free_port()}/v1", max_retries=1)
    recorder = Recorder()
    with pytest.raises(ProviderError) as caught:
        await collect(http_client, config, recorder)
    assert caught.value.message == "could not connect to the provider"
    assert caught.value.retryable is True
    assert recorder.delays == [0.5]


async def test_an_echoed_key_never_reaches_the_message(upstream, http_client, fixture_bytes):
    message = f"Bad header 'Authorization: Bearer {KEY}' for key {KEY}"
    upstream.reply_json(400, {"error": {"message": message, "type": "invalid_request_error"}})
    with pytest.raises(ProviderError) as caught:
        await collect(http_client, config_for(upstream))
    assert "the provider rejected the request" in caught.value.message
    assert KEY not in caught.value.message
    assert "Bearer [redacted key]" in caught.value.message


async def test_an_echoed_key_in_an_in_band_error_is_scrubbed(upstream, http_client):
    upstream.reply(200, f'data: {{"error": {{"message": "bad key {KEY}"}}}}\n\n'.encode())
    with pytest.raises(ProviderError) as caught:
        await collect(http_client, config_for(upstream))
    assert KEY not in caught.value.message


@pytest.mark.parametrize(
    ("status", "words", "retryable"),
    [
        (400, "the provider rejected the request", False),
        (401, "the provider rejected the API key", False),
        (403, "the provider refused access", False),
        (404, "model or endpoint not found", False),
        (413, "request too large", False),
        (429, "rate limited by the provider", True),
        (500, "internal error", True),
        (502, "bad gateway", True),
        (503, "the provider is unavailable", True),
        (504, "gateway timed out", True),
        (529, "the provider is overloaded", True),
        (418, "the provider refused the request", False),
        (507, "server error", True),
    ],
)
def test_each_status_has_a_plain_words_message(status, words, retryable):
    error = error_for_status(status, "<html>oops</html>", {})
    assert words in error.message
    assert f"HTTP {status}" in error.message
    assert "<html>" not in error.message
    assert (error.status, error.retryable) == (status, retryable)


def test_the_upstream_message_is_added_for_a_bad_request():
    body = (
        '{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}'
    )
    error = error_for_status(400, body, {})
    assert error.message == "the provider rejected the request (HTTP 400): max_tokens: too big"
    assert error.code == "invalid_request_error"


def test_retry_after_is_read_as_seconds_or_as_a_date():
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    delay = parse_retry_after({"retry-after": later})
    assert delay is not None
    assert 15 < delay <= 20
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "nan"}) is None
    assert parse_retry_after({}) is None


def test_retry_after_only_comes_with_retryable_errors():
    assert error_for_status(503, "", {"retry-after": "4"}).retry_after == 4.0
    assert error_for_status(400, "", {"retry-after": "4"}).retry_after is None


def test_backoff_doubles_from_half_a_second_up_to_eight_and_retry_after_is_capped():
    assert [retry_delay(n, None) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert retry_delay(1, 3.0) == 3.0
    assert retry_delay(1, 600.0) == 30.0


async def test_only_the_head_of_a_huge_error_body_is_read():
    sent = 0

    async def endless():
        nonlocal sent
        while True:
            sent += 16 * 1024
            yield b"x" * 16 * 1024

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, content=endless())

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with client, client.stream("GET", "http://upstream.test/") as response:
        head = await read_head(response)
    assert len(head) == 64 * 1024
    assert sent <= 80 * 1024


async def test_a_consumer_that_stops_early_closes_the_upstream_connection(
    upstream, http_client, fixture_bytes
):
    data = fixture_bytes("openai_chat", "text_with_usage.sse")
    upstream.reply(200, data[: data.index("éllo".encode())], then="hang")
    config = config_for(upstream)
    stream = stream_events(http_client, get_protocol("openai-chat"), config, REQUEST)
    async with contextlib.aclosing(stream):
        async for event in stream:
            assert event == TextDelta("h")
            break
    await asyncio.wait_for(upstream.client_went_away.wait(), timeout=2)


async def test_a_lone_surrogate_in_the_conversation_does_not_break_the_request(
    upstream, http_client, fixture_bytes
):
    upstream.reply(200, fixture_bytes("openai_chat", "text_with_usage.sse"))
    request = ChatRequest(model="m", turns=(Turn("user", "bad \ud800 text, 日本"),))
    protocol = get_protocol("openai-chat")
    stream = stream_events(http_client, protocol, config_for(upstream), request)
    events = [event async for event in stream]
    assert events[-1] == Usage(19, 5, 0, 0)
    seen = upstream.requests[0]
    assert seen.headers["content-type"] == "application/json"
    assert seen.json()["messages"][0]["content"] == "bad \ud800 text, 日本"


def test_one_reads_runs_of_text_and_of_reasoning_become_one_delta_each_in_order():
    usage, finish = Usage(input_tokens=3), Finish("stop")
    read: list[Event] = [
        ReasoningDelta("Think"), ReasoningDelta("ing. "), TextDelta("Hel"), TextDelta("lo"),
        usage, TextDelta(" there"), ToolCallDelta(0, "c1", "f"), TextDelta("!"), finish,
    ]  # fmt: skip

    assert joined(read) == [
        ReasoningDelta("Thinking. "), TextDelta("Hello"), usage, TextDelta(" there"),
        ToolCallDelta(0, "c1", "f"), TextDelta("!"), finish,
    ]  # fmt: skip
    assert joined([TextDelta("a")]) == [TextDelta("a")]
    assert joined([]) == []


async def test_the_tokens_one_read_brings_come_up_as_one_delta(upstream, http_client):
    """50 events in one HTTP chunk, so in one read or a few: as many deltas, not 50."""
    pieces = [f"t{n} " for n in range(50)]
    upstream.reply(200, b"".join(chat_completion_stream(pieces)))

    events = await collect(http_client, config_for(upstream))

    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(texts) == "".join(pieces)
    assert len(texts) <= 3
