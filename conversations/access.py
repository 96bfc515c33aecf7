"""The one way to reach a conversation, a message or a model on behalf of a user."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404

from conversations import sql
from conversations.models import ChatModel, Conversation, Message, Provider


def conversations_of(user: Any) -> QuerySet[Conversation]:
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
    """One model, if this user may pick it: the rule of `models_for`, with the groups checked
    in one small plain query (on a submission's path, building the ORM's form cost more than
    running it)."""
    if not getattr(user, "is_authenticated", False):
        return None
    model = _usable_model(pk)
    if model is None or user.is_superuser:
        return model
    [(restrictions, mine)] = sql.rows(
        "SELECT COUNT(*), COUNT(g.group_id) FROM {allowed_groups} r"
        " LEFT JOIN {memberships} g ON g.group_id = r.group_id AND g.user_id = %s"
        " WHERE r.chatmodel_id = %s",
        [user.pk, pk],
    )
    return model if not restrictions or mine else None


def _usable_model(pk: int) -> ChatModel | None:
    """`ChatModel.objects.usable().filter(pk=pk).first()` as two plain queries, in a third of
    the time."""
    models = ChatModel.objects.raw(
        sql.statement("SELECT * FROM {chat_model} WHERE id = %s AND enabled = %s"), [pk, True]
    )
    model = next(iter(models), None)
    if model is None:
        return None
    providers = Provider.objects.raw(
        sql.statement("SELECT * FROM {provider} WHERE id = %s AND enabled = %s"),
        [model.provider_id, True],
    )
    provider = next(iter(providers), None)
    if provider is None:
        return None
    model.provider = provider
    return model
