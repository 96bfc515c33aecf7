"""The test servers themselves: the scripted fake upstream, the ASGI host and SSE helpers."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest

from tests.upstream import (
    AsgiServer,
    FakeUpstream,
    Scripted,
    chat_completion_stream,
    fake_upstream_fixture,
    messages_stream,
    openai_usage,
    serve_asgi_in_thread,
    sse,
)


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    yield from fake_upstream_fixture()


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send bytes over a plain socket and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def drain_into(received: bytearray, response: httpx.Response) -> None:
    for chunk in response.iter_raw():
        received += chunk


# --- Scripted replies and recorded requests ----------------------------------------


def test_scripted_replies_are_served_in_order_then_500(fake: FakeUpstream) -> None:
    fake.script(Scripted.json({"n": 1}), Scripted.json({"n": 2}, status=201))
    first = httpx.get(f"{fake.url}/models")
    second = httpx.get(f"{fake.url}/models")
    third = httpx.get(f"{fake.url}/models")
    assert (first.status_code, first.json()) == (200, {"n": 1})
    assert (second.status_code, second.json()) == (201, {"n": 2})
    assert third.status_code == 500
    assert "no scripted reply" in third.json()["error"]["message"]


def test_requests_are_recorded(fake: FakeUpstream) -> None:
    fake.script(Scripted.json({}))
    httpx.post(
        f"{fake.url}/chat/completions?x=1",
        json={"model": "m"},
        headers={"Authorization": "Bearer sk-test", "X-Custom": "Yes"},
    )
    [seen] = fake.requests
    assert seen.method == "POST"
    assert seen.path == "/v1/chat/completions?x=1"
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert seen.headers["x-custom"] == "Yes"
    assert seen.body == b'{"model":"m"}'
    assert seen.json == {"model": "m"}


def test_chunked_request_bodies_are_recorded_whole(fake: FakeUpstream) -> None:
    fake.script(Scripted.json({}))
    httpx.post(fake.url, content=iter([b"not ", b"json"]))
    assert fake.requests[0].headers["transfer-encoding"] == "chunked"
    assert fake.requests[0].body == b"not json"
    assert fake.requests[0].json is None


def test_streamed_replies_are_chunked_and_close_the_connection(fake: FakeUpstream) -> None:
    fake.script(Scripted(chunks=[b"data: one\n\n", b"data: two\n\n"]))
    raw = raw_exchange(fake.port, b"GET /v1/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"connection: close" in head.lower()
    assert b"content-type: text/event-stream; charset=utf-8" in head.lower()
    assert body == b"b\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n"


def test_json_replies_carry_a_content_length(fake: FakeUpstream) -> None:
    fake.script(Scripted.json({"error": "nope"}, status=429, headers={"retry-after": "2"}))
    response = httpx.get(fake.url)
    assert response.status_code == 429
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["retry-after"] == "2"
    assert response.reason_phrase == "Too Many Requests"


def test_delay_spaces_the_chunks(fake: FakeUpstream) -> None:
    fake.script(Scripted(chunks=[b"a", b"b", b"c"], delay=0.1))
    started = time.monotonic()
    assert httpx.get(fake.url).content == b"abc"
    assert time.monotonic() - started >= 0.2


# --- Endings: abort, hang, and clients that leave -----------------------------------


def test_abort_cuts_the_body_short(fake: FakeUpstream) -> None:
    fake.script(Scripted(chunks=chat_completion_stream(["Partial"], finish=None), then="abort"))
    received = bytearray()
    with httpx.stream("POST", fake.url) as response, pytest.raises(httpx.RemoteProtocolError):
        drain_into(received, response)
    assert b'"content":"Partial"' in received
    assert fake.disconnects == 0


def test_hang_keeps_quiet_until_the_client_leaves(fake: FakeUpstream) -> None:
    fake.script(Scripted(chunks=[b"data: first\n\n"], then="hang"))
    timeout = httpx.Timeout(5, read=0.3)
    with httpx.stream("POST", fake.url, timeout=timeout) as response:
        chunks = response.iter_raw()
        assert next(chunks) == b"data: first\n\n"
        with pytest.raises(httpx.ReadTimeout):
            next(chunks)
    assert fake.wait_for_disconnect(5)
    assert fake.disconnects == 1


def test_a_client_leaving_mid_reply_is_counted(fake: FakeUpstream) -> None:
    fake.script(Scripted(chunks=[b"data: %d\n\n" % i for i in range(100)], delay=0.05))
    with httpx.stream("POST", fake.url) as response:
        assert next(response.iter_lines()) == "data: 0"
    assert fake.wait_for_disconnect(5)


def test_complete_replies_are_not_disconnects(fake: FakeUpstream) -> None:
    fake.script(Scripted(chunks=[b"x"] * 5, delay=0.01))
    assert httpx.get(fake.url).content == b"xxxxx"
    assert not fake.wait_for_disconnect(0.2)


async def test_it_serves_async_clients_too(fake: FakeUpstream) -> None:
    fake.script(Scripted(chunks=chat_completion_stream(["a", "b"]), delay=0.01))
    fake.script(Scripted(chunks=[b"data: x\n\n"], then="hang"))
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake.url}/chat/completions", json={})
        assert response.content.endswith(b"data: [DONE]\n\n")
        async with client.stream("POST", fake.url) as hanging:
            assert hanging.status_code == 200
    assert await fake.await_disconnect(5)


def test_it_is_reachable_from_another_process(fake: FakeUpstream) -> None:
    fake.script(Scripted.json({"from": "fake"}))
    code = f"import urllib.request; print(urllib.request.urlopen({fake.url!r}).read().decode())"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {"from": "fake"}


def test_closing_stops_the_server() -> None:
    server = FakeUpstream()
    server.script(Scripted(chunks=[b"x"], then="hang"))
    with httpx.stream("GET", server.url, timeout=5) as response:
        assert response.status_code == 200
        server.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url)


# --- The SSE helpers ----------------------------------------------------------------


def test_chat_completion_stream_is_byte_for_byte_openai() -> None:
    chunks = chat_completion_stream(["Hi"], model="gpt-x", completion_id="chatcmpl-1", created=7)
    head = (
        'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"gpt-x",'
        '"service_tier":"default","system_fingerprint":"fp_560af6e559","choices":[{"index":0,'
    )
    assert chunks == [
        f'{head}"delta":{{"role":"assistant","content":"","refusal":null}},"logprobs":null,'
        '"finish_reason":null}]}\n\n'.encode(),
        f'{head}"delta":{{"content":"Hi"}},"logprobs":null,"finish_reason":null}}]}}\n\n'.encode(),
        f'{head}"delta":{{}},"logprobs":null,"finish_reason":"stop"}}]}}\n\n'.encode(),
        b"data: [DONE]\n\n",
    ]


def test_chat_completion_stream_with_usage_ends_in_a_usage_chunk() -> None:
    chunks = chat_completion_stream(["a", "b"], usage=openai_usage(5, 2, reasoning_tokens=1))
    bodies = [json.loads(c.removeprefix(b"data: ")) for c in chunks[:-1]]
    assert all(b["usage"] is None for b in bodies[:-1])
    assert bodies[-1]["choices"] == []
    assert bodies[-1]["usage"]["total_tokens"] == 7
    assert bodies[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 1
    assert chunks[-1] == b"data: [DONE]\n\n"


def test_chat_completion_stream_can_be_cut_short() -> None:
    chunks = chat_completion_stream(["a"], finish=None)
    assert len(chunks) == 2
    assert b"[DONE]" not in b"".join(chunks)


def test_sse_frames_events_and_multiline_data() -> None:
    assert sse({"type": "ping"}, "ping") == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert sse("one\ntwo") == b"data: one\ndata: two\n\n"
    assert sse({"text": "é"}) == 'data: {"text":"é"}\n\n'.encode()


def test_messages_stream_follows_anthropics_grammar() -> None:
    chunks = messages_stream(["Hel", "lo"], input_tokens=3)
    names = [c.split(b"\n", 1)[0].removeprefix(b"event: ").decode() for c in chunks]
    assert names == [
        "message_start", "content_block_start", "ping", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    delta = json.loads(chunks[-2].split(b"data: ", 1)[1])
    assert delta["usage"] == {"output_tokens": 2}
    assert len(messages_stream(["x"], stop_reason=None)) == 4


# --- The ASGI host ------------------------------------------------------------------

Message = MutableMapping[str, Any]


async def echo_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    request = await receive()
    body = json.dumps({"path": scope["path"], "query": scope["query_string"].decode(),
                       "body": request["body"].decode()}).encode()  # fmt: skip
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def test_serve_asgi_in_thread_serves_until_stopped() -> None:
    url, stop = serve_asgi_in_thread(echo_app)
    try:
        answer = httpx.post(f"{url}/some%20path?q=1", content=b"hello").json()
        assert answer == {"path": "/some path", "query": "q=1", "body": "hello"}
    finally:
        stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)


def test_asgi_server_streams_and_reports_the_disconnect() -> None:
    seen: list[str] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        seen.append((await receive())["type"])

    with AsgiServer(app) as server:
        with httpx.stream("GET", server.url) as response:
            assert response.headers["transfer-encoding"] == "chunked"
            assert next(response.iter_lines()) == "data: 1"
        # The client has gone; the server must tell the app while it still runs.
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert seen == ["http.disconnect"]


def test_asgi_server_answers_500_and_keeps_the_error_when_the_app_fails() -> None:
    async def broken(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    with AsgiServer(broken) as server:
        assert httpx.get(server.url).status_code == 500
        assert [str(e) for e in server.errors] == ["boom"]


async def test_asgi_server_works_from_async_tests() -> None:
    with AsgiServer(echo_app) as server:
        async with httpx.AsyncClient() as client:
            response = await client.post(server.url, content=b"async")
    assert response.json()["body"] == "async"
    await asyncio.sleep(0)
