"""Users, providers, chat models, conversations and messages."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import URLValidator
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from conversations import crypto, parameters
from conversations.providers.base import GenerationParams, ProviderConfig


class User(AbstractUser):
    """The team member. Custom from day one, as Django advises for new projects."""

    requests_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Overrides the site's RATE_LIMIT_PER_MINUTE for this person",
    )


class Provider(models.Model):
    """An upstream API endpoint: one wire protocol, one base URL, one key."""

    class Protocol(models.TextChoices):
        OPENAI_CHAT = "openai-chat", "OpenAI Chat Completions"
        ANTHROPIC_MESSAGES = "anthropic-messages", "Anthropic Messages"
        OPENAI_RESPONSES = "openai-responses", "OpenAI Responses"

    class AuthScheme(models.TextChoices):
        BEARER = "bearer", "Authorization: Bearer"
        X_API_KEY = "x-api-key", "x-api-key header"

    name = models.CharField(max_length=100, unique=True)
    protocol = models.CharField(max_length=32, choices=Protocol.choices)
    base_url = models.CharField(
        max_length=500,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="With or without a trailing /v1, e.g. https://api.openai.com/v1",
    )
    api_key_encrypted = models.TextField(blank=True, editable=False)
    auth_scheme = models.CharField(max_length=16, choices=AuthScheme.choices, default="bearer")
    connect_timeout = models.FloatField(default=10.0, help_text="Seconds")
    read_timeout = models.FloatField(
        default=120.0, help_text="Seconds without a byte from the upstream before giving up"
    )
    max_retries = models.PositiveSmallIntegerField(
        default=2, help_text="Retries of 429/5xx before the first token"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def set_api_key(self, raw_key: str) -> None:
        self.api_key_encrypted = crypto.encrypt(raw_key.strip())

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)

    def config(self) -> ProviderConfig:
        return ProviderConfig(
            protocol=self.protocol,
            base_url=self.base_url,
            api_key=crypto.decrypt(self.api_key_encrypted),
            auth_scheme="x-api-key" if self.auth_scheme == "x-api-key" else "bearer",
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_retries=self.max_retries,
        )


class ChatModelQuerySet(models.QuerySet["ChatModel"]):
    def usable(self) -> ChatModelQuerySet:
        return self.filter(enabled=True, provider__enabled=True).select_related("provider")


class ChatModel(models.Model):
    """A model offered in the picker: an upstream model id behind a display name."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="chat_models")
    upstream_id = models.CharField(max_length=200, help_text="The model id sent upstream")
    display_name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False, help_text="The site's default model")
    supports_vision = models.BooleanField(default=False)
    supports_reasoning = models.BooleanField(default=False)
    supports_json_mode = models.BooleanField(default=False)
    supports_tools = models.BooleanField(default=False)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    default_params = models.JSONField(default=dict, blank=True)
    input_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal(0), help_text="Per million input tokens"
    )
    output_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal(0), help_text="Per million output tokens"
    )
    cached_input_price_per_mtok = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Per million cached input tokens (prompt cache reads, usually cheaper); "
        "empty: the input price",
    )
    sort_order = models.IntegerField(default=0)
    allowed_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="chat_models",
        help_text="Only members of these groups may use this model; none selected means everyone.",
    )

    objects = ChatModelQuerySet.as_manager()

    class Meta:
        ordering = ["sort_order", "display_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "upstream_id"], name="unique_model_per_provider"
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        if self.is_default:  # one site default at a time
            ChatModel.objects.exclude(pk=self.pk).filter(is_default=True).update(is_default=False)

    @classmethod
    def site_default(cls) -> ChatModel | None:
        usable = cls.objects.usable()
        return usable.filter(is_default=True).first() or usable.first()

    def generation_params(self, overrides: dict[str, Any]) -> GenerationParams:
        """The model's defaults under the conversation's settings, kept to what it supports."""
        allowed = {param.name for param in parameters.supported(self)}
        merged = {**self.default_params, **overrides}
        values = {k: v for k, v in merged.items() if k in allowed and v not in (None, "", [])}
        if "stop" in values:
            values["stop"] = tuple(values["stop"])
        return GenerationParams(**values)


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def by_recency(self) -> ConversationQuerySet:
        """Newest activity first, as `active_at`: the time of the last message, or of the
        conversation's creation before it has any.

        Read from the messages rather than stored on the conversation, so that sending a
        message writes nothing to the conversation's row (see the database benchmark).
        """
        last = Message.objects.filter(conversation=models.OuterRef("pk")).order_by("-id")
        latest = models.Subquery(last.values("created_at")[:1])
        active = Coalesce(latest, models.F("created_at"))
        return self.annotate(active_at=active).order_by("-active_at", "-id")

    def listed(self) -> ConversationQuerySet:
        """`by_recency`, carrying only what a list of links shows (the id and the title).

        The sort takes every one of the user's conversations with the columns it carries:
        with all of them (system prompts among them) the sidebar of a user with 2,000
        conversations took 13.0 ms, with these two 5.1 ms (SQLite, in-process).
        """
        return self.by_recency().only("id", "title")


class Conversation(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    model = models.ForeignKey(ChatModel, null=True, blank=True, on_delete=models.SET_NULL)
    system_prompt = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    archived = models.BooleanField(default=False)
    title_generated = models.BooleanField(default=False, help_text="Titled by the model")
    current_leaf = models.ForeignKey(
        "Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The last message of the branch picked by hand (a version switch)",
    )
    current_leaf_as_of = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="The newest message's id when that branch was picked: a newer message "
        "(a new question, an edit, a regeneration) shows its own branch instead",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["owner", "archived"], name="conv_owner_archived")]

    def __str__(self) -> str:
        return self.display_title

    @property
    def display_title(self) -> str:
        return self.title or "New conversation"

    @property
    def group_name(self) -> str:
        return f"conversation-{self.pk}"

    def pick_branch(self, leaf_id: int, newest_id: int) -> None:
        """Show the branch ending at `leaf_id` until a message newer than `newest_id` is
        written. Not saved: the caller saves both fields."""
        self.current_leaf_id = leaf_id
        self.current_leaf_as_of = newest_id

    def shown_leaf_id(self, newest_id: int | None) -> int | None:
        """The last message of the branch on screen, given the conversation's newest.

        A new message is always the leaf of its branch (messages are only added at the end
        of the branch on screen), so the newest one is the leaf unless a branch was picked
        by hand after it was written.
        """
        picked, as_of = self.current_leaf_id, self.current_leaf_as_of
        if picked is not None and as_of is not None and (newest_id or 0) <= as_of:
            return picked
        return newest_id


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        STREAMING = "streaming", "Streaming"
        COMPLETE = "complete", "Complete"
        CANCELLED = "cancelled", "Stopped"
        ERROR = "error", "Error"

    LIVE_STATUSES = (Status.PENDING, Status.STREAMING)

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        help_text="The message this one answers or follows; siblings are versions",
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    content_html = models.TextField(
        blank=True, help_text="Sanitised HTML rendered once, at the end"
    )
    reasoning = models.TextField(blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    reasoning_ms = models.PositiveIntegerField(null=True, blank=True)
    model = models.ForeignKey(ChatModel, null=True, blank=True, on_delete=models.SET_NULL)
    model_name = models.CharField(max_length=100, blank=True, help_text="Display name at the time")
    client_id = models.CharField(
        max_length=64, blank=True, help_text="Idempotency key of the submission"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["conversation", "id"], name="msg_conversation"),
            models.Index(fields=["status", "lease_expires_at"], name="msg_live_lease"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id", "role"],
                condition=~models.Q(client_id=""),
                name="unique_submission",
            )
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk}"

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE_STATUSES

    @property
    def dom_id(self) -> str:
        return f"message-{self.pk}"

    @classmethod
    def lease_until(cls) -> Any:
        return timezone.now() + timedelta(seconds=settings.GENERATION_LEASE_SECONDS)


def attachment_path(instance: Attachment, filename: str) -> str:
    # Generated names only: the uploader's file name never reaches the file system.
    return f"attachments/{timezone.now():%Y/%m}/{uuid.uuid4().hex}{Path(filename).suffix.lower()}"


class Attachment(models.Model):
    """An image a user attached; validated, downscaled and stored through Django's storage."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    file = models.FileField(upload_to=attachment_path)
    thumbnail = models.FileField(upload_to=attachment_path, blank=True)
    media_type = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveIntegerField()
    original_name = models.CharField(
        max_length=200, blank=True, help_text="Shown, never used as a path"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.original_name or f"image {self.pk}"
