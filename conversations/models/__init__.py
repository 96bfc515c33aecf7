"""The data model, one module per concern: chat core, usage ledger, quotas, shared links."""

from conversations.models.core import (
    Attachment,
    ChatModel,
    ChatModelQuerySet,
    Conversation,
    ConversationQuerySet,
    Message,
    Provider,
    User,
    attachment_path,
)
from conversations.models.quotas import Budget
from conversations.models.sharing import Share
from conversations.models.usage import UsageRecord

__all__ = [
    "Attachment",
    "Budget",
    "ChatModel",
    "ChatModelQuerySet",
    "Conversation",
    "ConversationQuerySet",
    "Message",
    "Provider",
    "Share",
    "UsageRecord",
    "User",
    "attachment_path",
]
