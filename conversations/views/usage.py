"""The "My usage" page: a person's own ledger totals, per model and per day."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from conversations.quotas import budgets_for
from conversations.usage_reports import COLUMNS, personal_report


@login_required
@require_GET
def my_usage(request: HttpRequest) -> HttpResponse:
    # Only ever the signed-in person's rows: the report is filtered by their id.
    user_id = request.user.pk
    if user_id is None:  # not reached behind login_required; keeps the filter honest
        raise PermissionDenied
    report = personal_report(user_id, timezone.localdate())
    context = {"report": report, "columns": COLUMNS, "budgets": budgets_for(request.user)}
    return render(request, "conversations/usage.html", context)
