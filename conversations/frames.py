"""Renders the HTML fragments the websocket sends: templates/conversations/ws/, and the delta
frame here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.template.loader import render_to_string
from django.utils.html import escape

from conversations.coalescer import LiveState
from conversations.models import Attachment, Conversation, Message
from conversations.threads import Thread, Version


def _render(name: str, **context: Any) -> str:
    return render_to_string(f"conversations/ws/{name}.html", context)


def messages_added(
    messages: Sequence[Message],
    generating: bool,
    images: Mapping[int, Sequence[Attachment]] | None = None,
) -> str:
    """`images`: the questions' images, by id, when known (else each question's own, which
    must be prefetched: frames are rendered on the event loop)."""
    # Only a conversation's first exchange (a question without a parent) can find the empty
    # state on the page; htmx logs a console error for an oob swap without a target.
    first = bool(messages) and messages[0].parent_id is None
    context = {"messages": messages, "generating": generating, "first": first}
    return _render("messages_added", **context, message_images=images)


def delta(message_id: int, blocks: str, tail: str, reasoning: str) -> str:
    """New finished blocks appended, the open tail replaced, reasoning appended.

    `blocks` and `tail` are sanitised HTML; reasoning is plain text. Built without the
    template engine: this frame goes out many times a second per answer and tab, and a
    template render cost more than all the rest of relaying it.

    Every part is a div that starts with `data-delta` (which part) and `data-message`: the
    page applies these frames itself (static/js/chat.js), far cheaper than htmx's oob swaps,
    and knows them by that first attribute. `hx-swap-oob` still says the same to htmx.
    """
    pk = int(message_id)

    def part(name: str, swap: str, content: str) -> str:
        return (
            f'<div data-delta="{name}" data-message="{pk}"'
            f' hx-swap-oob="{swap}:#message-{pk}-{name}">{content}</div>'
        )

    frame = part("blocks", "beforeend", blocks) if blocks else ""
    frame += part("tail", "innerHTML", tail)
    if reasoning:
        frame += part("reasoning", "beforeend", escape(reasoning))
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
