"""Conversation management: rename, archive, delete, search and export."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from conversations import access, threads
from conversations.models import Conversation, Message

MAX_TITLE = 200
SEARCH_LIMIT = 50


def _htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


@login_required
@require_POST
def rename(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = access.get_conversation(request.user, pk)
    title = " ".join(request.POST.get("title", "").split())[:MAX_TITLE]
    if not title:
        return HttpResponse("A title cannot be empty.", status=400, content_type="text/plain")
    conversation.title, conversation.title_generated = title, True  # no auto title over it
    conversation.save(update_fields=["title", "title_generated"])
    if not _htmx(request):
        return redirect("conversation", pk=pk)
    return render(request, "conversations/_renamed.html", {"conversation": conversation})


@login_required
@require_POST
def archive(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = access.get_conversation(request.user, pk)
    conversation.archived = not conversation.archived
    conversation.save(update_fields=["archived"])
    return redirect("conversation", pk=pk)


@login_required
@require_POST
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Deleting removes its messages, images (and their files: conversations/uploads.py) and
    shared links (they cascade)."""
    conversation = access.get_conversation(request.user, pk)
    conversation.delete()
    return redirect("home")


def matching(user: Any, query: str, archived: bool = False) -> QuerySet[Conversation]:
    """The user's conversations whose title or any message contains the query."""
    mine = access.conversations_of(user).filter(archived=archived)
    if not query:
        return mine.listed()
    in_messages = Message.objects.filter(conversation=OuterRef("pk"), content__icontains=query)
    return mine.filter(Q(title__icontains=query) | Q(Exists(in_messages))).listed()


def _snippet(conversation: Conversation, query: str) -> str:
    message = conversation.messages.filter(content__icontains=query).order_by("-id").first()
    if message is None:
        return ""
    at = message.content.lower().find(query.lower())
    start = max(at - 30, 0)
    return ("…" if start else "") + " ".join(message.content[start : at + 60].split()) + "…"


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    archived = request.GET.get("archived") == "1"
    found = list(matching(request.user, query, archived)[:SEARCH_LIMIT])
    if query:
        for item in found:
            item.snippet = "" if query.lower() in item.title.lower() else _snippet(item, query)  # type: ignore[attr-defined]
    context = {"conversations": found, "query": query, "conversation": None}
    return render(request, "conversations/_conversation_list.html", context)


@login_required
@require_GET
def archived(request: HttpRequest) -> HttpResponse:
    found = matching(request.user, "", archived=True)[: SEARCH_LIMIT * 4]
    return render(request, "conversations/archived.html", {"archived": found})


def _export_rows(conversation: Conversation) -> list[dict[str, Any]]:
    rows = []
    for message in threads.thread_of(conversation).messages:
        rows.append(
            {
                "role": message.role,
                "content": message.content,
                "reasoning": message.reasoning or None,
                "model": message.model_name or None,
                "status": message.status,
                "created_at": message.created_at.isoformat(),
                "input_tokens": message.input_tokens,
                "output_tokens": message.output_tokens,
                "images": [a.original_name or f"image-{a.pk}" for a in message.attachments.all()],
            }
        )
    return rows


def _download(
    body: str, conversation: Conversation, extension: str, content_type: str
) -> HttpResponse:
    name = slugify(conversation.display_title)[:60] or f"conversation-{conversation.pk}"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}.{extension}"'
    return response


@login_required
@require_GET
def export_json(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = access.get_conversation(request.user, pk)
    data = {
        "title": conversation.display_title,
        "model": conversation.model.display_name if conversation.model else None,
        "system_prompt": conversation.system_prompt,
        "settings": conversation.params,
        "created_at": conversation.created_at.isoformat(),
        "exported_at": timezone.now().isoformat(),
        "messages": _export_rows(conversation),
    }
    body = json.dumps(data, ensure_ascii=False, indent=2)
    return _download(body, conversation, "json", "application/json; charset=utf-8")


@login_required
@require_GET
def export_markdown(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = access.get_conversation(request.user, pk)
    lines = [f"# {conversation.display_title}", ""]
    if conversation.system_prompt:
        lines += ["> System prompt: " + conversation.system_prompt.replace("\n", "\n> "), ""]
    for row in _export_rows(conversation):
        who = "You" if row["role"] == "user" else (row["model"] or "Assistant")
        note = "" if row["status"] == "complete" else f" ({row['status']})"
        lines += [f"## {who}{note}", "", row["content"], ""]
        lines += [f"*Image: {name}*" for name in row["images"]]
    body = "\n".join(lines).rstrip() + "\n"
    return _download(body, conversation, "md", "text/markdown; charset=utf-8")
