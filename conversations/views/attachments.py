"""Image attachments over HTTP: upload to a chip, and permission-checked downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from conversations import images
from conversations.images import ImageRejected, ProcessedImage
from conversations.models import Attachment, User

# Only these are ever served, whatever a row says: never a type a browser would run.
SERVABLE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
THUMBNAIL_TYPES = {".webp": "image/webp", ".jpg": "image/jpeg"}
# Room for the multipart boundaries and part headers around the files themselves.
MULTIPART_OVERHEAD = 64 * 1024


class AuthenticatedHttpRequest(HttpRequest):
    user: User


def visible_attachment(user: Any, pk: int) -> Attachment:
    """An attachment the user owns or one in their conversation; else 404, like a missing one."""
    if not getattr(user, "is_authenticated", False):
        raise Http404("No such attachment")
    mine = Q(owner=user) | Q(message__conversation__owner=user)
    attachment = Attachment.objects.filter(mine, pk=pk).first()
    if attachment is None:
        raise Http404("No such attachment")
    return attachment


@login_required
@require_POST
def upload(request: AuthenticatedHttpRequest) -> HttpResponse:
    problem = _oversized_body(request) or _file_count_problem(request)
    if problem:
        return _rejection(request, problem)
    processed: list[tuple[str, ProcessedImage]] = []
    for file in request.FILES.getlist("file"):
        name = (file.name or "")[:200]
        try:
            processed.append((name, _process(file)))
        except ImageRejected as rejection:
            return _rejection(request, rejection.message, name)
    # Stored only once every file passed, so a refused batch leaves no orphans behind.
    with transaction.atomic():
        stored = [_store(request.user, name, image) for name, image in processed]
    return render(request, "conversations/_attachment_chips.html", {"attachments": stored})


@login_required
@require_GET
def attachment_file(request: AuthenticatedHttpRequest, pk: int) -> FileResponse:
    attachment = visible_attachment(request.user, pk)
    return serve_file(attachment.file, attachment.media_type, attachment.pk)


@login_required
@require_GET
def attachment_thumb(request: AuthenticatedHttpRequest, pk: int) -> FileResponse:
    attachment = visible_attachment(request.user, pk)
    media_type = THUMBNAIL_TYPES.get(Path(attachment.thumbnail.name or "").suffix, "")
    return serve_file(attachment.thumbnail, media_type, attachment.pk)


def _oversized_body(request: HttpRequest) -> str:
    # Checked before the files are looked at; the hard cap on what is received at all
    # belongs to the reverse proxy, since Django has the body spooled by now.
    limit = settings.IMAGE_MAX_BYTES * settings.MAX_ATTACHMENTS_PER_MESSAGE + MULTIPART_OVERHEAD
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= limit:
        return ""
    return "These files are too large together; attach fewer or smaller images."


def _file_count_problem(request: HttpRequest) -> str:
    count, most = len(request.FILES.getlist("file")), settings.MAX_ATTACHMENTS_PER_MESSAGE
    if count == 0:
        return "Choose an image to attach."
    if count > most:
        return f"You can attach up to {most} images at a time."
    return ""


def _process(file: UploadedFile[bytes]) -> ProcessedImage:
    return images.process_upload(
        file,
        max_bytes=settings.IMAGE_MAX_BYTES,
        max_pixels=settings.IMAGE_MAX_PIXELS,
        max_side=settings.IMAGE_MAX_SIDE,
        thumb_side=settings.IMAGE_THUMB_SIDE,
    )


def _store(owner: User, name: str, image: ProcessedImage) -> Attachment:
    # The names given here only carry the extension: the model's upload_to generates the rest.
    return Attachment.objects.create(
        owner=owner,
        file=ContentFile(image.content, name=f"image.{image.extension}"),
        thumbnail=ContentFile(image.thumbnail, name=f"thumb.{image.thumbnail_extension}"),
        media_type=image.media_type,
        width=image.width,
        height=image.height,
        size_bytes=len(image.content),
        original_name=name,
    )


def _rejection(request: HttpRequest, message: str, name: str = "") -> HttpResponse:
    context = {"message": message, "name": name}
    return render(request, "conversations/_attachment_error.html", context, status=400)


def serve_file(field: FieldFile, media_type: str, pk: int) -> FileResponse:
    extension = SERVABLE_TYPES.get(media_type)
    if extension is None or not field:
        raise Http404("No such attachment")
    try:
        handle = field.open("rb")
    except FileNotFoundError:
        raise Http404("No such attachment") from None
    response = FileResponse(handle, content_type=media_type, filename=f"image-{pk}.{extension}")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response
