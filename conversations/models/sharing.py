"""Read-only shared links to a frozen snapshot of a conversation."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 random bits


class ShareQuerySet(models.QuerySet["Share"]):
    def active(self) -> ShareQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class Share(models.Model):
    class Visibility(models.TextChoices):
        TEAM = "team", "Team members (signed in)"
        PUBLIC = "public", "Anyone with the link"

    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="shares"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shares"
    )
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.TEAM)
    show_owner = models.BooleanField(default=False)
    include_system_prompt = models.BooleanField(default=False)
    title = models.CharField(max_length=200)
    snapshot = models.JSONField(default=dict, help_text="The messages as they were when shared")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    view_count = models.PositiveIntegerField(default=0)
    last_viewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ShareQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Share of {self.title!r}"

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()
