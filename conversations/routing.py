"""Websocket URL routes."""

from __future__ import annotations

from django.urls import path

from conversations.consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/conversations/", ChatConsumer.as_asgi()),
    path("ws/conversations/<int:conversation_id>/", ChatConsumer.as_asgi()),
]
