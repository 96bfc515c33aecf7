"""Finds answers whose worker died mid-stream (their lease ran out) and marks them interrupted."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from conversations.models import Message

INTERRUPTED = (
    "This answer was interrupted: the server generating it stopped. "
    "The text so far is kept; retry to generate it again."
)


def expired(conversation_id: int | None = None) -> QuerySet[Message]:
    stale = Q(lease_expires_at__lt=timezone.now()) | Q(lease_expires_at__isnull=True)
    messages = Message.objects.filter(stale, status__in=Message.LIVE_STATUSES)
    if conversation_id is not None:
        messages = messages.filter(conversation_id=conversation_id)
    return messages


def _interrupt_fields() -> dict[str, object]:
    return {"status": Message.Status.ERROR, "error": INTERRUPTED, "lease_expires_at": None}


def sweep(conversation_id: int | None = None) -> list[tuple[int, int]]:
    """Mark expired answers interrupted; returns (message id, conversation id) pairs."""
    found = list(expired(conversation_id).values_list("pk", "conversation_id"))
    if found:
        # The status filter again, so an answer that finished meanwhile is left alone.
        expired(conversation_id).filter(pk__in=[pk for pk, _ in found]).update(
            **_interrupt_fields()
        )
    return found


async def asweep(conversation_id: int | None = None) -> list[tuple[int, int]]:
    found = [pair async for pair in expired(conversation_id).values_list("pk", "conversation_id")]
    if found:
        await (
            expired(conversation_id)
            .filter(pk__in=[pk for pk, _ in found])
            .aupdate(**_interrupt_fields())
        )
    return found
