"""Attachment files live as long as their rows, and uploads never sent do not live forever."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from conversations.models import Attachment


@receiver(post_delete, sender=Attachment, dispatch_uid="conversations.attachment-files")
def delete_files(sender: type[Attachment], instance: Attachment, **kwargs: Any) -> None:
    """Whatever deletes an attachment (its conversation, the admin, the purge below) takes
    its image and thumbnail along, once the deletion is committed: a rolled back deletion
    keeps them."""
    storage = instance.file.storage
    names = [f.name for f in (instance.file, instance.thumbnail) if f and f.name]

    def delete() -> None:
        for name in names:
            storage.delete(name)  # a file already gone is no error

    transaction.on_commit(delete)


def purge_unsent(now: datetime | None = None) -> int:
    """Deletes images picked but not sent within UNSENT_UPLOAD_HOURS; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.UNSENT_UPLOAD_HOURS)
    deleted, _ = Attachment.objects.filter(message__isnull=True, created_at__lt=cutoff).delete()
    return deleted
