"""Page URLs of the chat."""

from __future__ import annotations

from django.urls import path

from conversations import views

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<int:pk>/", views.conversation_detail, name="conversation"),
    path("healthz", views.healthz, name="healthz"),
]
