"""Admin for budgets: who and what each limits, and how much of it is used right now."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Exists, OuterRef
from django.utils import timezone

from conversations import quotas
from conversations.models import Budget, UsageRecord


class BudgetForm(forms.ModelForm[Budget]):
    """Budget.clean requires the person or group of the scope; this also refuses the others."""

    class Meta:
        model = Budget
        fields = ["scope", "user", "group", "period", "max_cost", "max_tokens"]

    def clean_max_cost(self) -> Decimal | None:
        value: Decimal | None = self.cleaned_data.get("max_cost")
        if value is not None and value < 0:
            raise forms.ValidationError("A budget cannot be negative.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        scope = data.get("scope")
        if scope != Budget.Scope.USER and data.get("user"):
            self.add_error("user", "Only a personal budget names a person; clear this field.")
        if scope != Budget.Scope.GROUP and data.get("group"):
            self.add_error("group", "Only a group budget names a group; clear this field.")
        return data


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin[Budget]):
    form = BudgetForm
    list_display = ["__str__", "scope", "who", "period", "max_cost", "max_tokens", "spent"]
    list_filter = ["scope", "period"]
    list_select_related = ["user", "group"]
    search_fields = ["user__username", "group__name"]
    autocomplete_fields = ["user", "group"]

    @admin.display(description="Applies to")
    def who(self, budget: Budget) -> str:
        if budget.scope == Budget.Scope.USER:
            return str(budget.user)
        if budget.scope == Budget.Scope.GROUP:
            return f"{budget.group} (members together)"
        return "each person without a personal budget for this period"

    @admin.display(description="Spent this period (% used)")
    def spent(self, budget: Budget) -> str:
        found = current_status(budget)
        if found is None:
            return "nothing yet (0%)"
        whose, status = found
        used = f"{status.percent}%" + (", reached" if status.exceeded else "")
        spent = f"{quotas.money(status.spent_cost)} · {status.spent_tokens:,} tokens ({used})"
        return f"highest, {whose}: {spent}" if whose else spent


def current_status(budget: Budget) -> tuple[str, quotas.BudgetStatus] | None:
    """The budget now; for a site default, the person nearest to (or furthest over) it."""
    current = quotas.window(budget.period, timezone.now())
    windows = {budget.period: current}
    sums = quotas.spend_sums(windows)
    if budget.scope == Budget.Scope.USER:
        own = quotas.own_usage(budget.user, windows).aggregate(**sums)
        return "", quotas.status(budget, own, current)
    if budget.scope == Budget.Scope.GROUP and budget.group_id is not None:
        row = quotas.group_usage({budget.group_id}, windows).first() or {}
        return "", quotas.status(budget, row, current)
    return _highest_person(budget, current)


def _highest_person(
    budget: Budget, current: quotas.Window
) -> tuple[str, quotas.BudgetStatus] | None:
    personal = Budget.objects.filter(
        scope=Budget.Scope.USER, period=budget.period, user=OuterRef("user")
    )
    rows = (
        UsageRecord.objects.filter(created_at__gte=current.start, user__isnull=False)
        .exclude(Exists(personal))
        .values("user__username")
        .annotate(**quotas.spend_sums({budget.period: current}))
    )
    statuses = [(row["user__username"], quotas.status(budget, row, current)) for row in rows]
    return max(statuses, key=lambda found: found[1].percent, default=None)
