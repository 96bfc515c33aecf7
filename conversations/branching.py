"""Regenerate, retry, edit, switch versions: each adds to or moves along the tree of messages."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from conversations import access, sql, threads
from conversations.models import Conversation, Message
from conversations.submissions import (
    Refused,
    check_text,
    enforce_quota,
    insert_question_and_answer,
    pending_answer,
    pick_model,
)

RETRIED_IN_PLACE = (Message.Status.ERROR, Message.Status.CANCELLED)


def _idle(conversation: Conversation) -> None:
    if threads.generating(conversation.pk):
        raise Refused("An answer is still being written. Wait for it or press Stop.")


def _own(user: Any, conversation: Conversation, message_id: int, role: str) -> Message:
    message = access.get_message(user, conversation, message_id)
    if message is None or message.role != role:
        raise Refused("That message is not in this conversation.")
    return message


def _regenerate(
    user: Any, conversation: Conversation, message_id: int, model_id: int | None
) -> Message:
    _idle(conversation)
    old = _own(user, conversation, message_id, Message.Role.ASSISTANT)
    model = pick_model(user, model_id, conversation)
    enforce_quota(user, model)
    return _new_answer(conversation, old.parent_id, model)


async def regenerate(
    user: Any, conversation: Conversation, message_id: int, model_id: int | None
) -> Message:
    """A new answer beside the old one (a sibling); the old stays reachable as a version."""
    return await sync_to_async(_regenerate)(user, conversation, message_id, model_id)


def _retry(user: Any, conversation: Conversation, message_id: int) -> Message:
    _idle(conversation)
    old = _own(user, conversation, message_id, Message.Role.ASSISTANT)
    model = pick_model(user, None, conversation)
    enforce_quota(user, model)
    if old.status in RETRIED_IN_PLACE and _ends_its_branch(conversation, old):
        return _reset(old, model)
    return _new_answer(conversation, old.parent_id, model)


async def retry(user: Any, conversation: Conversation, message_id: int) -> Message:
    """Generate an answer again. A failed or stopped last answer is redone in place; any
    other gets a new version beside it, so neither a finished answer nor what followed it
    is lost. Returns the answer to run: a new one means the branch on screen changed."""
    return await sync_to_async(_retry)(user, conversation, message_id)


def _ends_its_branch(conversation: Conversation, message: Message) -> bool:
    messages = conversation.messages
    if message.parent_id is None:  # a straight list from before branching: the newest ends it
        return not messages.filter(id__gt=message.pk).exists()
    return not messages.filter(parent_id=message.pk).exists()


def _reset(message: Message, model: Any) -> Message:
    message.created_at = timezone.now()  # written anew: the rate limit counts it again
    message.status = Message.Status.PENDING
    message.content = message.content_html = message.reasoning = message.error = ""
    message.finish_reason = ""
    message.tool_calls = []
    message.model, message.model_name = model, model.display_name
    message.lease_expires_at = Message.lease_until()
    message.save()
    return message


def _edit(
    user: Any, conversation: Conversation, message_id: int, text: str, model_id: int | None
) -> Message:
    _idle(conversation)
    text = check_text(text)
    old = _own(user, conversation, message_id, Message.Role.USER)
    model = pick_model(user, model_id, conversation)
    enforce_quota(user, model)
    return _new_question(conversation, old, text, model)


async def edit(
    user: Any, conversation: Conversation, message_id: int, text: str, model_id: int | None
) -> Message:
    """A new version of a question, answered afresh; returns the new (pending) answer."""
    return await sync_to_async(_edit)(user, conversation, message_id, text, model_id)


def _switch_to(user: Any, conversation: Conversation, message_id: int) -> None:
    target = access.get_message(user, conversation, message_id)
    if target is None:
        raise Refused("That version does not exist.")
    _switch(conversation, target)


async def switch(user: Any, conversation: Conversation, message_id: int) -> None:
    """Show another version: the newest branch below the chosen message."""
    await sync_to_async(_switch_to)(user, conversation, message_id)


def _new_answer(conversation: Conversation, parent_id: int | None, model: Any) -> Message:
    """A pending answer: the newest message, so its branch is the one on screen."""
    answer = pending_answer(conversation, model)
    answer.parent_id = parent_id
    with transaction.atomic():
        answer.save(force_insert=True)
        _use_model(conversation, model)
    return answer


def _new_question(conversation: Conversation, old: Message, text: str, model: Any) -> Message:
    question = Message(
        conversation=conversation, role=Message.Role.USER, content=text, parent_id=old.parent_id
    )
    answer = pending_answer(conversation, model)
    with transaction.atomic():
        _, ids = sql.message_ids(conversation.pk, 2)
        insert_question_and_answer(question, answer, ids)
        _use_model(conversation, model)
    return answer


def _use_model(conversation: Conversation, model: Any) -> None:
    """The model answering is the conversation's from now on."""
    if conversation.model_id != model.pk:
        conversation.model = model
        conversation.save(update_fields=["model"])


def _switch(conversation: Conversation, target: Message) -> None:
    messages = list(conversation.messages.order_by("id"))
    children = threads.children_of(messages)
    leaf = threads.newest_leaf(target, children)
    conversation.pick_branch(leaf.pk, messages[-1].pk)
    conversation.save(update_fields=["current_leaf", "current_leaf_as_of"])
