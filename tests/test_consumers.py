"""The chat websocket through the real ASGI stack: auth, origin, ownership, commands, frames."""

from __future__ import annotations

import asyncio
import html
import json
import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from chatsite.asgi import application
from conversations import group_events, threads
from conversations.frames import delta as delta_frame
from conversations.frames import messages_added as added_frame
from conversations.models import Conversation, Message
from conversations.runs import group_name, runs
from tests.conftest import add_message, make_conversation
from tests.upstream import Scripted, chat_completion_stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_streams")]

ORIGIN = b"http://localhost"


@sync_to_async
def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def open_socket(user: Any, path: str = "/ws/conversations/", origin: bytes = ORIGIN):
    headers = [(b"origin", origin), (b"host", b"localhost")]
    if user is not None:
        headers.append((b"cookie", f"sessionid={await session_cookie(user)}".encode()))
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await socket.connect(timeout=5)
    return socket, connected, code


async def frames_until(
    socket: WebsocketCommunicator, pattern: str, timeout: float = 10
) -> list[str]:
    frames: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not frames or not re.search(pattern, frames[-1]):
        frames.append(await socket.receive_from(timeout=max(0.1, deadline - loop.time())))
    return frames


def streamed_text(frames: list[str], message_id: int) -> str:
    """Rebuild what a browser shows while streaming: a redraw, appended blocks, the tail."""
    blocks, tail = "", ""
    for frame in frames:
        redraw = re.search(
            rf'id="message-{message_id}-blocks">(.*?)</div><div class="markdown markdown--tail" '
            rf'id="message-{message_id}-tail">(.*?)</div></div>',
            frame,
            re.S,
        )
        if redraw:
            blocks, tail = redraw.group(1), redraw.group(2)
        for added in re.findall(
            rf'"beforeend:#message-{message_id}-blocks">(.*?)</div>', frame, re.S
        ):
            blocks += added
        for new_tail in re.findall(
            rf'"innerHTML:#message-{message_id}-tail">(.*?)</div>', frame, re.S
        ):
            tail = new_tail
    return html.unescape(re.sub(r"<[^>]+>", "", blocks + tail)).strip()


def retry_frame(message_id: int) -> str:
    return json.dumps({"action": "retry", "message": str(message_id)})


def send_frame(text: str, model: int | None = None, client_id: str = "c1") -> str:
    payload = {
        "action": "send",
        "text": text,
        "client_id": client_id,
        "HEADERS": {"HX-Request": "true"},
    }
    if model is not None:
        payload["model"] = str(model)
    return json.dumps(payload)


async def test_anonymous_sockets_are_refused(db):
    _, connected, code = await open_socket(None)
    assert not connected
    assert code == 4401


async def test_foreign_origins_are_refused(alice):
    _, connected, _ = await open_socket(alice, origin=b"https://evil.example")
    assert not connected


async def test_another_users_conversation_is_refused(alice, bob, chat_model):
    theirs = await sync_to_async(make_conversation)(bob, chat_model)
    _, connected, code = await open_socket(alice, f"/ws/conversations/{theirs.pk}/")
    assert not connected
    assert code == 4404


async def test_sending_creates_a_conversation_and_streams_the_answer(alice, chat_model, upstream):
    upstream.script(Scripted(chunks=chat_completion_stream(["Hi ", "<b>there</b>", "!"])))
    socket, connected, _ = await open_socket(alice)
    assert connected

    await socket.send_to(text_data=send_frame("Hello <script>", model=chat_model.pk))
    frames = await frames_until(socket, r'data-role="assistant" data-status="complete"')
    await socket.disconnect()

    conversation = await Conversation.objects.aget(owner=alice)
    user_msg, answer = [m async for m in conversation.messages.order_by("id")]
    assert user_msg.content == "Hello <script>" and answer.content == "Hi <b>there</b>!"
    joined = "".join(frames)
    assert 'hx-swap-oob="afterbegin:#conversation-list"' in joined
    assert 'data-testid="message" data-role="user"' in joined
    assert "Hello &lt;script&gt;" in joined and "<script>" not in joined
    assert streamed_text(frames, answer.pk) == "Hi <b>there</b>!"
    assert f'id="message-{answer.pk}"' in frames[-1] and 'hx-swap-oob="true"' in frames[-1]


async def test_a_forged_model_id_is_refused_and_nothing_is_sent(alice, chat_model, upstream):
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("hi", model=999999))
    frame = await socket.receive_from(timeout=5)
    await socket.disconnect()
    assert "not available" in frame and 'role="alert"' in frame
    assert upstream.requests == []
    assert not await Message.objects.aexists()


async def test_malformed_frames_get_a_clear_notice(alice, chat_model):
    socket, _, _ = await open_socket(alice)
    for bad in ["{not json", "[1, 2]", json.dumps({"action": "explode"}), json.dumps({"text": 5})]:
        await socket.send_to(text_data=bad)
        frame = await socket.receive_from(timeout=5)
        assert "notice" in frame
    await socket.send_to(text_data=send_frame("   "))
    assert "Type a message" in await socket.receive_from(timeout=5)
    await socket.disconnect()


async def test_a_resent_submission_starts_only_one_upstream_call(alice, chat_model, upstream):
    upstream.script(Scripted(chunks=chat_completion_stream(["once"])))
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("hello", client_id="same-key"))
    await socket.send_to(text_data=send_frame("hello", client_id="same-key"))
    await frames_until(socket, r'data-role="assistant" data-status="complete"')
    await asyncio.sleep(0.2)
    await socket.disconnect()
    assert len(upstream.requests) == 1
    assert await Message.objects.acount() == 2


async def test_stop_over_the_socket_cancels_and_keeps_the_partial_answer(
    alice, chat_model, upstream
):
    pieces = [f"w{i} " for i in range(500)]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces), delay=0.01))
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("long please"))
    await frames_until(socket, r"innerHTML:#message-\d+-tail")
    await socket.send_to(text_data=json.dumps({"action": "stop"}))
    frames = await frames_until(socket, r'data-role="assistant" data-status="cancelled"')
    await socket.disconnect()

    answer = await Message.objects.aget(role="assistant")
    assert answer.status == "cancelled"
    assert answer.content.startswith("w0 ") and len(answer.content) < len("".join(pieces))
    assert "Stopped" in frames[-1]
    assert await asyncio.to_thread(upstream.wait_for_disconnect, 5)


async def test_closing_the_tab_does_not_stop_the_answer(alice, chat_model, upstream):
    upstream.script(
        Scripted(chunks=chat_completion_stream([f"x{i} " for i in range(40)]), delay=0.005)
    )
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("go"))
    await frames_until(socket, r"innerHTML:#message-\d+-tail")
    await socket.disconnect()
    answer = await Message.objects.aget(role="assistant")
    await runs.wait(answer.pk)
    answer = await Message.objects.aget(pk=answer.pk)
    assert answer.status == "complete" and answer.content.endswith("x39 ")


async def test_a_reconnecting_tab_gets_the_answer_so_far_then_the_rest_without_gaps(
    alice, chat_model, upstream
):
    pieces = [f"tok{i} " for i in range(150)]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces), delay=0.004))
    first, _, _ = await open_socket(alice)
    await first.send_to(text_data=send_frame("stream"))
    await frames_until(first, r"innerHTML:#message-\d+-tail")
    conversation = await Conversation.objects.aget(owner=alice)
    answer = await Message.objects.aget(role="assistant")

    second, connected, _ = await open_socket(alice, f"/ws/conversations/{conversation.pk}/")
    assert connected
    frames = await frames_until(second, r'data-role="assistant" data-status="complete"')
    await first.disconnect()
    await second.disconnect()

    assert streamed_text(frames, answer.pk) == "".join(pieces).strip()


async def test_retry_generates_a_failed_answer_again(alice, chat_model, upstream):
    upstream.script(
        Scripted(
            status=503,
            headers={"content-type": "application/json"},
            chunks=[b'{"error": {"message": "busy"}}'],
        ),
        Scripted(chunks=chat_completion_stream(["second ", "time"])),
    )
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("try"))
    frames = await frames_until(socket, r'data-role="assistant" data-status="error"')
    assert 'data-testid="retry"' in frames[-1]
    answer = await Message.objects.aget(role="assistant")
    await socket.send_to(text_data=retry_frame(answer.pk))
    await frames_until(socket, r'data-role="assistant" data-status="complete"')
    await socket.disconnect()
    answer = await Message.objects.aget(pk=answer.pk)
    assert answer.status == "complete" and answer.content == "second time"


def first_text_came_as_a_delta(frames: list[str], answer_id: int) -> bool:
    """Whether the answer's first text reached this tab as a delta to its waiting drawing
    (not as the whole answer drawn again, marked streaming)."""
    redrawn = rf'id="message-{answer_id}" [^>]*data-status="streaming"'
    assert not [f for f in frames if re.search(redrawn, f)], "redrawn whole while streaming"
    return any(f'data-delta="tail" data-message="{answer_id}"' in f for f in frames)


@pytest.mark.parametrize("again", ["retry", "regenerate"])
async def test_an_answer_asked_for_again_gets_its_first_text_as_a_delta(
    alice, chat_model, upstream, again
):
    """Retry redraws the answer waiting (message_updated), Regenerate the thread with a new
    version waiting (thread_changed): either drawing is what the first text is added to,
    as for a new question (a whole redraw cost a read and a render on its way)."""
    first = (
        Scripted.json({"error": {"message": "busy"}}, status=503)
        if again == "retry"
        else Scripted(chunks=chat_completion_stream(["first ", "time"]))
    )
    upstream.script(first, Scripted(chunks=chat_completion_stream(["second ", "time"])))
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("try"))
    await frames_until(socket, r'data-role="assistant" data-status="(error|complete)"')
    answer = await Message.objects.aget(role="assistant")
    command = {"action": again, "message": str(answer.pk)}

    await socket.send_to(text_data=json.dumps(command))
    frames = await frames_until(socket, r'data-role="assistant" data-status="complete"')
    await socket.disconnect()

    latest = await Message.objects.filter(role="assistant").alatest("id")
    assert (latest.status, latest.content) == ("complete", "second time")
    assert (latest.pk == answer.pk) == (again == "retry")
    assert first_text_came_as_a_delta(frames, latest.pk)
    assert streamed_text(frames, latest.pk) == "second time"


async def test_retrying_an_answer_the_conversation_went_on_from_adds_a_version(
    alice, chat_model, upstream
):
    """The Retry button shows on every failed answer, so it must work on one that is no
    longer the last: the retry is a new version, and what followed the failure stays."""
    upstream.script(
        Scripted.json({"error": {"message": "busy"}}, status=503),
        Scripted(chunks=chat_completion_stream(["went ", "on"])),
        Scripted(chunks=chat_completion_stream(["second ", "time"])),
    )
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("try"))
    await frames_until(socket, r'data-role="assistant" data-status="error"')
    failed = await Message.objects.aget(role="assistant")
    await socket.send_to(text_data=send_frame("go on anyway", client_id="c2"))
    await frames_until(socket, r'data-role="assistant" data-status="complete"')

    await socket.send_to(text_data=retry_frame(failed.pk))
    frames = await frames_until(socket, r'data-role="assistant" data-status="complete"')
    await socket.disconnect()

    assert not any("notice" in f and "retried" in f for f in frames)
    retried = await Message.objects.select_related("conversation").aget(content="second time")
    assert retried.pk != failed.pk and retried.parent_id == failed.parent_id
    assert await sync_to_async(threads.current_leaf_id)(retried.conversation) == retried.pk
    failed = await Message.objects.aget(pk=failed.pk)
    assert failed.status == "error"  # the old version and its follow-up stay reachable
    assert await Message.objects.filter(parent_id=failed.pk, content="go on anyway").aexists()
    assert "2/2" in frames[-1]  # the new version, beside the failed one


async def test_retrying_a_finished_answer_keeps_it_as_a_version(alice, chat_model, upstream):
    upstream.script(
        Scripted(chunks=chat_completion_stream(["first"])),
        Scripted(chunks=chat_completion_stream(["again"])),
    )
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("hello"))
    await frames_until(socket, r'data-role="assistant" data-status="complete"')
    answer = await Message.objects.aget(role="assistant")
    await socket.send_to(text_data=retry_frame(answer.pk))
    await frames_until(socket, r'data-role="assistant" data-status="complete"')
    await socket.disconnect()

    kept = await Message.objects.aget(pk=answer.pk)
    assert kept.content == "first" and kept.status == "complete"
    assert await Message.objects.filter(parent_id=answer.parent_id, content="again").aexists()


async def test_every_tab_of_the_conversation_draws_the_new_messages_once_and_the_answer(
    alice, chat_model, upstream
):
    pieces = [f"both{i} " for i in range(30)]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces), delay=0.002))
    conversation = await sync_to_async(make_conversation)(alice, chat_model)
    path = f"/ws/conversations/{conversation.pk}/"
    sender, _, _ = await open_socket(alice, path)
    watcher, _, _ = await open_socket(alice, path)

    await sender.send_to(text_data=send_frame("a question seen twice"))
    done = r'data-role="assistant" data-status="complete"'
    seen = [await frames_until(sender, done), await frames_until(watcher, done)]
    await sender.disconnect()
    await watcher.disconnect()

    answer = await Message.objects.aget(role="assistant")
    for frames in seen:
        assert sum(f.count("a question seen twice</div>") for f in frames) == 1
        assert streamed_text(frames, answer.pk) == "".join(pieces).strip()


async def test_a_tab_that_draws_a_streaming_answer_again_goes_on_without_doubling_it(
    alice, chat_model, upstream
):
    """The new messages can reach a tab after it drew the answer live (it joined as the
    question was sent, or the event was slower than the first frame). Drawn again from the
    last checkpoint, the answer must be redrawn whole by the next frame, not added to."""
    pieces = [f"late{i} " for i in range(40)]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces), delay=0.02))
    conversation = await sync_to_async(make_conversation)(alice, chat_model)
    path = f"/ws/conversations/{conversation.pk}/"
    sender, _, _ = await open_socket(alice, path)
    watcher, _, _ = await open_socket(alice, path)
    await sender.send_to(text_data=send_frame("a question"))
    frames = await frames_until(watcher, 'data-delta="tail"')
    answer = await Message.objects.aget(role="assistant")
    while "late0 late1" not in answer.content:  # a checkpoint has saved part of it
        await asyncio.sleep(0.02)
        await answer.arefresh_from_db()

    late = {"type": "chat.messages_added", "message_ids": [answer.parent_id, answer.pk]}
    await get_channel_layer().group_send(group_name(conversation.pk), late)
    frames += await frames_until(watcher, r'data-role="assistant" data-status="complete"')
    await sender.disconnect()
    await watcher.disconnect()

    assert any("late0 late1" in f and 'hx-swap-oob="beforeend:#messages"' in f for f in frames)
    assert streamed_text(frames, answer.pk) == "".join(pieces).strip()


async def test_a_watching_tab_draws_new_messages_as_the_sending_tab_drew_them(
    alice, chat_model, upstream
):
    upstream.script(Scripted(chunks=chat_completion_stream(["Hi ", "there."]), delay=0.05))
    conversation = await sync_to_async(make_conversation)(alice, chat_model)
    path = f"/ws/conversations/{conversation.pk}/"
    sender, _, _ = await open_socket(alice, path)
    watcher, _, _ = await open_socket(alice, path)
    await sender.send_to(text_data=send_frame("a <b>question</b>"))
    sent = [f for f in await frames_until(sender, "beforeend:#messages") if "#messages" in f]
    seen = [f for f in await frames_until(watcher, "beforeend:#messages") if "#messages" in f]
    await frames_until(watcher, r'data-role="assistant" data-status="complete"')
    await sender.disconnect()
    await watcher.disconnect()

    assert seen == sent and "a &lt;b&gt;question&lt;/b&gt;" in seen[0]


async def ship_then_stream(conversation: Conversation, answer: dict[str, str], text: str) -> str:
    """Another tab's new question and answer (`answer`: its fields), never saved, shipped to
    the conversation's tabs as drawn, then the answer's first frame with `text`; returns the
    drawing."""
    question = Message(pk=900, conversation=conversation, role="user", content="unsaved")
    shown = Message(pk=901, conversation=conversation, role="assistant", parent_id=900, **answer)
    drawn = await sync_to_async(added_frame)([question, shown], generating=True)
    event = group_events.messages_added([question, shown], drawn, origin="elsewhere")
    layer = get_channel_layer()
    await layer.group_send(group_name(conversation.pk), event)
    first = {
        "type": "chat.delta", "message_id": 901, "blocks": "", "blocks_offset": 0,
        "tail": f"<p>{text}</p>", "reasoning": "", "reasoning_offset": 0, "text": text,
    }  # fmt: skip
    await layer.group_send(group_name(conversation.pk), first)
    return drawn


async def test_shipped_new_messages_are_drawn_and_streamed_without_reading_them(alice, chat_model):
    """What the event brings is drawn as is: these messages were never saved, and a tab
    that read them back would find nothing to draw, nor an answer to stream into."""
    conversation = await sync_to_async(make_conversation)(alice, chat_model)
    socket, _, _ = await open_socket(alice, f"/ws/conversations/{conversation.pk}/")
    drawn = await ship_then_stream(conversation, {"status": "pending"}, "Hel")

    assert await socket.receive_from(timeout=5) == drawn
    # Drawn waiting here, its first text comes as a delta (the page marks it as streaming).
    assert await socket.receive_from(timeout=5) == delta_frame(901, "", "<p>Hel</p>", "")
    await socket.disconnect()


async def test_an_answer_drawn_from_its_checkpoint_is_redrawn_whole_by_its_first_frame(
    alice, chat_model
):
    """A tab that drew an answer as last saved (it joined while the answer streamed) must
    not add the live text to that drawing: the first frame redraws it whole."""
    conversation = await sync_to_async(make_conversation)(alice, chat_model)
    socket, _, _ = await open_socket(alice, f"/ws/conversations/{conversation.pk}/")
    saved = {"status": "streaming", "content": "Saved so far"}
    drawn = await ship_then_stream(conversation, saved, "Saved so far, and more")

    assert await socket.receive_from(timeout=5) == drawn
    live = await socket.receive_from(timeout=5)
    assert 'id="message-901"' in live and 'data-status="streaming"' in live
    assert (
        '<div class="markdown markdown--tail" id="message-901-tail"><p>Saved so far, and more</p>'
        in live
    )
    assert "Saved so far</p>" not in live.split('id="message-901-tail"')[0]  # not kept beside it
    await socket.disconnect()


async def test_a_long_question_reaches_watching_tabs_read_from_the_database(
    alice, chat_model, upstream
):
    upstream.script(Scripted(chunks=chat_completion_stream(["Long ", "read."])))
    conversation = await sync_to_async(make_conversation)(alice, chat_model)
    path = f"/ws/conversations/{conversation.pk}/"
    sender, _, _ = await open_socket(alice, path)
    watcher, _, _ = await open_socket(alice, path)
    text = "word " * (group_events.SHIPPED_LIMIT // 5)
    await sender.send_to(text_data=send_frame(text))
    seen = await frames_until(watcher, r'data-role="assistant" data-status="complete"')
    await sender.disconnect()
    await watcher.disconnect()

    added = [f for f in seen if "beforeend:#messages" in f]
    assert len(added) == 1 and added[0].count(text.strip()) == 2  # the text and its edit box
    assert "Long read." in seen[-1]


def test_an_event_ships_new_messages_only_up_to_its_limit(alice, chat_model):
    conversation = make_conversation(alice, chat_model)
    question = add_message(conversation, "user", "short")
    answer = add_message(conversation, "assistant", "", parent=question, status="pending")
    short = group_events.messages_added([question, answer], "<p>short</p>", "me")
    long = group_events.messages_added([question, answer], "x" * 40_000, "me")

    assert short["message_ids"] == long["message_ids"] == [question.pk, answer.pk]
    shipped = group_events.drawn(short, [question.pk, answer.pk])
    assert group_events.drawn(short, [answer.pk]) is None  # the page had the question
    assert "html" not in long and group_events.drawn(long, [question.pk, answer.pk]) is None
    assert shipped is not None and shipped[0] == "<p>short</p>"
    live = shipped[1]
    assert [(m.pk, m.status, m.parent_id) for m in live] == [(answer.pk, "pending", question.pk)]


@sync_to_async
def answered_conversation(user: Any, model: Any) -> tuple[Conversation, Message]:
    """A conversation of one finished exchange, its answer the branch shown."""
    conversation = make_conversation(user, model)
    question = add_message(conversation, "user", "hello")
    answer = add_message(conversation, "assistant", "hi", parent=question, status="complete")
    return conversation, answer


async def test_a_page_that_missed_new_messages_gets_the_thread_again_when_its_socket_joins(
    alice, chat_model, upstream
):
    """A page drawn before another tab sent a question, whose socket joined after: the new
    messages were never announced to it. It says what it shows (`?after=`), and is redrawn."""
    upstream.script(Scripted(chunks=chat_completion_stream(["Second ", "answer."])))
    conversation, first_answer = await answered_conversation(alice, chat_model)
    path = f"/ws/conversations/{conversation.pk}/"
    sender, _, _ = await open_socket(alice, path)
    await sender.send_to(text_data=send_frame("second", client_id="c2"))
    await frames_until(sender, r'data-role="assistant" data-status="complete"')
    await sender.disconnect()
    second = await Message.objects.aget(role="user", content="second")
    second_answer = await Message.objects.aget(parent=second)

    behind, _, _ = await open_socket(alice, f"{path}?after={first_answer.pk}")
    redrawn = await behind.receive_from(timeout=5)
    current, _, _ = await open_socket(alice, f"{path}?after={second_answer.pk}")

    assert 'id="messages"' in redrawn and 'hx-swap-oob="innerHTML"' in redrawn
    assert f'id="message-{second.pk}"' in redrawn and "Second answer." in redrawn
    assert await current.receive_nothing(timeout=0.3)  # up to date: nothing to redraw
    await behind.disconnect()
    await current.disconnect()


async def test_new_messages_a_page_already_shows_are_not_drawn_again(alice, chat_model):
    """Saved before the page was drawn, announced after its socket joined: a second copy
    would be appended below the first."""
    conversation, answer = await answered_conversation(alice, chat_model)
    path = f"/ws/conversations/{conversation.pk}/?after={answer.pk}"
    socket, _, _ = await open_socket(alice, path)

    late = {"type": "chat.messages_added", "message_ids": [answer.parent_id, answer.pk]}
    await get_channel_layer().group_send(group_name(conversation.pk), late)

    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()


@pytest.mark.parametrize("query", ["after=abc", "after=%C2%B2", "after=-1", "after=" + "9" * 30])
async def test_a_page_position_that_is_not_a_message_id_is_ignored(alice, chat_model, query):
    conversation, _ = await answered_conversation(alice, chat_model)
    socket, connected, _ = await open_socket(alice, f"/ws/conversations/{conversation.pk}/?{query}")
    assert connected
    assert await socket.receive_nothing(timeout=0.2)  # no redraw, and the socket stays up
    await socket.disconnect()
