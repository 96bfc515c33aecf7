"""The delta frame: the shape static/js/chat.js recognises and applies without htmx."""

from __future__ import annotations

import re

import pytest

from conversations import frames
from tests.conftest import add_message, make_conversation

PART = re.compile(
    r'<div data-delta="(\w+)" data-message="(\d+)" hx-swap-oob="([^"]+)">(.*?)</div>', re.S
)


def test_every_part_names_itself_its_message_and_its_htmx_swap():
    frame = frames.delta(7, "<p>done</p>\n", "<p>open</p>\n", "thinking")
    assert frame.startswith('<div data-delta="')
    assert PART.findall(frame) == [
        ("blocks", "7", "beforeend:#message-7-blocks", "<p>done</p>\n"),
        ("tail", "7", "innerHTML:#message-7-tail", "<p>open</p>\n"),
        ("reasoning", "7", "beforeend:#message-7-reasoning", "thinking"),
    ]
    assert "".join(m.group(0) for m in PART.finditer(frame)) == frame


def test_only_the_tail_is_always_sent():
    frame = frames.delta(7, "", "", "")
    assert frame == (
        '<div data-delta="tail" data-message="7" hx-swap-oob="innerHTML:#message-7-tail"></div>'
    )


def test_reasoning_is_escaped_text():
    frame = frames.delta(7, "", "", '<img src=x onerror=alert(1)> & "q"')
    assert "<img" not in frame
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;</div>" in frame


@pytest.mark.django_db
def test_only_a_conversations_first_exchange_removes_the_empty_state(alice):
    conversation = make_conversation(alice)
    first = add_message(conversation, "user", "hello")
    answer = add_message(conversation, "assistant", "hi", parent=first)
    later = add_message(conversation, "user", "again", parent=answer)
    removal = '<div id="empty-state" hx-swap-oob="delete"></div>'

    assert removal in frames.messages_added([first], generating=True)
    # Later the page has no empty state: htmx would log an error for the missing target.
    assert removal not in frames.messages_added([later], generating=True)
