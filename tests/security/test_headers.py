"""Security headers on real responses: CSP, framing, sniffing, referrer, opener, cookies."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from chatsite.security import content_security_policy
from tests.conftest import PASSWORD
from tests.security.conftest import World, body_of

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'", "ws://testserver", "wss://testserver"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in filter(None, (part.strip() for part in header.split(";"))):
        name, *values = directive.split()
        parsed[name] = values
    return parsed


def headers_of(client: Client, url: str) -> dict[str, str]:
    response = client.get(url)
    body_of(response)
    return dict(response.headers)


def page_urls(world: World) -> dict[str, tuple[Client, str]]:
    owner, anonymous = world.client(world.owner), world.client(None)
    return {
        "login": (anonymous, "/accounts/login/"),
        "chat": (owner, "/"),
        "conversation": (owner, f"/c/{world.conversation.pk}/"),
        "missing page": (owner, "/c/999999/"),
        "healthz": (anonymous, "/healthz"),
        "static file": (anonymous, "/static/css/app.css"),
        "admin login": (anonymous, "/admin/login/"),
        "admin": (world.client(world.staff), "/admin/conversations/provider/"),
    }


def test_every_kind_of_response_carries_the_strict_policy_and_the_common_headers(world):
    for name, (client, url) in page_urls(world).items():
        headers = headers_of(client, url)
        assert directives(headers["Content-Security-Policy"]) == EXPECTED_CSP, name
        for header, value in COMMON_HEADERS.items():
            if header == "X-Frame-Options" and name == "static file":
                continue  # served by WhiteNoise before Django's framing middleware; CSP covers it
            assert headers.get(header) == value, (name, header)
        assert "camera=()" in headers["Permissions-Policy"], name


def test_the_policy_never_allows_inline_code_eval_or_other_origins():
    policy = content_security_policy("chat.example.com")
    assert "unsafe" not in policy and "*" not in policy and "http:" not in policy
    assert "https:" not in policy and "nonce" not in policy
    assert directives(policy)["connect-src"] == [
        "'self'",
        "ws://chat.example.com",
        "wss://chat.example.com",
    ]


def test_ipv6_hosts_leave_connect_src_to_self(settings):
    # CSP source expressions have no syntax for an IPv6 literal.
    assert directives(content_security_policy("[::1]:8000"))["connect-src"] == ["'self'"]


def test_image_downloads_keep_their_own_sandboxing_policy(world):
    client = world.client(world.owner)
    for url in (
        f"/attachments/{world.attachment.pk}/",
        f"/attachments/{world.attachment.pk}/thumb/",
    ):
        headers = headers_of(client, url)
        assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"


def test_a_disallowed_host_still_gets_a_policy_without_a_socket_host():
    response = Client(HTTP_HOST="evil.example").get("/healthz")
    assert response.status_code == 400
    assert directives(response["Content-Security-Policy"])["connect-src"] == ["'self'"]


def test_debug_error_pages_are_left_without_a_policy_so_their_inline_styles_work(world, settings):
    settings.DEBUG = True
    response = world.client(world.owner).get("/c/999999/")
    assert response.status_code == 404
    assert "Content-Security-Policy" not in response
    assert "Content-Security-Policy" in world.client(world.owner).get("/")


def test_session_and_csrf_cookies_are_httponly_samesite_and_secure_over_https(alice, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    client = Client()
    client.get("/accounts/login/", secure=True)
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}, secure=True)
    for name in ("sessionid", "csrftoken"):
        cookie = client.cookies[name]
        assert cookie["httponly"] and cookie["secure"], name
        assert cookie["samesite"] == "Lax", name


PRODUCTION_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
secure = Client().get("/accounts/login/", secure=True, HTTP_HOST="chat.example.com")
plain = Client().get("/accounts/login/", HTTP_HOST="chat.example.com")
cookie = secure.cookies["csrftoken"]
print(json.dumps({
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "csrf_cookie": [bool(cookie["secure"]), bool(cookie["httponly"]), cookie["samesite"]],
    "hsts": secure.get("Strict-Transport-Security"),
    "plain": [plain.status_code, plain.get("Location")],
    "csp": secure.get("Content-Security-Policy"),
}))
"""


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DEBUG": "0",
        "SECURE_HTTPS": "1",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "chat.example.com",
        **extra,
    }


def test_secure_https_turns_on_hsts_secure_cookies_and_the_https_redirect(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=ROOT,
        env=production_env(DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["session_cookie_secure"] is True
    assert found["csrf_cookie"] == [True, True, "Lax"]
    assert found["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert found["plain"] == [301, "https://chat.example.com/accounts/login/"]
    assert "wss://chat.example.com" in found["csp"]


def test_the_production_settings_pass_check_deploy_without_a_warning(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def test_check_deploy_does_complain_about_development_settings(tmp_path):
    env = production_env(DATA_DIR=str(tmp_path), SECURE_HTTPS="0", DEBUG="1")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "security.W018" in result.stderr  # DEBUG on
    assert "security.W012" in result.stderr  # session cookie not secure
