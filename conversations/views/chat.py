"""Pages: the chat (new or existing conversation) and a health check."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from conversations import access, leases, parameters, threads
from conversations.models import Attachment, Conversation, Message

SIDEBAR_LIMIT = 200


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _chat_context(request: HtmxHttpRequest, conversation: Conversation | None) -> dict[str, Any]:
    models = list(access.models_for(request.user).select_related("provider"))
    selected = conversation.model if conversation and conversation.model else None
    if selected is None or selected not in models:
        selected = next((m for m in models if m.is_default), models[0] if models else None)
    thread, images = _page_thread(conversation) if conversation else (threads.Thread([]), {})
    messages = thread.messages
    sidebar = access.conversations_of(request.user).filter(archived=False).listed()
    return {
        "conversation": conversation,
        "conversations": sidebar[:SIDEBAR_LIMIT],
        "models": models,
        "selected_model": selected,
        "chat_messages": messages,
        "versions": thread.versions,
        "message_images": images,
        "generating": any(m.status in Message.LIVE_STATUSES for m in messages),
        "params": parameters.PARAMS,
        "settings_values": conversation.params if conversation else {},
    }


def _page_thread(conversation: Conversation) -> tuple[threads.Thread, dict[int, list[Attachment]]]:
    """The thread on screen and each message's images, in two queries.

    Not `threads.thread_of`: its `prefetch_related` builds a manager and a queryset per
    message, which on a long conversation cost as much as reading the messages.
    """
    messages = list(conversation.messages.order_by("id"))
    images: dict[int, list[Attachment]] = defaultdict(list)
    for image in Attachment.objects.filter(message__conversation=conversation).order_by("id"):
        if image.message_id is not None:  # always, by the filter; for the type checker
            images[image.message_id].append(image)
    return threads.build(messages, threads.shown_leaf_id(conversation, messages)), dict(images)


@login_required
@require_GET
def home(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "conversations/chat.html", _chat_context(request, None))


@login_required
@require_GET
def conversation_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    conversation = access.get_conversation(request.user, pk)
    leases.sweep(conversation.pk)
    return render(request, "conversations/chat.html", _chat_context(request, conversation))


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")
