"""Renders the HTML fragments the websocket sends: templates/conversations/ws/, and the delta
frame here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.template.loader import render_to_string
from django.utils.html import escape

from conversations.coalescer import LiveState
from conversations.models import Conversation, Message
from conversations.threads import Thread, Version


def _render(name: str, **context: Any) -> str:
    return render_to_string(f"conversations/ws/{name}.html", context)


def messages_added(messages: Sequence[Message], generating: bool) -> str:
    return _render("messages_added", messages=messages, generating=generating)


def delta(message_id: int, blocks: str, tail: str, reasoning: str) -> str:
    """New finished blocks appended, the open tail replaced, reasoning appended.

    `blocks` and `tail` are sanitised HTML; reasoning is plain text. Built without the
    template engine: this frame goes out many times a second per answer and tab, and a
    template render cost more than all the rest of relaying it.
    """
    target = f"#message-{int(message_id)}"
    frame = f'<div hx-swap-oob="beforeend:{target}-blocks">{blocks}</div>' if blocks else ""
    frame += f'<div hx-swap-oob="innerHTML:{target}-tail">{tail}</div>'
    if reasoning:
        frame += f'<span hx-swap-oob="beforeend:{target}-reasoning">{escape(reasoning)}</span>'
    return frame


def message_updated(message: Message, generating: bool, version: Version | None = None) -> str:
    versions = {message.pk: version} if version else {}
    return _render(
        "message_updated", message=message, generating=generating, versions=versions, is_last=True
    )


def thread(thread: Thread, generating: bool) -> str:
    return _render(
        "thread", chat_messages=thread.messages, versions=thread.versions, generating=generating
    )


def title_updated(conversation: Conversation) -> str:
    return _render("title_updated", conversation=conversation)


def live_message(message: Message, state: LiveState) -> str:
    """A streaming answer redrawn whole as far as it has got (first frame, or a resume)."""
    message.reasoning = state.reasoning
    if state.blocks or state.tail or state.reasoning:
        message.status = Message.Status.STREAMING
    return _render("message_updated", message=message, live=state, generating=True, is_last=True)


def conversation_started(conversation: Conversation, csrf_token: str) -> str:
    """`csrf_token`: the socket's CSRF cookie, for the forms this frame brings (the menu)."""
    return _render("conversation_started", conversation=conversation, csrf_token=csrf_token)


def accepted(client_id: str) -> str:
    return _render("accepted", client_id=client_id)


def notice(text: str, level: str = "error") -> str:
    return _render("notice", text=text, level=level)
