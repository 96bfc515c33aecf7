"""Root URLs: accounts, admin, the chat."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from conversations.login_throttle import AdminLoginForm, LoginForm, throttled

# Both sign-in forms count failures and refuse attempts past the limit (HTTP 429).
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path(
        "accounts/login/",
        throttled(
            auth_views.LoginView.as_view(
                redirect_authenticated_user=True, authentication_form=LoginForm
            )
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/login/", throttled(admin.site.login)),  # before admin.site.urls: wins
    path("admin/", admin.site.urls),
    path("", include("conversations.urls")),
]
