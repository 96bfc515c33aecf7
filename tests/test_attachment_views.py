"""Attachment upload and download over HTTP: stored names, ownership, headers, CSRF."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from conversations.models import Attachment
from tests.conftest import add_message, logged_in, make_conversation
from tests.test_images import image_bytes, noise_bytes

pytestmark = pytest.mark.django_db

UPLOAD_URL = "/attachments/"
GENERATED_NAME = re.compile(r"^attachments/\d{4}/\d{2}/[0-9a-f]{32}\.(png|jpg|webp)$")


def png_upload(name: str = "cat.png", **kwargs) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, image_bytes("PNG", **kwargs), content_type="image/png")


def raw_multipart(client: Client, filename: str, content: bytes):
    """A hand-written body: Django's test client would strip directories from the name itself."""
    boundary = "----teamchat-test-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.generic(
        "POST", UPLOAD_URL, body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def body_of(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def attachment(alice) -> Attachment:
    logged_in(alice).post(UPLOAD_URL, {"file": png_upload(size=(640, 480))})
    return Attachment.objects.get()


def test_upload_stores_a_processed_image_and_returns_a_chip(alice, media_root):
    response = logged_in(alice).post(UPLOAD_URL, {"file": png_upload(size=(640, 480))})
    assert response.status_code == 200
    attachment = Attachment.objects.get()
    assert (attachment.owner, attachment.message) == (alice, None)
    assert (attachment.media_type, attachment.width, attachment.height) == ("image/png", 640, 480)
    assert attachment.size_bytes == attachment.file.size
    assert attachment.original_name == "cat.png"
    assert (media_root / attachment.file.name).is_file()
    assert (media_root / attachment.thumbnail.name).is_file()
    page = response.content.decode()
    pk = attachment.pk
    assert f'<div class="attachment-chip" id="attachment-chip-{pk}"' in page
    assert f'<input type="hidden" name="attachments" value="{pk}">' in page
    assert (
        '<button type="button" class="attachment-chip__remove" data-action="remove-attachment"'
        in page
    )
    assert f'src="{reverse("attachment_thumb", args=[pk])}"' in page


def test_files_are_stored_under_generated_names(alice):
    logged_in(alice).post(UPLOAD_URL, {"file": png_upload("holiday photo.png")})
    attachment = Attachment.objects.get()
    assert GENERATED_NAME.match(str(attachment.file.name))
    assert GENERATED_NAME.match(str(attachment.thumbnail.name))
    assert "holiday" not in str(attachment.file.name)


def test_a_path_in_the_client_name_goes_nowhere(alice, media_root, tmp_path):
    response = raw_multipart(logged_in(alice), "../../evil.png", image_bytes("PNG"))
    assert response.status_code == 200
    attachment = Attachment.objects.get()
    assert GENERATED_NAME.match(str(attachment.file.name))
    assert attachment.original_name == "evil.png"  # shown only, never a path
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert written
    assert all(path.is_relative_to(media_root / "attachments") for path in written)
    assert "evil.png" not in {path.name for path in written}


def test_the_client_name_is_shown_escaped_and_cut_to_200_characters(alice):
    name = "<img src=x onerror=alert(1)>" + "a" * 300 + ".png"
    response = raw_multipart(logged_in(alice), name, image_bytes("PNG"))
    page = response.content.decode()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert len(Attachment.objects.get().original_name) == 200


def test_png_bytes_named_jpg_are_stored_as_png(alice):
    response = raw_multipart(logged_in(alice), "x.jpg", image_bytes("PNG"))
    attachment = Attachment.objects.get()
    assert response.status_code == 200
    assert attachment.media_type == "image/png"
    assert str(attachment.file.name).endswith(".png")


def test_html_named_png_is_refused_with_an_alert(alice):
    upload = SimpleUploadedFile("x.png", b"<html><script>alert(1)</script></html>")
    response = logged_in(alice).post(UPLOAD_URL, {"file": upload})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'role="alert"' in page
    assert "<strong>x.png</strong>: Only PNG, JPEG, WebP and GIF images can be attached." in page
    assert not Attachment.objects.exists()


def test_an_oversized_image_is_refused(alice, settings):
    settings.IMAGE_MAX_BYTES = 2048
    response = logged_in(alice).post(
        UPLOAD_URL, {"file": SimpleUploadedFile("n.png", noise_bytes(size=(60, 60)))}
    )
    assert response.status_code == 400
    assert "the limit is 2 KB." in response.content.decode()
    assert not Attachment.objects.exists()


def test_a_body_larger_than_the_limits_allow_is_refused_before_the_files_are_read(
    alice, settings, monkeypatch
):
    settings.IMAGE_MAX_BYTES = 1024
    settings.MAX_ATTACHMENTS_PER_MESSAGE = 1
    big = SimpleUploadedFile("big.png", b"\x00" * 100_000)
    monkeypatch.setattr("conversations.images.process_upload", pytest.fail)
    response = logged_in(alice).post(UPLOAD_URL, {"file": big})
    assert response.status_code == 400
    assert "too large together" in response.content.decode()


def test_several_files_give_one_chip_each(alice):
    files = [png_upload("a.png"), png_upload("b.png")]
    response = logged_in(alice).post(UPLOAD_URL, {"file": files})
    assert response.status_code == 200
    pks = list(Attachment.objects.values_list("pk", flat=True))
    assert len(pks) == 2
    assert all(f'id="attachment-chip-{pk}"' in response.content.decode() for pk in pks)


def test_more_files_than_a_message_may_carry_are_refused(alice, settings):
    settings.MAX_ATTACHMENTS_PER_MESSAGE = 2
    files = [png_upload(f"{n}.png") for n in range(3)]
    response = logged_in(alice).post(UPLOAD_URL, {"file": files})
    assert response.status_code == 400
    assert "You can attach up to 2 images at a time." in response.content.decode()
    assert not Attachment.objects.exists()


def test_one_bad_file_refuses_the_batch_without_leaving_orphans(alice, media_root):
    files = [png_upload("good.png"), SimpleUploadedFile("bad.png", b"not an image")]
    response = logged_in(alice).post(UPLOAD_URL, {"file": files})
    assert response.status_code == 400
    assert "<strong>bad.png</strong>" in response.content.decode()
    assert not Attachment.objects.exists()
    assert not media_root.exists() or not any(media_root.rglob("*.png"))


def test_an_upload_without_a_file_is_refused(alice):
    response = logged_in(alice).post(UPLOAD_URL, {})
    assert response.status_code == 400
    assert "Choose an image to attach." in response.content.decode()


def test_upload_accepts_only_post(alice):
    assert logged_in(alice).get(UPLOAD_URL).status_code == 405


@pytest.mark.parametrize("name", ["attachment_file", "attachment_thumb"])
def test_anonymous_visitors_are_sent_to_login(client, attachment, name):
    response = client.get(reverse(name, args=[attachment.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_anonymous_upload_is_sent_to_login(client):
    response = client.post(UPLOAD_URL, {"file": png_upload()})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not Attachment.objects.exists()


def test_the_file_is_served_with_locked_down_headers(alice, attachment):
    response = logged_in(alice).get(reverse("attachment_file", args=[attachment.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response["Content-Disposition"] == f'inline; filename="image-{attachment.pk}.png"'
    assert response["Cache-Control"] == "private, max-age=3600"
    assert body_of(response) == attachment.file.open("rb").read()


def test_the_thumbnail_is_served_as_webp(alice, attachment):
    response = logged_in(alice).get(reverse("attachment_thumb", args=[attachment.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert response["Content-Disposition"] == f'inline; filename="image-{attachment.pk}.webp"'
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert body_of(response).startswith(b"RIFF")


@pytest.mark.parametrize("name", ["attachment_file", "attachment_thumb"])
def test_another_users_attachment_looks_missing(bob, attachment, name):
    client = logged_in(bob)
    assert client.get(reverse(name, args=[attachment.pk])).status_code == 404
    assert client.get(reverse(name, args=[attachment.pk + 1000])).status_code == 404


def test_an_attachment_on_a_message_is_visible_to_the_conversation_owner_only(
    alice, bob, attachment
):
    message = add_message(make_conversation(alice), "user", "Look")
    attachment.message = message
    attachment.save()
    url = reverse("attachment_file", args=[attachment.pk])
    response = logged_in(alice).get(url)
    assert response.status_code == 200
    body_of(response)
    assert logged_in(bob).get(url).status_code == 404


def test_a_row_claiming_a_browser_runnable_type_is_never_served(alice, attachment):
    Attachment.objects.filter(pk=attachment.pk).update(media_type="text/html")
    response = logged_in(alice).get(reverse("attachment_file", args=[attachment.pk]))
    assert response.status_code == 404


def test_a_missing_file_on_disk_is_a_404(alice, attachment, media_root):
    (media_root / attachment.file.name).unlink()
    response = logged_in(alice).get(reverse("attachment_file", args=[attachment.pk]))
    assert response.status_code == 404


def test_upload_without_the_csrf_token_is_forbidden(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(UPLOAD_URL, {"file": png_upload()})
    assert response.status_code == 403
    assert not Attachment.objects.exists()


def test_upload_with_the_csrf_header_htmx_sends_is_accepted(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    token = "a" * 32
    client.cookies["csrftoken"] = token
    response = client.post(UPLOAD_URL, {"file": png_upload()}, headers={"X-CSRFToken": token})
    assert response.status_code == 200
