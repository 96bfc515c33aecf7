"""Admin for the usage ledger: the read-only changelist and the usage dashboard (HTML or CSV)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from conversations.models import UsageRecord
from conversations.usage_chart import build_chart
from conversations.usage_reports import (
    COLUMNS,
    NAME_KEYS,
    DateRange,
    DayRow,
    Figures,
    RangeError,
    Sort,
    format_cost,
    parse_range,
    per_day,
    per_model,
    per_user,
    records,
    totals,
)

LEDGER = "admin:conversations_usagerecord_changelist"
CONVERSATIONS = "admin:conversations_conversation_changelist"
DASHBOARD = "admin:usage_dashboard"


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin[UsageRecord]):
    """The ledger is written by the runner only: nobody adds, edits or deletes rows here."""

    list_display = [
        "who",
        "model_label",
        "provider_label",
        "kind",
        "outcome",
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cached_tokens",
        "cost",
        "ttft_ms",
        "duration_ms",
        "estimated",
        "created_at",
    ]
    list_filter = ["user", "model", "provider", "outcome", "kind", "estimated", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["username", "model_name"]
    list_per_page = 100
    change_list_template = "admin/usage/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="user", ordering="username")
    def who(self, record: UsageRecord) -> str:
        return record.username  # kept when the account is deleted

    @admin.display(description="model", ordering="model_name")
    def model_label(self, record: UsageRecord) -> str:
        return record.model_name

    @admin.display(description="provider", ordering="provider_name")
    def provider_label(self, record: UsageRecord) -> str:
        return record.provider_name

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.dashboard_view)
        return [path("dashboard/", view, name="usage_dashboard"), *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        # Staff only (admin_view), and only those allowed to read the ledger itself.
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "opts": self.model._meta}
        return dashboard(request, context)


# --- The dashboard's tables: one builder per table feeds both the page and the CSV ---------


@dataclass(frozen=True)
class Header:
    label: str
    key: str = ""  # the sort key; "" when the column does not sort
    url: str = ""
    state: str = ""  # "ascending" or "descending" when the table is sorted by it
    numeric: bool = True


@dataclass(frozen=True)
class Line:
    cells: tuple[str, ...]  # the name columns (user; model and provider; day)
    figures: Figures
    ledger_url: str
    conversations_url: str = ""


@dataclass(frozen=True)
class Table:
    key: str  # users, models or days: the `table` value of its CSV
    caption: str
    headers: list[Header]
    lines: list[Line]
    csv_url: str


def _query(span: DateRange, **extra: str) -> str:
    return "?" + urlencode({"start": span.start, "end": span.end, **extra})


def _csv_url(span: DateRange, sort: Sort, table: str) -> str:
    return _query(span, sort=sort.param, format="csv", table=table)


def _headers(names: Sequence[tuple[str, str]], span: DateRange, sort: Sort) -> list[Header]:
    def header(key: str, label: str) -> Header:
        state = ("descending" if sort.descending else "ascending") if key == sort.key else ""
        url = _query(span, sort=sort.next_param(key))
        return Header(label, key, url, state, numeric=key not in NAME_KEYS)

    return [header(key, label) for key, label in [*names, *((c.key, c.label) for c in COLUMNS)]]


def _admin_url(name: str, span: DateRange | None, **filters: object) -> str:
    if span is not None:
        filters |= {"created_at__date__gte": span.start, "created_at__date__lte": span.end}
    return reverse(name) + "?" + urlencode(filters)


def users_table(rows: QuerySet[UsageRecord], span: DateRange, sort: Sort) -> Table:
    lines = []
    for row in per_user(rows, sort):
        if row.user_id is None:
            who: dict[str, object] = {"user__isnull": "True", "username": row.username}
            conversations = ""  # deleted with the account
        else:
            who = {"user__id__exact": row.user_id}
            conversations = _admin_url(CONVERSATIONS, None, owner__id__exact=row.user_id)
        ledger = _admin_url(LEDGER, span, **who)
        lines.append(Line((row.username,), row.figures, ledger, conversations))
    headers = _headers([("name", "User")], span, sort)
    return Table("users", "By user", headers, lines, _csv_url(span, sort, "users"))


def models_table(rows: QuerySet[UsageRecord], span: DateRange, sort: Sort) -> Table:
    lines = []
    for row in per_model(rows, sort):
        if row.model_id is None:
            which: dict[str, object] = {"model__isnull": "True", "model_name": row.model_name}
            conversations = ""
        else:
            which = {"model__id__exact": row.model_id}
            conversations = _admin_url(CONVERSATIONS, None, model__id__exact=row.model_id)
        ledger = _admin_url(LEDGER, span, **which)
        cells = (row.model_name, row.provider_name)
        lines.append(Line(cells, row.figures, ledger, conversations))
    names = [("name", "Model"), ("provider", "Provider")]
    headers = _headers(names, span, sort)
    return Table("models", "By model", headers, lines, _csv_url(span, sort, "models"))


def days_table(rows: QuerySet[UsageRecord], span: DateRange, sort: Sort) -> Table:
    """Chronological whatever the sort; days without usage included."""
    return _days_table(per_day(rows, span), span, sort)


def _days_table(days: list[DayRow], span: DateRange, sort: Sort) -> Table:
    lines = [
        Line((row.day.isoformat(),), row.figures, _admin_url(LEDGER, DateRange(row.day, row.day)))
        for row in days
    ]
    headers = [Header("Day", numeric=False), *(Header(c.label) for c in COLUMNS)]
    return Table("days", "By day", headers, lines, _csv_url(span, sort, "days"))


TABLES: dict[str, Callable[[QuerySet[UsageRecord], DateRange, Sort], Table]] = {
    "users": users_table,
    "models": models_table,
    "days": days_table,
}


# --- The views ------------------------------------------------------------------------------


def dashboard(request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
    """Totals, a per-day chart and per-user/per-model breakdowns; `?format=csv&table=...`
    exports one table exactly as shown (same range, same order)."""
    csv_wanted = request.GET.get("format") == "csv"
    try:
        span = parse_range(request.GET.get("start"), request.GET.get("end"), timezone.localdate())
    except RangeError as exc:
        if csv_wanted:
            return HttpResponseBadRequest(exc.message, content_type="text/plain; charset=utf-8")
        return _render(request, context | {"error": exc.message, "form": request.GET}, 400)
    sort = Sort.parse(request.GET.get("sort"))
    if csv_wanted:
        return export_csv(request.GET.get("table", ""), span, sort)
    rows = records(span)
    days = per_day(rows, span)
    page = {
        "span": span,
        "form": {"start": span.start.isoformat(), "end": span.end.isoformat()},
        "sort": sort,
        "totals": totals(rows),
        "chart": build_chart(days),
        "tables": [
            users_table(rows, span, sort),
            models_table(rows, span, sort),
            _days_table(days, span, sort),
        ],
        "ledger_url": _admin_url(LEDGER, span),
    }
    return _render(request, context | page)


def _render(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    context.setdefault("title", "Usage dashboard")
    return TemplateResponse(request, "admin/usage/dashboard.html", context, status=status)


def export_csv(table: str, span: DateRange, sort: Sort) -> HttpResponse:
    build = TABLES.get(table)
    if build is None:
        message = "Choose the table to export: table=users, table=models or table=days."
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
    result = build(records(span), span, sort)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"usage-{table}-{span.start.isoformat()}-{span.end.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow([header.label for header in result.headers])
    for line in result.lines:
        values = [csv_value(value) for value in line.figures.values()]
        writer.writerow([*(safe_text(cell) for cell in line.cells), *values])
    return response


def csv_value(value: int | Decimal | None) -> str:
    if value is None:
        return ""
    return format_cost(value) if isinstance(value, Decimal) else str(value)


def safe_text(text: str) -> str:
    """A leading quote keeps spreadsheets from running a name like "=HYPERLINK(...)"."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
