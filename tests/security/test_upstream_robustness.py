"""Broken upstreams through the real runner: the answer ends as an error with a plain
message and keeps the text that arrived; nothing unstorable reaches the database."""

from __future__ import annotations

import json

import pytest

from conversations.models import Message
from tests.test_streaming import run_to_end, start_exchange
from tests.upstream import Scripted, chat_completion_stream, sse

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_streams")]

PARTIAL = ["Partial ", "answer "]


def partial_then(*tail: bytes) -> list[bytes]:
    return [*chat_completion_stream(PARTIAL, finish=None), *tail]


def delta(text: str) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
    return sse({"id": "c", "object": "chat.completion.chunk", "choices": [choice]})


async def answer_to(alice, chat_model, upstream, reply: Scripted) -> Message:
    upstream.script(reply)
    message = await start_exchange(alice, chat_model)
    return await run_to_end(message, [])


FAILURES = {
    "garbage instead of events": (
        Scripted(chunks=[b"\x89PNG this is not an event stream at all\r\n", b"ok\n\n"]),
        "",
        "closed the stream before finishing",
    ),
    "an HTML page with status 200": (
        Scripted(
            headers={"content-type": "text/html"}, chunks=[b"<html><body>Login</body></html>"]
        ),
        "",
        "did not answer with an event stream (check the base URL)",
    ),
    "an HTML error page from a gateway": (
        Scripted(status=502, headers={"content-type": "text/html"}, chunks=[b"<h1>Bad</h1>"]),
        "",
        "bad gateway",
    ),
    "a line of 1 MB": (
        Scripted(chunks=partial_then(b"data: " + b"x" * (1024 * 1024 + 10) + b"\n\n")),
        "Partial answer ",
        "larger than 1024 KiB",
    ),
    "an event that is not JSON": (
        Scripted(chunks=partial_then(b"data: {not json\n\n")),
        "Partial answer ",
        "malformed data",
    ),
    "a stream without its terminal event": (
        Scripted(chunks=partial_then()),
        "Partial answer ",
        "closed the stream before finishing",
    ),
    "a connection dropped mid-answer": (
        Scripted(chunks=partial_then(), then="abort"),
        "Partial answer ",
        "dropped mid-answer",
    ),
    "an in-band error after some text": (
        Scripted(chunks=partial_then(sse({"error": {"message": "model overloaded"}}))),
        "Partial answer ",
        "model overloaded",
    ),
}


@pytest.mark.parametrize(("reply", "kept", "says"), FAILURES.values(), ids=FAILURES.keys())
async def test_a_broken_upstream_ends_the_answer_as_a_clear_error(
    alice, chat_model, upstream, reply, kept, says
):
    saved = await answer_to(alice, chat_model, upstream, reply)
    assert saved.status == Message.Status.ERROR
    assert saved.content == kept
    assert says in saved.error
    assert saved.error[:1].isupper() and len(saved.error) < 600
    assert saved.lease_expires_at is None


async def test_nul_characters_from_upstream_never_reach_the_database(alice, chat_model, upstream):
    # One escaped in JSON (a real NUL character in the text), one raw NUL-filled line.
    chunks = [delta("a\u0000b "), b"\x00\x00\x00\n", *chat_completion_stream(["c"])]
    saved = await answer_to(alice, chat_model, upstream, Scripted(chunks=chunks))
    assert saved.status == Message.Status.COMPLETE
    assert saved.content == "ab c"


async def test_invalid_utf8_becomes_replacement_characters(alice, chat_model, upstream):
    text = json.dumps({"choices": [{"index": 0, "delta": {"content": "café"}}]}, ensure_ascii=False)
    broken = b"data: " + text.encode().replace("é".encode(), b"\xff\xfe") + b"\n\n"
    chunks = [broken, *chat_completion_stream([" ok"])]
    saved = await answer_to(alice, chat_model, upstream, Scripted(chunks=chunks))
    assert saved.status == Message.Status.COMPLETE
    assert saved.content == "caf\ufffd\ufffd ok"


async def test_a_lone_surrogate_escaped_in_json_is_replaced(alice, chat_model, upstream):
    chunks = [b'data: {"choices": [{"index": 0, "delta": {"content": "x\\ud800y"}}]}\n\n']
    chunks += chat_completion_stream([" ok"])
    saved = await answer_to(alice, chat_model, upstream, Scripted(chunks=chunks))
    assert saved.status == Message.Status.COMPLETE
    assert saved.content == "x\ufffdy ok"
