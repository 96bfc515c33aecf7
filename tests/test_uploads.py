"""Attachment files go with their rows, and images picked but never sent are purged."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from conversations import uploads
from conversations.control import Control
from conversations.models import Attachment
from tests.conftest import add_message, logged_in, make_conversation
from tests.test_attachment_views import UPLOAD_URL, png_upload

pytestmark = pytest.mark.django_db


def upload(user) -> Attachment:
    logged_in(user).post(UPLOAD_URL, {"file": png_upload()})
    return Attachment.objects.filter(owner=user).latest("pk")


def files_of(attachment: Attachment, media_root) -> list:
    paths = [media_root / attachment.file.name, media_root / attachment.thumbnail.name]
    assert all(path.is_file() for path in paths)
    return paths


def age(attachment: Attachment, hours: float) -> None:
    then = timezone.now() - timedelta(hours=hours)
    Attachment.objects.filter(pk=attachment.pk).update(created_at=then)


def test_an_image_never_sent_is_purged_with_its_files_after_the_limit(
    alice, media_root, settings, django_capture_on_commit_callbacks
):
    settings.UNSENT_UPLOAD_HOURS = 24
    stale, fresh = upload(alice), upload(alice)
    stale_files, fresh_files = files_of(stale, media_root), files_of(fresh, media_root)
    age(stale, 25)
    age(fresh, 23)

    with django_capture_on_commit_callbacks(execute=True):
        assert uploads.purge_unsent() == 1

    assert list(Attachment.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert not any(path.exists() for path in stale_files)
    assert all(path.is_file() for path in fresh_files)


def test_a_sent_image_is_never_purged(alice, media_root, django_capture_on_commit_callbacks):
    attachment = upload(alice)
    question = add_message(make_conversation(alice), "user", "look")
    Attachment.objects.filter(pk=attachment.pk).update(message=question)
    age(attachment, 24 * 365)

    with django_capture_on_commit_callbacks(execute=True):
        assert uploads.purge_unsent() == 0

    assert Attachment.objects.filter(pk=attachment.pk).exists()
    files_of(attachment, media_root)


def test_deleting_a_conversation_deletes_its_image_files(
    alice, media_root, django_capture_on_commit_callbacks
):
    conversation = make_conversation(alice)
    attachment = upload(alice)
    Attachment.objects.filter(pk=attachment.pk).update(
        message=add_message(conversation, "user", "look")
    )
    paths = files_of(attachment, media_root)

    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(alice).post(f"/c/{conversation.pk}/delete/")

    assert response.status_code == 302
    assert not Attachment.objects.exists()
    assert not any(path.exists() for path in paths)


def test_deleting_an_attachment_row_deletes_its_files(
    alice, media_root, django_capture_on_commit_callbacks
):
    attachment = upload(alice)
    paths = files_of(attachment, media_root)
    with django_capture_on_commit_callbacks(execute=True):
        attachment.delete()  # as the admin does
    assert not any(path.exists() for path in paths)


def test_a_deletion_rolled_back_keeps_the_files(
    alice, media_root, django_capture_on_commit_callbacks
):
    attachment = upload(alice)
    pk, paths = attachment.pk, files_of(attachment, media_root)

    def delete_then_fail() -> None:
        with transaction.atomic():
            attachment.delete()
            raise RuntimeError("something later failed")

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
    ):
        delete_then_fail()
    assert callbacks == []
    assert Attachment.objects.filter(pk=pk).exists()
    assert all(path.is_file() for path in paths)


@pytest.mark.django_db(transaction=True)
async def test_every_worker_purges_unsent_images_as_it_sweeps(alice, media_root, settings):
    settings.GENERATION_LEASE_SECONDS = 3  # a sweep a second
    stale = await sync_to_async(upload)(alice)
    paths = await sync_to_async(files_of)(stale, media_root)
    await sync_to_async(age)(stale, settings.UNSENT_UPLOAD_HOURS + 1)

    layer = get_channel_layer()
    sweeper = asyncio.create_task(Control()._sweep_forever(layer, await layer.new_channel()))
    try:
        for _ in range(50):
            await asyncio.sleep(0.1)
            if not await Attachment.objects.filter(pk=stale.pk).aexists():
                break
    finally:
        sweeper.cancel()
    assert not await Attachment.objects.filter(pk=stale.pk).aexists()
    assert not any(path.exists() for path in paths)
