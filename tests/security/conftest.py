"""Security test fixtures: an isolated cache, four actors, and an owner with one of everything."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.test import Client

from conversations import sharing
from conversations.models import Attachment, ChatModel, Conversation, Message, Share, User
from tests.conftest import add_message, make_conversation, make_model, make_user
from tests.security.routes import Route
from tests.test_images import image_bytes

SECRET_TITLE = "Owner-only title 7c1d"
SECRET_TEXT = "owner-only message 51ab"


@pytest.fixture(autouse=True)
def fast_hashing_and_media(settings: Any, tmp_path: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"


def body_of(response: Any) -> bytes:
    """The whole body, streamed or not. Reading a stream to its end closes the response;
    closing it again would fire request_finished and close the test's database connection."""
    return b"".join(response.streaming_content) if response.streaming else bytes(response.content)


def fetch(client: Client, method: str, url: str, **extra: Any) -> tuple[int, str, bytes]:
    """Status, Location and the whole body of one request."""
    response = getattr(client, method)(url, **extra)
    return response.status_code, response.get("Location", ""), body_of(response)


@dataclass
class World:
    owner: User
    other: User
    staff: User
    model: ChatModel
    conversation: Conversation
    question: Message
    answer: Message
    attachment: Attachment
    share: Share

    def value(self, route: Route, param: str) -> str:
        """An id of the owner's object for one URL parameter (see routes.Route.url)."""
        found = self._value(route, param)
        if found is None:
            raise AssertionError(
                f"tests/security/conftest.py cannot fill <{param}> of {route}: "
                "teach World.value which of the owner's objects it names"
            )
        return str(found)

    def _value(self, route: Route, param: str) -> object:
        if route.is_admin:
            return self._admin_value(route, param)
        if param == "pk":  # named by the path segment before it: "c/<int:pk>/", "images/<pk>/"
            before = re.search(r"(\w+)/<(?:\w+:)?pk>", route.pattern)
            targets = {
                "c": self.conversation,
                "messages": self.answer,
                "attachments": self.attachment,
                "images": self.attachment,
                "shares": self.share,
            }
            target = targets.get(before[1]) if before else None
            return target.pk if target is not None else None
        return {
            "conversation_id": self.conversation.pk,
            "message_id": self.answer.pk,
            "token": self.share.token,
            "attachment_id": self.attachment.pk,
        }.get(param)

    def _admin_value(self, route: Route, param: str) -> object:
        if route.pattern.startswith("admin/r/"):
            kind = ContentType.objects.get_for_model(Conversation)
            return {"content_type_id": kind.pk, "object_id": self.conversation.pk}.get(param)
        if param in ("object_id", "id"):
            app_label, model_name = route.pattern.split("/")[1:3]
            model = apps.get_model(app_label, model_name)
            first = model._default_manager.order_by("pk").first()
            return first.pk if first is not None else 999_999
        return {"app_label": "conversations", "url": "no-such-admin-page/"}.get(param)

    def client(self, user: User | None, **options: Any) -> Client:
        client = Client(**options)
        if user is not None:
            client.force_login(user)
        return client


def build_world(model: ChatModel | None = None) -> World:
    owner, other = make_user("owner"), make_user("other")
    staff = make_user("staff", is_staff=True, is_superuser=True)
    model = model or make_model("http://127.0.0.1:9/v1")
    conversation = make_conversation(owner, model, title=SECRET_TITLE)
    question = add_message(conversation, "user", SECRET_TEXT)
    answer = add_message(
        conversation, "assistant", "An answer", content_html="<p>An answer</p>", model=model
    )
    attachment = Attachment.objects.create(
        owner=owner,
        message=question,
        file=ContentFile(image_bytes("PNG"), name="image.png"),
        thumbnail=ContentFile(image_bytes("JPEG"), name="thumb.jpg"),
        media_type="image/png",
        width=64,
        height=48,
        size_bytes=100,
        original_name="cat.png",
    )
    share = sharing.create_share(
        conversation,
        visibility=Share.Visibility.TEAM,
        expires_at=None,
        show_owner=False,
        include_system_prompt=False,
    )
    return World(owner, other, staff, model, conversation, question, answer, attachment, share)


@pytest.fixture
def world(db: None) -> World:
    return build_world()
