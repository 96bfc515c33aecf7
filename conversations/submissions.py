"""Turns what a user typed into saved messages, before anything is sent upstream."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    close_old_connections,
    connection,
    connections,
)

from conversations import access, parameters, quotas, sql
from conversations.models import Attachment, ChatModel, Conversation, Message
from conversations.streaming import Job, JobError, job_for


class Refused(Exception):
    """The submission cannot be accepted; `message` says why, in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Settings:
    system_prompt: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Accepted:
    conversation: Conversation
    messages: list[Message]  # the new user message and the pending answer
    assistant: Message
    images: dict[int, list[Attachment]]  # the question's, by its id: known, not read again
    created_conversation: bool
    duplicate: bool = False
    warnings: tuple[str, ...] = ()
    job: Job | None = None  # the upstream call, prepared while the data was at hand


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


def pick_model(user: Any, model_id: int | None, conversation: Conversation | None) -> ChatModel:
    """The model to answer with: the one asked for, else the conversation's, else the default."""
    if model_id is not None:
        model = access.get_model(user, model_id)
        if model is None:
            raise Refused("That model is not available to you. Pick another one.")
        return model
    if conversation is not None and conversation.model_id is not None:
        current = access.get_model(user, conversation.model_id)
        if current is not None:
            return current
    mine = access.models_for(user)
    default = mine.filter(is_default=True).first() or mine.first()
    if default is None:
        raise Refused("No model is configured yet. Ask an admin to add a provider.")
    return default


async def choose_model(
    user: Any, model_id: int | None, conversation: Conversation | None
) -> ChatModel:
    return await sync_to_async(pick_model)(user, model_id, conversation)


def accept(
    user: Any,
    conversation: Conversation | None,
    text: str,
    model_id: int | None,
    client_id: str,
    settings: dict[str, Any] | None = None,
    attachment_ids: tuple[int, ...] = (),
) -> Accepted:
    """Check, save and prepare the upstream call in one go: one trip to the database thread
    instead of one per query keeps the time to the first token short."""
    text = check_text(text)
    model = pick_model(user, model_id, conversation)
    duplicate, busy = _earlier(user, conversation, client_id)
    if duplicate is not None:
        return duplicate
    chosen = check_settings(settings, model)
    attachments = check_attachments(user, attachment_ids, model)
    if busy:
        raise Refused("An answer is still being written. Wait for it or press Stop.")
    warnings = enforce_quota(user, model)
    try:
        accepted = _save(user, conversation, text, model, client_id, chosen, attachments)
    except IntegrityError:
        # The same submission raced in from another tab or a resent frame.
        if found := _existing(user, client_id):
            return found
        raise Refused("This message was already sent.") from None
    try:
        job: Job | None = job_for(accepted.assistant, user)
    except JobError:
        job = None  # the runner loads it again and shows why it cannot start
    return dataclasses.replace(accepted, warnings=tuple(warnings), job=job)


async def submit(
    user: Any,
    conversation: Conversation | None,
    text: str,
    model_id: int | None,
    client_id: str,
    settings: dict[str, Any] | None = None,
    attachment_ids: tuple[int, ...] = (),
) -> Accepted:
    return await sync_to_async(_accept_on_a_fresh_connection)(
        user, conversation, text, model_id, client_id, settings, attachment_ids
    )


def _accept_on_a_fresh_connection(*args: Any) -> Accepted:
    # Channels closes stale connections in a trip of its own before each event; the consumer
    # skips that trip for a submission, so this one does it first.
    close_old_connections()
    return accept(*args)


def enforce_quota(user: Any, model: ChatModel) -> list[str]:
    """Budgets and the rate limit; over a limit nothing is saved or sent."""
    try:
        return quotas.enforce(user, model)
    except quotas.QuotaExceeded as exc:
        raise Refused(exc.message) from None


def check_settings(raw: dict[str, Any] | None, model: ChatModel) -> Settings | None:
    if raw is None:
        return None
    try:
        return Settings(
            parameters.clean_system_prompt(raw.get("system_prompt")), parameters.clean(raw, model)
        )
    except parameters.InvalidSettings as exc:
        raise Refused(exc.message) from None


def check_attachments(user: Any, ids: tuple[int, ...], model: ChatModel) -> list[Attachment]:
    if not ids:
        return []
    if not model.supports_vision:
        raise Refused(
            f"{model.display_name} does not accept images. Pick a vision model or remove the images."
        )
    if len(ids) > settings.MAX_ATTACHMENTS_PER_MESSAGE:
        raise Refused(f"At most {settings.MAX_ATTACHMENTS_PER_MESSAGE} images per message.")
    found = list(Attachment.objects.filter(owner=user, pk__in=ids, message__isnull=True))
    if len(found) != len(set(ids)):
        raise Refused("An attached image is no longer available. Attach it again.")
    return found


async def save_settings(
    user: Any, conversation: Conversation | None, model_id: int | None, raw: dict[str, Any]
) -> str:
    """Store settings without sending anything; returns what to tell the user."""
    model = await choose_model(user, model_id, conversation)
    chosen = check_settings(raw, model)
    if conversation is None or chosen is None:
        return "Settings will apply to your first message."
    conversation.system_prompt, conversation.params = chosen.system_prompt, chosen.params
    conversation.model = model
    await conversation.asave(update_fields=["system_prompt", "params", "model"])
    return "Settings saved."


def _earlier(
    user: Any, conversation: Conversation | None, client_id: str
) -> tuple[Accepted | None, bool]:
    """One query for both: what an earlier copy of this submission created (a double click,
    a resent frame), and whether an answer is still being written in this conversation."""
    if not client_id and conversation is None:
        return None, False
    here = getattr(conversation, "pk", None)
    pending, streaming = Message.LIVE_STATUSES
    found = sql.rows(
        "SELECT m.id, m.client_id, m.status, m.conversation_id FROM {message} m"
        " JOIN {conversation} c ON c.id = m.conversation_id WHERE c.owner_id = %s"
        " AND (m.client_id = %s OR (m.conversation_id = %s AND m.status IN (%s, %s)))",
        # NULL matches nothing: no client id (or no conversation) leaves its half out.
        [user.pk, client_id or None, here, pending, streaming],
    )
    copies = sum(1 for _, copy_of, _, _ in found if client_id and copy_of == client_id)
    busy = any(status in Message.LIVE_STATUSES and at == here for _, _, status, at in found)
    return (_existing(user, client_id) if copies > 1 else None), busy


def _existing(user: Any, client_id: str) -> Accepted | None:
    if not client_id:
        return None
    mine = Message.objects.filter(conversation__owner=user, client_id=client_id)
    return _duplicate(list(mine.select_related("conversation").order_by("id")))


def _duplicate(copies: list[Message]) -> Accepted | None:
    if len(copies) < 2:
        return None
    conversation = copies[0].conversation
    return Accepted(
        conversation, copies, copies[-1], images={}, created_conversation=False, duplicate=True
    )


def _save(
    user: Any,
    conversation: Conversation | None,
    text: str,
    model: ChatModel,
    client_id: str,
    chosen: Settings | None,
    attachments: list[Attachment],
) -> Accepted:
    """The question and its pending answer, in one INSERT.

    In an existing conversation whose model and settings stay as they were, that is the
    only write: the branch on screen and the conversation's recency are read from its
    messages (`Conversation.shown_leaf_id`, `ConversationQuerySet.by_recency`).
    """
    created = conversation is None
    if conversation is None:
        conversation = Conversation(owner=user, title=title_from(text), model=model)
        _choose(conversation, chosen)
        changed = []
    else:
        changed = _changes(conversation, text, model, chosen)
    with sql.writing(lone=not (created or changed or attachments)):
        if created:
            conversation.save()
        elif changed:
            conversation.save(update_fields=changed)
        newest, ids = sql.message_ids(conversation.pk, 2)
        parent_id = None if created else conversation.shown_leaf_id(newest)
        question = Message(
            conversation=conversation,
            role=Message.Role.USER,
            content=text,
            client_id=client_id,
            parent_id=parent_id,
        )
        answer = pending_answer(conversation, model, client_id)
        insert_question_and_answer(question, answer, ids)
        if attachments:
            Attachment.objects.filter(pk__in=[a.pk for a in attachments]).update(message=question)
    images = {question.pk: attachments}
    return Accepted(conversation, [question, answer], answer, images, created_conversation=created)


def _choose(conversation: Conversation, chosen: Settings | None) -> list[str]:
    """Apply settings sent with the message; the fields that changed."""
    if chosen is None:
        return []
    changed = [
        name
        for name, value in (("system_prompt", chosen.system_prompt), ("params", chosen.params))
        if getattr(conversation, name) != value
    ]
    conversation.system_prompt, conversation.params = chosen.system_prompt, chosen.params
    return changed


def _changes(
    conversation: Conversation, text: str, model: ChatModel, chosen: Settings | None
) -> list[str]:
    """Apply what this message changes on an existing conversation; the fields to save."""
    changed = _choose(conversation, chosen)
    if conversation.model_id != model.pk:
        conversation.model = model
        changed.append("model")
    if not conversation.title:
        conversation.title = title_from(text)
        changed.append("title")
    return changed


def pending_answer(conversation: Conversation, model: ChatModel, client_id: str = "") -> Message:
    """An answer about to be generated (not saved)."""
    return Message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.PENDING,
        model=model,
        model_name=model.display_name,
        client_id=client_id,
        lease_expires_at=Message.lease_until(),
    )


def insert_question_and_answer(question: Message, answer: Message, ids: list[int] | None) -> None:
    """One INSERT for both, with `ids` taken first (`sql.message_ids`), so the answer can
    name its question."""
    if ids is None:  # a backend without a way to take ids first: two INSERTs
        question.save(force_insert=True)
        answer.parent = question
        answer.save(force_insert=True)
        return
    question.pk, answer.pk = ids
    answer.parent_id = question.pk
    _insert_rows([question, answer])


def _insert_rows(messages: list[Message]) -> None:
    """One INSERT of messages whose ids are set, built as Django builds it (each field's
    own conversion). `bulk_create` would wrap it in a transaction of its own: BEGIN and
    COMMIT, two round trips on PostgreSQL, where the caller holds the transaction it needs,
    if any (`sql.writing`).

    `db` is the connection itself, not the `connection` proxy, which looks the thread's
    connection up again for each of the fifty-odd uses a row's conversions make of it."""
    db = connections[DEFAULT_DB_ALIAS]
    fields = Message._meta.concrete_fields
    values = [
        field.get_db_prep_save(field.pre_save(message, add=True), db)
        for message in messages
        for field in fields
    ]
    sql.execute(_insert_statement(len(messages)), values)
    for message in messages:
        message._state.adding = False
        message._state.db = db.alias


@functools.cache
def _insert_statement(count: int) -> str:
    """The INSERT of `count` messages, every concrete column (names from the model)."""
    fields = Message._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    rows = ", ".join([row] * count)
    return f"INSERT INTO {{message}} ({columns}) VALUES {rows}"  # noqa: S608 - the model's own columns
