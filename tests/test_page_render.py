"""The conversation page draws each message from one view: same HTML as the socket frames,
every hook the browser relies on, and a query count that does not grow with the length."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.db.models import prefetch_related_objects
from django.template import engines
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations import frames, threads
from conversations.coalescer import LiveState
from conversations.models import Attachment, Conversation, Message, User
from conversations.templatetags import chat_message
from tests.conftest import add_message, logged_in, make_conversation, make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(db):
    return make_model("http://127.0.0.1:9/v1")


def attach(message: Message, name: str) -> Attachment:
    return Attachment.objects.create(
        owner=message.conversation.owner,
        message=message,
        file=f"attachments/{name}",
        media_type="image/png",
        width=64,
        height=48,
        size_bytes=10,
        original_name=name,
    )


def article(page: str, message: Message) -> str:
    found = re.search(rf'<article [^>]*id="message-{message.pk}".*?</article>', page, re.S)
    assert found, f"message {message.pk} is not on the page"
    return found.group(0)


def page_of(user: User, conversation: Conversation) -> str:
    response = logged_in(user).get(f"/c/{conversation.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def messages_of(page: str) -> str:
    found = re.search(r'<section class="messages".*?</section>', page, re.S)
    assert found
    return found.group(0)


def chat(alice: User, model, turns: int) -> Conversation:
    conversation = make_conversation(alice, model)
    parent = None
    for n in range(turns):
        question = add_message(conversation, "user", f"question {n}", parent=parent)
        attach(question, f"photo-{n}.png")
        parent = add_message(
            conversation,
            "assistant",
            f"answer {n}",
            content_html=f"<p>answer {n}</p>",
            parent=question,
        )
    return conversation


def test_a_long_conversation_takes_as_many_queries_as_a_short_one(alice, model):
    counts = []
    for turns in (1, 40):
        conversation = chat(alice, model, turns)
        client = logged_in(alice)
        with CaptureQueriesContext(connection) as queries:
            page = client.get(f"/c/{conversation.pk}/").content.decode()
        assert page.count('data-testid="attachment"') == turns
        counts.append(len(queries.captured_queries))
    assert counts[0] == counts[1] <= 8


def test_a_question_shows_its_images_its_edit_form_and_no_regenerate(alice, model):
    conversation = make_conversation(alice, model)
    question = add_message(conversation, "user", "<script>x</script> & more")
    first, second = attach(question, "a.png"), attach(question, "")
    html = article(page_of(alice, conversation), question)
    pk = question.pk
    assert html.startswith(
        f'<article class="message message--user is-complete" id="message-{pk}" data-testid="message"'
        ' data-role="user" data-status="complete">'
    )
    assert f'href="{reverse("attachment_file", args=[first.pk])}"' in html
    assert f'src="{reverse("attachment_thumb", args=[second.pk])}" alt="Attached image"' in html
    assert f'<div class="message__text plain" id="message-{pk}-text">&lt;script&gt;' in html
    assert f'<textarea id="message-{pk}-edit-text" name="text" rows="3">&lt;script&gt;' in html
    assert f'<input type="hidden" name="message" value="{pk}">' in html
    assert 'data-testid="edit-message"' in html and 'data-testid="copy-message"' in html
    assert "<script>" not in html and 'data-testid="regenerate"' not in html


def test_an_answer_shows_its_reasoning_tool_calls_and_figures(alice, model):
    conversation = make_conversation(alice, model)
    answer = add_message(
        conversation,
        "assistant",
        "done",
        content_html="<p>done</p>",
        model_name="Model <b>",
        reasoning="Because <reasons>",
        reasoning_ms=850,
        tool_calls=[{"name": "lookup<", "arguments": '{"q": 1}'}],
        output_tokens=12,
        ttft_ms=0,
        duration_ms=12345,
        finish_reason="length",
    )
    html = article(page_of(alice, conversation), answer)
    assert '<span class="message__author">Model &lt;b&gt;</span>' in html
    assert "<summary>Thought for 850 ms</summary>" in html
    assert ">Because &lt;reasons&gt;</div>" in html
    assert "<code>lookup&lt;</code>" in html
    assert '<div class="message__text markdown"><p>done</p></div>' in html
    assert "? → 12 tokens" in html and "first token 0 ms" in html
    assert '<span title="Total time">12 s</span>' in html and "finish: length" in html
    assert 'class="badge' not in html and 'data-testid="regenerate"' in html


def test_only_the_last_answer_offers_regenerate(alice, model):
    conversation = chat(alice, model, 3)
    page = page_of(alice, conversation)
    assert page.count('data-testid="regenerate"') == 1
    last = conversation.messages.filter(role="assistant").last()
    assert last is not None and 'data-testid="regenerate"' in article(page, last)


def test_a_failed_and_a_stopped_answer_say_so(alice, model):
    conversation = make_conversation(alice, model)
    failed = add_message(conversation, "assistant", "", status="error")
    stopped = add_message(conversation, "assistant", "half", status="cancelled")
    page = page_of(alice, conversation)
    failure = article(page, failed)
    assert '<span class="badge badge--error">Failed</span>' in failure
    assert "<p>This answer failed.</p>" in failure
    assert f'hx-vals=\'{{"action": "retry", "message": "{failed.pk}"}}\'' in failure
    stop = article(page, stopped)
    assert '<span class="badge badge--muted">Stopped</span>' in stop
    assert "the text above is what was written before Stop" in stop


def test_a_version_offers_its_siblings(alice, model):
    conversation = make_conversation(alice, model)
    question = add_message(conversation, "user", "hello")
    answer = add_message(conversation, "assistant", "hi", parent=question)
    first = add_message(conversation, "user", "first try", parent=answer)
    second = add_message(conversation, "user", "second try", parent=answer)
    html = article(page_of(alice, conversation), second)
    assert '<span data-testid="version-label">2/2</span>' in html
    assert f'hx-vals=\'{{"action": "switch", "message": "{first.pk}"}}\'' in html
    assert (
        'data-testid="version-next" ws-send hx-vals=\'{"action": "switch", "message": ""}\' disabled'
        in html
    )


def test_the_page_and_the_socket_draw_a_message_alike(alice, model):
    conversation = chat(alice, model, 2)
    page = page_of(alice, conversation)
    messages = list(conversation.messages.all())
    for message in [m for m in messages if m.role == "user"] + messages[-1:]:  # frames: is_last
        prefetch_related_objects([message], "attachments")
        frame = frames.message_updated(message, False, threads.version_of(message))
        drawn = article(frame, message).replace(' hx-swap-oob="true"', "", 1)
        assert drawn == article(page, message)


def test_a_streaming_answer_is_drawn_as_far_as_it_has_got(alice, model):
    conversation = make_conversation(alice, model)
    answer = add_message(
        conversation,
        "assistant",
        "**so far**",
        status="streaming",
        lease_expires_at=Message.lease_until(),
    )
    html = article(page_of(alice, conversation), answer)
    assert (
        f'<div class="message__text markdown" id="message-{answer.pk}-blocks"><p><strong>so far'
        in html
    )
    assert '<details class="reasoning"' in html and " open>" in html
    assert '<footer class="message__footer">' not in html
    live = frames.live_message(answer, LiveState(blocks="<p>b</p>", tail="<p>t</p>", reasoning="r"))
    assert f'id="message-{answer.pk}-blocks"><p>b</p></div>' in live
    assert f'id="message-{answer.pk}-tail"><p>t</p></div>' in live
    assert (
        f'id="message-{answer.pk}" data-testid="message"' in live and 'hx-swap-oob="true"' in live
    )


def test_settled_messages_are_drawn_once_and_redrawn_when_anything_they_show_changes(alice, model):
    chat_message.rendered.clear()
    conversation = chat(alice, model, turns=3)
    first = page_of(alice, conversation)
    kept = len(chat_message.rendered)
    assert kept == 6
    assert messages_of(page_of(alice, conversation)) == messages_of(first)  # from the store
    assert len(chat_message.rendered) == kept

    answer = conversation.messages.filter(role="assistant").order_by("id").last()
    assert answer is not None
    Message.objects.filter(pk=answer.pk).update(content_html="<p>edited answer</p>")
    later = page_of(alice, conversation)
    assert "edited answer" in article(later, answer)

    add_message(conversation, "user", "one more", parent=answer)  # the newest: on screen
    moved = page_of(alice, conversation)
    # The earlier last answer loses its Regenerate button: `is_last` is part of its view.
    assert 'data-testid="regenerate"' not in article(moved, answer)


def test_live_answers_are_never_kept(alice, model):
    chat_message.rendered.clear()
    conversation = make_conversation(alice, model)
    add_message(conversation, "user", "go")
    add_message(
        conversation,
        "assistant",
        "partial",
        status="streaming",
        lease_expires_at=Message.lease_until(),  # its worker is alive: not swept
    )
    assert 'data-status="streaming"' in page_of(alice, conversation)
    kept = list(chat_message.rendered._entries.values())
    assert len(kept) == 1 and 'data-role="user"' in kept[0]  # only the question


def test_the_store_drops_the_least_recently_used_past_its_size():
    store = chat_message.RenderedMessages(max_chars=800)
    for n in range(10):
        store.put(f"k{n}", "x" * 100)
    assert store.get("k0") is None and store.get("k9") == "x" * 100
    store.put("huge", "y" * 500)  # over an eighth of the store: not kept
    assert store.get("huge") is None
    assert sum(len(v) for v in store._entries.values()) <= 800


def test_one_off_socket_frames_are_not_kept(alice, model):
    chat_message.rendered.clear()
    conversation = chat(alice, model, turns=1)
    answer = conversation.messages.get(role="assistant")
    frame = frames.message_updated(answer, generating=False)
    assert f'id="message-{answer.pk}"' in frame
    assert len(chat_message.rendered) == 0


INCLUDE_PER_MESSAGE = (
    "{% for message in chat_messages %}{% include 'conversations/_message.html' "
    "with is_last=forloop.last keep_html=True %}{% endfor %}"
)


def test_the_message_list_draws_what_an_include_per_message_draws(alice, model):
    conversation = chat(alice, model, turns=3)
    answer = conversation.messages.filter(role="assistant").order_by("id").first()
    assert answer is not None
    newest = add_message(conversation, "assistant", "another version", parent=answer.parent)
    conversation.pick_branch(answer.pk, newest.pk)  # version 1/2 on screen
    conversation.save()
    thread = threads.thread_of(conversation)
    context = {
        "chat_messages": thread.messages,
        "versions": thread.versions,
        "message_images": {m.pk: list(m.attachments.all()) for m in thread.messages},
    }
    engine = engines["django"]

    listed = engine.from_string("{% load chat_message %}{% message_list chat_messages %}")
    included = engine.from_string(INCLUDE_PER_MESSAGE)

    chat_message.rendered.clear()  # drawn, not read from the store
    html = listed.render(context)
    chat_message.rendered.clear()
    assert html == included.render(context)
    assert html.count('data-testid="regenerate"') == 1 and "1/2" in html
    assert html.count('data-testid="attachment"') == 1  # the thread's question up to `answer`


def test_a_question_whose_text_changed_is_drawn_again(alice, model):
    chat_message.rendered.clear()
    conversation = chat(alice, model, turns=1)
    question = conversation.messages.get(role="user")
    assert "question 0" in article(page_of(alice, conversation), question)

    # The same length, other words: the key holds the text itself, not its size.
    Message.objects.filter(pk=question.pk).update(content="question X")
    assert "question X" in article(page_of(alice, conversation), question)
