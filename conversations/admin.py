"""Admin for users, providers (write-only keys), models, conversations and messages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from conversations import (
    admin_quotas,  # noqa: F401  (registers the Budget admin)
    admin_shares,  # noqa: F401  (registers the Share admin)
    admin_usage,  # noqa: F401  (registers the usage ledger's admin)
)
from conversations.model_sync import sync_models
from conversations.models import ChatModel, Conversation, Message, Provider, User
from conversations.providers.base import ProviderError


class TeamUserAdmin(UserAdmin[User]):
    fieldsets = (*(UserAdmin.fieldsets or ()), ("Limits", {"fields": ("requests_per_minute",)}))


admin.site.register(User, TeamUserAdmin)
admin.site.site_header = "Team chat administration"


class ProviderForm(forms.ModelForm[Provider]):
    """The API key can be replaced or cleared, never read back."""

    api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave blank to keep the stored key.",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key.")

    class Meta:
        model = Provider
        fields = [
            "name",
            "protocol",
            "base_url",
            "auth_scheme",
            "connect_timeout",
            "read_timeout",
            "max_retries",
            "enabled",
        ]

    def save(self, commit: bool = True) -> Provider:
        provider = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            provider.api_key_encrypted = ""
        elif self.cleaned_data.get("api_key"):
            provider.set_api_key(self.cleaned_data["api_key"])
        if commit:
            provider.save()
        return provider


class ChatModelInline(admin.TabularInline[ChatModel, Provider]):
    model = ChatModel
    extra = 0
    fields = ["upstream_id", "display_name", "enabled", "is_default", "supports_vision"]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin[Provider]):
    form = ProviderForm
    list_display = ["name", "protocol", "base_url", "key_status", "enabled"]
    list_filter = ["protocol", "enabled"]
    search_fields = ["name", "base_url"]
    inlines = [ChatModelInline]
    fields = [*ProviderForm.Meta.fields, "api_key", "clear_api_key", "key_status"]
    readonly_fields = ["key_status"]
    actions = ["discover_models"]

    @admin.action(description="Discover models from the provider (GET /models)")
    def discover_models(self, request: HttpRequest, queryset: Any) -> None:
        for provider in queryset:
            try:
                result = sync_models(provider)
            except ProviderError as exc:
                self.message_user(request, f"{provider.name}: {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{provider.name}: {len(result.added)} new model(s) added, disabled until you "
                f"enable them; {len(result.known)} already known.",
                messages.SUCCESS,
            )

    @admin.display(description="API key")
    def key_status(self, provider: Provider) -> str:
        return "set (hidden)" if provider.has_api_key else "not set"


@admin.register(ChatModel)
class ChatModelAdmin(admin.ModelAdmin[ChatModel]):
    list_display = [
        "display_name",
        "upstream_id",
        "provider",
        "enabled",
        "is_default",
        "supports_vision",
        "supports_reasoning",
        "input_price_per_mtok",
        "cached_input_price_per_mtok",
        "output_price_per_mtok",
    ]
    list_filter = ["provider", "enabled", "supports_vision", "supports_reasoning"]
    list_editable = ["enabled", "is_default"]
    search_fields = ["display_name", "upstream_id"]
    filter_horizontal = ["allowed_groups"]  # none chosen: everyone may use the model


class MessageInline(admin.TabularInline[Message, Conversation]):
    model = Message
    extra = 0
    can_delete = False
    fields = ("role", "status", "content", "model_name", "input_tokens", "output_tokens", "ttft_ms")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = ["display_title", "owner", "model", "last_active", "archived"]
    list_filter = ["archived", "model"]
    search_fields = ["title", "owner__username"]
    list_select_related = ["owner", "model"]
    inlines = [MessageInline]
    readonly_fields = ["owner", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return Conversation.objects.by_recency()

    @admin.display(description="Last active", ordering="active_at")
    def last_active(self, conversation: Conversation) -> Any:
        return getattr(conversation, "active_at", None)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin[Message]):
    list_display = [
        "pk",
        "conversation",
        "role",
        "status",
        "model_name",
        "input_tokens",
        "output_tokens",
        "ttft_ms",
        "duration_ms",
        "created_at",
    ]
    list_filter = ["role", "status", "model"]
    list_select_related = ["conversation"]
    search_fields = ["content"]
    readonly_fields = [f.name for f in Message._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
