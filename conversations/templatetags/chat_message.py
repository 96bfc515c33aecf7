"""What one message's partial shows, decided once per message in Python.

A long conversation draws `_message.html` hundreds of times. Read from the model, each
attribute costs a failed `message[...]` lookup before `getattr`, each missing context
variable an exception, each integer a trip through number formatting and each id an
escape. One plain dict of ready values per message leaves the template dictionary
lookups; the page and the socket frames share it (both pass `message`, and optionally
`versions`, `is_last`, `live` and `oob`).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
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
    view: MessageView = {
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
    return view


class RenderedMessages:
    """The HTML of settled messages, by a digest of everything their partial reads.

    The key covers every field of the message and everything the page passes about it, so
    an entry cannot go stale: it only stops being asked for. Live messages (they change every frame) are not
    kept. Bounded by characters, least recently used out first; pages render in several
    threads at once, hence the lock.
    """

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._chars = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> str | None:
        with self._lock:
            html = self._entries.get(key)
            if html is not None:
                self._entries.move_to_end(key)
            return html

    def put(self, key: str, html: str) -> None:
        if len(html) > self.max_chars // 8:
            return  # one huge answer would push out a whole conversation
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = html
            self._chars += len(html)
            while self._chars > self.max_chars:
                _, dropped = self._entries.popitem(last=False)
                self._chars -= len(dropped)


rendered = RenderedMessages(max_chars=3_000_000)  # about two 500-message conversations


def fingerprint(context: template.Context) -> str:
    """A digest of everything the partial reads for the context's `message`: every field of
    the message, its images and what the page says about it. "" (not kept) for a live
    message, and unless the caller asks with `keep_html`: the page and the thread frame
    draw the same messages again and again, a one-off frame does not."""
    message: Message = context["message"]
    if not context.get("keep_html") or message.is_live or context.get("live") is not None:
        return ""
    values = vars(message)
    # Texts (content, its HTML, reasoning: most of a message) go in as Python's string hash
    # rather than copied out by repr: half the cost. It is keyed per process (so is this
    # store), so two different texts of one message meet under one key by chance only,
    # at odds of one in 2**64.
    fields = [hash(v) if type(v) is str else v for v in map(values.get, _field_names())]
    images = _images(message, context.get("message_images"))
    versions = context.get("versions")
    version = versions.get(message.pk) if isinstance(versions, dict) else None
    digest = hashlib.blake2b(repr(fields).encode(), digest_size=20)
    digest.update(repr([(i.pk, i.width, i.height, i.original_name) for i in images]).encode())
    digest.update(repr((version, bool(context.get("is_last")), bool(context.get("oob")))).encode())
    return digest.hexdigest()


@functools.cache
def _field_names() -> tuple[str, ...]:
    """Every stored field of a message: a field added later is in the key by itself."""
    return tuple(field.attname for field in Message._meta.concrete_fields)


class CachedMessageNode(template.Node):
    def __init__(self, nodelist: template.NodeList) -> None:
        self.nodelist = nodelist

    def render(self, context: template.Context) -> str:
        key = fingerprint(context)
        html = rendered.get(key) if key else None
        if html is None:
            html = self.nodelist.render(context)
            if key:
                rendered.put(key, html)
        return html


@register.simple_tag(takes_context=True)
def message_list(context: template.Context, messages: list[Message]) -> SafeString:
    """`{% message_list chat_messages %}`: each message's partial, the last one marked, its
    HTML kept (`keep_html`). The same as an `{% include %}` per message in a `{% for %}`, at
    half the cost: a 500-message page spent 6 ms in the includes themselves."""
    assert context.template is not None  # a tag renders inside a template
    partial = context.template.engine.get_template("conversations/_message.html")
    last = len(messages) - 1
    with context.push(keep_html=True):
        html = []
        for index, message in enumerate(messages):
            with context.push(message=message, is_last=index == last):
                html.append(partial.render(context))
    return mark_safe("".join(html))  # noqa: S308 - each partial escapes what it writes


@register.tag
def cached_message(parser: template.base.Parser, token: template.base.Token) -> CachedMessageNode:
    """`{% cached_message %}…{% endcached_message %}`: the block's HTML for the context's
    `message`, rendered once per distinct settled state."""
    if len(token.split_contents()) != 1:
        raise template.TemplateSyntaxError("cached_message takes no arguments")
    nodelist = parser.parse(("endcached_message",))
    parser.delete_first_token()
    return CachedMessageNode(nodelist)


def _images(message: Message, loaded: dict[int, list[Attachment]] | None) -> list[Attachment]:
    """A question's images: from the page's one query (`message_images`), else the
    message's own (prefetched for the socket frames). Answers never have any."""
    if message.role != Message.Role.USER:
        return []
    if loaded is not None:
        return loaded.get(message.pk, [])
    return list(message.attachments.all())
