"""Admin for shared links: every link, active first, with a bulk revoke."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from conversations import sharing
from conversations.models import Share

DETAIL_FIELDS = (
    "title",
    "owner",
    "conversation",
    "visibility",
    "show_owner",
    "include_system_prompt",
    "state",
    "open_link",
    "view_count",
    "last_viewed_at",
    "expires_at",
    "revoked_at",
    "created_at",
    "snapshot_json",
)


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Share]) -> QuerySet[Share]:
        if self.value() == "active":
            return queryset.filter(sharing.live())
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=timezone.now())
        return queryset


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin[Share]):
    list_display = [
        "title",
        "owner",
        "conversation",
        "visibility",
        "state",
        "view_count",
        "last_viewed_at",
        "expires_at",
        "created_at",
        "open_link",
    ]
    list_filter = [StateFilter, "visibility"]
    list_select_related = ["owner", "conversation"]
    search_fields = ["title", "owner__username"]
    actions = ["revoke_selected"]
    fields = DETAIL_FIELDS
    readonly_fields = DETAIL_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Share]:
        return sharing.active_first(super().get_queryset(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # links are made from a conversation, with its snapshot

    @admin.action(description="Revoke selected links")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Share]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} link(s) revoked.", messages.SUCCESS)

    @admin.display(description="State")
    def state(self, share: Share) -> str:
        if share.revoked_at is not None:
            return "revoked"
        return "active" if share.is_active else "expired"

    @admin.display(description="Public page")
    def open_link(self, share: Share) -> SafeString:
        url = reverse("share_view", args=[share.token])
        return format_html('<a href="{}" target="_blank" rel="noopener">open</a>', url)

    @admin.display(description="Snapshot")
    def snapshot_json(self, share: Share) -> SafeString:
        text = json.dumps(share.snapshot, indent=2, ensure_ascii=False)
        return format_html("<pre>{}</pre>", text)
