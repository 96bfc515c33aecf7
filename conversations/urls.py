"""Page URLs of the chat."""

from __future__ import annotations

from django.urls import path

from conversations.views import attachments, chat

urlpatterns = [
    path("", chat.home, name="home"),
    path("c/<int:pk>/", chat.conversation_detail, name="conversation"),
    path("healthz", chat.healthz, name="healthz"),
    path("attachments/", attachments.upload, name="attachment_upload"),
    path("attachments/<int:pk>/", attachments.attachment_file, name="attachment_file"),
    path("attachments/<int:pk>/thumb/", attachments.attachment_thumb, name="attachment_thumb"),
]
