"""What one message's partial shows, decided once per message in Python.

A long conversation draws `_message.html` hundreds of times. Read from the model, each
attribute costs a failed `message[...]` lookup before `getattr`, each missing context
variable an exception, each integer a trip through number formatting and each id an
escape. One plain dict of ready values per message leaves the template dictionary
lookups; the page and the socket frames share it (both pass `message`, and optionally
`versions`, `is_last`, `live` and `oob`).
"""

from __future__ import annotations

from typing import Any, TypedDict

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from conversations.coalescer import LiveState
from conversations.models import Attachment, Message
from conversations.templatetags.chat_format import seconds
from conversations.threads import Version

register = template.Library()

QUIET_FINISHES = ("", "stop", "end_turn")


class MessageView(TypedDict):
    pk: SafeString
    role: SafeString
    status: SafeString
    is_user: bool
    is_live: bool
    settled: bool  # complete without an error: no badge, no note
    oob: bool
    live: LiveState | None  # a streaming answer redrawn as far as it has got
    author: str
    content: str
    plain: SafeString  # the content escaped once: a question writes it twice
    content_html: str
    reasoning: str
    thought_for: str  # "" when the time is unknown
    images: list[Attachment]
    tool_calls: Any
    error: str
    version: Version | None
    regenerate: bool
    tokens: bool
    input_tokens: int | str
    output_tokens: int | None
    first_token: str
    duration: str
    finish: str  # shown only when the answer ended for an unusual reason


@register.simple_tag(takes_context=True)
def message_view(context: template.Context) -> MessageView:
    """`{% message_view as m %}`: the view of the context's `message`."""
    message: Message = context["message"]
    versions = context.get("versions")
    return {
        "pk": mark_safe(str(int(message.pk))),  # noqa: S308 - digits only
        "role": escape(message.role),  # escaped once, written twice
        "status": escape(message.status),
        "is_user": message.role == Message.Role.USER,
        "is_live": message.is_live,
        "settled": message.status == Message.Status.COMPLETE and not message.error,
        "oob": bool(context.get("oob")),
        "live": context.get("live"),
        "author": message.model_name or "Assistant",
        "content": message.content,
        "plain": escape(message.content),
        "content_html": message.content_html,
        "reasoning": message.reasoning,
        "thought_for": seconds(message.reasoning_ms) if message.reasoning_ms else "",
        "images": _images(message, context.get("message_images")),
        "tool_calls": message.tool_calls,
        "error": message.error,
        "version": versions.get(message.pk) if isinstance(versions, dict) else None,
        "regenerate": message.role == Message.Role.ASSISTANT and bool(context.get("is_last")),
        "tokens": message.output_tokens is not None,
        "input_tokens": message.input_tokens or "?",
        "output_tokens": message.output_tokens,
        "first_token": seconds(message.ttft_ms),
        "duration": seconds(message.duration_ms) if message.duration_ms else "",
        "finish": "" if message.finish_reason in QUIET_FINISHES else message.finish_reason,
    }


def _images(message: Message, loaded: dict[int, list[Attachment]] | None) -> list[Attachment]:
    """A question's images: from the page's one query (`message_images`), else the
    message's own (prefetched for the socket frames). Answers never have any."""
    if message.role != Message.Role.USER:
        return []
    if loaded is not None:
        return loaded.get(message.pk, [])
    return list(message.attachments.all())
