"""Shared links over HTTP: the owner's panel and list, the read-only page, its images, continuing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from conversations import access, sharing
from conversations.models import Attachment, Conversation, Share, User
from conversations.views.attachments import THUMBNAIL_TYPES, serve_file

NO_INDEX = "noindex, nofollow"
LIST_LIMIT = 500


class ShareRequest(HttpRequest):
    user: User
    htmx: HtmxDetails


class ShareForm(forms.Form):
    visibility = forms.ChoiceField(choices=Share.Visibility.choices, initial=Share.Visibility.TEAM)
    expires_on = forms.DateField(required=False)
    show_owner = forms.BooleanField(required=False)
    include_system_prompt = forms.BooleanField(required=False)

    def clean_expires_on(self) -> datetime | None:
        """A date means "valid through that day", in the site's time zone."""
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        ends = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
        if ends <= timezone.now():
            raise forms.ValidationError("Pick today or a later day.")
        return ends

    def share_options(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "visibility": data["visibility"],
            "expires_at": data["expires_on"],
            "show_owner": data["show_owner"],
            "include_system_prompt": data["include_system_prompt"],
        }


@dataclass(frozen=True)
class ShareRow:
    share: Share
    url: str

    @property
    def state(self) -> str:
        if self.share.revoked_at is not None:
            return "revoked"
        return "active" if self.share.is_active else "expired"


def _row(request: HttpRequest, share: Share) -> ShareRow:
    return ShareRow(share, request.build_absolute_uri(reverse("share_view", args=[share.token])))


def _panel(
    request: ShareRequest,
    conversation: Conversation,
    form: ShareForm | None = None,
    created: Share | None = None,
    error: str = "",
) -> HttpResponse:
    shares = sharing.active_first(conversation.shares.all())
    context = {
        "conversation": conversation,
        "form": form or ShareForm(),
        "created": _row(request, created) if created else None,
        "rows": [_row(request, share) for share in shares],
        "error": error,
    }
    return render(request, "conversations/share/_panel.html", context)


@login_required
@require_GET
def share_panel(request: ShareRequest, pk: int) -> HttpResponse:
    return _panel(request, access.get_conversation(request.user, pk))


@login_required
@require_POST
def share_create(request: ShareRequest, pk: int) -> HttpResponse:
    conversation = access.get_conversation(request.user, pk)
    form = ShareForm(request.POST)
    if not form.is_valid():
        return _panel(request, conversation, form=form)
    try:
        share = sharing.create_share(conversation, **form.share_options())
    except sharing.NothingToShare:
        error = "There is no finished message to share yet."
        return _panel(request, conversation, form=form, error=error)
    return _panel(request, conversation, created=share)


@login_required
@require_GET
def my_shares(request: ShareRequest) -> HttpResponse:
    shares = sharing.active_first(Share.objects.filter(owner=request.user)).select_related(
        "conversation"
    )
    rows = [_row(request, share) for share in shares[:LIST_LIMIT]]
    return render(request, "conversations/share/list.html", {"rows": rows})


@login_required
@require_POST
def share_revoke(request: ShareRequest, pk: int) -> HttpResponse:
    share = get_object_or_404(Share, pk=pk, owner=request.user)
    sharing.revoke(share)
    if request.htmx:
        return render(request, "conversations/share/_row.html", {"row": _row(request, share)})
    return redirect("my_shares")


@never_cache
@require_GET
def share_view(request: HttpRequest, token: str) -> HttpResponse:
    share = sharing.active_share(token)
    if not sharing.may_view(share, request.user):
        return redirect_to_login(request.get_full_path())
    sharing.count_view(share)
    context = {
        "share": share,
        "shared_messages": sharing.shared_messages(share),
        "system_prompt": sharing.shared_system_prompt(share),
        "owner_name": _owner_name(share) if share.show_owner else "",
    }
    response = render(request, "conversations/share/view.html", context)
    response["X-Robots-Tag"] = NO_INDEX
    return response


def _owner_name(share: Share) -> str:
    return share.owner.get_full_name() or share.owner.get_username()


@login_required
@require_POST
def share_continue(request: ShareRequest, token: str) -> HttpResponse:
    share = sharing.active_share(token)  # signed in, so a team link is visible too
    conversation = sharing.continue_share(share, request.user)
    return redirect("conversation", pk=conversation.pk)


def _visible_image(request: HttpRequest, token: str, attachment_id: int) -> Attachment:
    share = sharing.active_share(token)
    if not sharing.may_view(share, request.user):
        raise Http404("No such image")
    return sharing.shared_attachment(share, attachment_id)


@require_GET
def share_image(request: HttpRequest, token: str, pk: int) -> FileResponse:
    attachment = _visible_image(request, token, pk)
    return _no_index(serve_file(attachment.file, attachment.media_type, attachment.pk))


@require_GET
def share_thumb(request: HttpRequest, token: str, pk: int) -> FileResponse:
    attachment = _visible_image(request, token, pk)
    media_type = THUMBNAIL_TYPES.get(Path(attachment.thumbnail.name or "").suffix, "")
    return _no_index(serve_file(attachment.thumbnail, media_type, attachment.pk))


def _no_index(response: FileResponse) -> FileResponse:
    response["X-Robots-Tag"] = NO_INDEX
    return response
