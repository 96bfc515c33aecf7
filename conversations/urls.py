"""Page URLs of the chat."""

from __future__ import annotations

from django.urls import path

from conversations.views import attachments, chat, manage, shares, usage

urlpatterns = [
    path("", chat.home, name="home"),
    path("c/<int:pk>/", chat.conversation_detail, name="conversation"),
    path("healthz", chat.healthz, name="healthz"),
    path("c/<int:pk>/rename/", manage.rename, name="conversation_rename"),
    path("c/<int:pk>/archive/", manage.archive, name="conversation_archive"),
    path("c/<int:pk>/delete/", manage.delete, name="conversation_delete"),
    path("c/<int:pk>/export.md", manage.export_markdown, name="conversation_export_md"),
    path("c/<int:pk>/export.json", manage.export_json, name="conversation_export_json"),
    path("search/", manage.search, name="conversation_search"),
    path("archived/", manage.archived, name="archived"),
    path("attachments/", attachments.upload, name="attachment_upload"),
    path("attachments/<int:pk>/", attachments.attachment_file, name="attachment_file"),
    path("attachments/<int:pk>/thumb/", attachments.attachment_thumb, name="attachment_thumb"),
    path("c/<int:pk>/shares/", shares.share_panel, name="share_panel"),
    path("c/<int:pk>/shares/new/", shares.share_create, name="share_create"),
    path("shares/", shares.my_shares, name="my_shares"),
    path("usage/", usage.my_usage, name="my_usage"),
    path("shares/<int:pk>/revoke/", shares.share_revoke, name="share_revoke"),
    path("s/<slug:token>/", shares.share_view, name="share_view"),
    path("s/<slug:token>/continue/", shares.share_continue, name="share_continue"),
    path("s/<slug:token>/images/<int:pk>/", shares.share_image, name="share_image"),
    path("s/<slug:token>/images/<int:pk>/thumb/", shares.share_thumb, name="share_thumb"),
]
