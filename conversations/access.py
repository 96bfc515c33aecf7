"""The one way to reach a conversation, a message or a model on behalf of a user."""

from __future__ import annotations

import functools
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404

from conversations import sql
from conversations.models import ChatModel, Conversation, ConversationQuerySet, Message, Provider


def conversations_of(user: Any) -> ConversationQuerySet:
    if not getattr(user, "is_authenticated", False):
        return Conversation.objects.none()
    return Conversation.objects.filter(owner=user)


def get_conversation(user: Any, pk: int) -> Conversation:
    """The user's own conversation, or 404: another user's looks exactly like a missing one."""
    conversation = conversations_of(user).select_related("model").filter(pk=pk).first()
    if conversation is None:
        raise Http404("No such conversation")
    return conversation


async def aget_conversation(user: Any, pk: int) -> Conversation | None:
    return await conversations_of(user).select_related("model").filter(pk=pk).afirst()


def get_message(user: Any, conversation: Conversation, pk: int) -> Message | None:
    if conversation.owner_id != getattr(user, "pk", None):
        return None
    return Message.objects.filter(conversation=conversation, pk=pk).first()


def models_for(user: Any) -> QuerySet[ChatModel]:
    """Usable models this user may pick: unrestricted ones and those of their groups.

    A model with no allowed groups is open to everyone; superusers see every usable model.
    """
    if not getattr(user, "is_authenticated", False):
        return ChatModel.objects.none()
    usable = ChatModel.objects.usable()  # select_related("provider") included
    if user.is_superuser:
        return usable
    return usable.filter(
        ~Exists(_restrictions()) | Exists(_restrictions().filter(group__user=user))
    )


def _restrictions() -> QuerySet[Any]:
    """The allowed-group rows of the model in the outer query."""
    return ChatModel.allowed_groups.through.objects.filter(chatmodel_id=OuterRef("pk"))


def get_model(user: Any, pk: int) -> ChatModel | None:
    """One model (with its provider), if this user may pick it: the rule of `models_for` in
    one plain query. It is on a submission's path, where the ORM's forms took three round
    trips (about 1.6 ms on PostgreSQL) and more time building them than running them."""
    if not getattr(user, "is_authenticated", False):
        return None
    found = sql.rows(_model_query(), [user.pk, pk, True, True])
    if not found:
        return None
    *values, restrictions, mine = found[0]
    if restrictions and not mine and not user.is_superuser:
        return None
    split = len(ChatModel._meta.concrete_fields)
    model: ChatModel = sql.instance(ChatModel, values[:split])
    model.provider = sql.instance(Provider, values[split:])
    return model


@functools.cache
def _model_query() -> str:
    """The model, its provider, how many groups it is restricted to and how many of those
    the user is in (tables and columns from the models, nothing from a request)."""
    return (
        f"SELECT {sql.columns(ChatModel, 'm')}, {sql.columns(Provider, 'p')},"  # noqa: S608
        " (SELECT COUNT(*) FROM {allowed_groups} r WHERE r.chatmodel_id = m.id),"
        " (SELECT COUNT(*) FROM {allowed_groups} r JOIN {memberships} g"
        "  ON g.group_id = r.group_id AND g.user_id = %s WHERE r.chatmodel_id = m.id)"
        " FROM {chat_model} m JOIN {provider} p ON p.id = m.provider_id"
        " WHERE m.id = %s AND m.enabled = %s AND p.enabled = %s"
    )
