"""Malformed frames on the chat socket: each earns a notice, none closes or crashes it."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from conversations.models import Message
from conversations.runs import runs
from tests.conftest import make_conversation, make_model
from tests.test_consumers import open_socket
from tests.upstream import Scripted, chat_completion_stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_streams")]

UNREADABLE = "could not read that request"

BAD_FRAMES = {
    "not JSON": "{not json",
    "a JSON list": "[1, 2]",
    "a JSON string": '"send"',
    "JSON null": "null",
    "a number too large for a float": "1e999",
    "a frame over 1 MB": json.dumps({"action": "send", "text": "x" * 1_100_000}),
    "an unknown action": json.dumps({"action": "explode"}),
    "an action that is a list": json.dumps({"action": ["send"]}),
    "text that is an object": json.dumps({"action": "send", "text": {"a": 1}}),
    "a message id that does not exist": json.dumps({"action": "retry", "message": "999999"}),
    "a message id in words": json.dumps({"action": "retry", "message": "abc"}),
    "a negative message id": json.dumps({"action": "retry", "message": -1}),
    "a negative message id as text": json.dumps({"action": "stop", "message": "-1"}),
    "a huge message id": json.dumps({"action": "retry", "message": 10**30}),
    "a fractional message id": json.dumps({"action": "retry", "message": 1.5}),
    "a boolean message id": json.dumps({"action": "retry", "message": True}),
    "a model id in words": json.dumps({"action": "send", "text": "hi", "model": "gpt"}),
    "a huge model id": json.dumps({"action": "send", "text": "hi", "model": "9" * 40}),
    "attachment ids in words": json.dumps({"action": "send", "text": "hi", "attachments": ["x"]}),
    "a missing retry target": json.dumps({"action": "retry"}),
}
UNSTORABLE_TEXT = {
    "NUL bytes in the text": json.dumps({"action": "send", "text": "a\x00b", "client_id": "n"}),
    "a lone surrogate in the text": '{"action": "send", "text": "a \\ud800 b", "client_id": "s"}',
    "a lone surrogate in the submission key": '{"action": "send", "text": "hi", "client_id": "\\udfff"}',
    "a lone surrogate in the system prompt": '{"action": "settings", "system_prompt": "\\ud800"}',
}


async def open_chat(user, model):
    conversation = await sync_to_async(make_conversation)(user, model, title="mine")
    socket, connected, _ = await open_socket(user, f"/ws/conversations/{conversation.pk}/")
    assert connected
    return socket


async def replies_to(socket, frame: str, until: str = 'class="notice', timeout: float = 10):
    """What the socket sent back, up to and including the frame containing `until`;
    a close (or a crash of the consumer) fails the test."""
    await socket.send_to(text_data=frame)
    seen: list[str] = []
    while not seen or until not in seen[-1]:
        output = await socket.receive_output(timeout=timeout)
        assert output["type"] == "websocket.send", output
        seen.append(output["text"])
    return seen


async def assert_still_serving(socket, timeout: float = 10) -> None:
    await replies_to(socket, "[]", until=UNREADABLE, timeout=timeout)


@pytest.mark.parametrize("frame", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_a_malformed_frame_gets_a_notice_and_the_socket_stays_open(alice, chat_model, frame):
    socket = await open_chat(alice, chat_model)
    replies = await replies_to(socket, frame)
    assert len(replies) == 1 and 'role="alert"' in replies[0]
    await assert_still_serving(socket)
    await socket.disconnect()
    assert not await Message.objects.aexists()


async def test_an_oversized_message_is_refused_with_the_limit_stated(alice, chat_model):
    socket = await open_chat(alice, chat_model)
    too_long = "y" * (settings.MAX_MESSAGE_CHARS + 1)
    replies = await replies_to(socket, json.dumps({"action": "send", "text": too_long}))
    assert f"the limit is {settings.MAX_MESSAGE_CHARS:,}" in replies[-1]
    await assert_still_serving(socket)
    await socket.disconnect()
    assert not await Message.objects.aexists()


async def test_a_binary_frame_gets_a_notice(alice, chat_model):
    socket = await open_chat(alice, chat_model)
    await socket.send_to(bytes_data=b"\x00\xff")
    assert "Binary frames are not supported" in await socket.receive_from(timeout=5)
    await assert_still_serving(socket)
    await socket.disconnect()


@pytest.mark.parametrize("frame", UNSTORABLE_TEXT.values(), ids=UNSTORABLE_TEXT.keys())
async def test_unstorable_characters_are_cleaned_or_refused_never_a_crash(alice, upstream, frame):
    upstream.script(Scripted(chunks=chat_completion_stream(["ok"])))
    model = await sync_to_async(make_model)(upstream.url)
    socket = await open_chat(alice, model)
    await socket.send_to(text_data=frame)
    await assert_still_serving(socket, timeout=1.5)
    await socket.disconnect()
    async for message in Message.objects.all():
        await runs.wait(message.pk)
        assert "\x00" not in message.content and "\ud800" not in message.content
