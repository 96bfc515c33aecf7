"""Turns what a user typed into saved messages, before anything is sent upstream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations import access
from conversations.models import ChatModel, Conversation, Message


class Refused(Exception):
    """The submission cannot be accepted; `message` says why, in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Accepted:
    conversation: Conversation
    messages: list[Message]  # the new user message and the pending answer
    assistant: Message
    created_conversation: bool
    duplicate: bool = False


def title_from(text: str, words: int = 8) -> str:
    """A provisional title: the first words of the first message."""
    head = " ".join(text.split()[:words])
    return head[:80] + ("…" if len(text.split()) > words or len(head) > 80 else "")


def check_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise Refused("Type a message first.")
    if len(text) > settings.MAX_MESSAGE_CHARS:
        raise Refused(
            f"This message is {len(text):,} characters long; the limit is "
            f"{settings.MAX_MESSAGE_CHARS:,}. Shorten it or split it into parts."
        )
    return text


async def choose_model(user: Any, model_id: int | None, conversation: Conversation | None) -> ChatModel:
    if model_id is not None:
        model = await access.aget_model(user, model_id)
        if model is None:
            raise Refused("That model is not available to you. Pick another one.")
        return model
    if conversation is not None and conversation.model_id is not None:
        current = await access.aget_model(user, conversation.model_id)
        if current is not None:
            return current
    default = await sync_to_async(ChatModel.site_default)()
    if default is None:
        raise Refused("No model is configured yet. Ask an admin to add a provider.")
    return default


async def submit(
    user: Any, conversation: Conversation | None, text: str, model_id: int | None, client_id: str
) -> Accepted:
    text = check_text(text)
    model = await choose_model(user, model_id, conversation)
    duplicate = await _existing(user, client_id)
    if duplicate is not None:
        return duplicate
    if conversation is not None:
        if await conversation.messages.filter(status__in=Message.LIVE_STATUSES).aexists():
            raise Refused("An answer is still being written. Wait for it or press Stop.")
    try:
        return await sync_to_async(_save)(user, conversation, text, model, client_id)
    except IntegrityError:
        # The same submission raced in from another tab or a resent frame.
        if found := await _existing(user, client_id):
            return found
        raise Refused("This message was already sent.") from None


async def _existing(user: Any, client_id: str) -> Accepted | None:
    """The messages an earlier copy of this submission created (double click, resent frame)."""
    if not client_id:
        return None
    mine = Message.objects.filter(conversation__owner=user, client_id=client_id)
    found = [m async for m in mine.select_related("conversation").order_by("id")]
    if len(found) < 2:
        return None
    conversation = found[0].conversation
    return Accepted(conversation, found, found[-1], created_conversation=False, duplicate=True)


@transaction.atomic
def _save(
    user: Any, conversation: Conversation | None, text: str, model: ChatModel, client_id: str
) -> Accepted:
    created = conversation is None
    if conversation is None:
        conversation = Conversation.objects.create(owner=user, model=model, title=title_from(text))
    else:
        if not conversation.title:
            conversation.title = title_from(text)
        conversation.model = model
        conversation.updated_at = timezone.now()
        conversation.save(update_fields=["title", "model", "updated_at"])
    question = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=text, client_id=client_id
    )
    answer = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.PENDING,
        model=model,
        model_name=model.display_name,
        client_id=client_id,
        lease_expires_at=Message.lease_until(),
    )
    return Accepted(conversation, [question, answer], answer, created_conversation=created)


async def prepare_retry(user: Any, conversation: Conversation, message_id: int) -> Message:
    """Reset the last answer, if it failed or was stopped, so it can be generated again."""
    message = await access.aget_message(user, conversation, message_id)
    last = await conversation.messages.order_by("-id").afirst()
    if message is None or last is None or message.pk != last.pk or message.role != "assistant":
        raise Refused("Only the latest answer can be retried.")
    if message.is_live:
        raise Refused("This answer is still being written.")
    model = await choose_model(user, None, conversation)
    message.status = Message.Status.PENDING
    message.content = message.content_html = message.reasoning = message.error = ""
    message.finish_reason = ""
    message.tool_calls = []
    message.model, message.model_name = model, model.display_name
    message.lease_expires_at = Message.lease_until()
    await message.asave()
    return message
