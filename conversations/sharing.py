"""Shared links: freeze a conversation into a snapshot, find a link for a viewer, copy it back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.http import Http404
from django.utils import timezone

from conversations import access, threads
from conversations.models import Attachment, ChatModel, Conversation, Message, Share, User
from conversations.rendering import render_markdown, render_plain

SNAPSHOT_VERSION = 1


class SnapshotImage(TypedDict):
    id: int
    width: int
    height: int
    name: str


class SnapshotMessage(TypedDict):
    role: str
    content: str
    content_html: str  # sanitised Markdown for answers, escaped text for questions
    reasoning: str
    reasoning_ms: int | None
    model_name: str
    created_at: str  # ISO 8601
    attachments: list[SnapshotImage]


class Snapshot(TypedDict):
    version: int
    system_prompt: str
    messages: list[SnapshotMessage]


@dataclass(frozen=True)
class SharedMessage:
    """One message as the shared page shows it."""

    role: str
    content: str
    content_html: str
    reasoning: str
    reasoning_ms: int | None
    model_name: str
    created_at: datetime | None
    images: list[SnapshotImage]


class NothingToShare(Exception):
    """The conversation has no finished message yet."""


def finished_path(conversation: Conversation) -> list[Message]:
    """The active path up to the latest finished message; live answers and failures stay out."""
    kept: list[Message] = []
    for message in threads.thread_of(conversation).messages:
        if message.is_live:
            break  # nothing after an answer still being written is settled either
        if message.status == Message.Status.COMPLETE or (
            message.status == Message.Status.CANCELLED and message.content
        ):
            kept.append(message)
    return kept


def snapshot_message(message: Message) -> SnapshotMessage:
    if message.role == Message.Role.USER:
        html = render_plain(message.content)
    else:  # rendered at completion; an answer saved another way is rendered now
        html = message.content_html or (render_markdown(message.content) if message.content else "")
    return {
        "role": message.role,
        "content": message.content,
        "content_html": html,
        "reasoning": message.reasoning,
        "reasoning_ms": message.reasoning_ms,
        "model_name": message.model_name,
        "created_at": message.created_at.isoformat(),
        "attachments": [
            {"id": a.pk, "width": a.width, "height": a.height, "name": a.original_name}
            for a in message.attachments.all()
        ],
    }


def build_snapshot(conversation: Conversation, *, include_system_prompt: bool) -> Snapshot:
    return {
        "version": SNAPSHOT_VERSION,
        "system_prompt": conversation.system_prompt if include_system_prompt else "",
        "messages": [snapshot_message(m) for m in finished_path(conversation)],
    }


def create_share(
    conversation: Conversation,
    *,
    visibility: str,
    expires_at: datetime | None,
    show_owner: bool,
    include_system_prompt: bool,
) -> Share:
    snapshot = build_snapshot(conversation, include_system_prompt=include_system_prompt)
    if not snapshot["messages"]:
        raise NothingToShare
    return Share.objects.create(
        conversation=conversation,
        owner=conversation.owner,
        visibility=visibility,
        show_owner=show_owner,
        include_system_prompt=include_system_prompt,
        title=conversation.display_title[:200],
        snapshot=snapshot,
        expires_at=expires_at,
    )


def live() -> Q:
    """Neither revoked nor expired, as a filter (the same test as Share.objects.active())."""
    not_expired = Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    return Q(revoked_at__isnull=True) & not_expired


def active_first(shares: QuerySet[Share]) -> QuerySet[Share]:
    order = Case(When(live(), then=Value(0)), default=Value(1), output_field=IntegerField())
    return shares.annotate(inactive=order).order_by("inactive", "-created_at")


def active_share(token: str) -> Share:
    """A link that is neither revoked nor expired, or 404 (a dead link looks like a wrong one)."""
    share = Share.objects.active().select_related("owner").filter(token=token).first()
    if share is None:
        raise Http404("No such link")
    return share


def may_view(share: Share, user: Any) -> bool:
    """Public links are for anyone; team links for anyone signed in."""
    return share.visibility == Share.Visibility.PUBLIC or bool(
        getattr(user, "is_authenticated", False)
    )


def count_view(share: Share) -> None:
    # In the database, so simultaneous views all count.
    Share.objects.filter(pk=share.pk).update(
        view_count=F("view_count") + 1, last_viewed_at=timezone.now()
    )


def revoke(share: Share) -> None:
    if share.revoked_at is None:
        share.revoked_at = timezone.now()
        share.save(update_fields=["revoked_at"])


def snapshot_of(share: Share) -> list[SnapshotMessage]:
    messages = share.snapshot.get("messages", []) if isinstance(share.snapshot, dict) else []
    return list(messages)


def shared_messages(share: Share) -> list[SharedMessage]:
    return [
        SharedMessage(
            role=item["role"],
            content=item["content"],
            content_html=item["content_html"],
            reasoning=item.get("reasoning", ""),
            reasoning_ms=item.get("reasoning_ms"),
            model_name=item.get("model_name", ""),
            created_at=_parse_time(item.get("created_at", "")),
            images=list(item.get("attachments", [])),
        )
        for item in snapshot_of(share)
    ]


def shared_system_prompt(share: Share) -> str:
    if not share.include_system_prompt or not isinstance(share.snapshot, dict):
        return ""
    return str(share.snapshot.get("system_prompt", ""))


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def snapshot_attachment_ids(share: Share) -> set[int]:
    return {image["id"] for item in snapshot_of(share) for image in item.get("attachments", [])}


def shared_attachment(share: Share, attachment_id: int) -> Attachment:
    """An image in the snapshot, still in the shared conversation; else 404."""
    if attachment_id not in snapshot_attachment_ids(share):
        raise Http404("No such image")
    found = Attachment.objects.filter(
        pk=attachment_id, message__conversation_id=share.conversation_id
    ).first()
    if found is None:
        raise Http404("No such image")
    return found


@transaction.atomic
def continue_share(share: Share, viewer: User) -> Conversation:
    """A new conversation of the viewer's holding the snapshot: theirs to continue."""
    conversation = Conversation.objects.create(
        owner=viewer,
        title=share.title,
        system_prompt=shared_system_prompt(share),
        model=_usable_model(share, viewer),
    )
    originals = Attachment.objects.filter(
        pk__in=snapshot_attachment_ids(share), message__conversation_id=share.conversation_id
    ).in_bulk()
    parent: Message | None = None
    for item in snapshot_of(share):
        parent = _copy_message(item, conversation, parent)
        for image in item.get("attachments", []):
            if image["id"] in originals:
                copy_attachment(originals[image["id"]], viewer, parent)
    return conversation  # the last message copied is the newest: its branch is on screen


def _usable_model(share: Share, viewer: User) -> ChatModel | None:
    """The shared conversation's model, if the viewer may use it (else the site default later)."""
    model_id = share.conversation.model_id
    if model_id is None:
        return None
    return access.models_for(viewer).filter(pk=model_id).first()


def _copy_message(
    item: SnapshotMessage, conversation: Conversation, parent: Message | None
) -> Message:
    return Message.objects.create(
        conversation=conversation,
        parent=parent,
        role=item["role"],
        content=item["content"],
        content_html=item["content_html"],
        reasoning=item.get("reasoning", ""),
        reasoning_ms=item.get("reasoning_ms"),
        model_name=item.get("model_name", ""),
        status=Message.Status.COMPLETE,
    )


def copy_attachment(original: Attachment, owner: User, message: Message) -> Attachment | None:
    """A new row with its own copies of the files, so either side can be deleted alone."""
    try:
        with original.file.open("rb") as handle:
            content = handle.read()
        thumbnail = b""
        if original.thumbnail:
            with original.thumbnail.open("rb") as handle:
                thumbnail = handle.read()
    except FileNotFoundError:
        return None  # the file is gone: the copy simply has no image
    return Attachment.objects.create(
        owner=owner,
        message=message,
        file=ContentFile(content, name=f"image{Path(original.file.name or '').suffix}"),
        thumbnail=ContentFile(thumbnail, name=f"thumb{Path(original.thumbnail.name or '').suffix}")
        if thumbnail
        else "",
        media_type=original.media_type,
        width=original.width,
        height=original.height,
        size_bytes=original.size_bytes,
        original_name=original.original_name,
    )
