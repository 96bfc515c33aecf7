"""The usage ledger: one row per upstream call, priced at the time of the call."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models


class UsageRecord(models.Model):
    class Kind(models.TextChoices):
        CHAT = "chat", "Chat answer"
        TITLE = "title", "Title generation"

    class Outcome(models.TextChoices):
        OK = "ok", "Completed"
        ERROR = "error", "Failed"
        CANCELLED = "cancelled", "Stopped"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="usage"
    )
    username = models.CharField(max_length=150, help_text="Kept if the account is deleted")
    conversation = models.ForeignKey(
        "conversations.Conversation", null=True, blank=True, on_delete=models.SET_NULL
    )
    message = models.ForeignKey(
        "conversations.Message", null=True, blank=True, on_delete=models.SET_NULL
    )
    provider = models.ForeignKey(
        "conversations.Provider", null=True, blank=True, on_delete=models.SET_NULL
    )
    provider_name = models.CharField(max_length=100)
    model = models.ForeignKey(
        "conversations.ChatModel", null=True, blank=True, on_delete=models.SET_NULL
    )
    model_name = models.CharField(max_length=100)
    upstream_model = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CHAT)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    attempt = models.PositiveSmallIntegerField(default=1, help_text="1 for the first try")
    error = models.TextField(blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    estimated = models.BooleanField(default=False, help_text="The upstream reported no usage")
    input_price_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    output_price_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    cached_input_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text="Empty: the input price"
    )
    cost = models.DecimalField(max_digits=16, decimal_places=8, default=Decimal(0))
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="usage_user_day"),
            models.Index(fields=["model", "created_at"], name="usage_model_day"),
        ]

    def __str__(self) -> str:
        return f"{self.username} · {self.model_name} · {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens
