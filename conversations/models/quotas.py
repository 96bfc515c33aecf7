"""Spending limits: per user, per group or site-wide, per day or per month."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class Budget(models.Model):
    class Scope(models.TextChoices):
        SITE = "site", "Everyone (site default)"
        GROUP = "group", "A group"
        USER = "user", "A person"

    class Period(models.TextChoices):
        DAY = "day", "Per day"
        MONTH = "month", "Per month"

    scope = models.CharField(max_length=8, choices=Scope.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="budgets",
    )
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    period = models.CharField(max_length=8, choices=Period.choices)
    max_cost = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True, help_text="In the price currency"
    )
    max_tokens = models.PositiveBigIntegerField(null=True, blank=True, help_text="Input + output")

    class Meta:
        ordering = ["scope", "period"]

    def __str__(self) -> str:
        who = {"site": "everyone", "group": f"group {self.group}", "user": f"{self.user}"}[
            self.scope
        ]
        return f"{self.get_period_display()} budget for {who}"

    def clean(self) -> None:
        if self.scope == self.Scope.USER and self.user_id is None:
            raise ValidationError({"user": "Choose the person this budget is for."})
        if self.scope == self.Scope.GROUP and self.group_id is None:
            raise ValidationError({"group": "Choose the group this budget is for."})
        if self.max_cost is None and self.max_tokens is None:
            raise ValidationError("Set a money limit, a token limit, or both.")
